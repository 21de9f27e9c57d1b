// Byte-level BPE: training (counted pairs in a lazy max-heap, updated only in
// the words a merge touches) and encoding (merges applied by rank, GPT-2 style).
#include <algorithm>
#include <queue>
#include <unordered_map>

#include "data/random.h"
#include "data/text_util.h"
#include "data/tokenizer.h"
#include "data/vocab_tokenizer.h"
#include "tensor/error.h"

namespace heed::data {
namespace {

constexpr int64_t kFirstByteId = kNumSpecials;       // id of byte 0
constexpr int64_t kFirstMergeId = kNumSpecials + 256;  // id made by the first merge

using Symbol = int32_t;
uint64_t pair_key(Symbol a, Symbol b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

enum class ByteClass { Space, Letter, Digit, Other };
ByteClass byte_class(unsigned char c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return ByteClass::Space;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return ByteClass::Letter;
  if (c >= '0' && c <= '9') return ByteClass::Digit;
  return ByteClass::Other;
}

// Cuts text into pieces that merges never cross: a run of one byte class
// (letters, digits or other symbols) with the whitespace byte before it, or a
// run of whitespace not followed by a word. Concatenating the pieces gives text.
template <class Visit>
void for_each_piece(const std::string& s, Visit visit) {
  size_t n = s.size(), i = 0;
  auto cls = [&](size_t k) { return byte_class(static_cast<unsigned char>(s[k])); };
  while (i < n) {
    size_t start = i;
    if (cls(i) == ByteClass::Space) {
      size_t j = i;
      while (j < n && cls(j) == ByteClass::Space) ++j;
      if (j == n) {
        visit(start, n - start);
        break;
      }
      if (j - 1 > i) visit(i, j - 1 - i);  // all but the last space stand alone
      start = j - 1;
      i = j;
    }
    ByteClass c = cls(i);
    size_t k = i;
    while (k < n && cls(k) == c) ++k;
    visit(start, k - start);
    i = k;
  }
}

// Replaces every non-overlapping (a, b) in syms, left to right, by merged;
// with `kept` (one flag per adjacent pair), only the pairs whose flag is set.
void merge_pair(std::vector<Symbol>& syms, Symbol a, Symbol b, Symbol merged, const char* kept = nullptr) {
  size_t out = 0;
  for (size_t i = 0; i < syms.size();) {
    if (i + 1 < syms.size() && (!kept || kept[i]) && syms[i] == a && syms[i + 1] == b) {
      syms[out++] = merged;
      i += 2;
    } else {
      syms[out++] = syms[i++];
    }
  }
  syms.resize(out);
}

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(std::vector<std::pair<Symbol, Symbol>> merges) : merges_(std::move(merges)) {
    for (int b = 0; b < 256; ++b) bytes_.push_back(std::string(1, static_cast<char>(b)));
    for (size_t r = 0; r < merges_.size(); ++r) {
      auto [a, b] = merges_[r];
      Symbol limit = static_cast<Symbol>(kFirstMergeId + r);
      HEED_CHECK(a >= kFirstByteId && a < limit && b >= kFirstByteId && b < limit,
                 "bpe tokenizer: merge {} joins ids {} and {}, but only ids {}..{} exist before it", r, a, b,
                 kFirstByteId, limit - 1);
      bool fresh = ranks_.emplace(pair_key(a, b), static_cast<Symbol>(r)).second;
      HEED_CHECK(fresh, "bpe tokenizer: merge {} ({} {}) repeats an earlier merge", r, a, b);
      bytes_.push_back(bytes_[a - kFirstByteId] + bytes_[b - kFirstByteId]);
    }
  }

  std::string kind() const override { return "bpe"; }
  int64_t vocab_size() const override { return kFirstMergeId + static_cast<int64_t>(merges_.size()); }

  std::vector<int64_t> encode(const std::string& text) const override { return segment(text, 0.0, nullptr); }

  std::vector<int64_t> encode_sampled(const std::string& text, double dropout, uint64_t seed) const override {
    HEED_CHECK(dropout >= 0.0 && dropout <= 1.0, "bpe tokenizer encode_sampled: dropout must be in [0, 1], got {}",
               dropout);
    SplitMix64 rng(seed);
    return segment(text, dropout, &rng);
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string text;
    for (int64_t id : ids) {
      HEED_CHECK(id >= 0 && id < vocab_size(), "bpe tokenizer decode: id {} is outside the vocabulary [0, {})", id,
                 vocab_size());
      if (id == kUnk) text += "<unk>";  // never made by encode, but a model may predict it
      else if (id >= kFirstByteId) text += bytes_[id - kFirstByteId];
    }
    return text;
  }

  std::string token(int64_t id) const override {
    HEED_CHECK(id >= 0 && id < vocab_size(), "bpe tokenizer token: id {} is outside the vocabulary [0, {})", id,
               vocab_size());
    static const char* const specials[kNumSpecials] = {"<pad>", "<bos>", "<eos>", "<unk>"};
    if (id < kNumSpecials) return specials[id];
    return detail::display_piece(bytes_[id - kFirstByteId]);
  }

  std::string serialize() const override {
    std::string blob = detail::tokenizer_header("bpe") + "\n";
    blob += fmt::format("merges {}\n", merges_.size());
    for (auto [a, b] : merges_) blob += fmt::format("{} {}\n", a, b);
    return blob;
  }

 private:
  // Each piece starts as its bytes; the earliest-learned merge present is
  // applied, as training did, until none is. With a dropout, every adjacent
  // pair is left out of each step with that probability (drawn from rng), and
  // the earliest-learned surviving merge is applied where it survived.
  std::vector<int64_t> segment(const std::string& text, double dropout, SplitMix64* rng) const {
    std::vector<int64_t> ids;
    std::vector<Symbol> syms;
    std::vector<char> kept;  // per adjacent pair: survived this step's dropout
    for_each_piece(text, [&](size_t start, size_t len) {
      syms.clear();
      for (size_t i = start; i < start + len; ++i)
        syms.push_back(static_cast<Symbol>(kFirstByteId + static_cast<unsigned char>(text[i])));
      while (syms.size() > 1) {
        Symbol best_rank = -1;
        kept.assign(syms.size() - 1, 1);
        for (size_t i = 0; i + 1 < syms.size(); ++i) {
          if (rng && rng->uniform() < dropout) {
            kept[i] = 0;
            continue;
          }
          auto it = ranks_.find(pair_key(syms[i], syms[i + 1]));
          if (it != ranks_.end() && (best_rank < 0 || it->second < best_rank)) best_rank = it->second;
        }
        if (best_rank < 0) break;
        auto [a, b] = merges_[best_rank];
        merge_pair(syms, a, b, static_cast<Symbol>(kFirstMergeId + best_rank), rng ? kept.data() : nullptr);
      }
      ids.insert(ids.end(), syms.begin(), syms.end());
    });
    return ids;
  }

  std::vector<std::pair<Symbol, Symbol>> merges_;  // merges_[r] makes id kFirstMergeId + r
  std::unordered_map<uint64_t, Symbol> ranks_;      // pair -> r
  std::vector<std::string> bytes_;                  // bytes_[id - kFirstByteId]
};

}  // namespace

std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts, int64_t vocab_size) {
  HEED_CHECK(vocab_size >= kFirstMergeId && vocab_size < (int64_t{1} << 30),
             "train_bpe_tokenizer: vocab_size must be at least {} (4 specials + 256 bytes), got {}", kFirstMergeId,
             vocab_size);
  // Distinct pieces with their counts, sorted so that training never depends
  // on hash-map order.
  std::unordered_map<std::string, int64_t> piece_counts;
  for (const std::string& text : texts)
    for_each_piece(text, [&](size_t start, size_t len) { ++piece_counts[text.substr(start, len)]; });
  std::vector<std::pair<std::string, int64_t>> pieces(piece_counts.begin(), piece_counts.end());
  std::sort(pieces.begin(), pieces.end());

  std::vector<std::vector<Symbol>> words(pieces.size());
  std::vector<int64_t> freq(pieces.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // words that held the pair (may be stale)
  for (size_t w = 0; w < pieces.size(); ++w) {
    freq[w] = pieces[w].second;
    for (unsigned char c : pieces[w].first) words[w].push_back(static_cast<Symbol>(kFirstByteId + c));
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      uint64_t key = pair_key(words[w][i], words[w][i + 1]);
      pair_count[key] += freq[w];
      pair_words[key].push_back(static_cast<int32_t>(w));
    }
  }

  // Max-heap on count, ties to the smaller pair, entries checked against
  // pair_count when popped (stale ones are dropped).
  using Entry = std::pair<int64_t, uint64_t>;
  auto lower = [](const Entry& x, const Entry& y) { return x.first != y.first ? x.first < y.first : x.second > y.second; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> heap(lower);
  for (const auto& [key, count] : pair_count) heap.push({count, key});

  std::vector<std::pair<Symbol, Symbol>> merges;
  std::vector<int64_t> last_seen(words.size(), -1);
  std::unordered_map<uint64_t, int64_t> delta;
  while (kFirstMergeId + static_cast<int64_t>(merges.size()) < vocab_size) {
    while (!heap.empty()) {
      auto it = pair_count.find(heap.top().second);
      if (it != pair_count.end() && it->second == heap.top().first) break;
      heap.pop();
    }
    if (heap.empty() || heap.top().first < 2) break;  // a pair seen once teaches nothing
    uint64_t key = heap.top().second;
    heap.pop();
    Symbol a = static_cast<Symbol>(key >> 32), b = static_cast<Symbol>(key & 0xFFFFFFFFu);
    Symbol merged = static_cast<Symbol>(kFirstMergeId + merges.size());
    merges.push_back({a, b});

    delta.clear();
    std::vector<int32_t> where = std::move(pair_words[key]);
    pair_words.erase(key);
    for (int32_t w : where) {
      if (last_seen[w] == merged) continue;  // listed twice
      last_seen[w] = merged;
      std::vector<Symbol>& syms = words[w];
      for (size_t i = 0; i + 1 < syms.size(); ++i) delta[pair_key(syms[i], syms[i + 1])] -= freq[w];
      merge_pair(syms, a, b, merged);
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        uint64_t k = pair_key(syms[i], syms[i + 1]);
        delta[k] += freq[w];
        if (syms[i] == merged || syms[i + 1] == merged) pair_words[k].push_back(w);
      }
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& count = pair_count[k];
      count += d;
      if (count <= 0) pair_count.erase(k);
      else heap.push({count, k});
    }
  }
  return std::make_unique<BpeTokenizer>(std::move(merges));
}

std::unique_ptr<Tokenizer> deserialize_bpe(const std::string& blob) {
  std::vector<std::string> lines = detail::split_lines(blob);
  detail::check_tokenizer_header(lines, "bpe");
  HEED_CHECK(lines.size() >= 2, "deserialize_tokenizer: the bpe blob ends after its header");
  int64_t count = detail::parse_count_line(lines[1], "merges", "deserialize_tokenizer (bpe) line 2");
  HEED_CHECK(static_cast<int64_t>(lines.size()) - 2 == count,
             "deserialize_tokenizer: the bpe blob announces {} merges but holds {}", count, lines.size() - 2);
  std::vector<std::pair<Symbol, Symbol>> merges;
  for (int64_t r = 0; r < count; ++r) {
    std::string where = fmt::format("deserialize_tokenizer (bpe) line {}", r + 3);
    const std::string& line = lines[r + 2];
    size_t space = line.find(' ');
    HEED_CHECK(space != std::string::npos, "{}: expected '<id> <id>', got '{}'", where, line);
    int64_t a = detail::parse_int(line.substr(0, space), where), b = detail::parse_int(line.substr(space + 1), where);
    HEED_CHECK(a < kFirstMergeId + r && b < kFirstMergeId + r && a >= kFirstByteId && b >= kFirstByteId,
               "{}: merge of ids {} and {}, but only ids {}..{} exist before it", where, a, b, kFirstByteId,
               kFirstMergeId + r - 1);
    merges.push_back({static_cast<Symbol>(a), static_cast<Symbol>(b)});
  }
  try {
    return std::make_unique<BpeTokenizer>(std::move(merges));
  } catch (const Error& e) {
    HEED_FAIL("deserialize_tokenizer: {}", e.what());
  }
}

}  // namespace heed::data

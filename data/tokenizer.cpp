// The char and word tokenizers, and deserialize_tokenizer for all kinds.
#include "data/tokenizer.h"

#include <algorithm>
#include <map>

#include "data/tokenize_13a.h"
#include "data/text_util.h"
#include "data/vocab_tokenizer.h"
#include "tensor/error.h"

namespace heed::data {

std::unique_ptr<Tokenizer> deserialize_bpe(const std::string& blob);  // bpe.cpp

std::vector<int64_t> Tokenizer::encode_sampled(const std::string& text, double dropout, uint64_t /*seed*/) const {
  HEED_CHECK(dropout == 0.0, "{} tokenizer: a {} tokenizer has one segmentation only, so it cannot sample one "
             "with dropout {} (subword dropout needs a bpe tokenizer)", kind(), kind(), dropout);
  return encode(text);
}

namespace detail {
namespace {
const char* const kSpecialTokens[kNumSpecials] = {"<pad>", "<bos>", "<eos>", "<unk>"};
const char* kind_name(PieceKind kind) { return kind == PieceKind::Char ? "char" : "word"; }
}  // namespace

std::string tokenizer_header(const std::string& kind) { return "heed-tokenizer " + kind + " 1"; }

void check_tokenizer_header(const std::vector<std::string>& lines, const std::string& kind) {
  HEED_CHECK(!lines.empty(), "deserialize_tokenizer: the {} blob is empty", kind);
  HEED_CHECK(lines[0] == tokenizer_header(kind), "deserialize_tokenizer: line 1 should be '{}', got '{}'",
             tokenizer_header(kind), lines[0]);
}

VocabTokenizer::VocabTokenizer(PieceKind kind, std::vector<std::string> pieces)
    : kind_(kind), pieces_(std::move(pieces)) {
  for (size_t i = 0; i < pieces_.size(); ++i) {
    HEED_CHECK(!pieces_[i].empty(), "{} tokenizer: token {} is empty", kind_name(kind_), i + kNumSpecials);
    bool fresh = ids_.emplace(pieces_[i], static_cast<int64_t>(i) + kNumSpecials).second;
    HEED_CHECK(fresh, "{} tokenizer: token '{}' appears twice", kind_name(kind_), pieces_[i]);
  }
}

std::string VocabTokenizer::kind() const { return kind_name(kind_); }

std::vector<std::string> VocabTokenizer::split(const std::string& text) const {
  return kind_ == PieceKind::Char ? utf8_units(text) : tokenize_13a(text);
}

std::vector<int64_t> VocabTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : split(text)) {
    auto it = ids_.find(piece);
    ids.push_back(it == ids_.end() ? kUnk : it->second);
  }
  return ids;
}

std::string VocabTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  bool first = true;
  for (int64_t id : ids) {
    HEED_CHECK(id >= 0 && id < vocab_size(), "{} tokenizer decode: id {} is outside the vocabulary [0, {})", kind(),
               id, vocab_size());
    if (id == kPad || id == kBos || id == kEos) continue;
    if (kind_ == PieceKind::Word && !first) text += ' ';
    text += id == kUnk ? std::string(kSpecialTokens[kUnk]) : pieces_[id - kNumSpecials];
    first = false;
  }
  return text;
}

std::string VocabTokenizer::token(int64_t id) const {
  HEED_CHECK(id >= 0 && id < vocab_size(), "{} tokenizer token: id {} is outside the vocabulary [0, {})", kind(), id,
             vocab_size());
  if (id < kNumSpecials) return kSpecialTokens[id];
  return display_piece(pieces_[id - kNumSpecials]);
}

std::string VocabTokenizer::serialize() const {
  std::string blob = tokenizer_header(kind()) + "\n";
  blob += fmt::format("tokens {}\n", pieces_.size());
  for (const std::string& p : pieces_) blob += escape_line(p) + "\n";
  return blob;
}

std::unique_ptr<Tokenizer> VocabTokenizer::deserialize(PieceKind kind, const std::string& blob) {
  std::vector<std::string> lines = split_lines(blob);
  check_tokenizer_header(lines, kind_name(kind));
  HEED_CHECK(lines.size() >= 2, "deserialize_tokenizer: the {} blob ends after its header", kind_name(kind));
  int64_t count = parse_count_line(lines[1], "tokens", fmt::format("deserialize_tokenizer ({}) line 2", kind_name(kind)));
  HEED_CHECK(static_cast<int64_t>(lines.size()) - 2 == count,
             "deserialize_tokenizer: the {} blob announces {} tokens but holds {}", kind_name(kind), count,
             lines.size() - 2);
  std::vector<std::string> pieces;
  for (int64_t i = 0; i < count; ++i) {
    std::string where = fmt::format("deserialize_tokenizer ({}) line {}", kind_name(kind), i + 3);
    std::string piece = unescape_line(lines[i + 2], where);
    HEED_CHECK(!piece.empty(), "{}: empty token", where);
    if (kind == PieceKind::Char)
      HEED_CHECK(utf8_unit_length(piece, 0) == piece.size(), "{}: '{}' is not one character", where, piece);
    pieces.push_back(std::move(piece));
  }
  try {
    return std::make_unique<VocabTokenizer>(kind, std::move(pieces));
  } catch (const Error& e) {
    HEED_FAIL("deserialize_tokenizer: {}", e.what());
  }
}

}  // namespace detail

std::unique_ptr<Tokenizer> train_char_tokenizer(const std::vector<std::string>& texts) {
  std::map<std::string, int64_t> seen;  // ordered: ids follow byte order, which is code point order in UTF-8
  for (const std::string& text : texts)
    for (const std::string& unit : detail::utf8_units(text)) ++seen[unit];
  std::vector<std::string> pieces;
  for (const auto& entry : seen) pieces.push_back(entry.first);
  return std::make_unique<detail::VocabTokenizer>(detail::PieceKind::Char, std::move(pieces));
}

std::unique_ptr<Tokenizer> train_word_tokenizer(const std::vector<std::string>& texts, int64_t min_count,
                                                int64_t max_vocab) {
  HEED_CHECK(min_count >= 1, "train_word_tokenizer: min_count must be >= 1, got {}", min_count);
  HEED_CHECK(max_vocab == 0 || max_vocab > kNumSpecials,
             "train_word_tokenizer: max_vocab must be 0 (no cap) or more than the {} specials, got {}", kNumSpecials,
             max_vocab);
  struct Seen {
    int64_t count = 0, first = 0;
  };
  std::unordered_map<std::string, Seen> seen;
  std::vector<std::string> order;
  for (const std::string& text : texts) {
    for (std::string& word : tokenize_13a(text)) {
      auto [it, fresh] = seen.try_emplace(word);
      if (fresh) {
        it->second.first = static_cast<int64_t>(order.size());
        order.push_back(word);
      }
      ++it->second.count;
    }
  }
  std::vector<std::string> pieces;
  for (const std::string& w : order)
    if (seen[w].count >= min_count) pieces.push_back(w);
  // Most frequent first; ties keep the order of first appearance, so the same
  // texts always give the same ids.
  std::stable_sort(pieces.begin(), pieces.end(),
                   [&](const std::string& a, const std::string& b) { return seen[a].count > seen[b].count; });
  if (max_vocab > 0 && static_cast<int64_t>(pieces.size()) > max_vocab - kNumSpecials)
    pieces.resize(max_vocab - kNumSpecials);
  return std::make_unique<detail::VocabTokenizer>(detail::PieceKind::Word, std::move(pieces));
}

std::unique_ptr<Tokenizer> deserialize_tokenizer(const std::string& kind, const std::string& blob) {
  if (kind == "char") return detail::VocabTokenizer::deserialize(detail::PieceKind::Char, blob);
  if (kind == "word") return detail::VocabTokenizer::deserialize(detail::PieceKind::Word, blob);
  if (kind == "bpe") return deserialize_bpe(blob);
  HEED_FAIL("deserialize_tokenizer: unknown kind '{}' (expected char, word or bpe)", kind);
}

}  // namespace heed::data

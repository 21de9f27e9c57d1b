// Readers for the text corpora and the seeded train/valid/test split.
#include "data/corpus.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <unordered_map>

#include "data/random.h"
#include "data/text_util.h"
#include "tensor/error.h"

namespace heed::data {
namespace {

// Calls take(line, number) for every line of `in`, or of the text file at
// `path`, in order: without its '\n' or "\r\n", numbered from 1. Errors
// name `fn`.
template <class F>
void each_line(std::istream& in, F&& take) {
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    take(line, number);  // may move the line out
  }
}

template <class F>
void each_line(const std::string& path, const char* fn, F&& take) {
  std::ifstream in(path, std::ios::binary);
  HEED_CHECK(in.good(), "{}: cannot open '{}' (missing file or no permission)", fn, path);
  each_line(in, take);
}

// Pairs in order of first appearance, each once.
class UniquePairs {
 public:
  void add(SentencePair& p) {
    if (seen_.insert({p.src, p.tgt}).second) pairs_.push_back(std::move(p));
  }
  std::vector<SentencePair> take() { return std::move(pairs_); }

 private:
  std::vector<SentencePair> pairs_;
  std::set<std::pair<std::string, std::string>> seen_;
};

std::vector<std::string> split_on(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos = s.find(sep); pos != std::string::npos; pos = s.find(sep, start)) {
    parts.push_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Removes labels like " [ugs.]" or " {m}" from the end, repeatedly.
std::string strip_trailing_labels(std::string s) {
  for (s = trim(s); !s.empty();) {
    char close = s.back();
    char open = close == ']' ? '[' : close == '}' ? '{' : 0;
    if (!open) break;
    size_t pos = s.rfind(open);
    if (pos == std::string::npos) break;
    s = trim(s.substr(0, pos));
  }
  return s;
}

// Removes every [...] and {...} group and collapses the spaces left behind.
std::string strip_all_labels(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char close = s[i] == '[' ? ']' : s[i] == '{' ? '}' : 0;
    size_t end = close ? s.find(close, i) : std::string::npos;
    if (end != std::string::npos) {
      // "battery. [Am.]; My" -> "battery.; My": no space left before punctuation.
      if (end + 1 < s.size() && std::string(";,.!?:").find(s[end + 1]) != std::string::npos)
        while (!out.empty() && out.back() == ' ') out.pop_back();
      i = end;
      continue;
    }
    out += s[i];
  }
  std::string collapsed;
  for (char c : out) {
    if (c == ' ' && (collapsed.empty() || collapsed.back() == ' ')) continue;
    collapsed += c;
  }
  return trim(collapsed);
}

int64_t count_words(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = c == ' ' || c == '\t';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

bool ends_sentence(const std::string& s) {
  return !s.empty() && (s.back() == '.' || s.back() == '!' || s.back() == '?');
}

// One entry line's alternatives ("German :: English", split on " | " and
// paired by position; a line whose sides have different counts gives
// nothing), sorted into the sentences read_ding_pairs keeps and the words and
// phrases read_ding_phrases keeps (each side's first synonym). Both are
// normalised the same way (labels, apostrophes).
struct DingLine {
  std::vector<SentencePair> sentences, phrases;
};

DingLine parse_ding_line(const std::string& line, const DingOptions& options) {
  DingLine out;
  size_t sep = line.find(" :: ");
  if (line.empty() || line[0] == '#' || sep == std::string::npos) return out;
  std::vector<std::string> de = split_on(line.substr(0, sep), " | ");
  std::vector<std::string> en = split_on(line.substr(sep + 4), " | ");
  if (de.size() != en.size()) return out;  // alternatives would pair up wrongly
  auto fits = [&](const std::string& side) {
    int64_t n = count_words(side);
    return n >= options.min_words && (options.max_words == 0 || n <= options.max_words) && ends_sentence(side);
  };
  auto normalise = [&](SentencePair& p) {
    if (options.plain_apostrophes) {
      detail::replace_all(p.src, "\xE2\x80\x99", "'");
      detail::replace_all(p.tgt, "\xE2\x80\x99", "'");
    }
  };
  for (size_t i = 0; i < de.size(); ++i) {
    SentencePair p{strip_trailing_labels(de[i]), strip_trailing_labels(en[i])};
    if (fits(p.src) && fits(p.tgt)) {
      if (options.strip_inner_labels) {
        p.src = strip_all_labels(p.src);
        p.tgt = strip_all_labels(p.tgt);
      }
      normalise(p);
      if (!p.src.empty() && !p.tgt.empty()) out.sentences.push_back(std::move(p));
      continue;
    }
    // "Abholort {m}; Abholstelle {f}" :: "collection location; pickup location"
    // -> "Abholort" / "collection location": synonyms do not pair up by
    // position, the first of each side is the entry's headword.
    SentencePair phrase{trim(split_on(strip_all_labels(de[i]), "; ").front()),
                        trim(split_on(strip_all_labels(en[i]), "; ").front())};
    normalise(phrase);
    if (!phrase.src.empty() && !phrase.tgt.empty()) out.phrases.push_back(std::move(phrase));
  }
  return out;
}

void check_ding_options(const DingOptions& options, const char* fn) {
  HEED_CHECK(options.min_words >= 1, "{}: min_words must be >= 1, got {}", fn, options.min_words);
  HEED_CHECK(options.max_words == 0 || options.max_words >= options.min_words,
             "{}: max_words ({}) is below min_words ({})", fn, options.max_words, options.min_words);
}

}  // namespace

std::vector<SentencePair> read_ding_pairs(const std::string& path, const DingOptions& options) {
  check_ding_options(options, "read_ding_pairs");
  UniquePairs pairs;
  each_line(path, "read_ding_pairs", [&](const std::string& line, int64_t) {
    for (SentencePair& p : parse_ding_line(line, options).sentences) pairs.add(p);
  });
  return pairs.take();
}

std::vector<SentencePair> read_ding_phrases(const std::string& path, const std::vector<SentencePair>& held_out,
                                            const DingOptions& options) {
  check_ding_options(options, "read_ding_phrases");
  std::set<std::string> held_src, held_tgt;
  for (const auto& p : held_out) held_src.insert(p.src), held_tgt.insert(p.tgt);
  auto held = [&](const SentencePair& p) { return held_src.count(p.src) || held_tgt.count(p.tgt); };
  UniquePairs phrases;
  each_line(path, "read_ding_phrases", [&](const std::string& line, int64_t) {
    DingLine entry = parse_ding_line(line, options);
    // A held-out sentence's line is skipped whole: its headword and
    // sibling examples would teach the test sentence's words in its context.
    if (std::any_of(entry.sentences.begin(), entry.sentences.end(), held)) return;
    for (SentencePair& p : entry.phrases)
      if (!held(p)) phrases.add(p);
  });
  return phrases.take();
}

std::vector<std::string> split_joined_sentences(const std::string& side) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos = side.find("; "); pos != std::string::npos; pos = side.find("; ", pos + 2)) {
    std::string part = trim(side.substr(start, pos - start));
    // "bzw.; " or "z.B.; " end in a period too, but a join needs a whole
    // sentence before it: at least two words.
    if (!ends_sentence(part) || part.find(' ') == std::string::npos) continue;
    parts.push_back(std::move(part));
    start = pos + 2;
  }
  std::string last = trim(side.substr(start));
  if (!last.empty() || parts.empty()) parts.push_back(std::move(last));
  return parts;
}

std::vector<SentencePair> split_joined_pairs(const std::vector<SentencePair>& pairs,
                                             const std::vector<SentencePair>& held_out) {
  std::set<std::string> held_src, held_tgt;
  for (const auto& p : held_out) {
    for (auto& s : split_joined_sentences(p.src)) held_src.insert(s);
    for (auto& t : split_joined_sentences(p.tgt)) held_tgt.insert(t);
    held_src.insert(p.src), held_tgt.insert(p.tgt);
  }
  UniquePairs out;
  for (const SentencePair& p : pairs) {
    const std::vector<std::string> src = split_joined_sentences(p.src), tgt = split_joined_sentences(p.tgt);
    const size_t n = std::max(src.size(), tgt.size());
    if (n == 1 || (src.size() != tgt.size() && src.size() != 1 && tgt.size() != 1)) {
      SentencePair whole = p;
      out.add(whole);
      continue;
    }
    for (size_t i = 0; i < n; ++i) {
      SentencePair part{src[src.size() == 1 ? 0 : i], tgt[tgt.size() == 1 ? 0 : i]};
      if (!held_src.count(part.src) && !held_tgt.count(part.tgt)) out.add(part);
    }
  }
  return out.take();
}

std::vector<SentencePair> read_tsv_pairs(const std::string& path) {
  std::vector<SentencePair> pairs;
  each_line(path, "read_tsv_pairs", [&](const std::string& line, int64_t number) {
    if (line.empty()) return;
    size_t tab = line.find('\t');
    HEED_CHECK(tab != std::string::npos, "read_tsv_pairs: {} line {}: no tab between source and target", path, number);
    HEED_CHECK(line.find('\t', tab + 1) == std::string::npos,
               "read_tsv_pairs: {} line {}: more than one tab (expected 'src<TAB>tgt')", path, number);
    pairs.push_back({line.substr(0, tab), line.substr(tab + 1)});
  });
  return pairs;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  each_line(path, "read_lines", [&](std::string& line, int64_t) { lines.push_back(std::move(line)); });
  return lines;
}

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  each_line(in, [&](std::string& line, int64_t) { lines.push_back(std::move(line)); });
  return lines;
}

PairSplits split_pairs(const std::vector<SentencePair>& pairs, double valid_fraction, double test_fraction,
                       uint64_t seed) {
  HEED_CHECK(valid_fraction >= 0 && test_fraction >= 0 && valid_fraction + test_fraction <= 1,
             "split_pairs: fractions must be >= 0 and sum to at most 1, got valid {} and test {}", valid_fraction,
             test_fraction);
  // Groups of pair indices sharing a source, in order of first appearance.
  std::unordered_map<std::string, size_t> group_of;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < pairs.size(); ++i) {
    auto [it, fresh] = group_of.try_emplace(pairs[i].src, groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  SplitMix64 rng(seed);
  seeded_shuffle(groups, rng);

  const auto n = static_cast<double>(pairs.size());
  const size_t want_test = static_cast<size_t>(std::llround(test_fraction * n));
  const size_t want_valid = static_cast<size_t>(std::llround(valid_fraction * n));
  PairSplits splits;
  for (const auto& group : groups) {
    std::vector<SentencePair>* into = &splits.train;
    if (splits.test.size() < want_test) into = &splits.test;
    else if (splits.valid.size() < want_valid) into = &splits.valid;
    for (size_t i : group) into->push_back(pairs[i]);
  }
  return splits;
}

}  // namespace heed::data

#include "data/bleu.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "data/text_util.h"
#include "tensor/error.h"

namespace heed::data {
namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// mteval's symbol class [{-~[-` -&(-+:-@/]: ASCII punctuation except ' - . ,
// (and, within the range " -&", the space itself, which splitting removes).
bool is_13a_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

// Python's re.sub for a two-character pattern (first in class a, second in
// class b): leftmost matches, never overlapping. Working on bytes gives the
// same result as on code points here, since the classes that can match a
// non-ASCII character ([^0-9]) never sit beside a continuation byte test.
template <class A, class B, class Emit>
std::string substitute_pairs(const std::string& s, A in_a, B in_b, Emit emit) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && in_a(s[i]) && in_b(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Length of the whitespace code point at s[i] (as Python's str.split() sees
// whitespace), or 0.
size_t whitespace_length(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  size_t len = detail::utf8_unit_length(s, i);
  if (len == 1) return 0;
  uint32_t cp = c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  bool space = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
               cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
  return space ? len : 0;
}

std::vector<std::string> split_whitespace(const std::string& s) {
  std::vector<std::string> words;
  std::string word;
  for (size_t i = 0; i < s.size();) {
    size_t ws = whitespace_length(s, i);
    if (ws > 0) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
      i += ws;
    } else {
      word += s[i++];
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// n-gram -> count, the n tokens joined by a byte no token holds.
using NgramCounts = std::unordered_map<std::string, int64_t>;

NgramCounts count_ngrams(const std::vector<std::string>& tokens, size_t n) {
  NgramCounts counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t k = 1; k < n; ++k) key += '\x01' + tokens[i + k];
    ++counts[key];
  }
  return counts;
}

// sacrebleu strips trailing whitespace before tokenizing.
std::string rstrip(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || (s[end - 1] >= 0x09 && s[end - 1] <= 0x0D))) --end;
  return s.substr(0, end);
}

}  // namespace

std::vector<std::string> tokenize_13a(const std::string& text) {
  std::string line = text;
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  line = " " + line + " ";

  std::string spaced;
  spaced.reserve(line.size() * 2);
  for (char c : line) {
    if (is_13a_symbol(c)) {
      spaced += ' ';
      spaced += c;
      spaced += ' ';
    } else {
      spaced += c;
    }
  }
  auto non_digit = [](char c) { return !is_digit(c); };
  auto dot_comma = [](char c) { return c == '.' || c == ','; };
  // Period and comma unless preceded by a digit: "\1 \2 ".
  line = substitute_pairs(spaced, non_digit, dot_comma, [](std::string& o, char a, char b) {
    o += a;
    o += ' ';
    o += b;
    o += ' ';
  });
  // Period and comma unless followed by a digit: " \1 \2".
  line = substitute_pairs(line, dot_comma, non_digit, [](std::string& o, char a, char b) {
    o += ' ';
    o += a;
    o += ' ';
    o += b;
  });
  // Dash after a digit: "\1 \2 ".
  line = substitute_pairs(line, is_digit, [](char c) { return c == '-'; }, [](std::string& o, char a, char b) {
    o += a;
    o += ' ';
    o += b;
    o += ' ';
  });
  return split_whitespace(line);
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  HEED_CHECK(hypotheses.size() == references.size(), "corpus_bleu: {} hypotheses but {} references",
             hypotheses.size(), references.size());
  int64_t matches[4] = {0, 0, 0, 0}, totals[4] = {0, 0, 0, 0};
  BleuScore score{};
  for (size_t s = 0; s < hypotheses.size(); ++s) {
    std::vector<std::string> hyp = tokenize_13a(rstrip(hypotheses[s]));
    std::vector<std::string> ref = tokenize_13a(rstrip(references[s]));
    score.hyp_len += static_cast<int64_t>(hyp.size());
    score.ref_len += static_cast<int64_t>(ref.size());
    for (size_t n = 1; n <= 4; ++n) {
      NgramCounts hyp_counts = count_ngrams(hyp, n), ref_counts = count_ngrams(ref, n);
      for (const auto& [gram, count] : hyp_counts) {
        auto it = ref_counts.find(gram);
        if (it != ref_counts.end()) matches[n - 1] += std::min(count, it->second);  // clipped counts
      }
      if (hyp.size() >= n) totals[n - 1] += static_cast<int64_t>(hyp.size() - n + 1);
    }
  }
  double log_sum = 0;
  bool any_zero = false;
  for (int n = 0; n < 4; ++n) {
    score.precisions[n] = totals[n] > 0 ? 100.0 * matches[n] / totals[n] : 0.0;
    if (matches[n] == 0) any_zero = true;
    else log_sum += std::log(static_cast<double>(matches[n]) / totals[n]);
  }
  if (score.hyp_len >= score.ref_len) score.brevity_penalty = 1.0;
  else score.brevity_penalty = score.hyp_len > 0 ? std::exp(1.0 - double(score.ref_len) / score.hyp_len) : 0.0;
  score.bleu = any_zero ? 0.0 : 100.0 * score.brevity_penalty * std::exp(log_sum / 4);
  return score;
}

}  // namespace heed::data

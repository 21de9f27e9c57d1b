#include "data/tokenize_13a.h"

#include <cstdint>

#include "data/text_util.h"

namespace heed::data {
namespace {

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

}  // namespace

std::vector<std::string> tokenize_13a(const std::string& text) {
  std::string line = text;
  detail::replace_all(line, "<skipped>", "");
  detail::replace_all(line, "-\n", "");
  detail::replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    detail::replace_all(line, "&quot;", "\"");
    detail::replace_all(line, "&amp;", "&");
    detail::replace_all(line, "&lt;", "<");
    detail::replace_all(line, "&gt;", ">");
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

}  // namespace heed::data

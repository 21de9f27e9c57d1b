#include "data/text_util.h"

#include "tensor/error.h"

namespace heed::data::detail {

size_t utf8_unit_length(const std::string& text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len <= 1) return 1;  // ASCII, or a stray continuation / invalid lead byte
  if (i + len > text.size()) return 1;
  for (size_t k = 1; k < len; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 1;
  // Reject overlong forms and surrogates so every unit is a real code point.
  uint32_t cp = c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
  return len;
}

std::vector<std::string> utf8_units(const std::string& text) {
  std::vector<std::string> units;
  for (size_t i = 0; i < text.size();) {
    size_t len = utf8_unit_length(text, i);
    units.push_back(text.substr(i, len));
    i += len;
  }
  return units;
}

std::string escape_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

std::string unescape_line(const std::string& s, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    HEED_CHECK(i + 1 < s.size(), "{}: line ends in a lone backslash", where);
    char e = s[++i];
    if (e == '\\') out += '\\';
    else if (e == 'n') out += '\n';
    else if (e == 'r') out += '\r';
    else HEED_FAIL("{}: unknown escape '\\{}'", where, e);
  }
  return out;
}

std::string display_piece(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    size_t len = utf8_unit_length(bytes, i);
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == ' ') {
      out += "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, as SentencePiece shows spaces
    } else if (len == 1 && (c < 0x20 || c >= 0x7F)) {
      out += fmt::format("<0x{:02X}>", c);
    } else {
      out += bytes.substr(i, len);
    }
    i += len;
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

std::vector<std::string> split_lines(const std::string& blob) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < blob.size()) {
    size_t end = blob.find('\n', start);
    if (end == std::string::npos) end = blob.size();
    lines.push_back(blob.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

int64_t parse_int(const std::string& s, const std::string& where) {
  HEED_CHECK(!s.empty() && s.size() <= 18, "{}: expected a number, got '{}'", where, s);
  int64_t v = 0;
  for (char c : s) {
    HEED_CHECK(c >= '0' && c <= '9', "{}: expected a number, got '{}'", where, s);
    v = v * 10 + (c - '0');
  }
  return v;
}

int64_t parse_count_line(const std::string& line, const std::string& name, const std::string& where) {
  std::string prefix = name + " ";
  HEED_CHECK(line.compare(0, prefix.size(), prefix) == 0, "{}: expected '{} <count>', got '{}'", where, name, line);
  return parse_int(line.substr(prefix.size()), where);
}

}  // namespace heed::data::detail

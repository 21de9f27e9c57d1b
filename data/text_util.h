#pragma once
// Small text helpers the tokenizers and readers share (not public API).
#include <cstdint>
#include <string>
#include <vector>

namespace heed::data::detail {

// Splits text into UTF-8 code points; each byte that does not start a valid
// sequence becomes a one-byte unit, so joining the units gives text back.
std::vector<std::string> utf8_units(const std::string& text);
// Length in bytes of the unit starting at text[i] (>= 1).
size_t utf8_unit_length(const std::string& text, size_t i);

// One token per line in serialized blobs: backslash, newline and carriage
// return are escaped; unescape throws (naming `where`) on a bad escape.
std::string escape_line(const std::string& s);
std::string unescape_line(const std::string& s, const std::string& where);

// A token as a person should see it: spaces as "▁", control bytes and bytes
// that are not valid UTF-8 as <0xNN>.
std::string display_piece(const std::string& bytes);

// Replaces every `from` in s by `to`, left to right (text put in is not
// searched again).
void replace_all(std::string& s, const std::string& from, const std::string& to);

// Blob lines (split on '\n'; a final newline does not add an empty line).
std::vector<std::string> split_lines(const std::string& blob);
// Parses "<name> <count>" (e.g. "tokens 61"); throws naming `where`.
int64_t parse_count_line(const std::string& line, const std::string& name, const std::string& where);
// Parses a whole non-negative decimal integer; throws naming `where`.
int64_t parse_int(const std::string& s, const std::string& where);

}  // namespace heed::data::detail

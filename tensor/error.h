#pragma once
// The one exception type heed throws. Messages name the op, the shapes, dtypes
// and devices involved, and what was expected, so a person can act on them.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace heed {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace heed

// HEED_CHECK(cond, "format {}", args...): throws heed::Error with the formatted
// message when cond is false. Never aborts: bad input is the caller's to handle.
#define HEED_CHECK(cond, ...)                                  \
  do {                                                         \
    if (!(cond)) throw ::heed::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

#define HEED_FAIL(...) throw ::heed::Error(fmt::format(__VA_ARGS__))

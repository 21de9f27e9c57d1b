#pragma once
// A run's configuration as text key/values, the form checkpoints store, with
// typed reads that name a missing or malformed key.
#include <cstdint>
#include <map>
#include <string>

#include <fmt/core.h>

#include "tensor/error.h"

namespace heed::examples {

class Config {
 public:
  Config() = default;
  explicit Config(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  void set(const std::string& key, const std::string& value) { values_[key] = value; }
  void set(const std::string& key, const char* value) { values_[key] = value; }
  void set(const std::string& key, int64_t value) { values_[key] = std::to_string(value); }
  void set(const std::string& key, double value) { values_[key] = fmt::format("{:.17g}", value); }

  bool has(const std::string& key) const { return values_.count(key) > 0; }

  const std::string& str(const std::string& key) const {
    auto it = values_.find(key);
    HEED_CHECK(it != values_.end(), "configuration: missing key \"{}\"", key);
    return it->second;
  }
  int64_t integer(const std::string& key) const {
    return read<int64_t>(key, "an integer", [](const std::string& v, size_t* used) { return std::stoll(v, used); });
  }
  double real(const std::string& key) const {
    return read<double>(key, "a number", [](const std::string& v, size_t* used) { return std::stod(v, used); });
  }
  // An optional on/off setting: absent (a configuration written before the
  // setting existed) reads as off.
  bool flag(const std::string& key) const { return has(key) && integer(key) != 0; }
  // Optional settings of other kinds: `fallback` when absent (what runs
  // before the setting existed did), else the value, checked as above.
  double real_or(const std::string& key, double fallback) const { return has(key) ? real(key) : fallback; }
  int64_t integer_or(const std::string& key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  std::string str_or(const std::string& key, const std::string& fallback) const { return has(key) ? str(key) : fallback; }

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  // The value of `key` as `parse` (std::stoll, std::stod) reads it, which
  // must use all of it; `what` it must be names the error.
  template <typename T, typename Parse>
  T read(const std::string& key, const char* what, Parse parse) const {
    const std::string& v = str(key);
    size_t used = 0;
    T x{};
    try {
      x = parse(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEED_CHECK(used == v.size() && !v.empty(), "configuration: \"{}\" = \"{}\" is not {}", key, v, what);
    return x;
  }

  std::map<std::string, std::string> values_;
};

}  // namespace heed::examples

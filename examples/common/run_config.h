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
    const std::string& v = str(key);
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEED_CHECK(used == v.size() && !v.empty(), "configuration: \"{}\" = \"{}\" is not an integer", key, v);
    return x;
  }
  double real(const std::string& key) const {
    const std::string& v = str(key);
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEED_CHECK(used == v.size() && !v.empty(), "configuration: \"{}\" = \"{}\" is not a number", key, v);
    return x;
  }
  // An optional on/off setting: absent (a configuration written before the
  // setting existed) reads as off.
  bool flag(const std::string& key) const { return has(key) && integer(key) != 0; }

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace heed::examples

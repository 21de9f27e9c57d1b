#pragma once
// What the benchmark programs share: wall-clock time, the process's memory
// as /proc/self/status reports it, and command lines of `--key value` pairs.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

namespace heed::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A "VmRSS:" / "VmHWM:" line of /proc/self/status, in bytes (0 if absent).
inline double status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::atof(line.c_str() + n) * 1024.0;  // the value is in kB
  return 0;
}

// Calls set(key, value) for each `--key value` pair of the command line;
// set returns false for a key it does not know. Throws std::runtime_error
// "missing value after KEY" or "unknown option KEY".
template <typename Set>
void parse_flags(int argc, char** argv, Set set) {
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("missing value after " + key);
    if (!set(key, std::string(argv[++i]))) throw std::runtime_error("unknown option " + key);
  }
}

}  // namespace heed::bench

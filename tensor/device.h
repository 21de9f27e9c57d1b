#pragma once
// Where a tensor's bytes live. The CPU always exists; CUDA devices exist when
// the CUDA backend was compiled in and a GPU is present.
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace heed {

enum class DeviceType { CPU, CUDA };
inline constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  // Parses "cpu", "cuda" or "cuda:N"; throws heed::Error otherwise.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return type == DeviceType::CPU ? "cpu" : fmt::format("cuda:{}", index); }
};

inline constexpr Device kCPU{DeviceType::CPU, 0};
inline constexpr Device kCUDA{DeviceType::CUDA, 0};

}  // namespace heed

template <>
struct fmt::formatter<heed::Device> : fmt::formatter<std::string> {
  template <class Ctx>
  auto format(const heed::Device& d, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};

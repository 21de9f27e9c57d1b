#include "tensor/device.h"

#include "tensor/error.h"

namespace heed {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return kCPU;
  if (text == "cuda") return kCUDA;
  if (text.rfind("cuda:", 0) == 0) {
    std::string idx = text.substr(5);
    bool digits = !idx.empty() && idx.size() < 4 && idx.find_first_not_of("0123456789") == std::string::npos;
    if (digits) return Device(DeviceType::CUDA, std::stoi(idx));
  }
  HEED_FAIL("unknown device '{}': expected cpu, cuda or cuda:N", text);
}

}  // namespace heed

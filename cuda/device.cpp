#include "cuda/device.h"

#include <string>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "tensor/error.h"

namespace heed::cuda {

namespace {

struct DeviceCensus {
  int count = 0;
  std::string why_none;  // CUDA's reason when count is 0
};

// Asked once: the set of visible devices does not change while the process runs.
const DeviceCensus& census() {
  static const DeviceCensus c = [] {
    DeviceCensus d;
    const cudaError_t status = cudaGetDeviceCount(&d.count);
    if (status != cudaSuccess) {
      cudaGetLastError();  // no driver or no device: not an error for a CPU user
      d.count = 0;
      d.why_none = cudaGetErrorString(status);
    } else if (d.count == 0) {
      d.why_none = "no CUDA device is visible";
    }
    return d;
  }();
  return c;
}

}  // namespace

int device_count() { return census().count; }

void check_device_index(int index, const char* op) {
  const DeviceCensus& c = census();
  HEED_CHECK(c.count > 0,
             "{}: device cuda:{} is not available: {} (heed was built with CUDA, but no GPU is usable here)", op,
             index, c.why_none);
  HEED_CHECK(index >= 0 && index < c.count, "{}: device cuda:{} does not exist; {} CUDA device(s) are visible", op,
             index, c.count);
}

DeviceGuard::DeviceGuard(int index) {
  HEED_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != index) {
    HEED_CUDA_CHECK(cudaSetDevice(index));
    changed_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  // A destructor must not throw; restoring the previous device cannot fail
  // for a device that was current a moment ago.
  if (changed_) cudaSetDevice(previous_);
}

}  // namespace heed::cuda

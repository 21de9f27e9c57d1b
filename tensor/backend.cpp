#include "tensor/backend.h"

#include <mutex>

#include "tensor/cpu/cpu_backend.h"

namespace heed {

namespace {
Backend rows[kNumDeviceTypes];
bool present[kNumDeviceTypes] = {false, false};

// Backends register explicitly, once, on first use (see
// register_built_in_backends in tensor/backend.h).
void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    cpu::register_cpu_backend();
    register_built_in_backends();
  });
}
}  // namespace

void register_backend(DeviceType type, const Backend& row) {
  rows[static_cast<int>(type)] = row;
  present[static_cast<int>(type)] = true;
}

bool has_backend(DeviceType type) {
  ensure_registered();
  return present[static_cast<int>(type)];
}

const Backend& backend(DeviceType type) {
  ensure_registered();
  HEED_CHECK(present[static_cast<int>(type)],
             "device {}: heed was built without this backend (configure with -DHEED_CUDA=ON on a machine with nvcc)",
             Device(type).str());
  return rows[static_cast<int>(type)];
}

void check_matmul_kernel_args(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend,
                              const char* device) {
  HEED_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3,
             "{} matmul: expected a [B, M, K], b [B, K, N], out [B, M, N], got {}, {}, {}", device,
             shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  HEED_CHECK(a.shape()[0] == out.shape()[0] && b.shape()[0] == out.shape()[0] && a.shape()[1] == out.shape()[1] &&
                 b.shape()[2] == out.shape()[2] && a.shape()[2] == b.shape()[1],
             "{} matmul: shapes {} x {} -> {} do not match", device, shape_str(a.shape()), shape_str(b.shape()),
             shape_str(out.shape()));
  HEED_CHECK(a.dtype() == b.dtype() && a.dtype() == out.dtype(), "{} matmul: dtypes {}, {}, {} differ", device,
             dtype_name(a.dtype()), dtype_name(b.dtype()), dtype_name(out.dtype()));
  if (addend.defined()) {
    HEED_CHECK(addend.shape() == out.shape() && addend.dtype() == out.dtype() && addend.device() == out.device(),
               "{} matmul: the addend must be a {} {} tensor on {} like out, got {} {} on {}", device,
               shape_str(out.shape()), dtype_name(out.dtype()), out.device(), shape_str(addend.shape()),
               dtype_name(addend.dtype()), addend.device());
  }
}

int device_count(DeviceType type) {
  if (!has_backend(type)) return 0;
  const Backend& b = backend(type);
  return b.device_count ? b.device_count() : 0;
}

void synchronize(Device device) {
  const Backend& b = backend(device.type);
  if (b.synchronize) b.synchronize(device.index);
}

}  // namespace heed

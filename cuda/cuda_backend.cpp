// The CUDA row of the op table: device memory through the caching allocator,
// synchronize and the device count here; the kernels come from the parts
// named in cuda/row_parts.h.
#include <mutex>

#include <cuda_runtime_api.h>

#include "cuda/attention.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::cuda {

std::string describe(const Tensor& t) {
  return fmt::format("{} {} on {}{}", shape_str(t.shape()), t.dtype(), t.device(),
                     t.is_contiguous() ? "" : " (not contiguous)");
}

Tensor contiguous_copy(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor dense = empty(x.shape(), x.dtype(), x.device());
  backend(x.device()).copy(x, dense);
  return dense;
}

namespace {

void* allocate(size_t nbytes, int device_index) { return CachingAllocator::instance().allocate(nbytes, device_index); }

void deallocate(void* ptr, size_t /*nbytes*/, int device_index) {
  CachingAllocator::instance().deallocate(ptr, device_index);
}

void synchronize(int device_index) {
  check_device_index(device_index, "cuda synchronize");
  DeviceGuard guard(device_index);
  HEED_CUDA_CHECK(cudaDeviceSynchronize());
}

Backend make_row() {
  Backend row;
  row.name = "cuda";
  row.allocate = allocate;
  row.deallocate = deallocate;
  row.synchronize = synchronize;
  row.device_count = device_count;
  install_elementwise_kernels(row);
  install_reduction_kernels(row);
  install_matmul_kernel(row);
  install_index_kernels(row);
  install_optim_kernels(row);
  install_attention_kernels(row);
  return row;
}

}  // namespace

bool built_with_cuda() { return true; }

}  // namespace heed::cuda

namespace heed {

// The core's hook (tensor/backend.h), called once by the op table.
void register_built_in_backends() { register_backend(DeviceType::CUDA, cuda::make_row()); }

}  // namespace heed

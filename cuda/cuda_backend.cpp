// The CUDA row of the op table. So far it holds the skeleton every later
// kernel stands on: device memory through the caching allocator, copies
// between host and device, fill, synchronize and the device count. Every
// other kernel slot throws a heed::Error saying it is not implemented on CUDA
// yet, so no slot is ever a null pointer.
#include <mutex>

#include <cuda_runtime_api.h>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/error.h"

namespace heed::cuda {

namespace {

std::string describe(const Tensor& t) {
  return fmt::format("{} {} on {}{}", shape_str(t.shape()), t.dtype(), t.device(),
                     t.is_contiguous() ? "" : " (not contiguous)");
}

[[noreturn]] void not_implemented(const char* kernel) {
  HEED_FAIL("{} is not implemented on cuda yet; the CUDA backend so far has only memory, copy and fill "
            "(move the tensors to the CPU with .to(heed::kCPU))",
            kernel);
}

void* allocate(size_t nbytes, int device_index) { return CachingAllocator::instance().allocate(nbytes, device_index); }

void deallocate(void* ptr, size_t /*nbytes*/, int device_index) {
  CachingAllocator::instance().deallocate(ptr, device_index);
}

// Contiguous copies of one dtype, in any direction: host to device, device to
// host, device to device (also between two GPUs).
void copy(const Tensor& src, const Tensor& dst) {
  HEED_CHECK(src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous() && src.numel() == dst.numel(),
             "copy from {} to {} is not implemented on cuda yet: only contiguous copies between tensors of one "
             "dtype are (call .contiguous() and .to(dtype) on the CPU first)",
             describe(src), describe(dst));
  const size_t nbytes = static_cast<size_t>(src.numel()) * dtype_size(src.dtype());
  if (nbytes == 0) return;
  const Device from = src.device(), to = dst.device();
  if (from.is_cuda() && to.is_cuda() && from.index != to.index) {
    HEED_CUDA_CHECK(cudaMemcpyPeer(dst.raw_data(), to.index, src.raw_data(), from.index, nbytes));
    return;
  }
  const cudaMemcpyKind kind = from.is_cpu() ? cudaMemcpyHostToDevice
                              : to.is_cpu() ? cudaMemcpyDeviceToHost
                                            : cudaMemcpyDeviceToDevice;
  DeviceGuard guard(from.is_cuda() ? from.index : to.index);
  HEED_CUDA_CHECK(cudaMemcpy(dst.raw_data(), src.raw_data(), nbytes, kind));
}

void fill(const Tensor& dst, double value) {
  HEED_CHECK(dst.is_contiguous(), "fill of {} is not implemented on cuda yet: only contiguous tensors are",
             describe(dst));
  DeviceGuard guard(dst.device().index);
  dispatch_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_fill<T>(static_cast<T*>(dst.raw_data()), dst.numel(), static_cast<T>(value));
  });
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
  row.copy = copy;
  row.fill = fill;
  row.synchronize = synchronize;
  row.device_count = device_count;

  row.unary = [](UnaryOp, const Tensor&, double, double, const Tensor&) { not_implemented("unary ops"); };
  row.binary = [](BinaryOp, const Tensor&, const Tensor&, const Tensor&) { not_implemented("binary ops"); };
  row.where = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&) { not_implemented("where"); };
  row.reduce = [](ReduceOp, const Tensor&, const Tensor&) { not_implemented("reductions"); };
  row.matmul = [](const Tensor&, const Tensor&, const Tensor&) { not_implemented("matmul"); };
  row.softmax = [](const Tensor&, bool, const Tensor&) { not_implemented("softmax"); };
  row.layer_norm = [](const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&,
                      const Tensor&) { not_implemented("layer_norm"); };
  row.layer_norm_backward = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, const Tensor&, const Tensor&) { not_implemented("layer_norm_backward"); };
  row.index_select = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("index_select"); };
  row.gather = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("gather"); };
  row.scatter_add = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("scatter_add"); };
  row.index_add = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("index_add"); };
  row.adam_step = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AdamStepArgs&) {
    not_implemented("adam_step");
  };
  row.random = [](RandomDist, double, double, uint64_t, uint64_t, const Tensor&) { not_implemented("random"); };
  return row;
}

}  // namespace

void register_backend_if_built() {
  static std::once_flag once;
  std::call_once(once, [] { register_backend(DeviceType::CUDA, make_row()); });
}

bool built_with_cuda() { return true; }

}  // namespace heed::cuda

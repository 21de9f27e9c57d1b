// The CUDA op table's copy (strided, casting), fill, unary, binary and where.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "cuda/kernels.h"

namespace heed::cuda {

namespace {

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

}  // namespace

void install_elementwise_kernels(Backend& row) {
  row.copy = copy;
  row.fill = fill;
  row.unary = [](UnaryOp, const Tensor&, double, double, const Tensor&) { not_implemented("unary ops"); };
  row.binary = [](BinaryOp, const Tensor&, const Tensor&, const Tensor&) { not_implemented("binary ops"); };
  row.where = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&) { not_implemented("where"); };
}

}  // namespace heed::cuda

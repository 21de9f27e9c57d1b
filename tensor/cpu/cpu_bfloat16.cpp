#include "tensor/cpu/cpu_bfloat16.h"

#include "tensor/cpu/cpu_backend.h"
#include "tensor/ops.h"

namespace heed::cpu {

Tensor widened(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor f = empty(t.shape(), DType::Float32, kCPU);
  copy(t, f);
  return f;
}

Tensor float32_like(const Tensor& t) { return t.defined() ? empty(t.shape(), DType::Float32, kCPU) : Tensor(); }

void store_rounded(const Tensor& src, const Tensor& dst) {
  if (src.defined() && dst.defined()) copy(src, dst);
}

}  // namespace heed::cpu

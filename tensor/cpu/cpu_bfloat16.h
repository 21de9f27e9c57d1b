#pragma once
// bfloat16 in the CPU kernels that have float32 arithmetic of their own (the
// GEMM, softmax, layer norm, Adam, random): a bfloat16 call runs the float32
// kernel on widened copies and rounds the results once as it stores them
// back, which is tensor/backend.h's rule (compute in float32, round on store)
// in the fewest lines. It is correct, not fast: the CPU's bfloat16 is there so
// that bf16 models run anywhere and the GPU's bf16 kernels have a reference.
// The elementwise kernels and reductions handle bfloat16 natively instead.
#include "tensor/tensor.h"

namespace heed::cpu {

// A float32 copy of t; undefined stays undefined.
Tensor widened(const Tensor& t);
// A fresh float32 tensor of t's shape for a kernel to write; undefined stays undefined.
Tensor float32_like(const Tensor& t);
// dst = src rounded to dst's dtype, where both are defined.
void store_rounded(const Tensor& src, const Tensor& dst);

}  // namespace heed::cpu

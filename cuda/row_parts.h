#pragma once
// The CUDA row of the op table is filled in parts, one per group of kernels,
// each part in its own file next to the kernels it installs:
//   cuda/elementwise.cpp  copy (strided, casting), fill, unary, binary, where
//   cuda/reduce.cpp       reduce, softmax, softmax_backward, cross_entropy (and backward), layer_norm, layer_norm_backward
//   cuda/matmul.cpp       matmul through cuBLAS
//   cuda/index.cpp        index_select, gather, scatter_add, index_add
//   cuda/optim.cpp        adam_step, lerp, random, dropout
// cuda/cuda_backend.cpp sets the memory and device slots and calls each part.
#include <string>
#include <utility>

#include "tensor/backend.h"

namespace heed::cuda {

void install_elementwise_kernels(Backend& row);
void install_reduction_kernels(Backend& row);
void install_matmul_kernel(Backend& row);
void install_index_kernels(Backend& row);
void install_optim_kernels(Backend& row);

// x itself when contiguous, else a contiguous copy on x's device made by the
// row's own copy kernel (no autograd): for kernels that want dense input.
Tensor contiguous_copy(const Tensor& x);

// "[2, 3] float32 on cuda:0 (not contiguous)": for error messages.
std::string describe(const Tensor& t);

// dispatch_floating plus bfloat16: for the kernels that compute bfloat16 in
// float32 themselves (the storage type is passed; compute_t<T> is the math's).
template <class F>
decltype(auto) dispatch_floating_or_bf16(DType t, const char* op, F&& f) {
  if (t == DType::BFloat16) return f(bfloat16{});
  return dispatch_floating(t, op, std::forward<F>(f));
}

// dispatch_addable plus bfloat16: for the kernels that sum bfloat16 in
// float32 themselves (index_add's runs; scatter_add widens it first).
template <class F>
decltype(auto) dispatch_addable_or_bf16(DType t, const char* op, F&& f) {
  if (t == DType::BFloat16) return f(bfloat16{});
  return dispatch_addable(t, "cuda", op, std::forward<F>(f));
}

}  // namespace heed::cuda

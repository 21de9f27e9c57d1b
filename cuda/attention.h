#pragma once
// Fused attention (FlashAttention-2) on the GPU: the launchers of
// cuda/attention.cu, declared with plain types so that cuda/attention.cpp (the
// host glue: checks, dispatch, workspace) needs no CUDA compiler and the .cu
// file needs no heed tensor headers. tensor/backend.h has the contract.
//
// Letters, defined once: B batch, Hq query heads, Hkv key/value heads
// (G = Hq / Hkv query heads share one), T queries, S keys, d the head dim of
// q and k, dv that of v.
#include <cstdint>

#include "tensor/attention_pattern.h"  // AttentionPatternView (standalone: hd.h, philox.h)
#include "tensor/bfloat16.h"           // bfloat16, compute_t

namespace heed {
struct Backend;
}

namespace heed::cuda {

// Sets the row's attention_forward and attention_backward (cuda/attention.cpp).
void install_attention_kernels(Backend& row);

// The largest head dim (d and dv) the kernels take.
constexpr int64_t kAttentionMaxHeadDim = 256;

// One attention problem. q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv]
// have unit stride on the last dim and the strides below (in elements) on
// the others; everything the kernels write is contiguous.
struct AttentionProblem {
  int64_t B = 0, Hq = 0, Hkv = 0, T = 0, S = 0, d = 0, dv = 0;
  int64_t q_stride[3] = {0, 0, 0};  // of dims B, H, T
  int64_t k_stride[3] = {0, 0, 0};  // of dims B, H, S
  int64_t v_stride[3] = {0, 0, 0};  // of dims B, H, S
  double scale = 1;
  double dropout_p = 0;  // > 0: weights dropped by attention_dropout_keep(seed, offset, ...)
  uint64_t seed = 0, offset = 0;
  AttentionPatternView pattern;  // device pointers
};

// Which kernels run. TensorCores (mma.sync) exists for bfloat16, and for
// float32 as TF32, when d == dv is 64 or 128 (attention_tensor_cores_fit);
// Simt runs every case and is what float64 always gets.
enum class AttentionPath { Simt, TensorCores };

// Whether the tensor-core kernels take this problem for element type T
// (float32 means TF32: the caller decides whether TF32 is allowed).
template <class T>
bool attention_tensor_cores_fit(const AttentionProblem& p);

// out [B, Hq, T, dv] (T's type), lse [B, Hq, T] (compute_t<T>), both contiguous.
template <class T>
void launch_attention_forward(const AttentionProblem& p, AttentionPath path, const T* q, const T* k, const T* v,
                              T* out, compute_t<T>* lse);

// grad_out, out [B, Hq, T, dv] and lse [B, Hq, T] contiguous; writes grad_q
// [B, Hq, T, d], grad_k [B, Hkv, S, d], grad_v [B, Hkv, S, dv], contiguous, in
// full. `delta` is device scratch of B * Hq * T elements (rowsum(grad_out * out)).
template <class T>
void launch_attention_backward(const AttentionProblem& p, AttentionPath path, const T* grad_out, const T* q,
                               const T* k, const T* v, const T* out, const compute_t<T>* lse, T* grad_q, T* grad_k,
                               T* grad_v, compute_t<T>* delta);

}  // namespace heed::cuda

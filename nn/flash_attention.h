#pragma once
// The fused attention op (FlashAttention-2) that nn::scaled_dot_product_attention
// runs wherever it applies; docs/attention.md explains the algorithm beside
// the kernels (tensor/cpu/cpu_attention.cpp, cuda/attention.cu).
//
// Most code calls scaled_dot_product_attention, which builds the
// AttentionArgs from its options; these are the pieces underneath, for a new
// attention layer that wants the kernel directly.
#include <functional>

#include "tensor/attention_args.h"
#include "tensor/ops.h"

namespace heed::nn {

struct FusedAttentionOutput {
  Tensor output;  // [B, Hq, T, dv], differentiable in q, k, v
  Tensor lse;     // [B, Hq, T] row log-sum-exp of the masked, scaled scores (compute dtype; -inf: all masked)
};

// Recomputes the same attention with differentiable tensor ops. The fused
// backward is not itself differentiable, so a backward that records a graph
// (create_graph, for second derivatives) differentiates this instead.
using ComposedAttention = std::function<Tensor(const Tensor& q, const Tensor& k, const Tensor& v)>;

// q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv] (tensor/backend.h has
// the contract). The kernel saves only q, k, v, the output and lse; backward
// recomputes the probabilities tile by tile. Without `composed`, a
// create_graph backward through this op throws.
FusedAttentionOutput flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                                     ComposedAttention composed = nullptr);

// The weights [B, Hq, T, S] exp(q k^T * scale - lse), 0 where `mask` (Bool,
// broadcastable to the weights; undefined: none) is true, times the dropout
// mask of args when args.dropout_p > 0: exactly the weights that multiplied
// the values, recomputed from q, k and the saved lse in one pass (no row max
// or sum). Differentiable in q and k through the softmax's rule
//   dS = W (dW - rowsum(dW W)),  dq = dS k * scale,  dk = dS^T q * scale.
Tensor attention_weights_from_lse(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionArgs& args,
                                  const Tensor& mask);

}  // namespace heed::nn

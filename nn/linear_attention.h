#pragma once
// Linear attention (Katharopoulos et al., "Transformers are RNNs", 2020):
// softmax(q k^T) is replaced by the kernel phi(q) phi(k)^T with
// phi(x) = elu(x) + 1 > 0, so that the product can be regrouped as
// phi(q) (phi(k)^T v) and costs O(T d dv) instead of O(T S d).
//
// Shapes: B batch, H heads, T queries, S keys, d query/key width, dv value
// width.
#include "tensor/ops.h"

namespace heed::nn {

// phi(x) = elu(x) + 1: x + 1 for x > 0, exp(x) otherwise. Differentiable.
Tensor elu_feature_map(const Tensor& x);

// q [B, H, T, d], k [B, H, S, d], v [B, H, S, dv] -> [B, H, T, dv]:
//   out[t] = sum_s (phi(q_t) . phi(k_s)) v_s / (sum_s phi(q_t) . phi(k_s) + eps)
// over all s (causal = false), or over s <= t (causal = true, needs T == S).
// The causal form runs through chunks of the sequence: inside a chunk a
// masked C x C kernel matrix, across chunks a carried state sum phi(k)^T v
// [d, dv] and normaliser sum phi(k) [d], so time and memory (including what
// backward keeps) grow linearly in T. Every step is a differentiable tensor op.
Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = false, double eps = 1e-6);

}  // namespace heed::nn

#pragma once
// Scaled dot-product attention and the boolean masks it takes.
//
// Masks are Bool tensors in which true means "this query may not attend this
// key" (PyTorch's nn.MultiheadAttention convention, and the reference files'
// uint8 1). Any mask broadcastable to the scores [B, H, T, S] works: a
// structural [T, S] pattern, a [B, 1, 1, S] padding row, a per-head
// [B, H, T, S] mask. Masked scores become -inf before the softmax, so their
// weights are exactly 0; a query whose keys are all masked gets all-zero
// weights, a zero output and zero gradients, never NaN.
//
// Queries are the last T of the S key positions: query i sits at position
// i + (S - T). With T == S that is the usual square mask; with a key/value
// cache (S keys, T new queries) the same rule masks the future correctly.
#include <cstdint>
#include <functional>
#include <vector>

#include "tensor/ops.h"

namespace heed::nn {

// [T, S]: key j masked for query i when j > i + (S - T). S < 0 means S = T.
Tensor causal_mask(int64_t T, int64_t S = -1, Device device = kCPU);

// [T, S] local attention of width `window` > 0. Causal: query i (at position
// p = i + S - T) attends exactly p - window < j <= p (itself and the window-1
// keys before it). Not causal: |p - j| < window (window-1 keys each side).
Tensor sliding_window_mask(int64_t T, int64_t S, int64_t window, bool causal = true, Device device = kCPU);

// [T, T] sliding window plus global tokens (Longformer): every query attends
// the global positions, and a global position attends every key. With causal,
// nothing attends a later key, global or not.
Tensor local_global_mask(int64_t T, int64_t window, const std::vector<int64_t>& global_positions, bool causal = false,
                         Device device = kCPU);

// [T, S] from a block layout: `layout` is Bool [ceil(T / block), ceil(S / block)]
// with true where a block of queries may attend a block of keys (BigBird,
// Sparse Transformer patterns); everything else is masked.
Tensor block_sparse_mask(const Tensor& layout, int64_t T, int64_t S, int64_t block_size);

// [B, S] padding mask of token ids: true where ids == pad_id.
Tensor padding_mask(const Tensor& ids, int64_t pad_id);

// The union of two masks (either may be undefined); broadcasts like logical_or.
Tensor combine_masks(const Tensor& a, const Tensor& b);

struct AttentionOptions {
  Tensor attn_mask;         // Bool, broadcastable to [B, Hq, T, S]; true = masked
  Tensor key_padding_mask;  // Bool [B, S]; true = padding key
  bool causal = false;      // mask key j > i + (S - T)
  int64_t window = 0;       // > 0: sliding window of this width (see sliding_window_mask)
  double scale = 0;         // 0: 1 / sqrt(head_dim)
  bool need_weights = false;
  double dropout_p = 0;  // dropout on the weights (pass 0 outside training)
  Generator* generator = nullptr;
  // Applied to the weights [B, Hq, T, S] right before they multiply the
  // values (after dropout): edit, ablate or perturb attention without
  // changing the model. The returned (hooked) tensor is what need_weights gives.
  std::function<Tensor(const Tensor&)> weights_hook;
};

struct AttentionOutput {
  Tensor output;   // [B, Hq, T, dv]
  Tensor weights;  // [B, Hq, T, S], differentiable; undefined unless need_weights
};

// q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv], Hq a multiple of Hkv:
// query head h reads key/value head h / (Hq / Hkv) (grouped-query attention;
// Hkv = 1 is multi-query). out = softmax(q k^T * scale + mask) v.
AttentionOutput scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& options = {});

// The combined Bool mask scaled_dot_product_attention applies for these
// options and sizes (undefined when nothing is masked); for inspection and
// for other attention kinds. On a GPU the causal / sliding-window part is
// cached per shape and device (see clear_attention_mask_cache), so the result
// may be shared: do not modify it in place.
Tensor attention_mask(const AttentionOptions& options, int64_t B, int64_t H, int64_t T, int64_t S, Device device);

// Drops the causal / sliding-window masks attention_mask() keeps on GPUs (a
// few MiB at most), e.g. before measuring device memory.
void clear_attention_mask_cache();

}  // namespace heed::nn

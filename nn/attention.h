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

// Which implementation scaled_dot_product_attention runs.
enum class AttentionImpl {
  Auto,      // the process default (set_default_attention_impl; fused unless told otherwise)
  Fused,     // FlashAttention-2 (nn/flash_attention.h): no [B, Hq, T, S] matrix is kept
  Composed,  // matmul, masked_fill, softmax, dropout, matmul: every intermediate a tensor, for study
};

struct AttentionOptions {
  Tensor attn_mask;         // Bool, broadcastable to [B, Hq, T, S]; true = masked
  Tensor key_padding_mask;  // Bool [B, S]; true = padding key
  bool causal = false;      // mask key j > i + (S - T)
  int64_t window = 0;       // > 0: sliding window of this width (see sliding_window_mask)
  // With window > 0: key positions every query attends and whose queries
  // attend every key (Longformer's global tokens; see local_global_mask).
  std::vector<int64_t> global_positions;
  // Block-sparse pattern: Bool [ceil(T / block_size), ceil(S / block_size)],
  // true where a block of queries attends a block of keys (see block_sparse_mask).
  Tensor block_layout;
  int64_t block_size = 0;
  double scale = 0;         // 0: 1 / sqrt(head_dim)
  bool need_weights = false;
  double dropout_p = 0;  // dropout on the weights (pass 0 outside training)
  Generator* generator = nullptr;
  // Applied to the weights [B, Hq, T, S] right before they multiply the
  // values (after dropout): edit, ablate or perturb attention without
  // changing the model. The returned (hooked) tensor is what need_weights
  // gives. A hook needs the weights on the path to the output, so it runs the
  // composed implementation.
  std::function<Tensor(const Tensor&)> weights_hook;
  AttentionImpl impl = AttentionImpl::Auto;
};

struct AttentionOutput {
  Tensor output;   // [B, Hq, T, dv]
  Tensor weights;  // [B, Hq, T, S], differentiable; undefined unless need_weights
  // True when the fused kernel computed `output`. The weights are then
  // recomputed beside it from q, k and the saved log-sum-exp, not on the
  // path to the output: the gradient of a loss with respect to them is
  // weights.grad() (their direct use, if any) plus output.grad() v^T
  // (attention_weights_grad does the sum).
  bool fused = false;
};

// The gradient of the loss with respect to the weights of `r` (from a call
// with need_weights) after backward, on either path. v is the value tensor
// of the call. r.weights (and, for a fused result, r.output) must have had
// retain_grad() before backward, as MultiheadAttention's recording does.
// Undefined when no gradient reached them.
Tensor attention_weights_grad(const AttentionOutput& r, const Tensor& v);

// The process-wide choice behind AttentionImpl::Auto: Fused unless changed
// here or by the environment variable HEED_ATTENTION=fused|composed (read
// once), e.g. to run a whole model or the reference tests on the composed path.
void set_default_attention_impl(AttentionImpl impl);
AttentionImpl default_attention_impl();
// The implementation a call with these options on this device would run.
AttentionImpl resolve_attention_impl(const AttentionOptions& options, Device device);

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

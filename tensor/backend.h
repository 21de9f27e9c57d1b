#pragma once
// The op table: one row of kernels per device. Ops in tensor/ and nn/ check
// arguments, allocate outputs and record autograd; they reach the hardware
// only through these kernels, so a backend (cuda/) plugs in by registering a
// row and nothing else changes. Kernels trust their arguments: the op layer
// has already checked shapes, dtypes and devices.
//
// Conventions for every kernel:
//  - inputs may be strided (transposed, sliced, expanded with stride 0);
//  - `out` is freshly allocated and contiguous unless said otherwise;
//  - all tensors are on the backend's device (except in `copy`);
//  - bfloat16 tensors are computed in float32: each element is widened on
//    load, every sum, max and product is carried in float32 (or wider), and
//    the result is rounded to bfloat16 once, on store. Whatever a kernel keeps
//    for a backward (layer norm's mean and rstd) is float32 for bfloat16
//    inputs (heed::compute_dtype).
#include <cstdint>

#include "tensor/adam_rule.h"
#include "tensor/attention_args.h"
#include "tensor/elementwise_formulas.h"
#include "tensor/tensor.h"

namespace heed {

// UnaryOp and BinaryOp, with their per-element formulas: tensor/elementwise_formulas.h.

enum class ReduceOp { Sum, Prod, Max, Min, ArgMax, ArgMin };

// "sum", "prod", "max", "min", "argmax", "argmin": the op as kernels' error messages name it.
inline constexpr const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Prod: return "prod";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::ArgMax: return "argmax";
    case ReduceOp::ArgMin: return "argmin";
  }
  return "?";
}

enum class RandomDist {
  Uniform,    // in [a, b)
  Normal,     // mean a, std b
  Bernoulli,  // 1 with probability a
};

// AdamStepArgs, with the update itself: tensor/adam_rule.h.

struct Backend {
  const char* name = nullptr;

  void* (*allocate)(size_t nbytes, int device_index) = nullptr;
  void (*deallocate)(void* ptr, size_t nbytes, int device_index) = nullptr;

  // dst = src element by element (same shape), casting dtype. `dst` may be
  // strided. One of the two may be on the CPU when this is a device backend:
  // the op layer calls the non-CPU backend for transfers.
  void (*copy)(const Tensor& src, const Tensor& dst) = nullptr;
  // Every element of (strided) dst = value.
  void (*fill)(const Tensor& dst, double value) = nullptr;

  // out = op(x) with scalar parameters a, b where the op takes them.
  void (*unary)(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out) = nullptr;
  // out = op(x, y); x and y have out's shape (broadcast dims have stride 0)
  // and one dtype; out is bool for comparisons and logic, else x's dtype.
  void (*binary)(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) = nullptr;
  // out = cond ? x : y; all three have out's shape.
  void (*where)(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) = nullptr;
  // out keeps x's rank; dims where out has size 1 and x does not are reduced.
  // ArgMax/ArgMin reduce exactly one dim and write int64.
  void (*reduce)(ReduceOp op, const Tensor& x, const Tensor& out) = nullptr;
  // Batched matrix product: a [B, M, K] x b [B, K, N] -> out [B, M, N], float.
  // With a defined addend, out = a b + addend instead: addend has out's shape
  // and dtype, any strides (a bias broadcast over rows, a residual), or is out
  // itself (BLAS's beta = 1). A fused linear layer adds its bias this way, so
  // the bias costs no pass over out of its own.
  void (*matmul)(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend) = nullptr;
  // Softmax (or log-softmax) over the last dim of a contiguous x. A row whose
  // entries are all -inf gives zeros (softmax) or -inf (log-softmax), not NaN.
  void (*softmax)(const Tensor& x, bool log, const Tensor& out) = nullptr;
  // Its backward from the upstream grad and the forward's output y, all
  // contiguous [R, n] of one dtype, in one pass per row:
  //   softmax: grad_x = y * (grad - sum(grad * y));  log-softmax: grad_x = grad - exp(y) * sum(grad)
  // (sums over the row, carried in double). An all-zero softmax row (from an
  // all -inf input) gives zero grad_x; a log-softmax row of -inf passes grad
  // through (exp(-inf) = 0), as the rule written in tensor ops does.
  void (*softmax_backward)(const Tensor& grad, const Tensor& y, bool log, const Tensor& grad_x) = nullptr;
  // Cross-entropy with label smoothing e of each row of contiguous logits
  // x [N, C] against target [N] (int64; each id in [0, C) or ignore_index:
  // the op layer has checked them), in one pass per row:
  //   lse[n] = log sum_c exp(x[n, c])                     (compute_dtype(x), kept for the backward)
  //   loss[n] = (1 - e) (lse - x[n, t]) + e (lse - mean_c x[n, c]),   0 where t == ignore_index
  // with sums in double. loss is [N] of x's dtype.
  void (*cross_entropy)(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                        const Tensor& loss, const Tensor& lse) = nullptr;
  // Its backward from grad [N] (x's dtype) into grad_logits [N, C]:
  //   grad_logits[n, c] = grad[n] (p[n, c] - (1 - e) [c == t] - e / C),  p = exp(x - lse)
  // (p = 0 in a row whose lse is -inf); rows with t == ignore_index get 0.
  void (*cross_entropy_backward)(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                                 int64_t ignore_index, double smoothing, const Tensor& grad_logits) = nullptr;
  // Fused attention (FlashAttention-2; the op is nn::flash_attention):
  //   q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv], Hq a multiple of
  //   Hkv (query head h reads kv head h / (Hq / Hkv)); each has unit stride on
  //   its last dim, any strides elsewhere. out [B, Hq, T, dv] (q's dtype) and
  //   lse [B, Hq, T] (compute_dtype) are contiguous:
  //     s = q k^T * scale, masked pairs -inf (args.pattern, tensor/attention_pattern.h)
  //     lse = log sum_j exp(s),  out = (exp(s - lse) * keep / (1 - p)) v
  //   without ever holding a T x S matrix. A row with every key masked gets
  //   lse = -inf and a zero output. keep is the dropout mask when
  //   args.dropout_p > 0 (attention_dropout_keep: the same bits as
  //   nn::dropout on the [B, Hq, T, S] weights).
  void (*attention_forward)(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                            const Tensor& out, const Tensor& lse) = nullptr;
  // Its backward from grad_out [B, Hq, T, dv] (contiguous) and what the
  // forward saved (out, lse), recomputing the probabilities tile by tile:
  //   P = exp(s - lse) (0 where masked or lse = -inf), Pd = P * keep / (1 - p)
  //   grad_v = Pd^T grad_out,  dP = (grad_out v^T) * keep / (1 - p)
  //   dS = P * (dP - rowsum(grad_out * out)),  grad_q = dS k * scale,  grad_k = dS^T q * scale
  // grad_k and grad_v sum over the Hq / Hkv query heads of their group. All
  // three are contiguous, of q's dtype, written in full, and the same bits
  // for any thread count (no atomics).
  void (*attention_backward)(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& out, const Tensor& lse, const AttentionArgs& args, const Tensor& grad_q,
                             const Tensor& grad_k, const Tensor& grad_v) = nullptr;
  // Layer norm over the last dim of a contiguous x [R, D]; weight and bias are
  // contiguous [D] or undefined (no affine part). Writes out [R, D] and, for
  // the backward, mean [R] and rstd = 1 / sqrt(biased var + eps) [R], both
  // of compute_dtype(x) (float32 when x is bfloat16).
  void (*layer_norm)(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                     const Tensor& mean, const Tensor& rstd) = nullptr;
  // Its backward from the upstream grad [R, D] (contiguous) and what the
  // forward saved. grad_x [R, D], grad_weight [D], grad_bias [D] are written
  // where defined (an undefined one is not wanted).
  void (*layer_norm_backward)(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_weight,
                              const Tensor& grad_bias) = nullptr;

  // out = x.index_select(dim, index); index is int64 [n]; throws on a bad index.
  void (*index_select)(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) = nullptr;
  // out[..i..] = x[..index[..i..]..] along dim; index has out's shape.
  void (*gather)(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) = nullptr;
  // In place into contiguous dst: dst[..index[..i..]..] += src[..i..] along dim.
  void (*scatter_add)(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) = nullptr;
  // In place into contiguous dst: dst.select(dim, index[i]) += src.select(dim, i).
  void (*index_add)(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) = nullptr;

  // In place, element by element, on contiguous tensors of one shape and
  // dtype: the Adam update of param and its state exp_avg (m), exp_avg_sq (v)
  // from grad, every step of the rule in one pass.
  void (*adam_step)(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                    const AdamStepArgs& args) = nullptr;

  // Element by element on contiguous tensors of one shape and float dtype:
  // out = lerp(start, end, weight) (tensor/lerp_rule.h has the arithmetic);
  // out may be start or end itself (an in-place lerp_, the EMA update).
  void (*lerp)(const Tensor& start, const Tensor& end, double weight, const Tensor& out) = nullptr;

  // Fills contiguous out from the counter-based generator: sample i reads
  // its w 32-bit words (w = 1, 2 or 4 by dist and dtype) starting at word
  // i*w of the Philox blocks offset, offset + 1, ... (tensor/philox.h spells
  // it out), so the stream is the same on every device and thread count.
  void (*random)(RandomDist dist, double a, double b, uint64_t seed, uint64_t offset, const Tensor& out) = nullptr;
  // Fused dropout on contiguous tensors of one shape and float dtype:
  // out = residual + x * (keep ? 1 / (1 - p) : 0), or without the residual
  // when it is undefined, where element i is kept when the Bernoulli(1 - p)
  // sample i of that same stream (offset, one word a sample) is 1;
  // tensor/dropout_rule.h has the arithmetic, the composed op's bits.
  void (*dropout)(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t offset,
                  const Tensor& out) = nullptr;

  // Waits for all queued work on the device (a no-op on the CPU).
  void (*synchronize)(int device_index) = nullptr;
  // Number of devices of this type present (1 for the CPU).
  int (*device_count)() = nullptr;
};

// The shape and dtype check each backend's matmul makes of its arguments,
// named in the message by `device` ("cpu matmul: ...").
void check_matmul_kernel_args(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend,
                              const char* device);

// The registered row for a device type; throws heed::Error naming the device
// when none was compiled in or registered.
const Backend& backend(DeviceType type);
inline const Backend& backend(Device d) { return backend(d.type); }
bool has_backend(DeviceType type);

// Number of devices of a type heed can use now: 1 for the CPU; for CUDA 0
// when heed was built without it or no GPU is visible.
int device_count(DeviceType type);
inline bool cuda_is_available() { return device_count(DeviceType::CUDA) > 0; }
// Waits for queued work on a device (a no-op on the CPU).
void synchronize(Device device = kCPU);

// How a backend puts its row in the table, from its own folder.
void register_backend(DeviceType type, const Backend& row);
// The hook through which the backends built into heed besides the CPU's
// register themselves. The op table calls it once, on first use, rather than
// relying on static initialisers, which the linker may drop from a static
// library. cuda/cuda_backend.cpp defines it (registering the CUDA row, also
// without a GPU: that row then reports 0 devices); a build without CUDA
// compiles cuda/no_cuda.cpp instead, where it does nothing. So the core never
// includes cuda/: the backend points at the core, not the other way round.
// Must not be called while holding the table's own lock.
void register_built_in_backends();

}  // namespace heed

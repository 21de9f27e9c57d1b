// The CUDA op table's fused attention (Backend::attention_forward and
// attention_backward): argument checks with "cuda" in the messages, the
// choice between the SIMT and the tensor-core kernels, the backward's
// workspace from the caching allocator, and the launches. The kernels and
// their design notes are in cuda/attention.cu.
//
// Kernel choice: the tensor-core kernels run bfloat16, and float32 when
// cuda::set_allow_tf32(true) is on (TF32 products, as for matmul), when they
// fit the problem (d == dv of 64 or 128); everything else, float64 always,
// runs the SIMT kernels. HEED_CUDA_ATTENTION=simt in the environment forces
// the SIMT kernels (read at every call, so a program can compare the two).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cuda/attention.h"
#include "cuda/device.h"
#include "cuda/matmul.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::cuda {

namespace {

bool is_mask_dtype(DType t) { return t == DType::Bool || t == DType::UInt8; }

// q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv] on one GPU.
void check_operands(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  HEED_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "cuda {}: q, k, v must be 4-D [B, H, L, d]", op);
  HEED_CHECK(q.device().is_cuda() && k.device() == q.device() && v.device() == q.device(),
             "cuda {}: q, k, v must be on one GPU, got q {}, k {}, v {}", op, describe(q), describe(k), describe(v));
  HEED_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "cuda {}: q, k, v must share a dtype, got {}, {}, {}",
             op, q.dtype(), k.dtype(), v.dtype());
  for (const Tensor* t : {&q, &k, &v}) {
    HEED_CHECK(t->stride(3) == 1 || t->size(3) <= 1, "cuda {}: q, k, v need unit stride on the last dim, got {}", op,
               describe(*t));
    for (int dim = 0; dim < 3; ++dim)
      HEED_CHECK(t->stride(dim) >= 0, "cuda {}: negative strides are not supported, got {}", op, describe(*t));
  }
  const int64_t Hq = q.size(1), Hkv = k.size(1);
  HEED_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0) && v.size(1) == Hkv && v.size(2) == k.size(2) &&
                 k.size(3) == q.size(3) && Hkv > 0 && Hq % Hkv == 0,
             "cuda {}: shapes do not fit q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv] with Hq a multiple of "
             "Hkv: q {}, k {}, v {}",
             op, shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  // The kernels take one block per 8 or more rows of a head, on a 1-D grid of at most 2^31 - 1 blocks.
  const int64_t heads = q.size(0) * std::max(Hq, Hkv), rows = std::max(q.size(2), k.size(2));
  HEED_CHECK(heads * ((rows + 7) / 8) < (int64_t(1) << 31),
             "cuda {}: too many rows for one launch: q {}, k {}", op, shape_str(q.shape()), shape_str(k.shape()));
  HEED_CHECK(q.size(3) <= kAttentionMaxHeadDim && v.size(3) <= kAttentionMaxHeadDim,
             "cuda {}: head dims up to {} are supported, got d = {}, dv = {} (move the tensors to the CPU)", op,
             kAttentionMaxHeadDim, q.size(3), v.size(3));
}

// The pattern's tensors: on q's device, of the shapes the pattern view reads.
void check_pattern(const char* op, const AttentionArgs& a, const Tensor& q, int64_t S) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2);
  auto check_mask = [&](const Tensor& t, const char* what) {
    HEED_CHECK(t.device() == q.device() && is_mask_dtype(t.dtype()), "cuda {}: {} must be a bool tensor on {}, got {}",
               op, what, q.device(), describe(t));
  };
  if (a.global.defined()) {
    check_mask(a.global, "global");
    HEED_CHECK(a.global.is_contiguous() && a.global.numel() == S, "cuda {}: global must be contiguous [{}], got {}", op,
               S, describe(a.global));
  }
  if (a.layout.defined()) {
    check_mask(a.layout, "layout");
    HEED_CHECK(a.block > 0, "cuda {}: a layout needs a block size > 0, got {}", op, a.block);
    const int64_t rows = (T + a.block - 1) / a.block, cols = (S + a.block - 1) / a.block;
    HEED_CHECK(a.layout.is_contiguous() && a.layout.dim() == 2 && a.layout.size(0) == rows && a.layout.size(1) >= cols,
               "cuda {}: layout must be contiguous [{}, {}] for block {}, got {}", op, rows, cols, a.block,
               describe(a.layout));
  }
  if (a.mask.defined()) {
    check_mask(a.mask, "mask");
    HEED_CHECK(a.mask.dim() == 4 && a.mask.size(0) == B && a.mask.size(1) == Hq && a.mask.size(2) == T &&
                   a.mask.size(3) == S,
               "cuda {}: mask must be expanded to [{}, {}, {}, {}], got {}", op, B, Hq, T, S, describe(a.mask));
  }
  if (a.key_padding.defined()) {
    check_mask(a.key_padding, "key_padding");
    HEED_CHECK(a.key_padding.dim() == 2 && a.key_padding.size(0) == B && a.key_padding.size(1) == S,
               "cuda {}: key_padding must be [{}, {}], got {}", op, B, S, describe(a.key_padding));
  }
  HEED_CHECK(a.dropout_p >= 0 && a.dropout_p < 1, "cuda {}: dropout_p must be in [0, 1), got {}", op, a.dropout_p);
}

// A contiguous tensor of `shape` and `dtype` on `device`.
void check_dense(const char* op, const char* what, const Tensor& t, const Shape& shape, DType dtype, Device device) {
  HEED_CHECK(t.defined() && t.is_contiguous() && t.shape() == shape && t.dtype() == dtype && t.device() == device,
             "cuda {}: {} must be a contiguous {} {} on {}, got {}", op, what, shape_str(shape), dtype, device,
             t.defined() ? describe(t) : std::string("none"));
}

AttentionProblem problem_of(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args) {
  AttentionProblem p;
  p.B = q.size(0), p.Hq = q.size(1), p.Hkv = k.size(1), p.T = q.size(2), p.S = k.size(2);
  p.d = q.size(3), p.dv = v.size(3);
  for (int dim = 0; dim < 3; ++dim) {
    p.q_stride[dim] = q.stride(dim);
    p.k_stride[dim] = k.stride(dim);
    p.v_stride[dim] = v.stride(dim);
  }
  p.scale = args.scale;
  p.dropout_p = args.dropout_p;
  p.seed = args.seed, p.offset = args.offset;
  p.pattern = attention_pattern_view(args, p.T, p.S);
  return p;
}

template <class T>
AttentionPath path_for(const AttentionProblem& p) {
  const char* env = std::getenv("HEED_CUDA_ATTENTION");
  if (env != nullptr && *env != '\0') {
    if (std::strcmp(env, "simt") == 0) return AttentionPath::Simt;
    HEED_CHECK(std::strcmp(env, "auto") == 0, "cuda attention: HEED_CUDA_ATTENTION must be 'simt' or 'auto', got '{}'",
               env);
  }
  const bool tensor_dtype = std::is_same_v<T, bfloat16> || (std::is_same_v<T, float> && allow_tf32());
  return tensor_dtype && attention_tensor_cores_fit<T>(p) ? AttentionPath::TensorCores : AttentionPath::Simt;
}

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args, const Tensor& out,
                       const Tensor& lse) {
  const char* op = "attention_forward";
  check_operands(op, q, k, v);
  check_pattern(op, args, q, k.size(2));
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2);
  check_dense(op, "out", out, {B, Hq, T, v.size(3)}, q.dtype(), q.device());
  check_dense(op, "lse", lse, {B, Hq, T}, compute_dtype(q.dtype()), q.device());
  const AttentionProblem p = problem_of(q, k, v, args);
  DeviceGuard guard(q.device().index);
  dispatch_floating_or_bf16(q.dtype(), "cuda attention_forward", [&](auto zero) {
    using T_ = decltype(zero);
    launch_attention_forward<T_>(p, path_for<T_>(p), static_cast<const T_*>(q.raw_data()),
                                 static_cast<const T_*>(k.raw_data()), static_cast<const T_*>(v.raw_data()),
                                 static_cast<T_*>(out.raw_data()), static_cast<compute_t<T_>*>(lse.raw_data()));
  });
}

void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const AttentionArgs& args, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v) {
  const char* op = "attention_backward";
  check_operands(op, q, k, v);
  check_pattern(op, args, q, k.size(2));
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2);
  const Shape out_shape{B, Hq, T, v.size(3)};
  check_dense(op, "grad_out", grad_out, out_shape, q.dtype(), q.device());
  check_dense(op, "out", out, out_shape, q.dtype(), q.device());
  check_dense(op, "lse", lse, {B, Hq, T}, compute_dtype(q.dtype()), q.device());
  check_dense(op, "grad_q", grad_q, q.shape(), q.dtype(), q.device());
  check_dense(op, "grad_k", grad_k, k.shape(), q.dtype(), q.device());
  check_dense(op, "grad_v", grad_v, v.shape(), q.dtype(), q.device());
  const AttentionProblem p = problem_of(q, k, v, args);
  DeviceGuard guard(q.device().index);
  // D = rowsum(grad_out * out) per query row, in the compute dtype.
  const Tensor delta = empty({std::max<int64_t>(B * Hq * T, 1)}, compute_dtype(q.dtype()), q.device());
  dispatch_floating_or_bf16(q.dtype(), "cuda attention_backward", [&](auto zero) {
    using T_ = decltype(zero);
    launch_attention_backward<T_>(
        p, path_for<T_>(p), static_cast<const T_*>(grad_out.raw_data()), static_cast<const T_*>(q.raw_data()),
        static_cast<const T_*>(k.raw_data()), static_cast<const T_*>(v.raw_data()),
        static_cast<const T_*>(out.raw_data()), static_cast<const compute_t<T_>*>(lse.raw_data()),
        static_cast<T_*>(grad_q.raw_data()), static_cast<T_*>(grad_k.raw_data()), static_cast<T_*>(grad_v.raw_data()),
        static_cast<compute_t<T_>*>(delta.raw_data()));
  });
}

}  // namespace

void install_attention_kernels(Backend& row) {
  row.attention_forward = attention_forward;
  row.attention_backward = attention_backward;
}

}  // namespace heed::cuda

// The CUDA op table's reductions, softmax and layer norm: argument checks
// (the CPU's, with "cuda" in the messages), the reduction plan, workspaces
// from the caching allocator, and the launches. The kernels and their design
// notes are in cuda/reduce.cu, cuda/softmax.cu and cuda/norm.cu; the plans
// and their index math in cuda/reduce_plan.h.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::cuda {

namespace {

ReduceKind kind_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ReduceKind::Sum;
    case ReduceOp::Prod: return ReduceKind::Prod;
    case ReduceOp::Max: return ReduceKind::Max;
    case ReduceOp::Min: return ReduceKind::Min;
    case ReduceOp::ArgMax: return ReduceKind::ArgMax;
    case ReduceOp::ArgMin: return ReduceKind::ArgMin;
  }
  HEED_FAIL("cuda reduce: unknown op {}", static_cast<int>(op));
}

// Device scratch memory of `nbytes` (through the caching allocator), or an
// undefined tensor for none.
Tensor workspace(int64_t nbytes, Device device) {
  return nbytes > 0 ? empty({nbytes}, DType::UInt8, device) : Tensor();
}

void reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  const char* name = reduce_op_name(op);
  HEED_CHECK(x.dim() == out.dim(), "cuda {}: out has {} dims, x has {}", name, out.dim(), x.dim());
  int64_t n_out = 1, n_red = 1, red_dims = 0;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t xs = x.shape()[d], os = out.shape()[d];
    HEED_CHECK(os == xs || os == 1, "cuda {}: out shape {} does not fit x shape {}", name, shape_str(out.shape()),
               shape_str(x.shape()));
    if (os == xs) {
      n_out *= xs;
    } else {
      n_red *= xs;
      ++red_dims;
    }
  }
  if (n_out == 0) return;
  const bool arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  HEED_CHECK(op == ReduceOp::Sum || op == ReduceOp::Prod || n_red > 0,
             "cuda {}: cannot reduce over zero elements (x shape {})", name, shape_str(x.shape()));
  if (arg) {
    HEED_CHECK(red_dims <= 1, "cuda {}: reduces one dim, got x {} -> out {}", name, shape_str(x.shape()),
               shape_str(out.shape()));
    HEED_CHECK(out.dtype() == DType::Int64, "cuda {}: out must be int64, got {}", name, dtype_name(out.dtype()));
  } else if (out.dtype() != x.dtype()) {
    // The kernels write x's dtype: reduce into that, then cast with the copy
    // kernel (the CPU casts its wide accumulator directly; both go through
    // x's precision only here, never in the op layer, which asks for x's dtype).
    Tensor same = empty(out.shape(), x.dtype(), out.device());
    reduce(op, x, same);
    backend(out.device()).copy(same, out);
    return;
  }

  ReducePlan plan;
  const int ndim = static_cast<int>(x.dim());
  HEED_CHECK(make_reduce_plan(ndim, x.shape().data(), x.strides().data(), out.shape().data(), out.strides().data(),
                              plan),
             "cuda {}: x {} has more than {} kept or reduced dims that cannot be merged; call contiguous() first",
             name, describe(x), kMaxReduceDims);
  DeviceGuard guard(x.device().index);
  const Tensor scratch = workspace(plan.splits > 1 ? plan.splits * plan.n_out * kReducePartialBytes : 0, x.device());
  void* ws = scratch.defined() ? scratch.raw_data() : nullptr;
  dispatch_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_reduce<T>(kind_of(op), static_cast<const T*>(x.raw_data()), out.raw_data(), plan, ws);
  });
}

void softmax(const Tensor& x, bool log, const Tensor& out) {
  HEED_CHECK(x.is_contiguous() && out.is_contiguous(), "cuda softmax: x and out must be contiguous, got x {}, out {}",
             describe(x), describe(out));
  HEED_CHECK(x.shape() == out.shape() && x.dtype() == out.dtype(), "cuda softmax: out {} does not match x {}",
             describe(out), describe(x));
  const int64_t n = x.dim() == 0 ? 1 : x.shape().back();
  if (x.numel() == 0 || n == 0) return;
  const int64_t rows = x.numel() / n;
  DeviceGuard guard(x.device().index);
  dispatch_floating_or_bf16(x.dtype(), "cuda softmax", [&](auto zero) {
    using T = decltype(zero);
    launch_softmax<T>(static_cast<const T*>(x.raw_data()), static_cast<T*>(out.raw_data()), rows, n, log);
  });
}

void softmax_backward(const Tensor& grad, const Tensor& y, bool log, const Tensor& grad_x) {
  HEED_CHECK(grad.is_contiguous() && y.is_contiguous() && grad_x.is_contiguous(),
             "cuda softmax_backward: grad, y and grad_x must be contiguous, got grad {}, y {}, grad_x {}", describe(grad),
             describe(y), describe(grad_x));
  HEED_CHECK(grad.shape() == y.shape() && grad_x.shape() == y.shape() && grad.dtype() == y.dtype() &&
                 grad_x.dtype() == y.dtype(),
             "cuda softmax_backward: grad {}, y {} and grad_x {} must agree", describe(grad), describe(y),
             describe(grad_x));
  const int64_t n = y.dim() == 0 ? 1 : y.shape().back();
  if (y.numel() == 0 || n == 0) return;
  const int64_t rows = y.numel() / n;
  DeviceGuard guard(y.device().index);
  dispatch_floating_or_bf16(y.dtype(), "cuda softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    launch_softmax_backward<T>(static_cast<const T*>(grad.raw_data()), static_cast<const T*>(y.raw_data()),
                               static_cast<T*>(grad_x.raw_data()), rows, n, log);
  });
}

void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& target) {
  HEED_CHECK(logits.dim() == 2 && logits.is_contiguous(), "cuda {}: logits must be a contiguous [N, C], got {}", op,
             describe(logits));
  HEED_CHECK(target.dtype() == DType::Int64 && target.dim() == 1 && target.size(0) == logits.size(0) &&
                 target.is_contiguous(),
             "cuda {}: target must be a contiguous int64 [{}], got {}", op, logits.size(0), describe(target));
}

// loss [N] of the logits' dtype, or lse [N] of compute_dtype (float32 for bfloat16 logits), on the logits' GPU.
void check_per_row(const char* op, const Tensor& logits, const Tensor& t, DType want, const char* what) {
  HEED_CHECK(t.defined() && t.is_contiguous() && t.dim() == 1 && t.size(0) == logits.size(0) && t.dtype() == want &&
                 t.device() == logits.device(),
             "cuda {}: {} must be contiguous [{}] {} on {} for {} logits, got {}", op, what, logits.size(0), want,
             logits.device(), logits.dtype(), t.defined() ? describe(t) : std::string("none"));
}

void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                   const Tensor& loss, const Tensor& lse) {
  check_cross_entropy("cross_entropy", logits, target);
  check_per_row("cross_entropy", logits, loss, logits.dtype(), "loss");
  check_per_row("cross_entropy", logits, lse, compute_dtype(logits.dtype()), "lse");
  DeviceGuard guard(logits.device().index);
  dispatch_floating_or_bf16(logits.dtype(), "cuda cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    launch_cross_entropy<T>(static_cast<const T*>(logits.raw_data()), static_cast<const int64_t*>(target.raw_data()),
                            ignore_index, smoothing, static_cast<T*>(loss.raw_data()),
                            static_cast<compute_t<T>*>(lse.raw_data()), logits.size(0), logits.size(1));
  });
}

void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, double smoothing, const Tensor& grad_logits) {
  check_cross_entropy("cross_entropy_backward", logits, target);
  HEED_CHECK(grad.is_contiguous() && grad_logits.is_contiguous() && grad_logits.shape() == logits.shape(),
             "cuda cross_entropy_backward: grad {} and grad_logits {} must be contiguous, grad_logits as logits {}",
             describe(grad), describe(grad_logits), describe(logits));
  check_per_row("cross_entropy_backward", logits, lse, compute_dtype(logits.dtype()), "lse");
  DeviceGuard guard(logits.device().index);
  dispatch_floating_or_bf16(logits.dtype(), "cuda cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    launch_cross_entropy_backward<T>(static_cast<const T*>(grad.raw_data()), static_cast<const T*>(logits.raw_data()),
                                     static_cast<const int64_t*>(target.raw_data()),
                                     static_cast<const compute_t<T>*>(lse.raw_data()), ignore_index, smoothing,
                                     static_cast<T*>(grad_logits.raw_data()), logits.size(0), logits.size(1));
  });
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <class T>
T* mutable_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

// mean or rstd [R] of compute_dtype(x): float32 for a bfloat16 x.
void check_stats(const Tensor& x, const Tensor& s, const char* op, const char* what) {
  const DType want = compute_dtype(x.dtype());
  HEED_CHECK(s.defined() && s.is_contiguous() && s.numel() == x.shape()[0] && s.dtype() == want,
             "cuda {}: {} must be contiguous [{}] {} for a {} x, got {}", op, what, x.shape()[0], want, x.dtype(),
             s.defined() ? describe(s) : std::string("none"));
}

// x [R, D] contiguous, with parameters [D] contiguous or undefined.
void check_rows(const Tensor& x, const Tensor& p, const char* op, const char* what) {
  if (!p.defined()) return;
  HEED_CHECK(p.is_contiguous() && p.dim() == 1 && p.shape()[0] == x.shape()[1] && p.dtype() == x.dtype(),
             "cuda {}: {} must be contiguous [{}] {}, got {}", op, what, x.shape()[1], x.dtype(), describe(p));
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                const Tensor& mean, const Tensor& rstd) {
  HEED_CHECK(x.dim() == 2 && x.is_contiguous(), "cuda layer_norm: x must be contiguous [R, D], got {}", describe(x));
  HEED_CHECK(out.defined() && out.is_contiguous() && out.shape() == x.shape() && out.dtype() == x.dtype(),
             "cuda layer_norm: out must be contiguous {} {} like x, got {}", shape_str(x.shape()), x.dtype(),
             out.defined() ? describe(out) : std::string("none"));
  check_rows(x, weight, "layer_norm", "weight");
  check_rows(x, bias, "layer_norm", "bias");
  check_stats(x, mean, "layer_norm", "mean");
  check_stats(x, rstd, "layer_norm", "rstd");
  const int64_t rows = x.shape()[0], d = x.shape()[1];
  DeviceGuard guard(x.device().index);
  dispatch_floating_or_bf16(x.dtype(), "cuda layer_norm", [&](auto zero) {
    using T = decltype(zero);
    using C = compute_t<T>;
    launch_layer_norm<T>(data_or_null<T>(x), data_or_null<T>(weight), data_or_null<T>(bias), eps,
                         mutable_or_null<T>(out), mutable_or_null<C>(mean), mutable_or_null<C>(rstd), rows, d);
  });
}

void layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias) {
  HEED_CHECK(x.dim() == 2 && x.is_contiguous() && grad.is_contiguous() && grad.shape() == x.shape(),
             "cuda layer_norm backward: x and grad must be contiguous [R, D], got x {}, grad {}", describe(x),
             describe(grad));
  check_rows(x, weight, "layer_norm backward", "weight");
  check_stats(x, mean, "layer_norm backward", "mean");
  check_stats(x, rstd, "layer_norm backward", "rstd");
  const int64_t rows = x.shape()[0], d = x.shape()[1];
  DeviceGuard guard(x.device().index);
  const bool want_params = grad_weight.defined() || grad_bias.defined();
  const Tensor scratch =
      workspace(want_params ? layer_norm_backward_workspace(rows, d) * int64_t(sizeof(double)) : 0, x.device());
  dispatch_floating_or_bf16(x.dtype(), "cuda layer_norm backward", [&](auto zero) {
    using T = decltype(zero);
    using C = compute_t<T>;
    launch_layer_norm_backward<T>(data_or_null<T>(grad), data_or_null<T>(x), data_or_null<T>(weight),
                                  data_or_null<C>(mean), data_or_null<C>(rstd), mutable_or_null<T>(grad_x),
                                  mutable_or_null<T>(grad_weight), mutable_or_null<T>(grad_bias), rows, d,
                                  scratch.defined() ? static_cast<double*>(scratch.raw_data()) : nullptr);
  });
}

}  // namespace

void install_reduction_kernels(Backend& row) {
  row.reduce = reduce;
  row.softmax = softmax;
  row.softmax_backward = softmax_backward;
  row.cross_entropy = cross_entropy;
  row.cross_entropy_backward = cross_entropy_backward;
  row.layer_norm = layer_norm;
  row.layer_norm_backward = layer_norm_backward;
}

}  // namespace heed::cuda

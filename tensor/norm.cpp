// layer_norm: one fused kernel forward and one backward (tensor/backend.h),
// instead of the ~10 composed ops (mean, sub, var, add, rsqrt, mul, ...) and
// their temporaries that LayerNorm used to build. When the backward itself
// must be differentiable (create_graph), it is composed from tensor ops that
// recompute mean and rstd from x, so the double backward is exact.
#include <cmath>

#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {

void check_affine(const Tensor& p, const Tensor& x, int64_t d, const char* what) {
  if (!p.defined()) return;
  detail::check_device(p, x.device(), "layer_norm", what);
  HEED_CHECK(p.dtype() == x.dtype(), "layer_norm: {} is {} but x is {}", what, p.dtype(), x.dtype());
  HEED_CHECK(p.dim() == 1 && p.size(0) == d,
             "layer_norm: {} must be [{}] (x's last dimension), got shape {} for x of shape {}", what, d,
             shape_str(p.shape()), shape_str(x.shape()));
}

// The backward written with differentiable ops (for create_graph).
TensorList composed_backward(const Tensor& g, const Tensor& x, const Tensor& w, double eps, bool rx, bool rw, bool rb) {
  const int64_t d = x.size(-1);
  Tensor mu = mean(x, {-1}, true);
  Tensor rs = rsqrt(add(var(x, {-1}, 0, true), eps));
  Tensor xhat = mul(sub(x, mu), rs);
  Tensor gxhat = w.defined() ? mul(g, w) : g;
  Tensor gx, gw, gb;
  if (rx) {
    Tensor centered = sub(gxhat, mean(gxhat, {-1}, true));
    gx = mul(rs, sub(centered, mul(xhat, mean(mul(gxhat, xhat), {-1}, true))));
  }
  if (rw) gw = sum_to(mul(g, xhat), {d});
  if (rb) gb = sum_to(g, {d});
  return {gx, gw, gb};
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, double eps) {
  // Under autocast a layer norm runs in float32 (tensor/autocast.h).
  const Tensor x = autocast::float32(x_in), weight = autocast::float32(weight_in), bias = autocast::float32(bias_in);
  detail::check_floating(x, "layer_norm");
  HEED_CHECK(x.dim() >= 1 && x.size(-1) > 0, "layer_norm: x must have a non-empty last dimension, got shape {}",
             shape_str(x.shape()));
  HEED_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got {}", eps);
  const int64_t d = x.size(-1), rows = x.numel() / d;
  check_affine(weight, x, d, "weight");
  check_affine(bias, x, d, "bias");

  Tensor x2 = reshape(contiguous(x.detach()), {rows, d});
  Tensor w = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor b = bias.defined() ? contiguous(bias.detach()) : Tensor();
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  // [R] each, float32 for a bfloat16 x: its rstd rounded to 8 bits would cost the backward its precision.
  Tensor mean_r = empty({rows}, compute_dtype(x.dtype()), x.device());
  Tensor rstd_r = empty({rows}, compute_dtype(x.dtype()), x.device());
  if (rows > 0)
    detail::kernel(x.device(), &Backend::layer_norm, "layer_norm")(x2, w, b, eps,
                                                                    reshape(out, {rows, d}), mean_r, rstd_r);

  if (auto* node = record("layer_norm", {x, weight, bias}, out)) {
    node->backward = [sx = SavedTensor(x), sw = weight.defined() ? SavedTensor(weight) : SavedTensor(), mean_r,
                      rstd_r, eps, rx = x.requires_grad(), rw = weight.defined() && weight.requires_grad(),
                      rb = bias.defined() && bias.requires_grad()](const Tensor& g) {
      Tensor xs = sx.unpack("layer_norm");
      Tensor ws = sw.unpack("layer_norm");  // undefined without an affine weight
      if (GradMode::is_enabled()) return composed_backward(g, xs, ws, eps, rx, rw, rb);
      const int64_t dd = xs.size(-1), rr = xs.numel() / dd;
      Tensor gx = rx ? empty(xs.shape(), xs.dtype(), xs.device()) : Tensor();
      Tensor gw = rw ? empty({dd}, xs.dtype(), xs.device()) : Tensor();
      Tensor gb = rb ? empty({dd}, xs.dtype(), xs.device()) : Tensor();
      if (rr > 0) {
        detail::kernel(xs.device(), &Backend::layer_norm_backward, "layer_norm backward")(
            reshape(contiguous(g), {rr, dd}), reshape(contiguous(xs), {rr, dd}),
            ws.defined() ? contiguous(ws) : Tensor(), mean_r, rstd_r, gx.defined() ? reshape(gx, {rr, dd}) : Tensor(),
            gw, gb);
      } else {
        if (gw.defined()) gw.fill_(0);
        if (gb.defined()) gb.fill_(0);
      }
      return TensorList{gx, gw, gb};
    };
  }
  return out;
}

}  // namespace heed

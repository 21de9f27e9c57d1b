// linear: a Linear layer's x W^T + b with its epilogue (activation or
// residual) fused, as torch's addmm and cuBLASLt's epilogues do. Composed,
// the same layer is a matmul, an add for the bias (a new [..., N] tensor), an
// activation (another) and, in a transformer block, an add for the residual
// (a third): each a pass over memory and an allocation. Here the GEMM adds
// the product to the bias or the residual as it writes each tile of the output
// (the backend's matmul addend; the CPU reads them while the tile is in L1,
// cuBLAS after a copy into the output), and ReLU runs in place on the result.
#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {

void check_linear(const Tensor& x, const Tensor& w, const Tensor& b, LinearActivation act, const Tensor& r) {
  detail::check_floating(x, "linear");
  detail::check_same(x, w, "linear");
  HEED_CHECK(w.dim() == 2, "linear: weight must be [out_features, in_features], got shape {}", shape_str(w.shape()));
  HEED_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1),
             "linear: x's last dimension must be in_features {} (weight {}), got x of shape {}", w.size(1),
             shape_str(w.shape()), shape_str(x.shape()));
  if (b.defined()) {
    detail::check_same(x, b, "linear (bias)");
    HEED_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias must be [{}] (out_features), got shape {}",
               w.size(0), shape_str(b.shape()));
  }
  if (r.defined()) {
    HEED_CHECK(act == LinearActivation::None, "linear: a residual is added after no activation only");
    detail::check_device(r, x.device(), "linear", "residual");
    Shape want = x.shape();
    want.back() = w.size(0);
    HEED_CHECK(r.shape() == want, "linear: residual must have the output's shape {}, got {}", shape_str(want),
               shape_str(r.shape()));
  }
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, LinearActivation act,
              const Tensor& residual) {
  // Under autocast the product runs in bf16, and so is the bias added (as the
  // composed Linear did); a float32 residual stream then meets a bf16
  // product, which the elementwise add widens: that case stays composed.
  const Tensor x = autocast::lower(x_in), w = autocast::lower(weight_in);
  const Tensor b = bias_in.defined() ? autocast::lower(bias_in) : Tensor();
  check_linear(x, w, b, act, residual);
  if (residual.defined() && residual.dtype() != x.dtype()) return add(residual, linear(x, w, b, act));

  const int64_t K = w.size(1), N = w.size(0), rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor out = empty(out_shape, x.dtype(), x.device());
  const Tensor x2 = reshape(contiguous(x.detach()), {rows, K});
  if (rows > 0) {
    const Tensor o2 = make_view(out, {rows, N}, {N, 1}, 0);
    const Tensor wd = w.detach();
    // First what the product is added to: bias, residual, their sum, or nothing.
    // A bias or a residual alone is read by the GEMM as it writes each tile
    // (the addend); both are summed into out first, which the GEMM adds to.
    Tensor addend;  // [rows, N]
    bool addend_in_out = false;
    if (b.defined() && residual.defined()) {
      detail::kernel(x.device(), &Backend::binary, "linear")(
          BinaryOp::Add, reshape(residual.detach(), {rows, N}), detail::broadcast_view(b.detach(), {rows, N}), o2);
      addend = o2;
      addend_in_out = true;
    } else if (residual.defined()) {
      addend = reshape(residual.detach(), {rows, N});
    } else if (b.defined()) {
      addend = detail::broadcast_view(b.detach(), {rows, N});
    }
    if (K == 0) {
      if (!addend.defined())
        detail::kernel(x.device(), &Backend::fill, "linear")(o2, 0.0);
      else if (!addend_in_out)
        detail::kernel(x.device(), &Backend::copy, "linear")(addend, o2);
    } else {
      // x [1, rows, K] times W^T [1, K, N] (the weight read transposed, never copied).
      const Tensor addend3 = addend.defined() ? make_view(addend, {1, rows, N}, {0, addend.stride(0), addend.stride(1)},
                                                           addend.offset())
                                              : Tensor();
      detail::kernel(x.device(), &Backend::matmul, "linear")(make_view(x2, {1, rows, K}, {0, K, 1}, x2.offset()),
                                                               make_view(wd, {1, K, N}, {0, wd.stride(1), wd.stride(0)},
                                                                         wd.offset()),
                                                               make_view(out, {1, rows, N}, {0, N, 1}, 0), addend3);
    }
  }
  // The tensor backward needs besides x and W: relu's output (out itself,
  // made in place) or gelu's input (the pre-activation, kept).
  Tensor pre;
  if (act == LinearActivation::ReLU && out.numel() > 0) {
    detail::kernel(x.device(), &Backend::unary, "linear")(UnaryOp::Relu, out, 0.0, 0.0, out);
  } else if (act == LinearActivation::GELU) {
    pre = out;
    out = empty(out_shape, x.dtype(), x.device());
    if (out.numel() > 0) detail::kernel(x.device(), &Backend::unary, "linear")(UnaryOp::GeluErf, pre, 0.0, 0.0, out);
  }

  if (auto* node = record("linear", {x, w, b, residual}, out)) {
    node->backward = [sx = SavedTensor(x), sw = SavedTensor(w), sa = act == LinearActivation::ReLU ? SavedTensor(out)
                                                                                                   : SavedTensor(),
                      sb = b.defined() ? SavedTensor(b) : SavedTensor(), pre, act, rows, K, N, x_shape = x.shape(),
                      rx = x.requires_grad(), rw = w.requires_grad(),
                      rb = b.defined() && b.requires_grad(),
                      rr = residual.defined() && residual.requires_grad()](const Tensor& g) {
      const Tensor xs = sx.unpack("linear"), ws = sw.unpack("linear");
      Tensor gz = g;  // the gradient at x W^T + b
      if (act == LinearActivation::ReLU) gz = detail::relu_backward(g, sa.unpack("linear"));
      if (act == LinearActivation::GELU) {
        // A differentiable backward (create_graph) needs the pre-activation
        // as a function of x, W and b: recomputed with tensor ops.
        Tensor z = pre;
        if (GradMode::is_enabled()) {
          z = matmul(xs, transpose(ws, 0, 1));
          if (sb.defined()) z = add(z, sb.unpack("linear"));
        }
        gz = detail::gelu_backward(g, z, true);
      }
      const Tensor g2 = reshape(gz, {rows, N});
      Tensor gx, gw, gb;
      if (rx) gx = reshape(matmul(g2, ws), x_shape);
      if (rw) gw = matmul(transpose(g2, 0, 1), reshape(xs, {rows, K}));
      if (rb) gb = sum_to(g2, {N});
      return TensorList{gx, gw, gb, rr ? g : Tensor()};
    };
  }
  return out;
}

}  // namespace heed

#include "nn/flash_attention.h"

#include <limits>

#include "autograd/engine.h"
#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/error.h"
#include "tensor/op_helpers.h"
#include "tensor/random.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// A last dim of unit stride is all the kernels ask of q, k, v.
Tensor unit_last_stride(const Tensor& t) { return t.stride(3) == 1 ? t : contiguous(t); }

// The differentiable rule's gradients with respect to q, k, v: `recompute`
// rebuilds the result from the graph-connected inputs and the engine
// differentiates it (used only when the backward itself records a graph).
TensorList gradients_of(const std::function<Tensor()>& recompute, const TensorList& inputs, const Tensor& g) {
  TensorList wanted;
  for (const Tensor& x : inputs)
    if (x.requires_grad()) wanted.push_back(x);
  Tensor y = recompute();
  TensorList got = grad({y}, wanted, {g}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
  TensorList out;
  size_t n = 0;
  for (const Tensor& x : inputs) out.push_back(x.requires_grad() ? got[n++] : Tensor());
  return out;
}

// [B, Hq, T, S] scores q k^T * scale, grouped heads broadcast over their kv head.
Tensor scores_of(const Tensor& q, const Tensor& k, double scale) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), d = q.size(3), Hkv = k.size(1), S = k.size(2);
  const int64_t G = Hq / Hkv;
  Tensor qs = mul(q, scale), kt = k.transpose(-2, -1);
  if (G == 1) return matmul(qs, kt);
  return matmul(qs.reshape({B, Hkv, G, T, d}), kt.unsqueeze(2)).reshape({B, Hq, T, S});
}

// The dropout factors of the weights: what nn::dropout multiplies them by
// for the same generator state (tensor/attention_pattern.h).
Tensor dropout_factors(const AttentionArgs& a, const Shape& shape, DType dtype, Device device) {
  Generator gen(a.seed);
  gen.set_state(a.seed, a.offset);
  return mul(bernoulli(shape, 1.0 - a.dropout_p, &gen, dtype, device), 1.0 / (1.0 - a.dropout_p));
}

}  // namespace

FusedAttentionOutput flash_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                     const AttentionArgs& args, ComposedAttention composed) {
  const Tensor q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in);
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), dv = v.size(3);
  FusedAttentionOutput r;
  r.output = empty({B, Hq, T, dv}, q.dtype(), q.device());
  r.lse = empty({B, Hq, T}, compute_dtype(q.dtype()), q.device());
  {
    NoGradGuard no_grad;
    detail::kernel(q.device(), &Backend::attention_forward, "flash_attention")(q, k, v, args, r.output, r.lse);
  }
  if (auto* node = record("flash_attention", {q_in, k_in, v_in}, r.output)) {
    node->backward = [sq = SavedTensor(q_in), sk = SavedTensor(k_in), sv = SavedTensor(v_in),
                      so = SavedTensor(r.output), lse = r.lse, args, composed](const Tensor& g) {
      Tensor q = sq.unpack("flash_attention"), k = sk.unpack("flash_attention"), v = sv.unpack("flash_attention");
      if (GradMode::is_enabled()) {
        HEED_CHECK(composed != nullptr,
                   "flash_attention: a backward that records a graph (create_graph) needs the composed rule; call "
                   "through nn::scaled_dot_product_attention");
        return gradients_of([&] { return composed(q, k, v); }, {q, k, v}, g);
      }
      Tensor out = so.unpack("flash_attention");
      const Tensor qc = unit_last_stride(q), kc = unit_last_stride(k), vc = unit_last_stride(v);
      Tensor gq = empty(q.shape(), q.dtype(), q.device());
      Tensor gk = empty(k.shape(), k.dtype(), k.device());
      Tensor gv = empty(v.shape(), v.dtype(), v.device());
      detail::kernel(q.device(), &Backend::attention_backward, "flash_attention backward")(
          contiguous(g), qc, kc, vc, contiguous(out), lse, args, gq, gk, gv);
      return TensorList{gq, gk, gv};
    };
  }
  return r;
}

Tensor attention_weights_from_lse(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionArgs& args,
                                  const Tensor& mask) {
  const double inf = std::numeric_limits<double>::infinity();
  // The masked scores; kept by the backward, so it holds its own copies.
  auto weights = [mask, scale = args.scale](const Tensor& qq, const Tensor& kk) {
    Tensor s = scores_of(qq, kk, scale);
    if (mask.defined()) s = masked_fill(s, mask, -std::numeric_limits<double>::infinity());
    return s;
  };
  Tensor w, z;
  {
    NoGradGuard no_grad;
    // A row with every key masked has lse = -inf and scores -inf: exp(-inf - 0) = 0, not NaN.
    Tensor safe_lse = masked_fill(lse, eq(lse, scalar_tensor(-inf, lse.dtype(), lse.device())), 0.0);
    w = exp(sub(weights(q, k), safe_lse.to(q.dtype()).unsqueeze(-1)));
    if (args.dropout_p > 0) z = dropout_factors(args, w.shape(), w.dtype(), w.device());
  }
  // A new tensor, not w itself: the backward keeps w, and w carrying this
  // node as its grad_fn would be a cycle that is never freed.
  Tensor out = z.defined() ? mul(w, z) : w.detach();
  if (auto* node = record("attention_weights", {q, k}, out)) {
    node->backward = [sq = SavedTensor(q), sk = SavedTensor(k), w, z, args, weights](const Tensor& g) {
      Tensor q = sq.unpack("attention_weights"), k = sk.unpack("attention_weights");
      if (GradMode::is_enabled()) {
        auto recompute = [&] {
          Tensor p = softmax(weights(q, k), -1);
          return z.defined() ? mul(p, z) : p;
        };
        return gradients_of(recompute, {q, k}, g);
      }
      const Tensor dw = z.defined() ? mul(g, z) : g;
      const Tensor ds = mul(w, sub(dw, sum(mul(dw, w), {-1}, true)));  // the softmax's rule
      const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), d = q.size(3), Hkv = k.size(1), S = k.size(2);
      const int64_t G = Hq / Hkv;
      Tensor gq, gk;
      if (G == 1) {
        gq = mul(matmul(ds, k), args.scale);
        gk = mul(matmul(ds.transpose(-2, -1), q), args.scale);
      } else {
        Tensor dsg = ds.reshape({B, Hkv, G, T, S});
        gq = mul(matmul(dsg, k.unsqueeze(2)), args.scale).reshape({B, Hq, T, d});
        gk = mul(sum(matmul(dsg.transpose(-2, -1), q.reshape({B, Hkv, G, T, d})), {2}), args.scale);
      }
      return TensorList{gq, gk};
    };
  }
  return out;
}

}  // namespace heed::nn

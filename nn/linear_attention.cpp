#include "nn/linear_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/function.h"
#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// Rows per chunk of the causal form. Within a chunk the work is a C x C
// kernel matrix (C d per row), across chunks a [d, dv] state (d dv per row);
// C = 64 keeps the two comparable for the usual head widths while leaving
// few enough chunks that per-op overhead stays small.
constexpr int64_t kCausalChunk = 64;

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double eps) {
  HEED_CHECK(q.defined() && k.defined() && v.defined(), "linear_attention: q, k and v must all be defined tensors");
  HEED_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.size(0) == q.size(0) && v.size(0) == q.size(0) &&
                 k.size(1) == q.size(1) && v.size(1) == q.size(1) && k.size(3) == q.size(3) && v.size(2) == k.size(2),
             "linear_attention: expected q [B, H, T, d], k [B, H, S, d], v [B, H, S, dv], got q {}, k {}, v {}",
             shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  HEED_CHECK(q.is_floating_point(), "linear_attention: inputs must be a float dtype (float32, float64 or bfloat16), got {}", q.dtype());
  HEED_CHECK(!causal || q.size(2) == k.size(2),
             "linear_attention: causal attention needs as many queries as keys (T == S), got q {} and k {}",
             shape_str(q.shape()), shape_str(k.shape()));
  HEED_CHECK(eps >= 0 && std::isfinite(eps), "linear_attention: eps must be finite and >= 0, got {}", eps);
}

// Cuts t into pieces of `size` rows along `dim`, as split() does, but as one
// graph node whose backward concatenates the pieces' gradients. split() is a
// list of narrow()s, each of whose backward writes a full-size gradient, so
// N pieces would cost O(N T) in backward: quadratic in T for the causal form.
struct SplitRows : Function<SplitRows> {
  static TensorList forward(AutogradContext* ctx, const Tensor& t, int64_t dim, int64_t size) {
    TensorList parts = split(t, size, dim);
    std::vector<Shape> shapes;
    for (const Tensor& p : parts) shapes.push_back(p.shape());
    ctx->data["dim"] = dim;
    ctx->data["shapes"] = shapes;
    return parts;
  }
  static TensorList backward(AutogradContext* ctx, const TensorList& grads) {
    const auto& shapes = std::any_cast<const std::vector<Shape>&>(ctx->data["shapes"]);
    Tensor any_grad;
    for (const Tensor& g : grads)
      if (g.defined()) any_grad = g;
    TensorList parts;
    for (size_t i = 0; i < grads.size(); ++i)
      parts.push_back(grads[i].defined() ? grads[i] : zeros(shapes[i], any_grad.dtype(), any_grad.device()));
    return {cat(parts, std::any_cast<int64_t>(ctx->data["dim"]))};
  }
};

// fq [B, H, T, d], fk [B, H, S, d] (features), v [B, H, S, dv].
Tensor non_causal(const Tensor& fq, const Tensor& fk, const Tensor& v, double eps) {
  Tensor kv = matmul(transpose(fk, -1, -2), v);  // [B, H, d, dv]
  Tensor ksum = sum(fk, {-2}, true);             // [B, H, 1, d]
  Tensor num = matmul(fq, kv);                   // [B, H, T, dv]
  Tensor den = sum(mul(fq, ksum), {-1}, true);   // [B, H, T, 1]
  return div(num, add(den, eps));
}

// The same sums restricted to s <= t, chunk by chunk (T == S).
Tensor causal_chunked(const Tensor& fq, const Tensor& fk, const Tensor& v, double eps) {
  const int64_t T = fq.size(2);
  const int64_t C = std::min(T, kCausalChunk);
  // Lower-triangular ones [C, C] (key j <= query i), in the inputs' dtype so
  // masking is a multiplication.
  Tensor tril;
  {
    NoGradGuard no_grad;
    Tensor idx = arange(C, DType::Int64, fq.device());
    tril = to_dtype(ge(unsqueeze(idx, 1), unsqueeze(idx, 0)), fq.dtype());
  }
  const TensorList q_chunks = SplitRows::apply(fq, int64_t{2}, C);
  const TensorList k_chunks = SplitRows::apply(fk, int64_t{2}, C);
  const TensorList v_chunks = SplitRows::apply(v, int64_t{2}, C);
  Tensor state;  // [B, H, d, dv]: sum of phi(k_s)^T v_s over earlier chunks
  Tensor zsum;   // [B, H, 1, d]:  sum of phi(k_s) over earlier chunks
  TensorList outs;
  for (size_t n = 0; n < q_chunks.size(); ++n) {
    const Tensor& qc = q_chunks[n];  // [B, H, c, d]
    const Tensor& kc = k_chunks[n];  // [B, H, c, d]
    const Tensor& vc = v_chunks[n];  // [B, H, c, dv]
    const int64_t len = qc.size(2);
    Tensor mask = len == C ? tril : narrow(narrow(tril, 0, 0, len), 1, 0, len);
    Tensor kernel = mul(matmul(qc, transpose(kc, -1, -2)), mask);  // [B, H, c, c]
    Tensor num = matmul(kernel, vc);                                // [B, H, c, dv]
    Tensor den = sum(kernel, {-1}, true);                           // [B, H, c, 1]
    if (state.defined()) {
      num = add(num, matmul(qc, state));
      den = add(den, sum(mul(qc, zsum), {-1}, true));
    }
    outs.push_back(div(num, add(den, eps)));
    if (n + 1 < q_chunks.size()) {
      Tensor kv = matmul(transpose(kc, -1, -2), vc);
      Tensor ks = sum(kc, {-2}, true);
      state = state.defined() ? add(state, kv) : kv;
      zsum = zsum.defined() ? add(zsum, ks) : ks;
    }
  }
  return outs.size() == 1 ? outs[0] : cat(outs, 2);
}

}  // namespace

Tensor elu_feature_map(const Tensor& x) {
  // exp of min(x, 0), not of x: the unused branch of where() must not
  // overflow to inf (inf * 0 would be NaN in the gradient).
  return where(x > 0.0, add(x, 1.0),
               exp(clamp(x, -std::numeric_limits<double>::infinity(), 0.0)));
}

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double eps) {
  check_inputs(q, k, v, causal, eps);
  Tensor fq = elu_feature_map(q), fk = elu_feature_map(k);
  return causal ? causal_chunked(fq, fk, v, eps) : non_causal(fq, fk, v, eps);
}

}  // namespace heed::nn

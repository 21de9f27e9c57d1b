// matmul with torch.matmul's rules: 1-D operands are vectors, leading (batch)
// dims broadcast, and the batched product runs as one [B, M, K] x [B, K, N]
// kernel call over strided operands.
#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {

// Views `t` (already broadcast to batch + [R, C]) as [B, R, C]; copies only
// when its batch dims cannot be merged into one stride.
Tensor as_batched(const Tensor& t, const Shape& batch) {
  size_t nb = batch.size();
  const Shape& st = t.strides();
  // The batch dims that matter (size > 1) merge into one stride when each
  // one's stride is the next inner one's stride times its size.
  Shape sizes, strides;
  for (size_t i = 0; i < nb; ++i)
    if (batch[i] != 1) {
      sizes.push_back(batch[i]);
      strides.push_back(st[i]);
    }
  bool mergeable = true;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) mergeable = mergeable && strides[i] == strides[i + 1] * sizes[i + 1];
  int64_t batch_stride = strides.empty() ? 0 : strides.back();
  Shape shape{numel_of(batch), t.shape()[nb], t.shape()[nb + 1]};
  if (mergeable) return make_view(t, shape, {batch_stride, st[nb], st[nb + 1]}, t.offset());
  Tensor c = contiguous(t.detach());
  return make_view(c, shape, contiguous_strides(shape), c.offset());
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1];
  int64_t k2 = b.shape()[b.dim() - 2], n = b.shape()[b.dim() - 1];
  HEED_CHECK(k == k2, "matmul: inner dimensions differ: {} x {} (a's last dim {} != b's second-to-last dim {})",
             shape_str(a.shape()), shape_str(b.shape()), k, k2);
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul (batch dims)");
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  so.insert(so.end(), {m, n});
  Tensor out = empty(so, a.dtype(), a.device());
  if (out.numel() > 0) {
    Tensor a3 = as_batched(detail::broadcast_view(a, sa), batch);
    Tensor b3 = as_batched(detail::broadcast_view(b, sb), batch);
    Tensor o3 = make_view(out, {numel_of(batch), m, n}, contiguous_strides({numel_of(batch), m, n}), 0);
    if (k == 0)
      detail::kernel(a.device(), &Backend::fill, "matmul")(out, 0.0);
    else
      detail::kernel(a.device(), &Backend::matmul, "matmul")(a3, b3, o3, Tensor());
  }
  if (auto* node = record("matmul", {a, b}, out)) {
    node->backward = [sa_ = SavedTensor(a), sb_ = SavedTensor(b), shape_a = a.shape(), shape_b = b.shape(),
                      ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& g) {
      Tensor ga, gb;
      if (ra) ga = sum_to(matmul(g, transpose(sb_.unpack("matmul"), -1, -2)), shape_a);
      if (rb) gb = sum_to(matmul(transpose(sa_.unpack("matmul"), -1, -2), g), shape_b);
      return TensorList{ga, gb};
    };
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast::lower(a_in), b = autocast::lower(b_in);  // bf16 products under autocast
  detail::check_same(a, b, "matmul");
  detail::check_floating(a, "matmul");
  HEED_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got {} and {}",
             shape_str(a.shape()), shape_str(b.shape()));
  Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor out;
  if (a2.dim() > 2 && b2.dim() == 2) {
    // A stack of rows times one matrix (a Linear layer on [B, T, D]) is one
    // product [B*T, K] x [K, N]: the kernel packs b once instead of once per
    // batch entry, and b's gradient is one product over all rows instead of
    // a product per entry summed afterwards.
    Shape lead(a2.shape().begin(), a2.shape().end() - 1);
    Tensor flat = matmul_nd(reshape(a2, {numel_of(lead), a2.shape().back()}), b2);
    lead.push_back(b2.shape()[1]);
    out = reshape(flat, lead);
  } else {
    out = matmul_nd(a2, b2);
  }
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, out.dim() == 1 ? 0 : -2);
  return out;
}

}  // namespace heed

// Joining and splitting: cat, stack, split, chunk.
#include <algorithm>

#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"

namespace heed {

Tensor cat(const TensorList& tensors_in, int64_t dim) {
  HEED_CHECK(!tensors_in.empty(), "cat: needs at least one tensor");
  // Under autocast, bfloat16 parts meeting a float32 one are widened to it.
  TensorList tensors = tensors_in;
  if (Autocast::is_enabled()) {
    auto f32 = std::find_if(tensors_in.begin(), tensors_in.end(),
                            [](const Tensor& t) { return t.defined() && t.dtype() == DType::Float32; });
    if (f32 != tensors_in.end())
      for (Tensor& u : tensors) u = autocast::widest(u, *f32);
  }
  const Tensor& first = tensors[0];
  detail::check_defined(first, "cat");
  int64_t d = normalize_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_same(first, t, "cat");
    HEED_CHECK(t.dim() == first.dim(), "cat: tensor {} has {} dims (shape {}), tensor 0 has {} (shape {})", i, t.dim(),
               shape_str(t.shape()), first.dim(), shape_str(first.shape()));
    for (int64_t k = 0; k < t.dim(); ++k)
      HEED_CHECK(k == d || t.shape()[k] == first.shape()[k],
                 "cat: tensor {} has shape {}, which differs from tensor 0's {} outside dim {}", i,
                 shape_str(t.shape()), shape_str(first.shape()), d);
    shape[d] += t.shape()[d];
  }
  Tensor out = empty(shape, first.dtype(), first.device());
  auto copy = detail::kernel(first.device(), &Backend::copy, "cat");
  int64_t offset = 0;
  Shape sizes;
  for (const Tensor& t : tensors) {
    int64_t n = t.shape()[d];
    if (t.numel() > 0) {
      Shape part_shape = shape;
      part_shape[d] = n;
      copy(t, make_view(out, part_shape, out.strides(), offset * out.strides()[d]));
    }
    offset += n;
    sizes.push_back(n);
  }
  if (auto* node = record("cat", tensors, out)) {
    node->backward = [sizes, d](const Tensor& g) {
      TensorList grads;
      int64_t start = 0;
      for (int64_t n : sizes) {
        grads.push_back(narrow(g, d, start, n));
        start += n;
      }
      return grads;
    };
  }
  return out;
}

Tensor stack(const TensorList& tensors, int64_t dim) {
  HEED_CHECK(!tensors.empty(), "stack: needs at least one tensor");
  detail::check_defined(tensors[0], "stack");
  int64_t d = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  TensorList parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    HEED_CHECK(tensors[i].defined() && tensors[i].shape() == tensors[0].shape(),
               "stack: tensor {} has shape {}, tensor 0 has {}; all must match", i,
               tensors[i].defined() ? shape_str(tensors[i].shape()) : "undefined", shape_str(tensors[0].shape()));
    parts.push_back(unsqueeze(tensors[i], d));
  }
  return cat(parts, d);
}

TensorList split(const Tensor& t, int64_t split_size, int64_t dim) {
  detail::check_defined(t, "split");
  HEED_CHECK(split_size > 0, "split: split_size must be positive, got {}", split_size);
  int64_t d = normalize_dim(dim, t.dim(), "split");
  TensorList parts;
  for (int64_t start = 0; start < t.shape()[d]; start += split_size)
    parts.push_back(narrow(t, d, start, std::min(split_size, t.shape()[d] - start)));
  return parts;
}

TensorList chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  detail::check_defined(t, "chunk");
  HEED_CHECK(chunks > 0, "chunk: number of chunks must be positive, got {}", chunks);
  int64_t d = normalize_dim(dim, t.dim(), "chunk");
  int64_t size = (t.shape()[d] + chunks - 1) / chunks;
  return split(t, std::max<int64_t>(size, 1), d);
}

}  // namespace heed

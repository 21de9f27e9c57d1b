// Indexing ops: index_select, gather, scatter_add, index_add, embedding and
// one_hot. Each gather-like op's backward is its scatter-like twin and the
// other way round, so both directions stay differentiable.
#include "tensor/record.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {
void check_index(const Tensor& index, const Tensor& t, const char* op) {
  detail::check_dtype(index, DType::Int64, op, "index");
  detail::check_device(index, t.device(), op, "index");
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  detail::check_defined(t, "index_select");
  check_index(index, t, "index_select");
  HEED_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got shape {}", shape_str(index.shape()));
  HEED_CHECK(t.dim() > 0, "index_select: cannot index a 0-dim tensor");
  int64_t d = normalize_dim(dim, t.dim(), "index_select");
  Tensor idx = contiguous(reshape(index, {-1}));
  Shape shape = t.shape();
  shape[d] = idx.numel();
  Tensor out = empty(shape, t.dtype(), t.device());
  if (out.numel() > 0) detail::kernel(t.device(), &Backend::index_select, "index_select")(t, d, idx, out);
  if (auto* node = record("index_select", {t}, out)) {
    node->backward = [idx, d, in_shape = t.shape()](const Tensor& g) {
      return TensorList{index_add(zeros(in_shape, g.dtype(), g.device()), d, idx, g)};
    };
  }
  return out;
}

Tensor index_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  detail::check_same(t, src, "index_add");
  check_index(index, t, "index_add");
  HEED_CHECK(index.dim() <= 1, "index_add: index must be 1-D, got shape {}", shape_str(index.shape()));
  int64_t d = normalize_dim(dim, t.dim(), "index_add");
  Tensor idx = contiguous(reshape(index, {-1}));
  Shape want = t.shape();
  want[d] = idx.numel();
  HEED_CHECK(src.shape() == want, "index_add: source has shape {}, expected {} (input {} with {} indices along dim {})",
             shape_str(src.shape()), shape_str(want), shape_str(t.shape()), idx.numel(), d);
  Tensor out = clone(t.detach());
  if (src.numel() > 0) detail::kernel(t.device(), &Backend::index_add, "index_add")(out, d, idx, src);
  if (auto* node = record("index_add", {t, src}, out)) {
    node->backward = [idx, d](const Tensor& g) { return TensorList{g, index_select(g, d, idx)}; };
  }
  return out;
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  detail::check_defined(t, "gather");
  check_index(index, t, "gather");
  HEED_CHECK(index.dim() == t.dim(), "gather: index has {} dims (shape {}), input has {} (shape {})", index.dim(),
             shape_str(index.shape()), t.dim(), shape_str(t.shape()));
  int64_t d = normalize_dim(dim, t.dim(), "gather");
  for (int64_t i = 0; i < t.dim(); ++i)
    HEED_CHECK(i == d || index.shape()[i] <= t.shape()[i],
               "gather: index shape {} exceeds input shape {} in dim {}", shape_str(index.shape()),
               shape_str(t.shape()), i);
  Tensor out = empty(index.shape(), t.dtype(), t.device());
  if (out.numel() > 0) detail::kernel(t.device(), &Backend::gather, "gather")(t, d, index, out);
  if (auto* node = record("gather", {t}, out)) {
    node->backward = [index, d, in_shape = t.shape()](const Tensor& g) {
      return TensorList{scatter_add(zeros(in_shape, g.dtype(), g.device()), d, index, g)};
    };
  }
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  detail::check_same(t, src, "scatter_add");
  check_index(index, t, "scatter_add");
  int64_t d = normalize_dim(dim, t.dim(), "scatter_add");
  HEED_CHECK(index.dim() == t.dim() && src.dim() == t.dim(),
             "scatter_add: input {}, index {} and source {} must have the same number of dims", shape_str(t.shape()),
             shape_str(index.shape()), shape_str(src.shape()));
  for (int64_t i = 0; i < t.dim(); ++i) {
    HEED_CHECK(index.shape()[i] <= src.shape()[i] && (i == d || index.shape()[i] <= t.shape()[i]),
               "scatter_add: index shape {} does not fit source {} and input {} in dim {}", shape_str(index.shape()),
               shape_str(src.shape()), shape_str(t.shape()), i);
  }
  Tensor out = clone(t.detach());
  // The kernel reads src at the index's positions only.
  Tensor src_part = src;
  for (int64_t i = 0; i < t.dim(); ++i) src_part = narrow(src_part.detach(), i, 0, index.shape()[i]);
  if (index.numel() > 0) detail::kernel(t.device(), &Backend::scatter_add, "scatter_add")(out, d, index, src_part);
  if (auto* node = record("scatter_add", {t, src}, out)) {
    node->backward = [index, d, src_shape = src.shape()](const Tensor& g) {
      Tensor gs = gather(g, d, index);
      // Positions of src outside the index's shape were not used: zero-pad.
      for (int64_t i = 0; i < gs.dim(); ++i) {
        if (gs.shape()[i] == src_shape[i]) continue;
        Shape pad = gs.shape();
        pad[i] = src_shape[i] - gs.shape()[i];
        gs = cat({gs, zeros(pad, gs.dtype(), gs.device())}, i);
      }
      return TensorList{g, gs};
    };
  }
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  detail::check_floating(weight, "embedding");
  HEED_CHECK(weight.dim() == 2, "embedding: weight must be [num_embeddings, dim], got shape {}",
             shape_str(weight.shape()));
  detail::check_dtype(ids, DType::Int64, "embedding", "ids");
  detail::check_device(ids, weight.device(), "embedding", "ids");
  int64_t vocab = weight.shape()[0];
  if (ids.numel() > 0) {
    int64_t lo = amin(ids).item<int64_t>(), hi = amax(ids).item<int64_t>();
    HEED_CHECK(lo >= 0 && hi < vocab, "embedding: ids must be in [0, {}) for a table of shape {}, got ids from {} to {}",
               vocab, shape_str(weight.shape()), lo, hi);
  }
  Shape shape = ids.shape();
  shape.push_back(weight.shape()[1]);
  return reshape(index_select(weight, 0, reshape(ids, {-1})), shape);
}

Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype) {
  detail::check_dtype(ids, DType::Int64, "one_hot", "ids");
  HEED_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got {}", num_classes);
  if (ids.numel() > 0) {
    int64_t lo = amin(ids).item<int64_t>(), hi = amax(ids).item<int64_t>();
    HEED_CHECK(lo >= 0 && hi < num_classes, "one_hot: ids must be in [0, {}), got ids from {} to {}", num_classes, lo,
               hi);
  }
  Tensor classes = arange(num_classes, DType::Int64, ids.device());
  return to_dtype(eq(unsqueeze(ids, -1), classes), dtype);
}

}  // namespace heed

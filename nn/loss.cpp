#include "nn/loss.h"

#include <vector>

#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// A classification loss's inputs flattened to rows, checked.
struct Rows {
  Tensor scores;       // [N, C] logits or log-probabilities
  Tensor safe_target;  // [N] int64; ignored rows read class 0 so that no gather leaves [0, C)
  Tensor counted;      // [N] bool: target != ignore_index
  Shape target_shape;  // the caller's target shape, for Reduction::None
};

Rows to_rows(const char* fn, const char* what, const Tensor& scores, const Tensor& target, int64_t ignore_index) {
  HEED_CHECK(scores.defined() && target.defined(), "{}: {} and target must both be defined tensors", fn, what);
  HEED_CHECK(is_floating(scores.dtype()), "{}: {} must be a float dtype (float32, float64 or bfloat16), got {} {}", fn, what,
             shape_str(scores.shape()), scores.dtype());
  HEED_CHECK(target.dtype() == DType::Int64, "{}: target must hold int64 class ids, got {} {}", fn,
             shape_str(target.shape()), target.dtype());
  HEED_CHECK(target.device() == scores.device(), "{}: target is on {} but {} is on {}", fn, target.device(), what,
             scores.device());
  HEED_CHECK(scores.dim() >= 1 && scores.size(-1) > 0,
             "{}: {} must be [..., C] with the classes on the last axis, got shape {}", fn, what,
             shape_str(scores.shape()));
  const int64_t classes = scores.size(-1);
  Shape leading(scores.shape().begin(), scores.shape().end() - 1);
  HEED_CHECK(target.shape() == leading,
             "{}: target shape {} does not match {} shape {}: expected target {} (the {} shape without its class axis)",
             fn, shape_str(target.shape()), what, shape_str(scores.shape()), shape_str(leading), what);

  // Every counted target must name a class. Checked on the host: a bad id
  // would otherwise read out of bounds in gather.
  std::vector<int64_t> ids = target.to_vector<int64_t>();
  for (size_t i = 0; i < ids.size(); ++i) {
    HEED_CHECK(ids[i] == ignore_index || (ids[i] >= 0 && ids[i] < classes),
               "{}: target {} (at flat position {}) is not a class id in [0, {}) for C = {} classes, nor "
               "ignore_index {}",
               fn, ids[i], i, classes, classes, ignore_index);
  }

  const int64_t n = target.numel();
  Rows rows;
  rows.scores = reshape(autocast::float32(scores), {n, classes});  // float32 under autocast
  Tensor flat_target = reshape(target, {n});
  rows.counted = ne(flat_target, scalar_tensor(static_cast<double>(ignore_index), DType::Int64, target.device()));
  rows.safe_target = where(rows.counted, flat_target, scalar_tensor(0, DType::Int64, target.device()));
  rows.target_shape = target.shape();
  return rows;
}

// per_row [N] is already 0 at rows that do not count.
Tensor reduce(const Tensor& per_row, const Rows& rows, Reduction reduction) {
  switch (reduction) {
    case Reduction::None:
      return reshape(per_row, rows.target_shape);
    case Reduction::Sum:
      return sum(per_row);
    case Reduction::Mean:
      // Stays on the device (no host sync); no counted rows gives 0 / 0 = NaN like PyTorch.
      return div(sum(per_row), sum(to_dtype(rows.counted, per_row.dtype())));
  }
  HEED_FAIL("loss: unknown Reduction value {}", static_cast<int>(reduction));
}

// -log_probs[n, target[n]] for every row, 0 where the row does not count.
Tensor picked_nll(const Tensor& log_probs, const Rows& rows) {
  return neg(squeeze(gather(log_probs, 1, unsqueeze(rows.safe_target, 1)), 1));
}

Tensor zero_where_ignored(const Tensor& per_row, const Rows& rows) {
  // where (not a multiply by the mask) so that an inf or NaN in an ignored
  // row cannot leak into the result or the gradient.
  return where(rows.counted, per_row, scalar_tensor(0, per_row.dtype(), per_row.device()));
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  const double e = options.label_smoothing;
  HEED_CHECK(e >= 0.0 && e <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got {}", e);
  Rows rows = to_rows("cross_entropy", "logits", logits, target, options.ignore_index);
  Tensor log_probs = log_softmax(rows.scores, -1);  // [N, C]
  Tensor per_row = picked_nll(log_probs, rows);     // [N]
  if (e > 0) {
    const double classes = static_cast<double>(rows.scores.size(1));
    Tensor uniform_nll = neg(sum(log_probs, {1}));  // [N]: sum over c of -log p[c]
    per_row = add(mul(per_row, 1.0 - e), mul(uniform_nll, e / classes));
  }
  return reduce(zero_where_ignored(per_row, rows), rows, options.reduction);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options) {
  Rows rows = to_rows("nll_loss", "log_probs", log_probs, target, options.ignore_index);
  return reduce(zero_where_ignored(picked_nll(rows.scores, rows), rows), rows, options.reduction);
}

}  // namespace heed::nn

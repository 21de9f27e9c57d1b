#include "nn/loss.h"

#include <vector>

#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/op_helpers.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// A classification loss's inputs flattened to rows, checked.
struct Rows {
  Tensor scores;       // [N, C] logits or log-probabilities
  Tensor flat_target;  // [N] int64, ignore_index included
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
  rows.flat_target = contiguous(flat_target);
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

// Every row's smoothed cross-entropy [N] in one fused kernel (tensor/backend.h
// has the rule), 0 in ignored rows, recorded as one graph node: the forward
// keeps only the row log-sum-exps, the backward writes the logits' gradient
// in one pass. With create_graph the backward is the same rule in
// differentiable ops.
Tensor fused_rows(const Rows& rows, int64_t ignore_index, double e) {
  const Tensor& scores = rows.scores;  // [N, C]
  Tensor x = contiguous(scores.detach());
  const int64_t n = x.size(0);
  Tensor loss = empty({n}, x.dtype(), x.device());
  Tensor lse = empty({n}, compute_dtype(x.dtype()), x.device());
  if (n > 0)
    detail::kernel(x.device(), &Backend::cross_entropy, "cross_entropy")(x, rows.flat_target, ignore_index, e, loss, lse);
  if (auto* node = record("cross_entropy", {scores}, loss)) {
    node->backward = [sx = SavedTensor(scores), target = rows.flat_target, safe = rows.safe_target,
                      counted = rows.counted, lse, ignore_index, e](const Tensor& g) {
      Tensor xs = sx.unpack("cross_entropy");
      const int64_t classes = xs.size(1);
      if (GradMode::is_enabled()) {
        Tensor pick = mul(one_hot(safe, classes, xs.dtype()), 1.0 - e);
        Tensor per_class = add(sub(softmax(xs, -1), pick), -e / static_cast<double>(classes));
        Tensor gx = mul(unsqueeze(g, 1), per_class);
        return TensorList{where(unsqueeze(counted, 1), gx, scalar_tensor(0, gx.dtype(), gx.device()))};
      }
      Tensor gx = empty(xs.shape(), xs.dtype(), xs.device());
      if (gx.numel() > 0)
        detail::kernel(xs.device(), &Backend::cross_entropy_backward, "cross_entropy backward")(
            contiguous(g), contiguous(xs), target, lse, ignore_index, e, gx);
      return TensorList{gx};
    };
  }
  return loss;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  const double e = options.label_smoothing;
  HEED_CHECK(e >= 0.0 && e <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got {}", e);
  Rows rows = to_rows("cross_entropy", "logits", logits, target, options.ignore_index);
  // (1 - e) * -log p[target] + e * mean over c of -log p[c], in one kernel; 0 in ignored rows.
  return reduce(fused_rows(rows, options.ignore_index, e), rows, options.reduction);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options) {
  Rows rows = to_rows("nll_loss", "log_probs", log_probs, target, options.ignore_index);
  return reduce(zero_where_ignored(picked_nll(rows.scores, rows), rows), rows, options.reduction);
}

}  // namespace heed::nn

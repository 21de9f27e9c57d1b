#include "nn/clip_grad.h"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::nn {

double clip_grad_norm(const TensorList& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  HEED_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  HEED_CHECK(norm_type > 0, "clip_grad_norm: norm_type must be > 0 (or INFINITY), got {}", norm_type);
  NoGradGuard no_grad;
  const bool inf_norm = std::isinf(norm_type);
  TensorList grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;

  // Each tensor reduces on its own device; the few partial results meet in
  // double on the host.
  double total = 0;
  for (const Tensor& g : grads) {
    if (g.numel() == 0) continue;
    if (inf_norm) {
      total = std::max(total, amax(abs(g)).item<double>());
    } else if (norm_type == 2.0) {
      total += sum(mul(g, g)).item<double>();
    } else {
      total += sum(pow(abs(g), norm_type)).item<double>();
    }
  }
  if (!inf_norm) total = norm_type == 2.0 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);

  HEED_CHECK(!error_if_nonfinite || std::isfinite(total),
             "clip_grad_norm: the total norm of order {} of the gradients is {}; gradients were left as they are",
             norm_type, total);
  const double clip = max_norm / (total + 1e-6);
  // Written so that a NaN norm also scales (to NaN), as PyTorch does.
  if (!(clip >= 1.0)) {
    for (Tensor& g : grads) g.mul_(clip);
  }
  return total;
}

}  // namespace heed::nn

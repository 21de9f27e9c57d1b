#include "optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::optim {

double clip_grad_norm(const TensorList& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  HEED_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  HEED_CHECK(norm_type > 0, "clip_grad_norm: norm_type must be > 0 (or INFINITY), got {}", norm_type);
  NoGradGuard no_grad;
  const bool inf_norm = std::isinf(norm_type);
  TensorList grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;

  // Each tensor reduces on its own device, and the partial results are added
  // up there, in double, in the order of the list (the same arithmetic as
  // adding them on the host); the host then reads one number per device. On a
  // GPU that is one synchronisation per call instead of one per tensor.
  std::vector<std::pair<Device, Tensor>> partials;  // per device: running total, double, 0-d
  for (const Tensor& g : grads) {
    if (g.numel() == 0) continue;
    Tensor part = inf_norm ? amax(abs(g)) : norm_type == 2.0 ? sum(mul(g, g)) : sum(pow(abs(g), norm_type));
    part = to_dtype(part, DType::Float64);
    auto it = std::find_if(partials.begin(), partials.end(), [&](const auto& p) { return p.first == g.device(); });
    if (it == partials.end())
      partials.emplace_back(g.device(), part);
    else
      it->second = inf_norm ? maximum(it->second, part) : add(it->second, part);
  }
  double total = 0;
  for (const auto& [device, part] : partials) {
    const double v = part.item<double>();
    // NaN wins, as in PyTorch: a NaN gradient makes a NaN norm.
    total = inf_norm ? (std::isnan(v) || std::isnan(total) ? NAN : std::max(total, v)) : total + v;
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

}  // namespace heed::optim

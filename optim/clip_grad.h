#pragma once
// Gradient clipping by the global norm, as torch.nn.utils.clip_grad_norm_.
#include "tensor/tensor.h"

namespace heed::optim {

// The norm of all gradients of `params` taken together, as if concatenated
// into one vector: (sum over every entry of |g|^p)^(1/p), or max |g| for
// norm_type = INFINITY. Then every gradient is scaled in place by
// min(1, max_norm / (total_norm + 1e-6)). Parameters without a gradient are
// skipped (no gradient at all: returns 0). Returns the norm before clipping.
// With error_if_nonfinite a NaN or infinite norm throws instead of clipping.
double clip_grad_norm(const TensorList& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

}  // namespace heed::optim

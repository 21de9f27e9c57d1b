#pragma once
// Finite-difference checks of backward, public so that people who write new
// layers can check theirs. Inputs that require grad must be float64 on the
// CPU (central differences in float32 are too noisy to mean anything); they
// may be non-contiguous (transposed, sliced, expanded inputs are welcome).
#include <functional>

#include "tensor/tensor.h"

namespace heed {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  bool raise = true;   // throw heed::Error with the details on failure, else return false
};

using GradcheckFn = std::function<Tensor(const TensorList&)>;

// Compares the full Jacobian from backward with central differences, for
// every input that requires grad.
bool gradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& options = {});
// The same for the gradient itself (double backward): checks the map
// (inputs, v) -> vector-Jacobian product, built with create_graph.
bool gradgradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& options = {});

}  // namespace heed

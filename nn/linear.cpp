#include "nn/linear.h"

#include <cmath>

#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {
const LinearOptions& checked(const LinearOptions& o) {
  HEED_CHECK(o.in_features > 0 && o.out_features > 0,
             "Linear: in_features and out_features must be positive, got in_features={} out_features={}",
             o.in_features, o.out_features);
  return o;
}
double bound_for(const LinearOptions& o) { return 1.0 / std::sqrt(static_cast<double>(o.in_features)); }
}  // namespace

Linear::Linear(const LinearOptions& options, Generator* gen)
    : Module("Linear"),
      options_(checked(options)),
      weight(register_parameter("weight", uniform({options.out_features, options.in_features}, -bound_for(options),
                                                  bound_for(options), gen))),
      bias(options.bias ? register_parameter("bias", uniform({options.out_features}, -bound_for(options),
                                                             bound_for(options), gen))
                        : no_bias_) {}

Tensor Linear::forward(const Tensor& x) const { return forward(x, LinearActivation::None); }

Tensor Linear::forward(const Tensor& x, LinearActivation act) const {
  check_input(x);
  return linear(x, weight, bias, act);
}

Tensor Linear::forward_add(const Tensor& x, const Tensor& residual) const {
  check_input(x);
  return linear(x, weight, bias, LinearActivation::None, residual);
}

void Linear::check_input(const Tensor& x) const {
  HEED_CHECK(x.dim() >= 1 && x.size(-1) == options_.in_features,
             "Linear: expected input with last dimension {} (in_features), got shape {}", options_.in_features,
             shape_str(x.shape()));
}

}  // namespace heed::nn

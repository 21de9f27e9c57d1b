#pragma once
// Activation modules: ReLU and GELU, as torch.nn.ReLU / GELU.
#include "nn/module.h"

namespace heed::nn {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) const { return relu(x); }
};

class GELU : public Module {
 public:
  // GeluApprox::None: x * Phi(x) (erf); GeluApprox::Tanh: the tanh approximation.
  explicit GELU(GeluApprox approximate = GeluApprox::None) : Module("GELU"), approximate_(approximate) {}
  Tensor forward(const Tensor& x) const { return gelu(x, approximate_); }
  GeluApprox approximate() const { return approximate_; }

 private:
  GeluApprox approximate_;
};

}  // namespace heed::nn

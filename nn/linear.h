#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear (weight [out, in]).
#include <cstdint>

#include "nn/module.h"

namespace heed::nn {

struct LinearOptions {
  int64_t in_features;
  int64_t out_features;
  bool bias = true;
};

class Linear : public Module {
 public:
  // weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), PyTorch's default init,
  // drawn from `gen` (default: heed::default_generator()).
  explicit Linear(const LinearOptions& options, Generator* gen = nullptr);

  // x [..., in] -> [..., out].
  Tensor forward(const Tensor& x) const;
  // act(x W^T + b), the activation fused into the op (heed::linear).
  Tensor forward(const Tensor& x, LinearActivation act) const;
  // x W^T + b + residual, the add fused into the op; an undefined residual
  // adds nothing. A transformer block's residual connection, when no dropout
  // stands between the layer and the add.
  Tensor forward_add(const Tensor& x, const Tensor& residual) const;

  const LinearOptions& options() const { return options_; }

 private:
  void check_input(const Tensor& x) const;
  // Declared before weight and bias on purpose: members are initialised in
  // declaration order, so the constructor checks options_ before it draws
  // any parameter, and no_bias_ (the undefined tensor `bias` refers to when
  // there is none) exists before `bias` is bound to it.
  LinearOptions options_;
  Tensor no_bias_;

 public:
  // The handles register_parameter keeps (docs/nn.md).
  Tensor& weight;
  Tensor& bias;  // undefined when options.bias is false
};

}  // namespace heed::nn

#pragma once
// LayerNorm and RMSNorm over the last axis, as torch.nn.LayerNorm / RMSNorm.
#include <cstdint>

#include "nn/module.h"

namespace heed::nn {

struct LayerNormOptions {
  int64_t normalized_dim;
  double eps = 1e-5;
  bool elementwise_affine = true;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& options);
  // (x - mean) / sqrt(biased var + eps) * weight + bias, over the last axis.
  Tensor forward(const Tensor& x) const;
  const LayerNormOptions& options() const { return options_; }

 private:
  // Declared before weight and bias on purpose: members are initialised in
  // declaration order, so the constructor checks options_ before it makes a
  // parameter, and none_w_ / none_b_ (the undefined tensors weight and bias
  // refer to without elementwise_affine) exist before they are bound.
  LayerNormOptions options_;
  Tensor none_w_, none_b_;

 public:
  Tensor& weight;  // ones [D]; undefined without elementwise_affine
  Tensor& bias;    // zeros [D]; undefined without elementwise_affine
};

struct RMSNormOptions {
  int64_t normalized_dim;
  double eps = 1e-6;
  bool elementwise_affine = true;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(const RMSNormOptions& options);
  // x / sqrt(mean(x^2) + eps) * weight, over the last axis.
  Tensor forward(const Tensor& x) const;
  const RMSNormOptions& options() const { return options_; }

 private:
  // Before weight on purpose, as LayerNorm's.
  RMSNormOptions options_;
  Tensor none_w_;

 public:
  Tensor& weight;  // ones [D]; undefined without elementwise_affine
};

}  // namespace heed::nn

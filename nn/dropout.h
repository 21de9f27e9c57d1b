#pragma once
// Dropout, as torch.nn.Dropout: in training, zeroes each element with
// probability p and scales the rest by 1/(1-p); the identity in eval.
#include "nn/module.h"

namespace heed::nn {

// Zeroes each entry with probability p and scales the rest by 1 / (1 - p)
// when `training`; returns x unchanged otherwise or when p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

class Dropout : public Module {
 public:
  // p in [0, 1]; p == 1 drops everything. The mask is drawn from `gen`
  // (default: heed::default_generator()); the generator must outlive the module.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace heed::nn

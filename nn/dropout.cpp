#include "nn/dropout.h"

#include "tensor/error.h"

namespace heed::nn {

Dropout::Dropout(double p, Generator* gen) : Module("Dropout"), p_(p), gen_(gen) {
  HEED_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got {}", p);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  HEED_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got {}", p);
  if (!training || p == 0.0) return x;
  HEED_CHECK(x.is_floating_point(), "Dropout: input must be a float dtype (float32, float64 or bfloat16), got {}", x.dtype());
  if (p == 1.0) return mul(x, 0.0);
  // One fused pass, the mask drawn as bernoulli(x.shape(), 1 - p, gen) and
  // never stored (tensor/dropout.cpp).
  return fused_dropout(x, p, gen);
}

Tensor Dropout::forward(const Tensor& x) const { return dropout(x, p_, is_training(), gen_); }

}  // namespace heed::nn

#include "nn/norm.h"

#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {
void check_dim(const char* layer, int64_t d) {
  HEED_CHECK(d > 0, "{}: normalized_dim must be positive, got {}", layer, d);
}
void check_input(const char* layer, int64_t d, const Tensor& x) {
  HEED_CHECK(x.dim() >= 1 && x.size(-1) == d, "{}: expected input with last dimension {} (normalized_dim), got shape {}",
             layer, d, shape_str(x.shape()));
}
}  // namespace

LayerNorm::LayerNorm(const LayerNormOptions& options)
    : Module("LayerNorm"),
      options_((check_dim("LayerNorm", options.normalized_dim), options)),
      weight(options.elementwise_affine ? register_parameter("weight", ones({options.normalized_dim})) : none_w_),
      bias(options.elementwise_affine ? register_parameter("bias", zeros({options.normalized_dim})) : none_b_) {}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_input("LayerNorm", options_.normalized_dim, x);
  return layer_norm(x, weight, bias, options_.eps);  // the fused op of tensor/norm.cpp
}

RMSNorm::RMSNorm(const RMSNormOptions& options)
    : Module("RMSNorm"),
      options_((check_dim("RMSNorm", options.normalized_dim), options)),
      weight(options.elementwise_affine ? register_parameter("weight", ones({options.normalized_dim})) : none_w_) {}

Tensor RMSNorm::forward(const Tensor& x_in) const {
  check_input("RMSNorm", options_.normalized_dim, x_in);
  const Tensor x = autocast::float32(x_in);  // float32 under autocast, as layer_norm
  Tensor y = mul(x, rsqrt(add(mean(mul(x, x), {-1}, true), options_.eps)));
  if (weight.defined()) y = mul(y, weight);
  return y;
}

}  // namespace heed::nn

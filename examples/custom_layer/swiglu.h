#pragma once
// A worked custom layer (docs/extending.md walks through it): the SwiGLU
// feed-forward block of PaLM and LLaMA,
//
//   y = (silu(x W_gate^T) * (x W_up^T)) W_down^T,   silu(a) = a * sigmoid(a)
//
// in one file: an elementwise op with a hand-written backward
// (heed::Function), and a Module with an options struct and three registered
// parameters. tests/custom_layer_test.cpp gradient-checks both.
#include <cmath>
#include <cstdint>

#include <heed.h>

namespace example {

// silu(a) * b elementwise, a and b of the same shape. Composing it from
// sigmoid and mul would also be differentiable; a Function of its own saves
// only a and b for backward instead of every intermediate.
struct SwiGLUGate : heed::Function<SwiGLUGate> {
  static heed::Tensor forward(heed::AutogradContext* ctx, const heed::Tensor& a, const heed::Tensor& b) {
    // backward returns one gradient per input with the input's shape, so no
    // broadcasting here.
    HEED_CHECK(a.shape() == b.shape(), "SwiGLUGate: gate and value must have the same shape, got {} and {}",
               heed::shape_str(a.shape()), heed::shape_str(b.shape()));
    ctx->save_for_backward({a, b});
    return a * heed::sigmoid(a) * b;
  }

  static heed::TensorList backward(heed::AutogradContext* ctx, const heed::TensorList& grads) {
    heed::TensorList saved = ctx->saved();
    const heed::Tensor& a = saved[0];
    const heed::Tensor& b = saved[1];
    heed::Tensor s = heed::sigmoid(a);
    heed::Tensor silu = a * s;
    heed::Tensor dsilu = s * (1.0 + a * (1.0 - s));  // d silu / da
    // Written with tensor ops: runs on every device and can be differentiated
    // again (create_graph).
    return {grads[0] * b * dsilu, grads[0] * silu};
  }
};

struct SwiGLUFeedForwardOptions {
  int64_t d_model = 0;  // D, input and output width
  int64_t hidden = 0;   // F, the gated inner width
};

class SwiGLUFeedForward : public heed::nn::Module {
 public:
  explicit SwiGLUFeedForward(const SwiGLUFeedForwardOptions& options, heed::Generator* gen = nullptr)
      : Module("SwiGLUFeedForward"),
        options_(checked(options)),
        w_gate(register_parameter("w_gate", init({options.hidden, options.d_model}, gen))),
        w_up(register_parameter("w_up", init({options.hidden, options.d_model}, gen))),
        w_down(register_parameter("w_down", init({options.d_model, options.hidden}, gen))) {}

  // x [..., D] -> [..., D]
  heed::Tensor forward(const heed::Tensor& x) const {
    HEED_CHECK(x.dim() >= 1 && x.size(-1) == options_.d_model,
               "SwiGLUFeedForward: expected input with last dimension {} (d_model), got shape {}", options_.d_model,
               heed::shape_str(x.shape()));
    heed::Tensor gate = heed::matmul(x, heed::transpose(w_gate, 0, 1));  // [..., F]
    heed::Tensor up = heed::matmul(x, heed::transpose(w_up, 0, 1));      // [..., F]
    return heed::matmul(SwiGLUGate::apply(gate, up), heed::transpose(w_down, 0, 1));
  }

  const SwiGLUFeedForwardOptions& options() const { return options_; }

 private:
  static const SwiGLUFeedForwardOptions& checked(const SwiGLUFeedForwardOptions& o) {
    HEED_CHECK(o.d_model > 0 && o.hidden > 0, "SwiGLUFeedForward: d_model and hidden must be positive, got {} and {}",
               o.d_model, o.hidden);
    return o;
  }
  // U(-1/sqrt(in), 1/sqrt(in)), as nn::Linear.
  static heed::Tensor init(const heed::Shape& shape, heed::Generator* gen) {
    double bound = 1.0 / std::sqrt(static_cast<double>(shape[1]));
    return heed::uniform(shape, -bound, bound, gen);
  }

  SwiGLUFeedForwardOptions options_;  // declared before the parameters: initialised first

 public:
  heed::Tensor& w_gate;  // [F, D]
  heed::Tensor& w_up;    // [F, D]
  heed::Tensor& w_down;  // [D, F]
};

}  // namespace example

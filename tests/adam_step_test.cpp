// The fused Adam / AdamW kernel (adam_step_, tensor/cpu/cpu_optim.cpp) against
// the composed rule that nn/optim.cpp takes for non-contiguous parameters,
// and its argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/optim.h"
#include "tensor/ops.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, &gen);
}

std::vector<float> values(const Tensor& t) { return contiguous(t).to_vector<float>(); }

}  // namespace

TEST_CASE("adam_step_ (fused) and the composed rule agree over several AdamW and Adam steps", "[speed][optim]") {
  for (bool decoupled : {true, false}) {
    for (bool maximize : {false, true}) {
      INFO((decoupled ? "AdamW" : "Adam with L2") << (maximize ? ", maximize" : ""));
      // The same values twice: a contiguous [6, 5] parameter (fused path) and
      // the transpose of a [5, 6] one (not contiguous: composed path).
      Tensor init = rnd({6, 5}, 1);
      Tensor fused = clone(init).requires_grad_();
      Tensor composed_storage = contiguous(transpose(init, 0, 1));
      Tensor composed = transpose(composed_storage, 0, 1);  // same values, strides (1, 6)
      composed.requires_grad_();
      REQUIRE(!composed.is_contiguous());
      std::unique_ptr<optim::Optimizer> a, b;
      if (decoupled) {
        optim::AdamWOptions o;
        o.lr = 0.01;
        o.weight_decay = 0.1;
        o.maximize = maximize;
        a = std::make_unique<optim::AdamW>(TensorList{fused}, o);
        b = std::make_unique<optim::AdamW>(TensorList{composed}, o);
      } else {
        optim::AdamOptions o;
        o.lr = 0.01;
        o.weight_decay = 0.1;
        o.maximize = maximize;
        a = std::make_unique<optim::Adam>(TensorList{fused}, o);
        b = std::make_unique<optim::Adam>(TensorList{composed}, o);
      }
      for (int step = 0; step < 4; ++step) {
        Tensor g = rnd({6, 5}, 10 + step);
        fused.set_grad(g);
        composed.set_grad(g);
        a->step();
        b->step();
      }
      std::vector<float> x = values(fused), y = values(composed);
      REQUIRE(values(init) != x);  // it moved
      for (size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(x[i] - y[i]) <= 1e-6f * (1 + std::abs(y[i])));
      }
    }
  }
}

TEST_CASE("adam_step_ argument errors", "[speed][optim][errors]") {
  NoGradGuard no_grad;
  Tensor p = zeros({3, 4}), g = zeros({3, 4}), m = zeros({3, 4}), v = zeros({3, 4});
  AdamStepArgs args{0.1, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.1, false};
  REQUIRE_THROWS_WITH(adam_step_(p, zeros({4, 3}), m, v, args), Contains("adam_step_: grad is [4, 3]"));
  REQUIRE_THROWS_WITH(adam_step_(p, g, zeros({3, 4}, DType::Float64), v, args), Contains("exp_avg is [3, 4] float64"));
  REQUIRE_THROWS_WITH(adam_step_(p, g, m, transpose(zeros({4, 3}), 0, 1), args),
                      Contains("exp_avg_sq must be contiguous"));
  REQUIRE_THROWS_WITH(adam_step_(zeros({3, 4}, DType::Int64), g, m, v, args), Contains("adam_step_"));
}

// The Adam / AdamW update (adam_step_, tensor/adam_rule.h) against the rule
// written out in tensor ops here, on contiguous and strided parameters, and
// its argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "tensor/grad_mode.h"
#include "optim/optim.h"
#include "tensor/ops.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, &gen);
}

std::vector<float> values(const Tensor& t) { return contiguous(t).to_vector<float>(); }

// optim/optim.h's rule, one tensor op at a time (the reference the kernel is checked against).
void adam_reference(Tensor& p, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                    double eps, double l2, double decoupled, bool maximize, int64_t step) {
  NoGradGuard no_grad;
  const double bc1 = 1.0 - std::pow(beta1, double(step)), bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, double(step)));
  Tensor g = maximize ? neg(grad) : grad;
  if (decoupled != 0) p = mul(p, 1.0 - lr * decoupled);
  if (l2 != 0) g = add(g, p, l2);
  m = add(mul(m, beta1), mul(g, 1.0 - beta1));
  v = add(mul(v, beta2), mul(mul(g, g), 1.0 - beta2));
  Tensor denom = add(div(sqrt(v), scalar_tensor(bc2_sqrt, v.dtype())), eps);
  p = add(p, mul(div(m, denom), -lr / bc1));
}

// Two optimizers of one kind (Adam or AdamW), one for each parameter, with
// lr, weight decay and maximize set and the other options at their defaults.
template <class Opt, class Options>
std::pair<std::unique_ptr<optim::Optimizer>, std::unique_ptr<optim::Optimizer>> two_optimizers(
    const Tensor& first, const Tensor& second, double lr, double weight_decay, bool maximize) {
  Options o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.maximize = maximize;
  return {std::make_unique<Opt>(TensorList{first}, o), std::make_unique<Opt>(TensorList{second}, o)};
}

}  // namespace

TEST_CASE("Adam and AdamW follow the rule written in tensor ops, on strided parameters too", "[speed][optim]") {
  for (bool decoupled : {true, false}) {
    for (bool maximize : {false, true}) {
      INFO((decoupled ? "AdamW" : "Adam with L2") << (maximize ? ", maximize" : ""));
      // The same values twice: a contiguous [6, 5] parameter and the
      // transpose of a [5, 6] one (not contiguous: updated through copies).
      Tensor init = rnd({6, 5}, 1);
      Tensor dense = clone(init).requires_grad_();
      Tensor strided_storage = contiguous(transpose(init, 0, 1));
      Tensor strided = transpose(strided_storage, 0, 1);  // same values, strides (1, 6)
      strided.requires_grad_();
      REQUIRE(!strided.is_contiguous());
      const double lr = 0.01, wd = 0.1;
      auto [a, b] = decoupled ? two_optimizers<optim::AdamW, optim::AdamWOptions>(dense, strided, lr, wd, maximize)
                              : two_optimizers<optim::Adam, optim::AdamOptions>(dense, strided, lr, wd, maximize);
      Tensor ref = clone(init), m = zeros({6, 5}), v = zeros({6, 5});
      for (int step = 1; step <= 4; ++step) {
        Tensor g = rnd({6, 5}, 10 + step);
        dense.set_grad(g);
        strided.set_grad(g);
        a->step();
        b->step();
        adam_reference(ref, g, m, v, lr, 0.9, 0.999, 1e-8, decoupled ? 0 : wd, decoupled ? wd : 0, maximize, step);
      }
      std::vector<float> x = values(dense), y = values(strided), want = values(ref);
      REQUIRE(values(init) != x);  // it moved
      REQUIRE(x == y);             // the strided parameter: the same kernel, the same bits
      for (size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(x[i] - want[i]) <= 1e-6f * (1 + std::abs(want[i])));
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
  REQUIRE_NOTHROW(adam_step_(p, g, m, transpose(zeros({4, 3}), 0, 1), args));  // strided state is fine
  REQUIRE_THROWS_WITH(adam_step_(zeros({3, 4}, DType::Int64), g, m, v, args), Contains("adam_step_"));
}

// The core tests of tensor_test, autograd_test, gradcheck_test,
// nn_layers_test, nn_attention_test, nn_transformer_test, nn_loss_test and
// nn_optim_test, written once and run on every device of test_devices()
// (tests/test_devices.h): the CPU always, cuda:0 when a GPU is visible. Each
// body builds its tensors on the device under test and checks the same
// exact values, formulas written out in double, finite differences and
// self-consistency (cached against uncached decoding) as the CPU tests do.
// Without a GPU they run on the CPU only and warn once that CUDA was not
// tested.
//
// gradcheck wants float64 leaves on the CPU, so gradcheck_on() wraps the
// function: it moves the leaves to the device, runs there and brings the
// result back (both moves are differentiable), and the Jacobian checked is
// the device's.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
using Vec = std::vector<double>;

Tensor f64(Device d, const Vec& v, const Shape& s = {}) { return from_vector<double>(v, s, d); }
Tensor i64(Device d, const std::vector<int64_t>& v, const Shape& s = {}) { return from_vector<int64_t>(v, s, d); }
std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }

void require_close(const Tensor& got, const Vec& want, double tol) {
  Vec g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i << ": got " << g[i] << ", want " << want[i]);
    REQUIRE(std::abs(g[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}

// gradcheck of f run on `device` (see the top of the file).
bool gradcheck_on(Device device, const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs,
                  const GradcheckOptions& options = {}) {
  return gradcheck(
      [&](const TensorList& in) {
        TensorList moved;
        for (const Tensor& t : in) moved.push_back(t.defined() ? to_device(t, device) : t);
        return to_device(f(moved), kCPU);
      },
      inputs, options);
}

bool gradgradcheck_on(Device device, const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs) {
  return gradgradcheck(
      [&](const TensorList& in) {
        TensorList moved;
        for (const Tensor& t : in) moved.push_back(t.defined() ? to_device(t, device) : t);
        return to_device(f(moved), kCPU);
      },
      inputs);
}

// A float64 CPU leaf for gradcheck.
Tensor leaf64(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  Generator g(seed);
  return uniform(s, lo, hi, &g, DType::Float64).requires_grad_();
}

}  // namespace

// ---- optimizers ----------------------------------------------------------------------

namespace {
const Vec kStart = {0.5, -1.0, 2.0};
const std::vector<Vec> kGrads = {{1e-3, -2e-3, 0.5}, {-3e-3, 1e-3, 0.25}, {2e-3, 2e-3, -0.75}};

// The Adam / AdamW recurrence in double (optim/optim.h).
struct AdamRef {
  double lr, b1, b2, eps, wd;
  bool decoupled, maximize;
  Vec p, m, v;
  void step(const Vec& grad, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = maximize ? -grad[i] : grad[i];
      if (decoupled)
        p[i] *= 1 - lr * wd;
      else
        g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr / (1 - std::pow(b1, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t)) + eps);
    }
  }
};

struct SGDRef {
  double lr, mu, dampening, wd;
  bool nesterov, maximize;
  Vec p, buf;
  void step(const Vec& grad, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = (maximize ? -grad[i] : grad[i]) + wd * p[i];
      double dir = g;
      if (mu != 0) {
        buf[i] = t == 1 ? g : mu * buf[i] + (1 - dampening) * g;
        dir = nesterov ? g + mu * buf[i] : buf[i];
      }
      p[i] -= lr * dir;
    }
  }
};

// Three steps of opt on p (float64 on its device) against ref after each.
template <class Opt, class Ref>
void run_and_compare(Opt& opt, Tensor& p, Ref& ref) {
  for (size_t t = 0; t < kGrads.size(); ++t) {
    p.set_grad(from_vector<double>(kGrads[t], {3}, p.device()));
    opt.step();
    ref.step(kGrads[t], static_cast<int>(t) + 1);
    INFO("step " << t + 1);
    require_close(p, ref.p, 1e-12);
  }
}
}  // namespace

TEST_CASE("on every device: SGD, Adam and AdamW follow their recurrences", "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto param = [&] { return from_vector<double>(kStart, {3}, d).requires_grad_(); };
    for (const optim::SGDOptions& o : {optim::SGDOptions{0.1}, optim::SGDOptions{0.1, 0.9, 0.1, 0.01},
                                       optim::SGDOptions{0.1, 0.9, 0.0, 0.01, true, true}}) {
      INFO("SGD momentum " << o.momentum << " nesterov " << o.nesterov);
      Tensor p = param();
      optim::SGD opt({p}, o);
      SGDRef ref{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, o.maximize, kStart, Vec(3, 0)};
      run_and_compare(opt, p, ref);
    }
    {
      INFO("Adam with L2 weight decay");
      Tensor p = param();
      optim::Adam opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.05});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.05, false, false, kStart, Vec(3, 0), Vec(3, 0)};
      run_and_compare(opt, p, ref);
      for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
    }
    {
      INFO("AdamW, maximize");
      Tensor p = param();
      optim::AdamW opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.2, true});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.2, true, true, kStart, Vec(3, 0), Vec(3, 0)};
      run_and_compare(opt, p, ref);
    }
  }
}

TEST_CASE("on every device: an optimizer updates a module's own handles in place, and its state round-trips",
          "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(1);
    nn::Linear lin({3, 2}, &g);
    lin.to(d);
    const std::vector<float> before = vals(lin.weight);
    const void* impl_before = lin.weight.impl();
    optim::SGD sgd(lin.named_parameters(), {0.5});
    sum(lin.forward(ones({4, 3}, DType::Float32, d))).backward();
    sgd.step();
    REQUIRE(lin.weight.impl() == impl_before);
    REQUIRE(lin.weight.is_leaf());
    REQUIRE(lin.weight.device() == d);
    const std::vector<float> after = vals(lin.weight);
    for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == Approx(before[i] - 2.0f));

    auto param = [&](const Vec& v) { return from_vector<double>(v, {3}, d).requires_grad_(); };
    Tensor a = param(kStart), b = param({1.0, 2.0, 3.0});
    optim::AdamW first(nn::NamedTensors{{"w", a}, {"b", b}}, {0.1});
    for (int t = 0; t < 2; ++t) {
      a.set_grad(from_vector<double>(kGrads[t], {3}, d));
      b.set_grad(from_vector<double>(kGrads[2 - t], {3}, d));
      first.step();
    }
    nn::NamedTensors saved;
    for (const auto& [name, t] : first.state()) saved.emplace_back(name, t.to(kCPU));  // as a checkpoint would
    Tensor a2 = param(a.to_vector<double>()), b2 = param(b.to_vector<double>());
    optim::AdamW second(nn::NamedTensors{{"w", a2}, {"b", b2}}, {0.5});
    second.load_state(saved, first.scalars());
    for (const auto& [name, t] : second.state()) REQUIRE(t.device() == d);
    for (Tensor* p : {&a, &b, &a2, &b2}) p->set_grad(from_vector<double>(kGrads[2], {3}, d));
    first.step();
    second.step();
    REQUIRE(a2.to_vector<double>() == a.to_vector<double>());
    REQUIRE(b2.to_vector<double>() == b.to_vector<double>());
  }
}

TEST_CASE("on every device: clip_grad_norm scales all gradients by max_norm / (total + 1e-6)", "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto param = [&](const Vec& v) {
      return from_vector<double>(v, {static_cast<int64_t>(v.size())}, d).requires_grad_();
    };
    Tensor a = param({0, 0, 0}), b = param({0, 0}), c = param({0});
    auto set = [&] {
      a.set_grad(f64(d, {3, 0, -4}));
      b.set_grad(f64(d, {12, 0}));
    };
    set();
    REQUIRE(optim::clip_grad_norm({a, b, c}, 1.0) == Approx(13.0));  // sqrt(9 + 16 + 144)
    const double k = 1.0 / (13.0 + 1e-6);
    require_close(a.grad(), {3 * k, 0, -4 * k}, 1e-14);
    require_close(b.grad(), {12 * k, 0}, 1e-14);
    REQUIRE_FALSE(c.grad().defined());
    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 6.0, INFINITY) == 12.0);
    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 100.0, 1.0) == Approx(19.0));
    REQUIRE(a.grad().to_vector<double>() == Vec{3, 0, -4});
  }
}

// Optimizers, gradient clipping and learning-rate schedules: each update
// against its recurrence written out again here in double, against PyTorch's
// numbers, and the checkpoint state with its validation. Every case tagged
// [device] runs once per test device (tests/test_devices.h): the CPU, and
// cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include <heed.h>
#include "optim/clip_grad.h"
#include "nn/layers.h"
#include "optim/lr_schedule.h"
#include "optim/optim.h"
#include "tests/test_devices.h"

using namespace heed;
using Catch::Contains;

namespace {
using Vec = std::vector<double>;

// Three steps of gradients for a 3-element parameter; the small entries
// (~1e-3, like a bias's) make Adam's eps placement visible.
const Vec kStart = {0.5, -1.0, 2.0};
const std::vector<Vec> kGrads = {{1e-3, -2e-3, 0.5}, {-3e-3, 1e-3, 0.25}, {2e-3, 2e-3, -0.75}};

Tensor param(const Vec& v, Device d = kCPU) {
  return from_vector<double>(v, {static_cast<int64_t>(v.size())}, d).requires_grad_();
}

// The tolerance of the recurrences below: float64 rounding on the CPU; a
// GPU's kernels may contract to FMA and take their own sqrt.
double recurrence_tol(Device d) { return d.is_cpu() ? 1e-14 : 1e-12; }

// |got - want| <= tol * max(1, |want|) (Approx with epsilon and margin tol).
void require_close(const Vec& got, const Vec& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("entry " << i);
    REQUIRE(got[i] == Approx(want[i]).epsilon(tol).margin(tol));
  }
}

// Runs opt over kGrads on p, checking p against `expected(step)` after each.
template <class Opt, class Expected>
void run_and_compare(Opt& opt, Tensor& p, Expected expected, double tol = 1e-14) {
  for (size_t t = 0; t < kGrads.size(); ++t) {
    p.set_grad(from_vector<double>(kGrads[t], {3}, p.device()));
    opt.step();
    INFO("step " << t + 1);
    require_close(p.to_vector<double>(), expected(t), tol);
  }
}

// The same against a reference recurrence (AdamRef, SGDRef below) stepped alongside.
template <class Opt, class Ref>
void run_against(Opt& opt, Tensor& p, Ref& ref, double tol) {
  run_and_compare(
      opt, p,
      [&](size_t t) {
        ref.step(kGrads[t], static_cast<int>(t) + 1);
        return ref.p;
      },
      tol);
}

// The README's Adam/AdamW recurrence, one scalar at a time.
struct AdamRef {
  double lr, b1, b2, eps, wd;
  bool decoupled, maximize;
  Vec p, m, v;
  void step(const Vec& grad, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = maximize ? -grad[i] : grad[i];
      if (decoupled) p[i] *= 1 - lr * wd;
      else g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr / (1 - std::pow(b1, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t)) + eps);
    }
  }
};

// The README's SGD recurrence.
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

// A tensor's values after the optimizer's state entry `name`.
Vec state_values(const optim::Optimizer& opt, const std::string& name) {
  for (const auto& [n, t] : opt.state())
    if (n == name) return t.to_vector<double>();
  FAIL("no state " << name);
  return {};
}
}  // namespace

// ---- the updates -------------------------------------------------------------

TEST_CASE("SGD follows its recurrence: momentum, dampening, weight decay, Nesterov, maximize", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    const double tol = recurrence_tol(d);
    for (const optim::SGDOptions& o : {optim::SGDOptions{0.1},
                                       optim::SGDOptions{0.1, 0.9, 0.1, 0.01},
                                       optim::SGDOptions{0.05, 0.8, 0.0, 0.02, true},
                                       optim::SGDOptions{0.1, 0.9, 0.0, 0.01, true, true}}) {
      INFO("momentum " << o.momentum << " nesterov " << o.nesterov << " maximize " << o.maximize);
      Tensor p = param(kStart, d);
      optim::SGD opt({p}, o);
      SGDRef ref{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, o.maximize, kStart, Vec(3, 0)};
      run_against(opt, p, ref, tol);
      REQUIRE(p.device() == d);
      if (o.momentum != 0) require_close(state_values(opt, "momentum_buffer.0"), ref.buf, tol);
      else REQUIRE(opt.state().empty());
      for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
    }
  }
}

TEST_CASE("Adam and AdamW follow their recurrences, with eps after the bias correction", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    const double tol = recurrence_tol(d);
    SECTION("Adam, L2 weight decay") {
      Tensor p = param(kStart, d);
      optim::Adam opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.05});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.05, false, false, kStart, Vec(3, 0), Vec(3, 0)};
      run_against(opt, p, ref, tol);
      require_close(state_values(opt, "exp_avg.0"), ref.m, tol);
      require_close(state_values(opt, "exp_avg_sq.0"), ref.v, tol);
      for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
    }
    SECTION("AdamW, decoupled weight decay, maximize") {
      Tensor p = param(kStart, d);
      optim::AdamW opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.2, true});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.2, true, true, kStart, Vec(3, 0), Vec(3, 0)};
      run_against(opt, p, ref, tol);
    }
    SECTION("eps inside the bias correction would be caught") {
      // The same step with eps added before dividing by sqrt(1 - beta2^t)
      // lands measurably elsewhere: the test above can tell them apart.
      double g = 1e-3, b2 = 0.99, eps = 1e-3, v = (1 - b2) * g * g, m = (1 - 0.8) * g;
      double right = 0.1 / (1 - 0.8) * m / (std::sqrt(v) / std::sqrt(1 - b2) + eps);
      double wrong = 0.1 / (1 - 0.8) * m / ((std::sqrt(v) + eps) / std::sqrt(1 - b2));
      REQUIRE(std::abs(right - wrong) > 1e-3);
    }
  }
}

TEST_CASE("SGD, Adam and AdamW match PyTorch 1.13 after three steps", "[optim]") {
  // Made with torch 1.13: a float64 parameter kStart, p.grad = kGrads[t],
  // opt.step() three times; printed p and opt.state[p].
  {
    Tensor p = param(kStart);
    optim::Adam opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.05});
    run_and_compare(opt, p, [&](size_t) { return p.to_vector<double>(); });
    require_close(p.to_vector<double>(), {0.22111102403382532, -0.7101253350725041, 1.8065619138194122}, 1e-13);
    require_close(state_values(opt, "exp_avg_sq.0"), {1.264713477878955e-05, 6.038512131258224e-05, 0.009058418125372166},
                  1e-13);
  }
  {
    Tensor p = param(kStart);
    optim::AdamW opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.2});
    run_and_compare(opt, p, [&](size_t) { return p.to_vector<double>(); });
    require_close(p.to_vector<double>(), {0.4564279190164153, -0.8872992153415031, 1.7144899174059858}, 1e-13);
  }
  {
    Tensor p = param(kStart);
    optim::SGD opt({p}, {0.1, 0.9, 0.1, 0.01});
    run_and_compare(opt, p, [&](size_t) { return p.to_vector<double>(); });
    require_close(p.to_vector<double>(), {0.497404213514, -0.994493832028, 1.87880966788}, 1e-13);
  }
  {
    Tensor p = param(kStart);
    optim::SGD opt({p}, {0.1, 0.9, 0.0, 0.01, true, true});
    run_and_compare(opt, p, [&](size_t) { return p.to_vector<double>(); });
    require_close(p.to_vector<double>(), {0.4958934044564, -0.9920000039128001, 2.080524995232}, 1e-13);
  }
}

TEST_CASE("Optimizers update float32 parameters in float32 within the reference tolerance", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor p = from_vector<float>({0.5f, -1.0f, 2.0f}, {3}, d).requires_grad_();
    optim::AdamW opt({p}, {0.01, 0.9, 0.999, 1e-8, 0.1});
    AdamRef ref{0.01, 0.9, 0.999, 1e-8, 0.1, true, false, kStart, Vec(3, 0), Vec(3, 0)};
    for (size_t t = 0; t < kGrads.size(); ++t) {
      p.set_grad(to_dtype(from_vector<double>(kGrads[t], {3}, d), DType::Float32));
      opt.step();
      ref.step(kGrads[t], static_cast<int>(t) + 1);
    }
    REQUIRE(p.dtype() == DType::Float32);
    REQUIRE(p.device() == d);
    std::vector<float> got = p.to_vector<float>();
    for (size_t i = 0; i < 3; ++i) REQUIRE(std::abs(got[i] - ref.p[i]) <= 1e-6 + 1e-5 * std::abs(ref.p[i]));
  }
}

TEST_CASE("An optimizer step updates the module's own handles in place and records no history", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(1);
    nn::Linear lin({3, 2}, &g);
    lin.to(d);
    Tensor weight_before = lin.weight.clone();
    const void* impl_before = lin.weight.impl();
    optim::SGD opt(lin.named_parameters(), {0.5});
    sum(lin.forward(ones({4, 3}, DType::Float32, d))).backward();
    opt.step();
    REQUIRE(lin.weight.impl() == impl_before);
    REQUIRE(lin.weight.is_leaf());
    REQUIRE(lin.weight.grad_fn() == nullptr);
    REQUIRE(lin.weight.requires_grad());
    REQUIRE(lin.weight.device() == d);
    // d sum / d W = 4 in every entry, so W moved by -0.5 * 4.
    std::vector<float> before = weight_before.to_vector<float>(), after = lin.weight.to_vector<float>();
    for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == Approx(before[i] - 2.0f));
    REQUIRE(opt.step_count() == 1);
    opt.zero_grad();
    REQUIRE_FALSE(lin.weight.grad().defined());
  }
}

TEST_CASE("Parameters without a gradient are skipped and keep their own step count", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = param(kStart, d), b = param(kStart, d);
    optim::Adam opt(nn::NamedTensors{{"a", a}, {"b", b}}, {0.1});
    a.set_grad(from_vector<double>(kGrads[0], {3}, d));
    opt.step();  // b has no gradient: untouched
    REQUIRE(b.to_vector<double>() == kStart);
    b.set_grad(from_vector<double>(kGrads[0], {3}, d));
    opt.step();
    std::map<std::string, double> s = opt.scalars();
    REQUIRE(s.at("step") == 2);
    REQUIRE(s.at("step.a") == 2);
    REQUIRE(s.at("step.b") == 1);
    // b's first update used t = 1 bias correction, so it equals a's first.
    AdamRef ref{0.1, 0.9, 0.999, 1e-8, 0, false, false, kStart, Vec(3, 0), Vec(3, 0)};
    ref.step(kGrads[0], 1);
    require_close(b.to_vector<double>(), ref.p, recurrence_tol(d));
  }
}

// ---- checkpoint state ----------------------------------------------------------

TEST_CASE("Optimizer state round-trips: a restored optimizer continues exactly", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = param(kStart, d), b = param({1.0, 2.0, 3.0}, d);
    optim::AdamW first(nn::NamedTensors{{"layer.weight", a}, {"layer.bias", b}}, {0.1});
    for (int t = 0; t < 2; ++t) {
      a.set_grad(from_vector<double>(kGrads[t], {3}, d));
      b.set_grad(from_vector<double>(kGrads[2 - t], {3}, d));
      first.step();
    }
    nn::NamedTensors saved;
    for (const auto& [name, t] : first.state()) saved.emplace_back(name, t.clone().to(kCPU));  // as a checkpoint holds it
    std::map<std::string, double> scalars = first.scalars();
    REQUIRE(saved.size() == 4);
    REQUIRE(saved[0].first == "exp_avg.layer.weight");
    REQUIRE(saved[3].first == "exp_avg_sq.layer.bias");
    REQUIRE(scalars.at("step") == 2);
    REQUIRE(scalars.at("lr") == 0.1);

    // A second optimizer over copies of the parameters, given the saved state.
    Tensor a2 = param(a.to_vector<double>(), d), b2 = param(b.to_vector<double>(), d);
    optim::AdamW second(nn::NamedTensors{{"layer.weight", a2}, {"layer.bias", b2}}, {0.5});
    second.load_state(saved, scalars);
    REQUIRE(second.lr() == 0.1);
    REQUIRE(second.step_count() == 2);
    for (const auto& [name, t] : second.state()) REQUIRE(t.device() == d);
    for (Tensor* p : {&a, &b, &a2, &b2}) p->set_grad(from_vector<double>(kGrads[2], {3}, d));
    first.step();
    second.step();
    REQUIRE(a2.to_vector<double>() == a.to_vector<double>());
    REQUIRE(b2.to_vector<double>() == b.to_vector<double>());
  }
}

TEST_CASE("Optimizer::load_state lists every mismatch and changes nothing", "[optim]") {
  Tensor w = param(kStart);
  optim::SGD opt(nn::NamedTensors{{"w", w}}, {0.1, 0.9});
  auto scalars = opt.scalars();
  nn::NamedTensors good = {{"momentum_buffer.w", zeros({3}, DType::Float64)}};
  REQUIRE_NOTHROW(opt.load_state(good, scalars));

  REQUIRE_THROWS_WITH(opt.load_state({}, scalars), Contains("SGD") && Contains("optimizer: missing 'momentum_buffer.w'"));
  REQUIRE_THROWS_WITH(opt.load_state({{"momentum_buffer.w", zeros({3}, DType::Float64)}, {"exp_avg.w", zeros({3})}},
                                     scalars),
                      Contains("optimizer: unexpected 'exp_avg.w'"));
  REQUIRE_THROWS_WITH(opt.load_state({{"momentum_buffer.w", zeros({4}, DType::Float64)}}, scalars),
                      Contains("'momentum_buffer.w' is [4] float64 in the checkpoint, [3] float64 here"));
  REQUIRE_THROWS_WITH(opt.load_state({{"momentum_buffer.w", zeros({3})}}, scalars),
                      Contains("is [3] float32 in the checkpoint, [3] float64 here"));
  auto no_step = scalars;
  no_step.erase("step.w");
  no_step["momentum"] = 0.9;
  REQUIRE_THROWS_WITH(opt.load_state(good, no_step), Contains("missing scalar 'step.w'") &&
                                                         Contains("unexpected scalar 'momentum'") &&
                                                         Contains("2 problems"));
  auto bad_step = scalars;
  bad_step["step"] = 1.5;
  REQUIRE_THROWS_WITH(opt.load_state(good, bad_step), Contains("'step' = 1.5"));

  // A failed load leaves the optimizer as it was.
  auto changed = scalars;
  changed["lr"] = 7;
  REQUIRE_THROWS(opt.load_state({}, changed));
  REQUIRE(opt.lr() == 0.1);
}

// ---- bad options ---------------------------------------------------------------

TEST_CASE("Optimizers reject bad options and bad parameter lists", "[optim]") {
  Tensor p = param(kStart);
  REQUIRE_THROWS_WITH(optim::SGD({p}, {-0.1}), Contains("SGD") && Contains("lr"));
  REQUIRE_THROWS_WITH(optim::SGD({p}, optim::SGDOptions{}), Contains("no lr was given"));
  REQUIRE_THROWS_WITH(optim::SGD({p}, {0.1, 0.0, 0.0, 0.0, true}), Contains("nesterov") && Contains("momentum"));
  REQUIRE_THROWS_WITH(optim::SGD({p}, {0.1, 0.9, 0.5, 0.0, true}), Contains("dampening"));
  REQUIRE_THROWS_WITH(optim::SGD({p}, {0.1, -0.9}), Contains("momentum"));
  REQUIRE_THROWS_WITH(optim::Adam({p}, {0.1, 1.0}), Contains("Adam") && Contains("beta1"));
  REQUIRE_THROWS_WITH(optim::Adam({p}, {0.1, 0.9, -0.1}), Contains("beta2"));
  REQUIRE_THROWS_WITH(optim::Adam({p}, {0.1, 0.9, 0.99, -1.0}), Contains("eps"));
  REQUIRE_THROWS_WITH(optim::AdamW({p}, {0.1, 0.9, 0.99, 1e-8, -0.01}), Contains("AdamW") && Contains("weight_decay"));
  optim::Adam adam({p});
  REQUIRE_THROWS_WITH(adam.set_lr(-1), Contains("lr"));
  REQUIRE_THROWS_WITH(optim::Adam({p, p}), Contains("given twice"));
  REQUIRE_THROWS_WITH(optim::Adam(nn::NamedTensors{{"x", p}, {"x", param(kStart)}}), Contains("two parameters"));
  REQUIRE_THROWS_WITH(optim::Adam({Tensor()}), Contains("undefined"));
  REQUIRE_THROWS_WITH(optim::Adam({zeros({2}, DType::Int64)}), Contains("int64"));
}

// ---- clip_grad_norm ------------------------------------------------------------

TEST_CASE("clip_grad_norm scales all gradients by max_norm / (total + 1e-6) when above", "[optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    // float64 rounding on the CPU; a GPU sums the squares in another order.
    const double tol = d.is_cpu() ? 1e-15 : 1e-14;
    Tensor a = param({0, 0, 0}, d), b = param({0, 0}, d), c = param({0}, d);
    auto set = [&] {
      a.set_grad(from_vector<double>({3, 0, -4}, {3}, d));
      b.set_grad(from_vector<double>({12, 0}, {2}, d));
    };  // c has no gradient
    set();
    // Total 2-norm sqrt(9 + 16 + 144) = 13.
    REQUIRE(optim::clip_grad_norm({a, b, c}, 1.0) == Approx(13.0));
    double k = 1.0 / (13.0 + 1e-6);
    REQUIRE(a.grad().device() == d);
    require_close(a.grad().to_vector<double>(), {3 * k, 0, -4 * k}, tol);
    require_close(b.grad().to_vector<double>(), {12 * k, 0}, tol);
    REQUIRE_FALSE(c.grad().defined());

    set();
    REQUIRE(optim::clip_grad_norm({a, b, c}, 100.0) == Approx(13.0));
    REQUIRE(a.grad().to_vector<double>() == Vec{3, 0, -4});  // unchanged

    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 6.0, INFINITY) == 12.0);
    require_close(b.grad().to_vector<double>(), {12 * 6.0 / (12.0 + 1e-6), 0}, tol);

    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 100.0, 1.0) == Approx(19.0));
    REQUIRE(a.grad().to_vector<double>() == Vec{3, 0, -4});
    REQUIRE(optim::clip_grad_norm({c}, 1.0) == 0.0);
  }
}

TEST_CASE("clip_grad_norm rejects bad arguments and can refuse a non-finite norm", "[optim]") {
  Tensor a = param({0, 0});
  a.set_grad(from_vector<double>({INFINITY, 1}, {2}));
  REQUIRE_THROWS_WITH(optim::clip_grad_norm({a}, 1.0, 2.0, true), Contains("clip_grad_norm") && Contains("inf"));
  REQUIRE_THROWS_WITH(optim::clip_grad_norm({a}, -1.0), Contains("max_norm"));
  REQUIRE_THROWS_WITH(optim::clip_grad_norm({a}, 1.0, 0.0), Contains("norm_type"));
}

// ---- schedules -----------------------------------------------------------------

TEST_CASE("Noam: linear warmup to its peak at W, then 1/sqrt(s)", "[optim]") {
  optim::NoamOptions o{16, 10, 2.0};
  // factor * d^-0.5 * min(s^-0.5, s W^-1.5), evaluated by hand.
  REQUIRE(optim::noam_lr(o, 1) == Approx(2.0 / 4.0 * 1.0 / std::pow(10.0, 1.5)).epsilon(1e-15));
  REQUIRE(optim::noam_lr(o, 10) == Approx(2.0 / 4.0 / std::sqrt(10.0)).epsilon(1e-15));  // both branches meet
  REQUIRE(optim::noam_lr(o, 11) == Approx(2.0 / 4.0 / std::sqrt(11.0)).epsilon(1e-15));
  REQUIRE(optim::noam_lr(o, 400) == Approx(2.0 / 4.0 / 20.0).epsilon(1e-15));
  REQUIRE(optim::noam_lr(o, 9) < optim::noam_lr(o, 10));
  REQUIRE(optim::noam_lr(o, 11) < optim::noam_lr(o, 10));
  REQUIRE_THROWS_WITH(optim::noam_lr(o, 0), Contains("step must be >= 1"));
  REQUIRE_THROWS_WITH(optim::noam_lr({16, 0}, 1), Contains("NoamSchedule") && Contains("warmup_steps"));
}

TEST_CASE("Warmup-cosine: base_lr at W, halfway point, min_lr from N on", "[optim]") {
  optim::WarmupCosineOptions o{1e-3, 1e-5, 5, 25};
  REQUIRE(optim::warmup_cosine_lr(o, 1) == Approx(2e-4).epsilon(1e-15));
  REQUIRE(optim::warmup_cosine_lr(o, 5) == Approx(1e-3).epsilon(1e-15));
  // s = 15 is halfway through the decay: cos(pi/2) = 0.
  REQUIRE(optim::warmup_cosine_lr(o, 15) == Approx(1e-5 + 0.5 * (1e-3 - 1e-5)).epsilon(1e-14));
  REQUIRE(optim::warmup_cosine_lr(o, 6) ==
          Approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI / 20))).epsilon(1e-14));
  REQUIRE(optim::warmup_cosine_lr(o, 24) ==
          Approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI * 19 / 20))).epsilon(1e-14));
  REQUIRE(optim::warmup_cosine_lr(o, 25) == 1e-5);
  REQUIRE(optim::warmup_cosine_lr(o, 30) == 1e-5);
  // No warmup: the decay starts at once.
  REQUIRE(optim::warmup_cosine_lr({1.0, 0.0, 0, 4}, 2) == Approx(0.5).epsilon(1e-15));
  REQUIRE_THROWS_WITH(optim::warmup_cosine_lr({1e-3, 0, 10, 10}, 1), Contains("warmup_steps < total_steps"));
}

TEST_CASE("Constant schedule, with an optional linear warmup", "[optim]") {
  REQUIRE(optim::constant_lr({0.3}, 1) == 0.3);
  REQUIRE(optim::constant_lr({0.3}, 1000) == 0.3);
  REQUIRE(optim::constant_lr({0.3, 3}, 1) == Approx(0.1));
  REQUIRE(optim::constant_lr({0.3, 3}, 3) == Approx(0.3));
  REQUIRE(optim::constant_lr({0.3, 3}, 4) == 0.3);
}

TEST_CASE("A schedule sets the lr of the optimizer step about to be taken", "[optim]") {
  Tensor p = param(kStart);
  optim::SGD opt({p}, {123.0});
  optim::NoamSchedule schedule(opt, {16, 10});
  REQUIRE(schedule.last_step() == 0);
  for (int s = 1; s <= 3; ++s) {
    schedule.step();
    REQUIRE(schedule.last_step() == s);
    REQUIRE(opt.lr() == optim::noam_lr({16, 10}, s));
    // The step uses exactly that lr: p moves by -lr * g with g = 1.
    Vec before = p.to_vector<double>();
    p.set_grad(ones({3}, DType::Float64));
    opt.step();
    REQUIRE(p.to_vector<double>()[0] == Approx(before[0] - optim::noam_lr({16, 10}, s)));
  }
  // Out of lockstep: two schedule steps for one optimizer step, or the other way.
  schedule.step();
  REQUIRE_THROWS_WITH(schedule.step(), Contains("schedule.step() once just before each optimizer.step()"));
  opt.step();
  opt.step();
  REQUIRE_THROWS_WITH(schedule.step(), Contains("has taken 5 steps"));
}

TEST_CASE("A schedule's state round-trips and is validated", "[optim]") {
  Tensor p = param(kStart);
  optim::Adam opt({p});
  optim::WarmupCosineSchedule schedule(opt, {1e-3, 1e-5, 5, 20});
  schedule.step();
  p.set_grad(ones({3}, DType::Float64));
  opt.step();
  auto saved = schedule.state();
  REQUIRE(saved.at("last_step") == 1);

  optim::Adam opt2({param(kStart)});
  opt2.load_state(opt.state(), opt.scalars());
  optim::WarmupCosineSchedule restored(opt2, {1e-3, 1e-5, 5, 20});
  REQUIRE(restored.last_step() == 1);  // starts where its optimizer is
  restored.load_state(saved);
  restored.step();
  REQUIRE(opt2.lr() == optim::warmup_cosine_lr({1e-3, 1e-5, 5, 20}, 2));
  REQUIRE_THROWS_WITH(restored.load_state({}), Contains("missing 'last_step'"));
  REQUIRE_THROWS_WITH(restored.load_state({{"last_step", 1}, {"lr", 2}}), Contains("unexpected key 'lr'"));
  REQUIRE_THROWS_WITH(restored.load_state({{"last_step", -1}}), Contains("whole number"));
}

TEST_CASE("A time budget fits the run's length: warmup timed, cosine fitted to end with the budget", "[optim]") {
  // 20 warmup steps: the first ten are slow (caches warming up) and not used
  // for the pace; the next ten take 0.125 s each. Budget 100 s.
  optim::StepBudget budget(100.0, 20);
  for (int64_t s = 1; s < 20; ++s) REQUIRE(budget.record(s, s <= 10 ? 0.5 : 0.125) == 0);
  REQUIRE_FALSE(budget.fitted());
  const int64_t total = budget.record(20, 0.125);
  // 6.25 s spent (10 x 0.5 + 10 x 0.125); 93.75 s left at 0.125 s per step = 750 more steps.
  REQUIRE(budget.seconds_per_step() == 0.125);
  REQUIRE(total == 770);
  REQUIRE(budget.total_steps() == 770);
  REQUIRE_FALSE(budget.spent());
  REQUIRE(budget.record(21, 3.0) == 0);  // fitted once; later steps only add to the time spent
  REQUIRE(budget.total_steps() == 770);
  // Steps slower than the pace spend the budget before the total: 9.25 s spent,
  // and 90.75 s more at 0.25 s per step runs out at step 21 + 363 = 384.
  for (int64_t s = 22; s < 384; ++s) {
    budget.record(s, 0.25);
    REQUIRE_FALSE(budget.spent());
  }
  budget.record(384, 0.25);
  REQUIRE(budget.spent());
  REQUIRE(budget.spent_s() == Approx(100.0));

  // The schedule built before the fit (any total) gives the same warmup, and
  // once fitted it runs from base_lr at the end of warmup to min_lr at the end of the budget.
  Tensor p = param(kStart);
  optim::Adam opt({p});
  optim::WarmupCosineSchedule schedule(opt, {1e-3, 1e-5, 20, 21});
  std::vector<double> warmup_lrs;
  for (int64_t s = 1; s <= 20; ++s) {
    schedule.step();
    p.set_grad(ones({3}, DType::Float64));
    opt.step();
    warmup_lrs.push_back(opt.lr());
    REQUIRE(opt.lr() == optim::warmup_cosine_lr({1e-3, 1e-5, 20, 770}, s));
  }
  schedule.set_total_steps(total);
  REQUIRE(warmup_lrs.back() == 1e-3);                                     // start of the decay
  REQUIRE(schedule.lr_at(395) == Approx(1e-5 + 0.5 * (1e-3 - 1e-5)));    // the middle of the budget
  REQUIRE(schedule.lr_at(769) > 1e-5);
  REQUIRE(schedule.lr_at(770) == 1e-5);                                   // the end of the budget
  schedule.step();
  REQUIRE(opt.lr() == optim::warmup_cosine_lr({1e-3, 1e-5, 20, 770}, 21));
  // Past the warmup the total can no longer change: learning rates already set depended on it.
  REQUIRE_THROWS_WITH(schedule.set_total_steps(2000), Contains("past its warmup"));
  optim::WarmupCosineSchedule fresh(opt, {1e-3, 1e-5, 20, 21});
  REQUIRE_THROWS_WITH(fresh.set_total_steps(20), Contains("warmup_steps < total_steps"));
}

TEST_CASE("A time budget interrupted before its fit resumes its timing from its state", "[optim]") {
  optim::StepBudget whole(10.0, 8), first(10.0, 8);
  for (int64_t s = 1; s <= 5; ++s) whole.record(s, 0.05 * s), first.record(s, 0.05 * s);
  optim::StepBudget resumed(10.0, 8);
  resumed.load_state(first.state());
  for (int64_t s = 6; s <= 8; ++s) {
    const int64_t a = whole.record(s, 0.05 * s), b = resumed.record(s, 0.05 * s);
    REQUIRE(a == b);
  }
  REQUIRE(resumed.fitted());
  REQUIRE(resumed.total_steps() == whole.total_steps());
  REQUIRE(resumed.state() == whole.state());
  // The steps come in order; the state is checked.
  REQUIRE_THROWS_WITH(resumed.record(10, 0.1), Contains("expected step 9"));
  REQUIRE_THROWS_WITH(resumed.load_state({{"spent_s", 1}}), Contains("missing 'paced_s'"));
  auto bad = whole.state();
  bad["paced_steps"] = 1.5;
  REQUIRE_THROWS_WITH(resumed.load_state(bad), Contains("whole number"));
  REQUIRE_THROWS_WITH(optim::StepBudget(0.0, 8), Contains("positive number of seconds"));
  REQUIRE_THROWS_WITH(optim::StepBudget(10.0, 1), Contains("at least 2"));
  // A budget already spent still takes one step past the fit; a slow pace is not a crash.
  REQUIRE(optim::fit_total_steps(1.0, 5.0, 20, 0.1) == 21);
  REQUIRE(optim::fit_total_steps(100.0, 0.0, 20, 0.125) == 820);
  REQUIRE_THROWS_WITH(optim::fit_total_steps(100.0, 0.0, 20, 0.0), Contains("positive number of seconds per step"));
}

namespace schedule_names {
// A schedule of a user's own, without a type_name() of its own.
class Halving : public optim::LRScheduler {
 public:
  using LRScheduler::LRScheduler;
  double lr_at(int64_t step) const override { return 1.0 / static_cast<double>(step); }
};
// One that derives from a built-in schedule keeps the built-in's name.
class LoggedNoam : public optim::NoamSchedule {
 public:
  using NoamSchedule::NoamSchedule;
};
}  // namespace schedule_names

TEST_CASE("Schedules name themselves as checkpoints record them", "[optim]") {
  Tensor w = param(kStart);
  optim::SGD opt(nn::NamedTensors{{"w", w}}, {0.1});
  REQUIRE(optim::NoamSchedule(opt, {16, 4}).type_name() == "NoamSchedule");
  REQUIRE(optim::WarmupCosineSchedule(opt, {1e-3, 1e-5, 5, 20}).type_name() == "WarmupCosineSchedule");
  REQUIRE(optim::ConstantSchedule(opt, {1e-3}).type_name() == "ConstantSchedule");
  REQUIRE(schedule_names::LoggedNoam(opt, {16, 4}).type_name() == "NoamSchedule");
  // Without an override: the readable C++ type.
  REQUIRE(schedule_names::Halving(opt).type_name() == "schedule_names::Halving");
}

// optim::ExponentialMovingAverage: the update rule with its ramp, swapping the
// averages in and out, errors, and checkpoints that carry the averages.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/grad_mode.h"
#include "io/checkpoint.h"
#include "optim/ema.h"
#include "nn/layers.h"
#include "optim/optim.h"
#include "test_devices.h"

using namespace heed;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

std::vector<double> values(const Tensor& t) { return t.to(kCPU).to(DType::Float64).contiguous().to_vector<double>(); }

// Two parameters, set by hand.
struct Pair {
  Tensor a = from_vector<float>({1.0f, 2.0f}).set_requires_grad();
  Tensor b = from_vector<float>({-4.0f}).set_requires_grad();
  nn::NamedTensors named() const { return {{"a", a}, {"b", b}}; }
};

}  // namespace

TEST_CASE("ema: averages follow avg += (1 - d)(param - avg) with d = min(decay, (1 + n) / (10 + n))", "[nn][ema]") {
  FOR_EACH_TEST_DEVICE(device) {
    Pair p;
    p.a = p.a.detach().to(device).set_requires_grad();
    p.b = p.b.detach().to(device).set_requires_grad();
    optim::ExponentialMovingAverage ema(p.named(), 0.5);
    REQUIRE(ema.updates() == 0);
    REQUIRE(values(ema.averages()[0].second) == std::vector<double>{1.0, 2.0});  // a copy at the start
    // Hand-computed in double: the averages are float32, so compare to rounding.
    std::vector<double> want_a{1.0, 2.0}, want_b{-4.0};
    for (int n = 0; n < 12; ++n) {
      const double d = std::min(0.5, (1.0 + n) / (10.0 + n));
      REQUIRE(ema.next_decay() == Approx(d));
      const float va = static_cast<float>(n), vb = static_cast<float>(3 * n - 1);
      {
        NoGradGuard no_grad;
        p.a.fill_(va);
        p.b.fill_(vb);
      }
      ema.update();
      for (double& w : want_a) w += (1 - d) * (va - w);
      want_b[0] += (1 - d) * (vb - want_b[0]);
      const auto got_a = values(ema.averages()[0].second);
      REQUIRE(got_a[0] == Approx(want_a[0]).epsilon(1e-6));
      REQUIRE(got_a[1] == Approx(want_a[1]).epsilon(1e-6));
      REQUIRE(values(ema.averages()[1].second)[0] == Approx(want_b[0]).epsilon(1e-6));
    }
    REQUIRE(ema.updates() == 12);
    REQUIRE(ema.next_decay() == 0.5);
  }
}

TEST_CASE("ema: swap_in puts the averages into the parameters and their own values back", "[nn][ema]") {
  Pair p;
  optim::ExponentialMovingAverage ema(p.named(), 0.9);
  {
    NoGradGuard no_grad;
    p.a.fill_(10);
  }
  ema.update();  // d = 0.1: avg a = 1 + 0.9 * 9 = 9.1, 2 + 0.9 * 8 = 9.2
  const void* handle = p.a.impl();
  {
    auto averaged = ema.swap_in();
    REQUIRE(p.a.impl() == handle);  // the same tensor, new values
    REQUIRE(values(p.a)[0] == Approx(9.1));
    REQUIRE(values(p.a)[1] == Approx(9.2));
    REQUIRE_THROWS_WITH(ema.update(), Contains("Swap is alive"));
    REQUIRE_THROWS_WITH(ema.swap_in(), Contains("swapped in already"));
  }
  REQUIRE(values(p.a) == std::vector<double>{10.0, 10.0});
  ema.copy_to_parameters();
  REQUIRE(values(p.a)[1] == Approx(9.2));
}

TEST_CASE("ema: bad arguments and bad saved state name the problem", "[nn][ema]") {
  Pair p;
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage(p.named(), 1.0), Contains("decay must be in [0, 1)"));
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage(p.named(), -0.1), Contains("decay must be in [0, 1)"));
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage({{"a", p.a}, {"a2", p.a}}, 0.9), Contains("given twice"));
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage({{"a", p.a}, {"a", p.b}}, 0.9), Contains("two parameters are named 'a'"));
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage({{"i", from_vector<int64_t>({1})}}, 0.9),
                      Contains("must be a float dtype"));
  REQUIRE_THROWS_WITH(optim::ExponentialMovingAverage({{"u", Tensor()}}, 0.9), Contains("undefined"));

  optim::ExponentialMovingAverage ema(p.named(), 0.9);
  ema.update();
  try {
    ema.load_state({{"a", zeros({3})}, {"c", zeros({1})}}, -1);
    FAIL("load_state accepted a state that does not fit");
  } catch (const Error& e) {
    const std::string m = e.what();
    REQUIRE_THAT(m, Contains("'a' is [3]"));
    REQUIRE_THAT(m, Contains("missing 'b'"));
    REQUIRE_THAT(m, Contains("unexpected 'c'"));
    REQUIRE_THAT(m, Contains("negative"));
  }
  REQUIRE(ema.updates() == 1);  // nothing changed
  REQUIRE(values(ema.averages()[0].second) == values(p.a));
}

TEST_CASE("ema: checkpoints carry the averages; a resume continues them exactly", "[nn][ema][checkpoint]") {
  const fs::path dir = fs::temp_directory_path() / ("heed_ema_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "ema.h5").string();

  manual_seed(3);
  nn::Linear model(nn::LinearOptions{4, 3});
  optim::ExponentialMovingAverage ema(model.named_parameters(), 0.99);
  auto train_step = [&](nn::Linear& m, optim::ExponentialMovingAverage& e, double shift) {
    NoGradGuard no_grad;
    for (auto& [name, t] : m.named_parameters()) t.add_(shift);
    e.update();
  };
  for (int i = 0; i < 5; ++i) train_step(model, ema, 0.25 * i);
  io::save_checkpoint(path, io::capture(model, nullptr, nullptr, nullptr, &ema));

  // The uninterrupted run: three more steps.
  for (int i = 5; i < 8; ++i) train_step(model, ema, 0.25 * i);

  // The resumed one.
  manual_seed(99);
  nn::Linear resumed(nn::LinearOptions{4, 3});
  optim::ExponentialMovingAverage resumed_ema(resumed.named_parameters(), 0.99);
  const io::Checkpoint c = io::load_checkpoint(path);
  REQUIRE(c.average_updates == 5);
  REQUIRE(c.averages.size() == 2);
  io::restore(c, resumed, nullptr, nullptr, nullptr, &resumed_ema);
  REQUIRE(resumed_ema.updates() == 5);
  for (int i = 5; i < 8; ++i) train_step(resumed, resumed_ema, 0.25 * i);
  for (size_t i = 0; i < 2; ++i)
    REQUIRE(values(resumed_ema.averages()[i].second) == values(ema.averages()[i].second));  // bit for bit

  // Evaluation: the averages in place of the trained weights.
  nn::Linear evaluated(nn::LinearOptions{4, 3});
  REQUIRE(io::restore_for_evaluation(c, evaluated));
  REQUIRE(values(evaluated.weight) == values(c.averages[0].first == "weight" ? c.averages[0].second : c.averages[1].second));

  // A checkpoint without averages: evaluation uses the weights; a run that
  // keeps an average refuses it, changing nothing.
  io::save_checkpoint(path, io::capture(model));
  const io::Checkpoint plain = io::load_checkpoint(path);
  REQUIRE(plain.averages.empty());
  REQUIRE_FALSE(io::restore_for_evaluation(plain, evaluated));
  REQUIRE(values(evaluated.weight) == values(model.weight));
  const auto before = values(resumed.weight);
  REQUIRE_THROWS_WITH(io::restore(plain, resumed, nullptr, nullptr, nullptr, &resumed_ema),
                      Contains("no averaged parameters"));
  REQUIRE(values(resumed.weight) == before);

  // Averages of another model's shape: refused before anything changes.
  nn::Linear wider(nn::LinearOptions{5, 3});
  optim::ExponentialMovingAverage wider_ema(wider.named_parameters(), 0.99);
  io::save_checkpoint(path, io::capture(wider, nullptr, nullptr, nullptr, &wider_ema));
  const io::Checkpoint other = io::load_checkpoint(path);
  REQUIRE_THROWS_WITH(io::restore_for_evaluation(other, evaluated), Contains("'weight' is [3, 5] in the checkpoint"));
  REQUIRE(values(evaluated.weight) == values(model.weight));
  fs::remove_all(dir);
}

// The backward engine: accumulation, deep graphs, graph retention, double
// backward, hooks, in-place safety, anomaly mode and custom functions. Every
// case tagged [device] runs once per test device (tests/test_devices.h): the
// CPU, and cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using namespace heed::test;

namespace {
double at(const Tensor& t, int64_t i) { return contiguous(t).to_vector<double>()[i]; }
}  // namespace

TEST_CASE("backward of a scalar fills leaf gradients", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2, 3}).requires_grad_();
    Tensor b = f64(d, {4, 5, 6}).requires_grad_();
    Tensor loss = sum(mul(a, b));
    REQUIRE(loss.grad_fn() != nullptr);
    REQUIRE_FALSE(loss.is_leaf());
    loss.backward();
    REQUIRE(a.grad().device() == d);
    REQUIRE(a.grad().to_vector<double>() == Vec{4, 5, 6});
    REQUIRE(b.grad().to_vector<double>() == Vec{1, 2, 3});
  }
}

TEST_CASE("a tensor used twice accumulates (b = a + a)", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, -2}).requires_grad_();
    Tensor b = add(a, a);
    sum(mul(b, a)).backward();  // d/da sum(2a * a) = 4a
    REQUIRE(a.grad().to_vector<double>() == Vec{4, -8});
    // Through views and broadcasting: the expanded row gets the sum over its copies.
    Tensor r = f64(d, {1, 2, 3}, {1, 3}).requires_grad_();
    sum(mul(r.expand({4, 3}).t(), f64(d, {1, 2, 3, 4}))).backward();
    REQUIRE(r.grad().to_vector<double>() == Vec{10, 10, 10});
  }
}

TEST_CASE("gradients accumulate across backward calls until zero_grad", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    sum(mul(a, 3.0)).backward();
    sum(mul(a, 3.0)).backward();
    REQUIRE(a.grad().to_vector<double>() == Vec{6, 6});
    a.zero_grad();
    REQUIRE_FALSE(a.grad().defined());
  }
}

TEST_CASE("backward with an explicit gradient and its checks", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2, 3}).requires_grad_();
    Tensor y = mul(a, a);
    REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("one-element"));
    REQUIRE_THROWS_WITH(y.backward(f64(d, {1, 1})), Catch::Contains("must match"));
    y.backward(f64(d, {1, 0, 2}));
    REQUIRE(a.grad().to_vector<double>() == Vec{2, 0, 12});
    Tensor c = f64(d, {1});
    REQUIRE_THROWS_WITH(sum(c).backward(), Catch::Contains("does not require grad"));
  }
}

TEST_CASE("a chain of 100,000 ops runs backward and frees without recursion", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = from_vector(std::vector<float>{1.0f}, {}, d).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = add(y, 1e-6);
    y.sum().backward();
    REQUIRE(x.grad().item<float>() == 1.0f);
    y = Tensor();  // releasing the graph must not overflow the stack either
    Tensor z = x;
    for (int i = 0; i < 100000; ++i) z = mul(z, 1.0);
    z = Tensor();
    SUCCEED();
  }
}

TEST_CASE("retain_graph allows a second backward; without it a clear error", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {2}).requires_grad_();
    Tensor y = sum(exp(a));
    y.backward(Tensor(), /*retain_graph=*/true);
    y.backward();
    REQUIRE(at(a.grad(), 0) == Approx(2 * std::exp(2.0)));
    REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("second time"));
  }
}

TEST_CASE("NoGradGuard and detach stop recording", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    {
      NoGradGuard guard;
      Tensor y = mul(a, 2.0);
      REQUIRE_FALSE(y.requires_grad());
    }
    Tensor det = a.detach();
    REQUIRE_FALSE(det.requires_grad());
    REQUIRE(det.raw_data() == a.raw_data());  // shares storage
    Tensor y = add(mul(a, det), 0.0);
    sum(y).backward();
    REQUIRE(a.grad().to_vector<double>() == Vec{1, 2});
  }
}

TEST_CASE("grad() returns gradients without touching .grad", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2, 3}).requires_grad_();
    Tensor y = sum(pow(a, 3.0));
    TensorList g = grad({y}, {a});
    REQUIRE(g[0].device() == d);
    // Exact on the CPU; a GPU's pow may round.
    if (d.is_cpu())
      REQUIRE(g[0].to_vector<double>() == Vec{3, 12, 27});
    else
      require_close(g[0], {3, 12, 27}, 1e-12);
    REQUIRE_FALSE(a.grad().defined());
    Tensor unused = f64(d, {1}).requires_grad_();
    Tensor y2 = sum(mul(a, 2.0));
    REQUIRE_THROWS_WITH(grad({y2}, {unused}), Catch::Contains("not used"));
  }
}

TEST_CASE("create_graph gives a differentiable gradient (double backward)", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = f64(d, {0.5, -1.5}).requires_grad_();
    // y = sum(x^3) ; dy/dx = 3x^2 ; d/dx sum(3x^2) = 6x
    Tensor y = sum(mul(mul(x, x), x));
    TensorList g = grad({y}, {x}, {}, /*create_graph=*/true);
    REQUIRE(g[0].requires_grad());
    sum(g[0]).backward();
    require_close(x.grad(), {3.0, -9.0}, 1e-12);
  }
}

TEST_CASE("double backward through softmax, matmul and reductions", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator gen(7);
    Tensor a = randn({3, 4}, &gen, DType::Float64).requires_grad_();
    Tensor b = randn({4, 2}, &gen, DType::Float64).requires_grad_();
    GradcheckFn fn = [](const TensorList& in) { return sum(mul(softmax(matmul(in[0], in[1]), 1), mean(in[0]))); };
    REQUIRE(gradgradcheck_on(d, fn, {a, b}));
  }
}

TEST_CASE("a leaf keeps a fresh gradient without copying it; one held elsewhere is copied", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    // mul's backward makes a new tensor that nothing else holds: .grad is that memory.
    Tensor a = f64(d, {1, 2, 3}).requires_grad_();
    const void* arriving = nullptr;
    a.register_hook([&](const Tensor& g) {
      arriving = g.raw_data();
      return Tensor();
    });
    sum(mul(a, 3.0)).backward();
    REQUIRE(a.grad().raw_data() == arriving);
    REQUIRE(a.grad().to_vector<double>() == Vec{3, 3, 3});
    // A gradient someone still holds gets memory of its own: writing to the
    // held tensor later leaves .grad alone (and the other way round).
    Tensor b = f64(d, {1, 2}).requires_grad_();
    Tensor held = f64(d, {7, 8});
    b.register_hook([&](const Tensor&) { return held; });
    sum(mul(b, 1.0)).backward();
    REQUIRE(b.grad().raw_data() != held.raw_data());
    held.fill_(0.0);
    REQUIRE(b.grad().to_vector<double>() == Vec{7, 8});
    // So does a view of a larger buffer, even when nothing else holds it.
    Tensor c = f64(d, {1, 2}).requires_grad_();
    c.register_hook([&](const Tensor&) { return f64(d, {5, 6, 7, 8}).slice(0, 1, 3); });
    sum(mul(c, 1.0)).backward();
    REQUIRE(c.grad().to_vector<double>() == Vec{6, 7});
    REQUIRE(c.grad().is_contiguous());
    REQUIRE(c.grad().numel() == 2);
  }
}

TEST_CASE("hooks read and replace gradients; retain_grad keeps non-leaf grads", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    Tensor h = mul(a, 3.0);
    h.retain_grad();
    Tensor seen;
    h.register_hook([&](const Tensor& g) {
      seen = g;
      return Tensor();  // read only
    });
    a.register_hook([](const Tensor& g) { return mul(g, 10.0); });  // replace
    sum(mul(h, h)).backward();
    REQUIRE(seen.device() == d);
    REQUIRE(seen.to_vector<double>() == Vec{6, 12});
    REQUIRE(h.grad().to_vector<double>() == Vec{6, 12});
    REQUIRE(a.grad().to_vector<double>() == Vec{180, 360});
  }
}

TEST_CASE("a hook on a non-leaf can replace the gradient flowing on", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    Tensor h = mul(a, 2.0);
    h.register_hook([](const Tensor& g) { return zeros_like(g); });
    sum(h).backward();
    REQUIRE(a.grad().to_vector<double>() == Vec{0, 0});
  }
}

TEST_CASE("post-accumulate hooks see a leaf's total gradient; queued callbacks run after the last one",
          "[autograd]") {
  Tensor a = from_vector<double>({1, 2}, {2}).requires_grad_();
  Tensor b = from_vector<double>({3}, {1}).requires_grad_();
  std::vector<std::string> events;
  a.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    events.push_back("a " + std::to_string(leaf.grad().to_vector<double>()[0]));
    if (events.size() == 1) queue_callback([&] { events.push_back("end"); });
  });
  b.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    events.push_back("b " + std::to_string(leaf.grad().to_vector<double>()[0]));
  });
  // a is used twice: its hook runs once, after both uses are summed.
  Tensor loss = add(sum(mul(a, 2.0)), sum(mul(a, b.expand({2}))));
  loss.backward(Tensor(), true);
  REQUIRE(events.size() == 3);
  REQUIRE(events.back() == "end");
  REQUIRE(std::count(events.begin(), events.end(), "a 5.000000") == 1);  // 2 + b
  REQUIRE(std::count(events.begin(), events.end(), "b 3.000000") == 1);  // a0 + a1
  // A second backward accumulates: the hook sees the running total.
  events.clear();
  loss.backward();
  REQUIRE(std::count(events.begin(), events.end(), "a 10.000000") == 1);
  REQUIRE(events.back() == "end");
  REQUIRE_THROWS_WITH(queue_callback([] {}), Catch::Contains("no backward is running"));
  Tensor h = mul(a, 2.0);
  REQUIRE_THROWS_WITH(h.register_post_accumulate_grad_hook([](const Tensor&) {}), Catch::Contains("not a leaf"));
}

TEST_CASE("modifying a tensor backward needs raises a clear error", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    Tensor e = exp(a);  // exp saves its output
    Tensor y = sum(e);
    Tensor z = sum(mul(e, 2.0));
    e.mul_(2.0);  // in place on a non-leaf: allowed, bumps the version
    REQUIRE_THROWS_WITH(sum(mul(e, e)).backward(), Catch::Contains("modified by an in-place operation"));
    (void)y;
    (void)z;
  }
}

TEST_CASE("in-place ops record correct gradients on non-leaves", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {1, 2}).requires_grad_();
    Tensor h = mul(a, 1.0);
    h.add_(f64(d, {10, 10}));
    h.mul_(3.0);
    sum(mul(h, a)).backward();
    // h = 3(a + 10); d/da sum(h a) = 3a + h = 6a + 30
    REQUIRE(a.grad().to_vector<double>() == Vec{36, 42});
    REQUIRE(h.version() > 0);
  }
}

TEST_CASE("in place on a leaf that requires grad is refused, allowed under NoGradGuard", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor w = f64(d, {1, 2}).requires_grad_();
    REQUIRE_THROWS_WITH(w.add_(1.0), Catch::Contains("leaf tensor that requires grad"));
    {
      NoGradGuard g;
      w.add_(1.0);
    }
    REQUIRE(w.to_vector<double>() == Vec{2, 3});
  }
}

TEST_CASE("anomaly mode names the op whose backward produced NaN", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f64(d, {0.0, 1.0}).requires_grad_();
    Tensor y = sum(sqrt(a));  // d sqrt(x)/dx at 0 is inf
    {
      DetectAnomalyGuard guard;
      REQUIRE_THROWS_WITH(y.backward(Tensor(), true), Catch::Contains("sqrt") && Catch::Contains("NaN or Inf"));
    }
    a.zero_grad();
    y.backward();  // without anomaly mode the inf just flows
    REQUIRE(std::isinf(at(a.grad(), 0)));
  }
}

namespace {
struct Cube : Function<Cube> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    ctx->save_for_backward({x});
    return mul(mul(x, x), x);
  }
  static TensorList backward(AutogradContext* ctx, const TensorList& grads) {
    Tensor x = ctx->saved()[0];
    return {mul(mul(grads[0], mul(x, x)), 3.0)};
  }
};

struct ScaleBy : Function<ScaleBy> {
  static TensorList forward(AutogradContext* ctx, const Tensor& x, double k, const Tensor& y) {
    ctx->data["k"] = k;
    return {mul(x, k), mul(y, k)};
  }
  static TensorList backward(AutogradContext* ctx, const TensorList& grads) {
    double k = std::any_cast<double>(ctx->data.at("k"));
    return {mul(grads[0], k), mul(grads[1], k)};
  }
};
}  // namespace

TEST_CASE("custom functions: forward, backward, saved tensors, several outputs", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = f64(d, {1, 2}).requires_grad_();
    Tensor y = Cube::apply(x);
    REQUIRE(y.requires_grad());
    REQUIRE(y.grad_fn()->name() == "(anonymous namespace)::Cube");
    sum(y).backward();
    REQUIRE(x.grad().to_vector<double>() == Vec{3, 12});
    REQUIRE(gradcheck_on(d, [](const TensorList& in) { return Cube::apply(in[0]); },
                         {f64(kCPU, {0.3, -0.7}).requires_grad_()}));

    Tensor p = f64(d, {1}).requires_grad_(), q = f64(d, {2}).requires_grad_();
    TensorList outs = ScaleBy::apply(p, 5.0, q);
    add(outs[0], mul(outs[1], 2.0)).sum().backward();
    REQUIRE(at(p.grad(), 0) == 5.0);
    REQUIRE(at(q.grad(), 0) == 10.0);
  }
}

TEST_CASE("custom function saved tensors are version checked", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = f64(d, {1, 2}).requires_grad_();
    Tensor h = mul(x, 1.0);
    Tensor y = Cube::apply(h);
    h.add_(1.0);
    REQUIRE_THROWS_WITH(sum(y).backward(), Catch::Contains("modified by an in-place operation"));
  }
}

TEST_CASE("gradcheck catches a wrong backward", "[autograd]") {
  struct Wrong : Function<Wrong> {
    static Tensor forward(AutogradContext*, const Tensor& x) { return mul(x, x); }
    static TensorList backward(AutogradContext*, const TensorList& g) { return {g[0]}; }  // should be 2x g
  };
  Tensor x = f64(kCPU, {0.5, 1.5}).requires_grad_();
  auto fn = [](const TensorList& in) { return Wrong::apply(in[0]); };
  REQUIRE_THROWS_WITH(gradcheck(fn, {x}), Catch::Contains("Jacobian mismatch"));
  GradcheckOptions quiet;
  quiet.raise = false;
  REQUIRE_FALSE(gradcheck(fn, {x}, quiet));
  REQUIRE_THROWS_WITH(gradcheck(fn, {from_vector(std::vector<float>{1}).requires_grad_()}),
                      Catch::Contains("float64"));
}

TEST_CASE("a backward returning the wrong shape is reported with the op's name", "[autograd][device]") {
  struct BadShape : Function<BadShape> {
    static Tensor forward(AutogradContext*, const Tensor& x) { return mul(x, 2.0); }
    static TensorList backward(AutogradContext*, const TensorList& g) { return {sum(g[0])}; }
  };
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = f64(d, {1, 2}).requires_grad_();
    REQUIRE_THROWS_WITH(sum(BadShape::apply(x)).backward(), Catch::Contains("BadShape") && Catch::Contains("shape"));
  }
}

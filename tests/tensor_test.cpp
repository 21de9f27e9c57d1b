// The tensor itself: creation, views sharing storage, copies, joins,
// elementwise math with broadcasting, reductions, indexing, random numbers
// and printing. Every case tagged [device] runs once per test device
// (tests/test_devices.h): the CPU, and cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <heed.h>
#include "tensor/cpu/parallel.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using namespace heed::test;

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST_CASE("creation: zeros, ones, full, arange, from_vector", "[tensor][device]") {
  REQUIRE(zeros({2, 3}).device() == kCPU);  // the default
  FOR_EACH_TEST_DEVICE(d) {
    Tensor z = zeros({2, 3}, DType::Float32, d);
    REQUIRE(z.shape() == Shape{2, 3});
    REQUIRE(z.dtype() == DType::Float32);
    REQUIRE(z.device() == d);
    REQUIRE(z.is_contiguous());
    REQUIRE(vals(z) == std::vector<float>(6, 0.0f));
    REQUIRE(vals(ones({4}, DType::Float32, d)) == std::vector<float>(4, 1.0f));
    REQUIRE(full({2}, 7.5, DType::Float64, d).to_vector<double>() == Vec{7.5, 7.5});
    REQUIRE(arange(5, DType::Int64, d).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
    REQUIRE(arange(1.0, 2.0, 0.25, DType::Float32, d).to_vector<float>() == std::vector<float>{1, 1.25, 1.5, 1.75});
    Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(t.shape() == Shape{2, 3});
    REQUIRE(t.numel() == 6);
    REQUIRE(scalar_tensor(3.0, DType::Float32, d).dim() == 0);
    REQUIRE(scalar_tensor(3.0, DType::Float32, d).item<float>() == 3.0f);
    Tensor b = from_vector(std::vector<bool>{true, false}, {2}, d);
    REQUIRE(b.dtype() == DType::Bool);
    REQUIRE(b.device() == d);
  }
}

TEST_CASE("views share storage and need no copy", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor t = f32(d, {0, 1, 2, 3, 4, 5}, {2, 3});
    Tensor tt = t.t();
    REQUIRE(tt.shape() == Shape{3, 2});
    REQUIRE(tt.device() == d);
    REQUIRE_FALSE(tt.is_contiguous());
    REQUIRE(tt.raw_data() == t.raw_data());
    REQUIRE(vals(tt) == std::vector<float>{0, 3, 1, 4, 2, 5});
    REQUIRE(vals(t.view({3, 2})) == std::vector<float>{0, 1, 2, 3, 4, 5});
    REQUIRE(vals(t.reshape({-1})) == std::vector<float>{0, 1, 2, 3, 4, 5});
    REQUIRE(vals(tt.reshape({6})) == std::vector<float>{0, 3, 1, 4, 2, 5});  // copies when it must
    REQUIRE(vals(t.narrow(1, 1, 2)) == std::vector<float>{1, 2, 4, 5});
    REQUIRE(vals(t.slice(1, 0, 3, 2)) == std::vector<float>{0, 2, 3, 5});
    REQUIRE(vals(t.select(0, 1)) == std::vector<float>{3, 4, 5});
    REQUIRE(vals(t.select(1, -1)) == std::vector<float>{2, 5});
    REQUIRE(t.unsqueeze(0).shape() == Shape{1, 2, 3});
    REQUIRE(t.unsqueeze(-1).shape() == Shape{2, 3, 1});
    REQUIRE(t.unsqueeze(0).squeeze().shape() == Shape{2, 3});
    REQUIRE(t.permute({1, 0}).strides() == Shape{1, 3});
    Tensor e = f32(d, {1, 2}, {2, 1}).expand({2, 3});
    REQUIRE(e.strides()[1] == 0);
    REQUIRE(vals(e) == std::vector<float>{1, 1, 1, 2, 2, 2});
    // Writing through a view changes the base.
    Tensor row = t.select(0, 0);
    row.fill_(9);
    REQUIRE(vals(t) == std::vector<float>{9, 9, 9, 3, 4, 5});
    REQUIRE(t.version() == row.version());
    // To the CPU and back; a strided view copied across dtypes.
    REQUIRE(t.to(kCPU).to(d).to_vector<float>() == vals(t));
    Tensor dst = zeros({3, 2}, DType::Float64, d);
    dst.copy_(tt);
    REQUIRE(dst.to_vector<double>() == Vec{9, 3, 9, 4, 9, 5});
  }
}

TEST_CASE("contiguous, clone, dtype conversion", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor t = f32(d, {1, 2, 3, 4}, {2, 2}).t();
    Tensor c = t.contiguous();
    REQUIRE(c.is_contiguous());
    REQUIRE(c.raw_data() != t.raw_data());
    REQUIRE(vals(c) == std::vector<float>{1, 3, 2, 4});
    Tensor same = c.contiguous();
    REQUIRE(same.raw_data() == c.raw_data());
    Tensor k = c.clone();
    k.fill_(0);
    REQUIRE(vals(c) == std::vector<float>{1, 3, 2, 4});
    REQUIRE(f32(d, {1.7f, -2.2f}).to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2});
    REQUIRE(f32(d, {0, 3}).to(DType::Bool).to_vector<bool>() == std::vector<bool>{false, true});
    REQUIRE(f32(d, {0.5f}).to(DType::Float64).device() == d);
  }
}

TEST_CASE("cat, stack, split, chunk", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f32(d, {1, 2, 3, 4}, {2, 2}), b = f32(d, {5, 6}, {2, 1});
    REQUIRE(vals(cat({a, b}, 1)) == std::vector<float>{1, 2, 5, 3, 4, 6});
    REQUIRE(vals(cat({a, a.t()}, 0)) == std::vector<float>{1, 2, 3, 4, 1, 3, 2, 4});
    Tensor s = stack({a, a}, 0);
    REQUIRE(s.shape() == Shape{2, 2, 2});
    TensorList parts = split(arange(5, DType::Int64, d), 2);
    REQUIRE(parts.size() == 3);
    REQUIRE(parts[2].to_vector<int64_t>() == std::vector<int64_t>{4});
    TensorList chunks = chunk(arange(6, DType::Int64, d), 3);
    REQUIRE(chunks.size() == 3);
    REQUIRE(chunks[1].to_vector<int64_t>() == std::vector<int64_t>{2, 3});
  }
}

TEST_CASE("elementwise math with broadcasting", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f32(d, {1, 2, 3}, {3, 1}), b = f32(d, {10, 20}, {2});
    Tensor s = a + b;
    REQUIRE(s.shape() == Shape{3, 2});
    REQUIRE(vals(s) == std::vector<float>{11, 21, 12, 22, 13, 23});
    REQUIRE(vals(a * 2.0 - 1.0) == std::vector<float>{1, 3, 5});
    REQUIRE(vals(1.0 - a) == std::vector<float>{0, -1, -2});
    REQUIRE(vals(b / a).size() == 6);
    REQUIRE(vals(relu(f32(d, {-1, 0, 2}))) == std::vector<float>{0, 0, 2});
    REQUIRE(vals(clamp(f32(d, {-5, 0.5, 5}), -1, 1)) == std::vector<float>{-1, 0.5, 1});
    REQUIRE(vals(abs(f32(d, {-2, 3}))) == std::vector<float>{2, 3});
    REQUIRE(vals(maximum(f32(d, {1, 5}), f32(d, {3}))) == std::vector<float>{3, 5});
    REQUIRE(exp(f32(d, {1})).item<float>() == Approx(std::exp(1.0f)));
    REQUIRE(gelu(f32(d, {1})).item<float>() == Approx(0.8413447f));
    REQUIRE(gelu(f32(d, {1}), GeluApprox::Tanh).item<float>() == Approx(0.8411920f));
    std::vector<float> sg = vals(sigmoid(f32(d, {-100, 0, 100})));
    REQUIRE((sg[0] >= 0 && sg[0] < 1e-30f && sg[1] == 0.5f && sg[2] == 1.0f));
    Tensor m = f32(d, {1, 2, 3}) > 1.5;
    REQUIRE(m.dtype() == DType::Bool);
    REQUIRE(m.device() == d);
    REQUIRE(m.to_vector<bool>() == std::vector<bool>{false, true, true});
    REQUIRE(vals(where(m, f32(d, {1, 1, 1}), f32(d, {0}))) == std::vector<float>{0, 1, 1});
    REQUIRE(vals(masked_fill(f32(d, {1, 2, 3}), m, -1)) == std::vector<float>{1, -1, -1});
    REQUIRE((!m).to_vector<bool>() == std::vector<bool>{true, false, false});
    REQUIRE((arange(4, DType::Int64, d) * 3.0).to_vector<int64_t>() == std::vector<int64_t>{0, 3, 6, 9});
    REQUIRE((i64(d, {7, -7}) / i64(d, {2, 2})).to_vector<int64_t>() == std::vector<int64_t>{3, -3});
    REQUIRE_FALSE(any_non_finite(f32(d, {1, 2})));
    REQUIRE(any_non_finite(f32(d, {1, kInf})));
  }
}

TEST_CASE("in-place ops write through and bump the version", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor t = f32(d, {1, 2, 3});
    uint64_t v = t.version();
    t.add_(f32(d, {1}));
    t.mul_(2.0);
    REQUIRE(vals(t) == std::vector<float>{4, 6, 8});
    REQUIRE(t.version() == v + 2);
    t.sub_(f32(d, {1, 1, 1})).div_(f32(d, {2}));
    REQUIRE(vals(t) == std::vector<float>{1.5, 2.5, 3.5});
    t.masked_fill_(t > 2.0, 0);
    REQUIRE(vals(t) == std::vector<float>{1.5, 0, 0});
    t.copy_(tensor({7}));  // from the host, broadcast
    REQUIRE(vals(t) == std::vector<float>{7, 7, 7});
    Tensor wide = zeros({3}, DType::Float64, d);
    wide.copy_(f32(d, {1, 2, 3}));  // copies across dtypes
    REQUIRE(wide.to_vector<double>() == Vec{1, 2, 3});
    t.zero_();
    REQUIRE(vals(t) == std::vector<float>{0, 0, 0});
    // In place into a strided view.
    Tensor base = zeros({2, 3}, DType::Float32, d);
    base.t().select(0, 1).add_(f32(d, {5, 6}));
    REQUIRE(vals(base) == std::vector<float>{0, 5, 0, 0, 6, 0});
  }
}

TEST_CASE("in-place ops without autograd write straight into the tensor, with the out-of-place bits", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator gen(7);
    const Tensor x0 = randn({37, 37}, &gen).to(d), y = randn({37, 37}, &gen).to(d), row = randn({37}, &gen).to(d);
    auto same_bits = [](const Tensor& a, const Tensor& b) {
      REQUIRE(a.shape() == b.shape());
      REQUIRE(a.to_vector<float>() == b.to_vector<float>());
    };
    NoGradGuard no_grad;
    Tensor t = clone(x0);
    const void* storage = t.raw_data();
    t.add_(y, -0.75).sub_(row).mul_(y).div_(add(row, 10.0)).add_(0.5).mul_(3.0);
    same_bits(t, mul(add(div(mul(sub(add(x0, y, -0.75), row), y), add(row, 10.0)), 0.5), 3.0));
    REQUIRE(t.raw_data() == storage);
    // The tensor itself as the operand, in its own layout: read, then written.
    Tensor u = clone(x0);
    u.add_(u).mul_(u);
    same_bits(u, mul(add(x0, x0), add(x0, x0)));
    // An operand overlapping it in another layout (its transpose) is read
    // before anything is written, as out of place.
    Tensor v = clone(x0);
    v.add_(v.t(), 2.0);
    same_bits(v, add(x0, x0.t(), 2.0));
    Tensor w = clone(x0);
    w.sub_(w.t());
    same_bits(w, sub(x0, x0.t()));
    // A failing integer division leaves the tensor as it was.
    Tensor n = from_vector<int64_t>({6, 8, 9}, {3}, d);
    REQUIRE_THROWS_WITH(n.div_(from_vector<int64_t>({2, 0, 3}, {3}, d)), Catch::Matchers::Contains("division by zero"));
    REQUIRE(n.to_vector<int64_t>() == std::vector<int64_t>{6, 8, 9});
    // Integers go straight in too, with the out-of-place wrap-around.
    Tensor k = from_vector<int64_t>({INT64_MAX, 2}, {2}, d);
    k.add_(from_vector<int64_t>({1, 3}, {2}, d)).mul_(2.0);
    REQUIRE(k.to_vector<int64_t>() == std::vector<int64_t>{0, 10});
  }
}

TEST_CASE("lerp and lerp_: torch.lerp's formula, both ends exact, broadcasting, float dtypes", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    REQUIRE(vals(lerp(f32(d, {0, 1, 2}), f32(d, {10, 11, 12}), 0.25)) == std::vector<float>{2.5, 3.5, 4.5});
    // start + w (end - start) rounds away from end at w = 1; the formula
    // switches to end - (end - start)(1 - w) at w >= 0.5, so both ends are exact.
    const Tensor s = f32(d, {0.1f, -3e-8f, 7.0f}), e = f32(d, {1e7f, 1.0f, -2.5e-3f});
    REQUIRE(vals(lerp(s, e, 0.0)) == vals(s));
    REQUIRE(vals(lerp(s, e, 1.0)) == vals(e));
    REQUIRE(lerp(f32(d, {1, 2, 3, 4, 5, 6}, {2, 3}), f32(d, {1, 1, 1}), 0.5).shape() == Shape{2, 3});
    REQUIRE(lerp(zeros({2, 1}, DType::Float64, d), ones({3}, DType::Float64, d), 0.75).to_vector<double>() ==
            Vec(6, 0.75));
    REQUIRE(lerp(zeros({2}, DType::BFloat16, d), ones({2}, DType::BFloat16, d), 0.5).to(DType::Float32).to_vector<float>() ==
            std::vector<float>{0.5, 0.5});
    REQUIRE_THROWS_WITH(lerp(arange(3, DType::Int64, d), arange(3, DType::Int64, d), 0.5),
                        Catch::Matchers::Contains("lerp") && Catch::Matchers::Contains("float"));
    REQUIRE_THROWS_WITH(lerp(f32(d, {1, 2}), f32(d, {1, 2, 3}), 0.5), Catch::Matchers::Contains("lerp"));

    // In place: the out-of-place bits, in the tensor's own memory, the version bumped.
    Generator gen(3);
    const Tensor a = randn({41, 29}, &gen).to(d), b = randn({29, 41}, &gen).to(d).t();  // a strided end
    Tensor t = clone(a);
    const uint64_t version = t.version();
    const void* storage = t.raw_data();
    {
      NoGradGuard no_grad;
      t.lerp_(b, 0.002);
    }
    REQUIRE(t.to_vector<float>() == lerp(a, b, 0.002).to_vector<float>());
    REQUIRE(t.raw_data() == storage);
    REQUIRE(t.version() == version + 1);
    Tensor sq = randn({9, 9}, &gen).to(d), sq0 = clone(sq);
    {
      NoGradGuard no_grad;
      sq.lerp_(sq.t(), 0.7);  // overlaps itself in another layout
    }
    REQUIRE(sq.to_vector<float>() == lerp(sq0, sq0.t(), 0.7).to_vector<float>());
    Tensor narrow = zeros({3}, DType::Float32, d);
    REQUIRE_THROWS_WITH(narrow.lerp_(ones({3}, DType::Float64, d), 0.5), Catch::Matchers::Contains("lerp") && Catch::Matchers::Contains("different dtypes"));
  }
}

TEST_CASE("reductions over any dims with keepdim", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor t = f32(d, {1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(sum(t).item<float>() == 21);
    REQUIRE(sum(t).dim() == 0);
    REQUIRE(sum(t).device() == d);
    REQUIRE(vals(sum(t, {0})) == std::vector<float>{5, 7, 9});
    REQUIRE(sum(t, {1}, true).shape() == Shape{2, 1});
    REQUIRE(vals(sum(t.t(), {1})) == std::vector<float>{5, 7, 9});
    REQUIRE(vals(mean(t, {1})) == std::vector<float>{2, 5});
    REQUIRE(var(t, {1}).to_vector<float>() == std::vector<float>{1, 1});
    REQUIRE(var(t, {1}, 0).to_vector<float>()[0] == Approx(2.0 / 3.0));
    REQUIRE(max(t).item<float>() == 6);
    REQUIRE(min(t).item<float>() == 1);
    auto [values, indices] = max(t, 1);
    REQUIRE(vals(values) == std::vector<float>{3, 6});
    REQUIRE(indices.to_vector<int64_t>() == std::vector<int64_t>{2, 2});
    REQUIRE(argmax(t, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1});
    REQUIRE(argmax(t).item<int64_t>() == 5);
    REQUIRE(argmin(f32(d, {3, 1, 1}), 0).item<int64_t>() == 1);  // first of ties
    REQUIRE(logsumexp(t, {1}).to_vector<float>()[0] == Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0))));
    REQUIRE(sum(f32(d, {1, 2}) > 0.0).item<int64_t>() == 2);  // bools count into int64
    // Many blocks: 0 + 1 + ... + 99999.
    REQUIRE(sum(arange(0.0, 100000.0, 1.0, DType::Float64, d)).item<double>() == 4999950000.0);
  }
}

TEST_CASE("softmax is stable and a fully masked row gives zeros, not NaN", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = f32(d, {1000, 1001, 1002, -kInf, -kInf, -kInf, 0, -kInf, 0}, {3, 3});
    std::vector<float> y = vals(softmax(x, 1));
    REQUIRE(y[0] + y[1] + y[2] == Approx(1.0f));
    REQUIRE(y[3] == 0.0f);
    REQUIRE(y[4] == 0.0f);
    REQUIRE(y[5] == 0.0f);
    REQUIRE(y[6] == Approx(0.5f));
    REQUIRE(y[7] == 0.0f);
    std::vector<float> l = vals(log_softmax(x, 1));
    REQUIRE(std::isinf(l[3]));
    REQUIRE(l[6] == Approx(std::log(0.5f)));
    // The gradient through a fully masked row is zero, not NaN.
    Tensor xr = x.clone().requires_grad_();
    sum(mul(softmax(xr, 1), f32(d, {1, 2, 3}))).backward();
    REQUIRE(xr.grad().device() == d);
    for (float g : vals(xr.grad())) REQUIRE(std::isfinite(g));
    REQUIRE(vals(xr.grad())[3] == 0.0f);
    // softmax over a non-last dim: the columns sum to 1, exactly on the CPU
    // (a GPU's exp and division may round differently).
    Tensor columns = sum(softmax(f32(d, {1, 2, 3, 4}, {2, 2}), 0), {0});
    if (d.is_cpu())
      REQUIRE(vals(columns) == std::vector<float>{1, 1});
    else
      require_close(columns, {1, 1}, 1e-6);
  }
}

TEST_CASE("matmul: matrices, batches with broadcasting, vectors, strided operands", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor a = f32(d, {1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = f32(d, {1, 0, 0, 1, 1, 1}, {3, 2});
    REQUIRE(vals(matmul(a, b)) == std::vector<float>{4, 5, 10, 11});
    REQUIRE(vals(matmul(a, a.t())) == std::vector<float>{14, 32, 32, 77});
    Tensor batch = stack({a, a * 2.0});  // [2, 2, 3]
    REQUIRE(matmul(batch, b).shape() == Shape{2, 2, 2});
    REQUIRE(vals(matmul(batch, b))[4] == 8);
    REQUIRE(matmul(f32(d, {1, 1, 1}), b).shape() == Shape{2});
    REQUIRE(vals(matmul(a, f32(d, {1, 1, 1}))) == std::vector<float>{6, 15});
    REQUIRE(matmul(f32(d, {1, 2}), f32(d, {3, 4})).item<float>() == 11);
    REQUIRE(vals(matmul(a.slice(1, 0, 3, 2), b.slice(0, 0, 3, 2))) == std::vector<float>{4, 3, 10, 6});
    Generator g(1);
    Tensor big = randn({4, 1, 5, 7}, &g).to(d), rhs = randn({3, 7, 2}, &g).to(d);
    Tensor prod = matmul(big, rhs);
    REQUIRE(prod.shape() == Shape{4, 3, 5, 2});
    // Entry [2, 1, 3, 0] written out.
    std::vector<float> bv = vals(big), rv = vals(rhs);
    double e = 0;
    for (int k = 0; k < 7; ++k) e += double(bv[(2 * 5 + 3) * 7 + k]) * rv[(1 * 7 + k) * 2 + 0];
    REQUIRE(vals(prod)[((2 * 3 + 1) * 5 + 3) * 2 + 0] == Approx(e).margin(1e-5));
  }
}

TEST_CASE("indexing: index_select, gather, scatter_add, embedding, one_hot", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor t = f32(d, {1, 2, 3, 4, 5, 6}, {3, 2});
    REQUIRE(vals(index_select(t, 0, i64(d, {2, 0}))) == std::vector<float>{5, 6, 1, 2});
    Tensor idx = i64(d, {1, 0, 0}, {3, 1});
    REQUIRE(vals(gather(t, 1, idx)) == std::vector<float>{2, 3, 5});
    Tensor acc =
        scatter_add(zeros({2, 2}, DType::Float32, d), 0, i64(d, {1, 1, 0}, {3, 1}), ones({3, 1}, DType::Float32, d));
    REQUIRE(vals(acc) == std::vector<float>{1, 0, 2, 0});
    Tensor added = index_add(zeros({3, 2}, DType::Float32, d), 0, i64(d, {2, 2, 0}), t);
    REQUIRE(vals(added) == std::vector<float>{5, 6, 0, 0, 4, 6});
    Tensor ids = i64(d, {2, 2, 0}, {1, 3});
    Tensor e = embedding(t, ids);
    REQUIRE(e.shape() == Shape{1, 3, 2});
    REQUIRE(vals(e) == std::vector<float>{5, 6, 5, 6, 1, 2});
    REQUIRE(vals(one_hot(i64(d, {1, 0}), 3)) == std::vector<float>{0, 1, 0, 1, 0, 0});
    REQUIRE_THROWS_AS(index_select(t, 0, i64(d, {3})), Error);
    REQUIRE_THROWS_AS(embedding(t, i64(d, {-1})), Error);
  }
}

TEST_CASE("random numbers: reproducible from a seed, independent of threads", "[tensor][random][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g1(42), g2(42);
    std::vector<float> a = vals(randn({1000}, &g1, DType::Float32, d)), b = vals(randn({1000}, &g2, DType::Float32, d));
    REQUIRE(a == b);
    REQUIRE(vals(randn({1000}, &g1, DType::Float32, d)) != a);  // the generator moves on
    REQUIRE(g1.offset() == 1000);  // 1000 normals take 2 words each: 500 blocks a draw
    int threads = cpu::num_threads();
    Generator g3(42);
    cpu::set_num_threads(1);
    std::vector<float> single = vals(randn({1000}, &g3, DType::Float32, d));
    cpu::set_num_threads(threads);
    REQUIRE(single == a);
    // Uniform and Bernoulli streams are bit-identical to the CPU's.
    Generator gc(3), gd(3);
    REQUIRE(vals(rand({1001}, &gd, DType::Float32, d)) == vals(rand({1001}, &gc)));
    REQUIRE(bernoulli({999}, 0.3, &gd, DType::Bool, d).to_vector<bool>() ==
            bernoulli({999}, 0.3, &gc, DType::Bool).to_vector<bool>());
    // Sensible distributions.
    Generator g(7);
    Tensor u = rand({20000}, &g, DType::Float32, d);
    REQUIRE(mean(u).item<float>() == Approx(0.5).margin(0.01));
    REQUIRE(min(u).item<float>() >= 0.0f);
    REQUIRE(max(u).item<float>() < 1.0f);
    Tensor n = randn({20000}, &g, DType::Float32, d);
    REQUIRE(mean(n).item<float>() == Approx(0.0).margin(0.03));
    REQUIRE(var(n).item<float>() == Approx(1.0).margin(0.05));
    Tensor m = bernoulli({20000}, 0.3, &g, DType::Bool, d);
    REQUIRE(sum(m).item<int64_t>() == Approx(6000).margin(300));
    manual_seed(5);
    std::vector<float> d1 = vals(rand({8}, nullptr, DType::Float32, d));
    manual_seed(5);
    REQUIRE(vals(rand({8}, nullptr, DType::Float32, d)) == d1);
  }
}

TEST_CASE("printing with fmt", "[tensor]") {
  REQUIRE(fmt::format("{}", tensor({1, 2.5}, {2})) == "tensor([1.0000, 2.5000])");
  REQUIRE(fmt::format("{}", arange(3)) == "tensor([0, 1, 2], dtype=int64)");
  std::string two_d = fmt::format("{}", tensor({1, 2, 3, 4}, {2, 2}));
  REQUIRE(two_d == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]])");
  std::string big = fmt::format("{}", zeros({2000}));
  REQUIRE(big.find("...") != std::string::npos);
  REQUIRE(fmt::format("{}", Tensor()) == "tensor(undefined)");
  Tensor r = tensor({1}).requires_grad_();
  REQUIRE(fmt::format("{}", r).find("requires_grad=true") != std::string::npos);
}

TEST_CASE("results are bit-identical for any thread count", "[tensor][determinism]") {
  Generator g(3);
  Tensor a = randn({67, 129}, &g), b = randn({129, 93}, &g);
  auto run = [&] {
    Tensor h = softmax(matmul(a, b), 1);
    return std::make_pair(vals(sum(h, {0})), sum(mul(a, a)).item<float>());
  };
  int threads = cpu::num_threads();
  cpu::set_num_threads(1);
  auto one = run();
  cpu::set_num_threads(2);
  auto two = run();
  cpu::set_num_threads(3);
  auto three = run();
  cpu::set_num_threads(threads);
  REQUIRE(one == two);
  REQUIRE(one == three);
}

TEST_CASE("Tensors with no elements are contiguous and survive views and copies", "[tensor][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor e = zeros({2, 0, 3}, DType::Float32, d);
    REQUIRE(e.numel() == 0);
    REQUIRE(e.is_contiguous());
    REQUIRE(e.transpose(0, 2).contiguous().shape() == Shape{3, 0, 2});
    REQUIRE(e.reshape({0, 6}).shape() == Shape{0, 6});
    REQUIRE(cat({e, zeros({2, 1, 3}, DType::Float32, d)}, 1).shape() == Shape{2, 1, 3});
    REQUIRE(sum(e).item<float>() == 0.0f);
    REQUIRE(vals(sum(e, {1})) == std::vector<float>(6, 0.0f));
    REQUIRE(vals(matmul(zeros({2, 0}, DType::Float32, d), zeros({0, 3}, DType::Float32, d))) ==
            std::vector<float>(6, 0.0f));
  }
}

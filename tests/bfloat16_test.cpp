// bfloat16: the storage type's rounding, casts to and from every dtype,
// creation, printing, HDF5, and every CPU kernel against float32. The rule
// (tensor/backend.h) is "compute in float32, round once on store", so a
// bfloat16 kernel must give exactly float32's result on the widened inputs,
// rounded: the tests below compare bit for bit, strided inputs included.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include <unistd.h>

#include <heed.h>
#include "tensor/cpu/cpu_backend.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

constexpr DType kBF16 = DType::BFloat16;

float round_bf16(float v) { return float(bfloat16(v)); }

// x's values as float (exact for bfloat16).
std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }

// bf16 values with a spread of magnitudes and signs, made by rounding floats.
Tensor bf16_values(const Shape& shape, uint64_t seed, double scale = 2.0) {
  Generator gen(seed);
  return to_dtype(mul(randn(shape, &gen), scale), kBF16);
}

// f on a bfloat16 tensor equals f on its float32 widening, rounded to bfloat16.
template <class F>
void require_float32_rounded(const TensorList& inputs, F&& f) {
  TensorList widened;
  for (const Tensor& t : inputs) widened.push_back(t.dtype() == kBF16 ? to_dtype(t, DType::Float32) : t);
  Tensor got = f(inputs);
  Tensor want32 = f(widened);
  if (want32.dtype() == DType::Float32) {
    REQUIRE(got.dtype() == kBF16);
    REQUIRE(got.shape() == want32.shape());
    std::vector<float> g = vals(got), w = vals(want32);
    for (size_t i = 0; i < g.size(); ++i) {
      INFO("element " << i << ": got " << g[i] << ", float32 " << w[i]);
      if (std::isnan(w[i])) REQUIRE(std::isnan(g[i]));
      else REQUIRE(g[i] == round_bf16(w[i]));
    }
  } else {  // bool or int64 results: equal
    REQUIRE(got.dtype() == want32.dtype());
    REQUIRE(to_dtype(got, DType::Float64).to_vector<double>() == to_dtype(want32, DType::Float64).to_vector<double>());
  }
}

}  // namespace

TEST_CASE("bfloat16 rounds to nearest even and keeps float32's range", "[bfloat16]") {
  REQUIRE(sizeof(bfloat16) == 2);
  REQUIRE(float(bfloat16(1.0f)) == 1.0f);
  REQUIRE(float(bfloat16(-2.5f)) == -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  REQUIRE(float(bfloat16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6.
  REQUIRE(float(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
  // Just above halfway rounds up.
  REQUIRE(float(bfloat16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f))) == 1.0f + std::ldexp(1.0f, -7));
  REQUIRE(bfloat16(1.0f).bits == 0x3f80);
  // float32's largest values round to infinity; the largest bf16 is 3.39e38.
  REQUIRE(std::isinf(float(bfloat16(std::numeric_limits<float>::max()))));
  REQUIRE(float(std::numeric_limits<bfloat16>::max()) == 0x1.fep127f);
  REQUIRE(float(bfloat16(1e30f)) == Approx(1e30f).epsilon(1.0 / 128));
  // NaN stays NaN (quiet), infinities and signed zeros stay.
  REQUIRE(std::isnan(float(bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  REQUIRE(std::isnan(float(bfloat16(std::numeric_limits<float>::signaling_NaN()))));
  REQUIRE(float(bfloat16(std::numeric_limits<float>::infinity())) == std::numeric_limits<float>::infinity());
  REQUIRE(std::signbit(float(bfloat16(-0.0f))));
  // Subnormals keep their top bits.
  REQUIRE(float(bfloat16(std::ldexp(1.0f, -130))) == std::ldexp(1.0f, -130));
  // Every bf16 value survives float and back.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const bfloat16 h = bfloat16::from_bits(static_cast<uint16_t>(b));
    const float f = h;
    if (std::isnan(f)) continue;
    REQUIRE(bfloat16(f).bits == h.bits);
  }
}

TEST_CASE("bfloat16 tensors: creation, casts to and from every dtype, printing", "[bfloat16]") {
  REQUIRE(dtype_name(kBF16) == std::string("bfloat16"));
  REQUIRE(dtype_size(kBF16) == 2);
  REQUIRE(is_floating(kBF16));
  REQUIRE(compute_dtype(kBF16) == DType::Float32);
  REQUIRE(vals(zeros({3}, kBF16)) == std::vector<float>{0, 0, 0});
  REQUIRE(vals(ones({2}, kBF16)) == std::vector<float>{1, 1});
  REQUIRE(vals(full({2}, 0.1, kBF16)) == std::vector<float>{round_bf16(0.1f), round_bf16(0.1f)});
  REQUIRE(vals(arange(0.0, 2.0, 0.5, kBF16)) == std::vector<float>{0, 0.5, 1, 1.5});
  REQUIRE(from_vector(std::vector<bfloat16>{1.5f, -2.0f}).dtype() == kBF16);
  REQUIRE(scalar_tensor(3.0, kBF16).item<float>() == 3.0f);

  // Random: float32's samples of the same stream, rounded.
  for (int dist = 0; dist < 3; ++dist) {
    Generator g32(7), g16(7);
    Tensor a, b;
    if (dist == 0) a = rand({100}, &g32), b = rand({100}, &g16, kBF16);
    if (dist == 1) a = randn({100}, &g32), b = randn({100}, &g16, kBF16);
    if (dist == 2) a = bernoulli({100}, 0.3, &g32), b = bernoulli({100}, 0.3, &g16, kBF16);
    REQUIRE(b.dtype() == kBF16);
    std::vector<float> av = vals(a), bv = vals(b);
    for (size_t i = 0; i < av.size(); ++i) REQUIRE(bv[i] == round_bf16(av[i]));
  }

  // To and from every dtype.
  Tensor f = from_vector(std::vector<float>{-3.7f, -1.0f, 0.0f, 0.4f, 2.5f, 300.2f});
  Tensor h = to_dtype(f, kBF16);
  REQUIRE(vals(h) == std::vector<float>{round_bf16(-3.7f), -1.0f, 0.0f, round_bf16(0.4f), 2.5f, round_bf16(300.2f)});
  REQUIRE(to_dtype(h, DType::Float64).to_vector<double>()[3] == double(round_bf16(0.4f)));
  REQUIRE(to_dtype(h, DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{-3, -1, 0, 0, 2, 300});
  REQUIRE(to_dtype(h, DType::Bool).to_vector<bool>() == std::vector<bool>{true, true, false, true, true, true});
  REQUIRE(to_dtype(clamp(abs(h), 0, 255), DType::UInt8).to_vector<uint8_t>() == std::vector<uint8_t>{3, 1, 0, 0, 2, 255});
  REQUIRE(vals(to_dtype(from_vector(std::vector<int64_t>{257, -3}), kBF16)) == std::vector<float>{256, -3});
  REQUIRE(vals(to_dtype(from_vector(std::vector<bool>{true, false}), kBF16)) == std::vector<float>{1, 0});
  REQUIRE(vals(to_dtype(from_vector(std::vector<uint8_t>{255, 7}), kBF16)) == std::vector<float>{255, 7});
  REQUIRE(vals(to_dtype(from_vector(std::vector<double>{1.0 / 3}), kBF16)) == std::vector<float>{round_bf16(1.0f / 3)});
  // A transposed copy of a bf16 tensor.
  Tensor m = to_dtype(arange(0.0, 6.0, 1.0, DType::Float32), kBF16).reshape({2, 3});
  REQUIRE(vals(contiguous(m.t())) == std::vector<float>{0, 3, 1, 4, 2, 5});

  // Printing names the dtype.
  REQUIRE(fmt::format("{}", to_dtype(tensor({1.5f, -2.0f}), kBF16)) == "tensor([1.5000, -2.0000], dtype=bfloat16)");

  // Mixing dtypes stays an error.
  REQUIRE_THROWS_WITH(add(h, f), Contains("bfloat16") && Contains("float32"));
}

TEST_CASE("bfloat16 elementwise kernels give float32's results rounded, strided inputs too", "[bfloat16]") {
  Tensor x = bf16_values({6, 7}, 1);
  Tensor y = bf16_values({6, 7}, 2);
  Tensor xt = bf16_values({7, 6}, 3).t();  // strided
  Tensor row = bf16_values({7}, 4);        // broadcast
  Tensor pos = add(abs(x), 0.1);
  using TL = const TensorList&;
  for (const Tensor& a : {x, xt}) {
    require_float32_rounded({a}, [](TL t) { return neg(t[0]); });
    require_float32_rounded({a}, [](TL t) { return exp(t[0]); });
    require_float32_rounded({a}, [](TL t) { return tanh(t[0]); });
    require_float32_rounded({a}, [](TL t) { return sigmoid(t[0]); });
    require_float32_rounded({a}, [](TL t) { return relu(t[0]); });
    require_float32_rounded({a}, [](TL t) { return gelu(t[0]); });
    require_float32_rounded({a}, [](TL t) { return gelu(t[0], GeluApprox::Tanh); });
    require_float32_rounded({a}, [](TL t) { return erf(t[0]); });
    require_float32_rounded({a}, [](TL t) { return sin(t[0]); });
    require_float32_rounded({a}, [](TL t) { return cos(t[0]); });
    require_float32_rounded({a}, [](TL t) { return abs(t[0]); });
    require_float32_rounded({a}, [](TL t) { return sign(t[0]); });
    require_float32_rounded({a}, [](TL t) { return square(t[0]); });
    require_float32_rounded({a}, [](TL t) { return reciprocal(t[0]); });
    require_float32_rounded({a}, [](TL t) { return add(t[0], 0.3); });
    require_float32_rounded({a}, [](TL t) { return mul(t[0], 1.7); });
    require_float32_rounded({a}, [](TL t) { return pow(abs(t[0]), 1.5); });
    require_float32_rounded({a}, [](TL t) { return clamp(t[0], -1.0, 0.5); });
    require_float32_rounded({a}, [](TL t) { return isnonfinite(t[0]); });
    require_float32_rounded({a, y}, [](TL t) { return add(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return sub(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return mul(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return div(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return maximum(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return minimum(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return lt(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return eq(t[0], t[1]); });
    require_float32_rounded({a, row}, [](TL t) { return mul(t[0], t[1]); });
    require_float32_rounded({a, y}, [](TL t) { return where(gt(t[0], t[1]), t[0], t[1]); });
  }
  require_float32_rounded({pos}, [](TL t) { return log(t[0]); });
  require_float32_rounded({pos}, [](TL t) { return sqrt(t[0]); });
  require_float32_rounded({pos}, [](TL t) { return rsqrt(t[0]); });
  require_float32_rounded({pos, y}, [](TL t) { return pow(t[0], t[1]); });
  require_float32_rounded({x}, [](TL t) { return masked_fill(t[0], gt(t[0], zeros_like(t[0])), -1e4); });
  // Integer-valued checks that need no rounding.
  REQUIRE(vals(add(to_dtype(tensor({256}), kBF16), to_dtype(tensor({1}), kBF16))) == std::vector<float>{256});
}

TEST_CASE("bfloat16 reductions, softmax, layer norm and matmul compute in float32 and round once", "[bfloat16]") {
  Tensor x = bf16_values({5, 300}, 5);
  Tensor xt = bf16_values({300, 5}, 6).t();
  using TL = const TensorList&;
  for (const Tensor& a : {x, xt}) {
    require_float32_rounded({a}, [](TL t) { return sum(t[0], {1}); });
    require_float32_rounded({a}, [](TL t) { return sum(t[0], {0}); });
    require_float32_rounded({a}, [](TL t) { return sum(t[0]); });
    require_float32_rounded({a}, [](TL t) { return amax(t[0], {1}); });
    require_float32_rounded({a}, [](TL t) { return amin(t[0], {0}); });
    require_float32_rounded({a}, [](TL t) { return argmax(t[0], 1); });
    require_float32_rounded({a}, [](TL t) { return argmin(t[0], 0); });
    require_float32_rounded({a}, [](TL t) { return softmax(t[0], 1); });
    require_float32_rounded({a}, [](TL t) { return log_softmax(t[0], 1); });
    require_float32_rounded({a}, [](TL t) { return softmax(t[0], 0); });
  }
  // A bf16 sum carries its partial sums wider than bf16: 4096 ones add up to 4096
  // (a bf16 accumulator would stop at 256).
  REQUIRE(vals(sum(ones({4096}, kBF16))) == std::vector<float>{4096});

  Tensor w = bf16_values({300}, 7, 0.5), b = bf16_values({300}, 8, 0.5);
  require_float32_rounded({x, w, b}, [](TL t) { return layer_norm(t[0], t[1], t[2]); });
  require_float32_rounded({x}, [](TL t) { return layer_norm(t[0], Tensor(), Tensor()); });

  Tensor a = bf16_values({2, 9, 33}, 9), m = bf16_values({33, 17}, 10), mt = bf16_values({17, 33}, 11).t();
  require_float32_rounded({a, m}, [](TL t) { return matmul(t[0], t[1]); });
  require_float32_rounded({a, mt}, [](TL t) { return matmul(t[0], t[1]); });

  Tensor ids = from_vector(std::vector<int64_t>{3, 0, 3, 1});
  Tensor table = bf16_values({4, 6}, 12);
  require_float32_rounded({table}, [&](TL t) { return index_select(t[0], 0, ids); });
  require_float32_rounded({table}, [&](TL t) { return embedding(t[0], ids.reshape({2, 2})); });
  Tensor gidx = from_vector(std::vector<int64_t>{0, 2, 5, 1, 1, 4, 3, 0}, {4, 2});
  require_float32_rounded({table}, [&](TL t) { return gather(t[0], 1, gidx); });
}

TEST_CASE("bfloat16 layer norm keeps its saved statistics and backward in float32", "[bfloat16]") {
  const Backend& cpu = backend(DeviceType::CPU);
  Tensor x = bf16_values({4, 64}, 13), w = bf16_values({64}, 14), g = bf16_values({4, 64}, 15);
  Tensor x32 = to_dtype(x, DType::Float32), w32 = to_dtype(w, DType::Float32), g32 = to_dtype(g, DType::Float32);
  Tensor mean = empty({4}), rstd = empty({4}), y = empty({4, 64}, kBF16);
  cpu.layer_norm(x, w, Tensor(), 1e-5, y, mean, rstd);
  Tensor mean32 = empty({4}), rstd32 = empty({4}), y32 = empty({4, 64});
  cpu.layer_norm(x32, w32, Tensor(), 1e-5, y32, mean32, rstd32);
  REQUIRE(vals(mean) == vals(mean32));
  REQUIRE(vals(rstd) == vals(rstd32));
  REQUIRE(vals(y) == vals(to_dtype(y32, kBF16)));
  Tensor gx = empty({4, 64}, kBF16), gw = empty({64}, kBF16), gb = empty({64}, kBF16);
  cpu.layer_norm_backward(g, x, w, mean, rstd, gx, gw, gb);
  Tensor gx32 = empty({4, 64}), gw32 = empty({64}), gb32 = empty({64});
  cpu.layer_norm_backward(g32, x32, w32, mean32, rstd32, gx32, gw32, gb32);
  REQUIRE(vals(gx) == vals(to_dtype(gx32, kBF16)));
  REQUIRE(vals(gw) == vals(to_dtype(gw32, kBF16)));
  REQUIRE(vals(gb) == vals(to_dtype(gb32, kBF16)));

  // Through the op layer: the gradients arrive in bf16 and are close to float32's.
  Tensor xr = x.detach().requires_grad_(), wr = w.detach().requires_grad_();
  sum(mul(layer_norm(xr, wr, Tensor()), g)).backward();
  REQUIRE(xr.grad().dtype() == kBF16);
  REQUIRE(wr.grad().dtype() == kBF16);
  Tensor xr32 = x32.detach().requires_grad_(), wr32 = w32.detach().requires_grad_();
  sum(mul(layer_norm(xr32, wr32, Tensor()), g32)).backward();
  std::vector<float> got = vals(wr.grad()), want = vals(wr32.grad());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).epsilon(0.02).margin(0.05));
}

TEST_CASE("bfloat16 index_add, scatter_add and adam_step compute in float32", "[bfloat16]") {
  const Backend& cpu = backend(DeviceType::CPU);
  // Adam on bf16 parameter and state: float32's step on the widened values, rounded.
  Tensor p = bf16_values({50}, 16), g = bf16_values({50}, 17), m = bf16_values({50}, 18, 0.1);
  Tensor v = to_dtype(abs(bf16_values({50}, 19, 0.1)), kBF16);
  Tensor p32 = to_dtype(p, DType::Float32), g32 = to_dtype(g, DType::Float32);
  Tensor m32 = to_dtype(m, DType::Float32), v32 = to_dtype(v, DType::Float32);
  AdamStepArgs args{1e-2, 0.9, 0.999, 1e-8, 0.0, 0.01, 0.1, std::sqrt(0.001), false};
  cpu.adam_step(p, g, m, v, args);
  cpu.adam_step(p32, g32, m32, v32, args);
  REQUIRE(vals(p) == vals(to_dtype(p32, kBF16)));
  REQUIRE(vals(m) == vals(to_dtype(m32, kBF16)));
  REQUIRE(vals(v) == vals(to_dtype(v32, kBF16)));

  // Sums into bf16 rows: added up in float32 and rounded once (as the GPU does).
  Tensor dst = zeros({3, 2}, kBF16);
  Tensor src = to_dtype(tensor({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2}), kBF16);
  Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2, 1});
  REQUIRE(vals(index_add(dst, 0, idx, src)) == std::vector<float>{3, 4, 7, 8, 6, 8});
  Tensor sidx = from_vector(std::vector<int64_t>{0, 1, 1, 0, 2, 2, 0, 0}, {4, 2});
  REQUIRE(vals(scatter_add(dst, 0, sidx, src)) == std::vector<float>{1 + 7, 4 + 8, 3, 2, 5, 6});
  // 256 + 1 + 1: one rounding gives 258, rounding after each addition would stay at 256.
  Tensor big = to_dtype(tensor({256}), kBF16);
  Tensor ones2 = ones({2}, kBF16);
  Tensor zero_idx = from_vector(std::vector<int64_t>{0, 0});
  REQUIRE(vals(index_add(big, 0, zero_idx, ones2)) == std::vector<float>{258});
  REQUIRE(vals(scatter_add(big, 0, zero_idx, ones2)) == std::vector<float>{258});
}

TEST_CASE("bfloat16 autograd: gradients arrive in bfloat16 and match float32 to bf16 precision", "[bfloat16]") {
  Tensor x = bf16_values({3, 8}, 20).requires_grad_();
  Tensor w = bf16_values({8, 5}, 21).requires_grad_();
  Tensor x32 = to_dtype(x.detach(), DType::Float32).requires_grad_();
  Tensor w32 = to_dtype(w.detach(), DType::Float32).requires_grad_();
  auto loss_of = [](const Tensor& a, const Tensor& b) { return sum(square(softmax(tanh(matmul(a, b)), -1))); };
  loss_of(x, w).backward();
  loss_of(x32, w32).backward();
  REQUIRE(x.grad().dtype() == DType::BFloat16);
  REQUIRE(w.grad().dtype() == DType::BFloat16);
  std::vector<float> got = vals(w.grad()), want = vals(w32.grad());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).epsilon(0.05).margin(0.01));
  // A cast is differentiable: the float32 gradient comes back as bf16 and vice versa.
  Tensor a = bf16_values({4}, 22).requires_grad_();
  sum(mul(to_dtype(a, DType::Float32), 3.0)).backward();
  REQUIRE(a.grad().dtype() == kBF16);
  REQUIRE(vals(a.grad()) == std::vector<float>(4, 3.0f));
}

TEST_CASE("bfloat16 tensors are saved to HDF5 as bfloat16 and read back exactly", "[bfloat16][hdf5]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / fmt::format("heed_bf16_{}", ::getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "t.h5").string();
  Tensor t = bf16_values({3, 4}, 23, 100.0);
  {
    io::h5::File f = io::h5::File::create(path);
    f.write("t", t);
    f.write("empty", zeros({0, 2}, kBF16));
  }
  io::h5::File f = io::h5::File::open(path);
  REQUIRE(f.dtype("t") == kBF16);
  Tensor back = f.read("t");
  REQUIRE(back.dtype() == kBF16);
  REQUIRE(back.shape() == t.shape());
  REQUIRE(vals(back) == vals(t));
  REQUIRE(f.read("empty").shape() == Shape{0, 2});
  REQUIRE_THROWS_WITH(f.read("t", DType::Float32), Contains("is bfloat16, expected float32"));
  fs::remove_all(dir);
}

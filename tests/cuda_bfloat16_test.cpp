// Every CUDA kernel on bfloat16 tensors (skipped without a GPU). The contract
// (tensor/backend.h) is that bfloat16 is computed in float32 and rounded once
// on store, and the CUDA kernels run float32's very formulas on the widened
// elements, so each is checked against the float32 kernel run on the widened
// inputs, its result rounded to bfloat16: within one bfloat16 ulp (in fact the
// same bits, but for matmul, whose cuBLAS algorithm may differ by dtype).
// Where the CPU backend computes bfloat16 too, the results are also compared
// with it, within two bfloat16 ulps (relative 2^-6, plus a small absolute part
// where the float32 formula cancels). Inputs are strided, transposed and
// expanded where the kernel takes such inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda/matmul.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"
#include "tests/test_util.h"
#include "tests/test_devices.h"

using namespace heed;
using namespace heed::test;

namespace {

const Backend& cpu() { return backend(DeviceType::CPU); }
const Backend& gpu() { return backend(DeviceType::CUDA); }

// x widened to float32 on the GPU, same shape and strides (the widening is exact).
Tensor widened(const Tensor& x_gpu) {
  Tensor out = empty(x_gpu.shape(), DType::Float32, kCUDA);
  gpu().copy(x_gpu, out);
  return out;
}

double rounded(double v) { return static_cast<double>(static_cast<float>(bfloat16(static_cast<float>(v)))); }

// got (bfloat16 values) within one bfloat16 ulp of want32 (float32 values) rounded.
void require_rounded(const std::vector<double>& got, const std::vector<double>& want32) {
  REQUIRE(got.size() == want32.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = rounded(want32[i]);
    INFO("element " << i << ": bfloat16 kernel " << got[i] << ", float32 kernel rounded " << want << " (from "
                    << want32[i] << ")");
    if (std::isnan(want)) REQUIRE(std::isnan(got[i]));
    else if (std::isinf(want)) REQUIRE(got[i] == want);
    else REQUIRE(std::abs(got[i] - want) <= std::ldexp(std::abs(want), -7));
  }
}

// got within two bfloat16 ulps of the CPU's want, plus `atol`.
void require_near_cpu(const std::vector<double>& got, const std::vector<double>& want, double atol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": cuda " << got[i] << ", cpu " << want[i]);
    if (std::isnan(want[i])) REQUIRE(std::isnan(got[i]));
    else if (std::isinf(want[i])) REQUIRE(got[i] == want[i]);
    else REQUIRE(std::abs(got[i] - want[i]) <= std::ldexp(std::abs(want[i]), -6) + atol);
  }
}

// Runs f, a CPU kernel writing the CPU tensor `out`, and says whether the CPU
// backend has it for bfloat16: it may throw, or (before the CPU side lands)
// skip bfloat16 silently, leaving the 0xff bytes written here first.
bool cpu_runs(const Tensor& out, const std::function<void()>& f) {
  auto* bytes = static_cast<unsigned char*>(out.raw_data());
  const size_t n = static_cast<size_t>(out.numel()) * dtype_size(out.dtype());
  std::memset(bytes, 0xff, n);
  try {
    f();
  } catch (const Error& e) {
    WARN("the CPU backend has no bfloat16 kernel here yet, CPU comparison skipped: " << e.what());
    return false;
  }
  for (size_t i = 0; i < n; ++i)
    if (bytes[i] != 0xff) return true;
  WARN("the CPU backend wrote nothing (no bfloat16 kernel yet?), CPU comparison skipped");
  return false;
}

// [3, 4, 5] views of a base: contiguous, permuted, stepped and expanded.
struct View {
  const char* name;
  Shape base;
  Tensor (*of)(const Tensor&);
};
const View kViews[] = {
    {"contiguous", {3, 4, 5}, [](const Tensor& t) { return t; }},
    {"permuted", {5, 4, 3}, [](const Tensor& t) { return permute(t, {2, 1, 0}); }},
    {"stepped", {6, 4, 10}, [](const Tensor& t) { return slice(slice(t, 0, 0, 6, 2), 2, 1, 10, 2); }},
    {"expanded", {1, 4, 1}, [](const Tensor& t) { return expand(t, {3, 4, 5}); }},
};
const Shape kShape{3, 4, 5};

double wavy(int64_t i) { return std::sin(double(i) * 0.37) * 3 + 0.01 * double(i % 7); }

}  // namespace

TEST_CASE("cuda bfloat16: unary, binary, where and fill are float32's kernels rounded", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const UnaryOp unary_ops[] = {UnaryOp::Neg,   UnaryOp::Exp,     UnaryOp::Log,       UnaryOp::Sqrt,
                               UnaryOp::Rsqrt, UnaryOp::Tanh,    UnaryOp::Sigmoid,   UnaryOp::Relu,
                               UnaryOp::GeluErf, UnaryOp::GeluTanh, UnaryOp::Abs,    UnaryOp::Sign,
                               UnaryOp::Erf,   UnaryOp::Sin,     UnaryOp::Cos,       UnaryOp::Reciprocal,
                               UnaryOp::Square, UnaryOp::AddScalar, UnaryOp::MulScalar, UnaryOp::PowScalar,
                               UnaryOp::Clamp};
  const BinaryOp binary_ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
                                 BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum,
                                 BinaryOp::ReluGrad, BinaryOp::GeluErfGrad, BinaryOp::GeluTanhGrad};
  const BinaryOp compare_ops[] = {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge};
  for (const View& vx : kViews) {
    const Tensor bx = host_tensor(vx.base, DType::BFloat16, [](int64_t i) { return i == 5 ? NAN : wavy(i); });
    const Tensor x = vx.of(to_device(bx, kCUDA)), x32 = widened(x);
    for (UnaryOp op : unary_ops) {
      INFO("unary " << int(op) << " of a " << vx.name << " bfloat16 tensor");
      const double a = op == UnaryOp::Clamp ? -1.5 : (op == UnaryOp::PowScalar ? 3.0 : 0.3), b = 2.5;
      Tensor got = empty(kShape, DType::BFloat16, kCUDA), want = empty(kShape, DType::Float32, kCUDA);
      gpu().unary(op, x, a, b, got);
      gpu().unary(op, x32, a, b, want);
      require_rounded(values_of(got), values_of(want));
    }
    Tensor flags = empty(kShape, DType::Bool, kCUDA), flags32 = empty(kShape, DType::Bool, kCUDA);
    gpu().unary(UnaryOp::IsNonFinite, x, 0, 0, flags);
    gpu().unary(UnaryOp::IsNonFinite, x32, 0, 0, flags32);
    REQUIRE(values_of(flags) == values_of(flags32));
    for (const View& vy : kViews) {
      const Tensor by = host_tensor(vy.base, DType::BFloat16, [](int64_t i) { return wavy(i + 11) * (i % 4 == 0 ? 0 : 1); });
      const Tensor y = vy.of(to_device(by, kCUDA)), y32 = widened(y);
      for (BinaryOp op : binary_ops) {
        INFO("binary " << int(op) << " of " << vx.name << " and " << vy.name);
        Tensor got = empty(kShape, DType::BFloat16, kCUDA), want = empty(kShape, DType::Float32, kCUDA);
        gpu().binary(op, x, y, got);
        gpu().binary(op, x32, y32, want);
        require_rounded(values_of(got), values_of(want));
      }
      for (BinaryOp op : compare_ops) {  // the widened values compare exactly as the bfloat16 ones
        INFO("comparison " << int(op) << " of " << vx.name << " and " << vy.name);
        gpu().binary(op, x, y, flags);
        gpu().binary(op, x32, y32, flags32);
        REQUIRE(values_of(flags) == values_of(flags32));
      }
      const Tensor mask = expand(to_device(host_tensor({1, 4, 1}, DType::Bool, [](int64_t i) { return i % 2; }), kCUDA), kShape);
      Tensor got = empty(kShape, DType::BFloat16, kCUDA), want = empty(kShape, DType::Float32, kCUDA);
      gpu().where(mask, x, y, got);
      gpu().where(mask, x32, y32, want);
      require_rounded(values_of(got), values_of(want));
    }
  }
  // Fill rounds through float into a strided view.
  Tensor base = empty({6, 4, 10}, DType::BFloat16, kCUDA);
  gpu().fill(base, 0);
  gpu().fill(kViews[2].of(base), 0.1);
  const std::vector<double> v = values_of(base);
  for (size_t i = 0; i < v.size(); ++i)
    REQUIRE(v[i] == ((i / 40) % 2 == 0 && (i % 10) % 2 == 1 ? rounded(0.1) : 0.0));
  // And the CPU's bfloat16 unary, where it has one.
  const Tensor xc = host_tensor(kShape, DType::BFloat16, wavy);
  Tensor want = empty(kShape, DType::BFloat16), got = empty(kShape, DType::BFloat16, kCUDA);
  if (cpu_runs(want, [&] { cpu().unary(UnaryOp::GeluTanh, xc, 0, 0, want); })) {
    gpu().unary(UnaryOp::GeluTanh, to_device(xc, kCUDA), 0, 0, got);
    require_near_cpu(values_of(got), values_of(want), 1e-5);
  }
}

TEST_CASE("cuda bfloat16: copies to and from every dtype, on the device and across", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  // Values every dtype holds, plus fractions and negatives for the float ones.
  for (DType other : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Bool, DType::BFloat16}) {
    const bool small = other == DType::UInt8 || other == DType::Bool;
    auto f = [&](int64_t i) { return small ? double(i % 3) : wavy(i) * 40; };
    for (const View& v : kViews) {
      INFO("bfloat16 <-> " << dtype_name(other) << ", " << v.name << " source");
      const Tensor src16 = v.of(to_device(host_tensor(v.base, DType::BFloat16, f), kCUDA));
      // bfloat16 -> other, on the device, into a permuted destination: element by element as the formula says.
      Tensor dst = empty({5, 4, 3}, other, kCUDA);
      gpu().copy(src16, permute(dst, {2, 1, 0}));
      const std::vector<double> s = values_of(src16), d = values_of(permute(dst, {2, 1, 0}));
      for (size_t i = 0; i < s.size(); ++i) {
        double want = s[i];
        if (other == DType::Int64) want = std::trunc(s[i]);
        if (other == DType::UInt8) want = double(uint8_t(int64_t(s[i])));
        if (other == DType::Bool) want = s[i] != 0;
        INFO("element " << i << ": " << s[i]);
        REQUIRE(d[i] == want);
      }
      // other -> bfloat16, device to device, host to device and device to host.
      const Tensor src = v.of(to_device(host_tensor(v.base, other, f), kCUDA));
      const std::vector<double> sv = values_of(src);
      std::vector<double> want(sv.size());
      for (size_t i = 0; i < sv.size(); ++i) want[i] = rounded(sv[i]);
      Tensor on_device = empty(kShape, DType::BFloat16, kCUDA);
      gpu().copy(src, on_device);
      REQUIRE(values_of(on_device) == want);
      // Host to device casts on the host side (the CPU's copy), where the CPU has bfloat16 casts.
      Tensor host_src = empty(kShape, other), from_host = empty(kShape, DType::BFloat16, kCUDA);
      gpu().copy(src, host_src);
      Tensor staged = empty(kShape, DType::BFloat16);  // the CPU's cast alone first: does it have one?
      if (cpu_runs(staged, [&] { cpu().copy(host_src, staged); })) {
        gpu().copy(host_src, from_host);
        REQUIRE(values_of(from_host) == want);
      }
      Tensor to_host = empty(kShape, DType::BFloat16);
      gpu().copy(src, to_host);
      REQUIRE(values_of(to_host) == want);
    }
  }
  // A double rounds through float: 1 + 2^-8 + 2^-30 becomes the float 1 + 2^-8, a tie, then 1.
  const Tensor d = host_tensor({1}, DType::Float64, [](int64_t) { return 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30); });
  Tensor b = empty({1}, DType::BFloat16, kCUDA);
  gpu().copy(to_device(d, kCUDA), b);
  REQUIRE(values_of(b)[0] == 1.0);
}

TEST_CASE("cuda bfloat16: reductions are float32's, rounded, and match the CPU", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const Tensor base = host_tensor({5, 3, 40}, DType::BFloat16, [](int64_t i) { return i == 17 ? NAN : wavy(i) * 10; });
  const Tensor clean = host_tensor({5, 3, 40}, DType::BFloat16, [](int64_t i) { return wavy(i) * 10; });
  for (const Tensor* b : {&base, &clean}) {
    const Tensor x = permute(to_device(*b, kCUDA), {2, 0, 1}), x32 = widened(x);  // [40, 5, 3], strided
    for (unsigned mask = 1; mask < 8; ++mask) {
      const Shape out_shape = reduced_shape(x.shape(), mask);
      for (ReduceOp op : kReduceOps) {
        const bool arg = is_index_reduce(op);
        if (arg && reduced_dims(x.shape(), mask) > 1) continue;
        INFO("op " << int(op) << " mask " << mask << (b == &base ? " with a NaN" : ""));
        Tensor got = empty(out_shape, arg ? DType::Int64 : DType::BFloat16, kCUDA);
        Tensor want = empty(out_shape, arg ? DType::Int64 : DType::Float32, kCUDA);
        gpu().reduce(op, x, got);
        gpu().reduce(op, x32, want);
        if (arg) REQUIRE(values_of(got) == values_of(want));
        else require_rounded(values_of(got), values_of(want));
      }
    }
  }
  // A long sum (in double, rounded once) and the CPU's, where it has bfloat16 sums.
  const Tensor big = host_tensor({4, 100000}, DType::BFloat16, [](int64_t i) { return 1.0 + 0.001 * double(i % 1000); });
  Tensor got = empty({4, 1}, DType::BFloat16, kCUDA), want32 = empty({4, 1}, DType::Float32, kCUDA);
  const Tensor big_g = to_device(big, kCUDA);
  gpu().reduce(ReduceOp::Sum, big_g, got);
  gpu().reduce(ReduceOp::Sum, widened(big_g), want32);
  require_rounded(values_of(got), values_of(want32));
  Tensor want = empty({4, 1}, DType::BFloat16);
  if (cpu_runs(want, [&] { cpu().reduce(ReduceOp::Sum, big, want); }))
    require_near_cpu(values_of(got), values_of(want), 0);
}

TEST_CASE("cuda bfloat16: softmax and layer norm, forward and backward, compute in float32", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const double inf = INFINITY;
  for (int64_t n : {1, 7, 33, 768, 5000}) {
    INFO("n " << n);
    const Tensor x = host_tensor({5, n}, DType::BFloat16, [&](int64_t i) {
      const int64_t r = i / n, j = i % n;
      if (r == 1) return -inf;
      if (r == 2 && j % 3 == 0) return -inf;
      if (r == 3) return 50.0 + double(j % 13);
      return std::sin(double(i)) * 4;
    });
    const Tensor xg = to_device(x, kCUDA);
    for (bool log : {false, true}) {
      Tensor got = empty({5, n}, DType::BFloat16, kCUDA), want32 = empty({5, n}, DType::Float32, kCUDA);
      gpu().softmax(xg, log, got);
      gpu().softmax(widened(xg), log, want32);
      require_rounded(values_of(got), values_of(want32));
      Tensor want = empty({5, n}, DType::BFloat16);
      if (cpu_runs(want, [&] { cpu().softmax(x, log, want); }))
        require_near_cpu(values_of(got), values_of(want), 1e-6);
    }

    // Layer norm: rows of mean 0 to 4000 (bfloat16 spacing there is 16 to 32, so x is coarse but exact).
    const Tensor xf = host_tensor({5, n}, DType::BFloat16, [&](int64_t i) { return std::sin(double(i)) * 40 + 1000.0 * (i / n); });
    const Tensor w = host_tensor({n}, DType::BFloat16, [](int64_t j) { return 0.5 + 0.01 * double(j % 50); });
    const Tensor b = host_tensor({n}, DType::BFloat16, [](int64_t j) { return 0.1 * double(j % 7) - 0.3; });
    const Tensor g = host_tensor({5, n}, DType::BFloat16, [](int64_t i) { return std::cos(double(i) * 0.7); });
    const Tensor xfg = to_device(xf, kCUDA), wg = to_device(w, kCUDA), bg = to_device(b, kCUDA), gg = to_device(g, kCUDA);
    const Tensor xf32 = widened(xfg), w32 = widened(wg), b32 = widened(bg), g32 = widened(gg);
    for (bool affine : {false, true}) {
      INFO("affine " << affine);
      const Tensor W = affine ? wg : Tensor(), B = affine ? bg : Tensor();
      const Tensor W32 = affine ? w32 : Tensor(), B32 = affine ? b32 : Tensor();
      Tensor y = empty({5, n}, DType::BFloat16, kCUDA), y32 = empty({5, n}, DType::Float32, kCUDA);
      Tensor m = empty({5}, DType::Float32, kCUDA), r = empty({5}, DType::Float32, kCUDA);  // float32 for bfloat16
      Tensor m32 = empty({5}, DType::Float32, kCUDA), r32 = empty({5}, DType::Float32, kCUDA);
      gpu().layer_norm(xfg, W, B, 1e-5, y, m, r);
      gpu().layer_norm(xf32, W32, B32, 1e-5, y32, m32, r32);
      require_rounded(values_of(y), values_of(y32));
      REQUIRE(values_of(m) == values_of(m32));  // the same float32 statistics
      REQUIRE(values_of(r) == values_of(r32));
      Tensor gx = empty({5, n}, DType::BFloat16, kCUDA), gw = empty({n}, DType::BFloat16, kCUDA);
      Tensor gb = empty({n}, DType::BFloat16, kCUDA);
      Tensor gx32 = empty({5, n}, DType::Float32, kCUDA), gw32 = empty({n}, DType::Float32, kCUDA);
      Tensor gb32 = empty({n}, DType::Float32, kCUDA);
      gpu().layer_norm_backward(gg, xfg, W, m, r, gx, affine ? gw : Tensor(), affine ? gb : Tensor());
      gpu().layer_norm_backward(g32, xf32, W32, m32, r32, gx32, affine ? gw32 : Tensor(), affine ? gb32 : Tensor());
      require_rounded(values_of(gx), values_of(gx32));
      if (affine) {
        require_rounded(values_of(gw), values_of(gw32));
        require_rounded(values_of(gb), values_of(gb32));
      }
      // The CPU's bfloat16 layer norm, where it has one: y within two ulps
      // plus the float32 statistics' cancellation (|mean| / std up to ~140).
      Tensor yc = empty({5, n}, DType::BFloat16), mc = empty({5}, DType::Float32), rc = empty({5}, DType::Float32);
      const Tensor Wc = affine ? w : Tensor(), Bc = affine ? b : Tensor();
      if (cpu_runs(yc, [&] { cpu().layer_norm(xf, Wc, Bc, 1e-5, yc, mc, rc); }))
        require_near_cpu(values_of(y), values_of(yc), 1e-3);
    }
    // Statistics of the wrong dtype are refused with a message naming the one expected.
    Tensor y = empty({5, n}, DType::BFloat16, kCUDA), m16 = empty({5}, DType::BFloat16, kCUDA);
    REQUIRE_THROWS_WITH(gpu().layer_norm(xfg, Tensor(), Tensor(), 1e-5, y, m16, m16), Catch::Contains("float32"));
  }
}

TEST_CASE("cuda bfloat16: matmul through cuBLAS with float32 accumulation", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const int64_t B = 3, M = 37, K = 300, N = 41;
  const Tensor a = to_device(host_tensor({B, M, K}, DType::BFloat16, wavy), kCUDA);
  const Tensor at = to_device(host_tensor({B, K, M}, DType::BFloat16, wavy), kCUDA);  // read transposed
  const Tensor b = to_device(host_tensor({1, K, N}, DType::BFloat16, [](int64_t i) { return wavy(i + 5); }), kCUDA);
  const Tensor bs = to_device(host_tensor({B, K, 2 * N}, DType::BFloat16, [](int64_t i) { return wavy(i + 9); }), kCUDA);
  struct Operands {
    const char* name;
    Tensor a, b;
  };
  const Operands cases[] = {
      {"dense x broadcast", a, expand(b, {B, K, N})},
      {"transposed x broadcast", transpose(at, 1, 2), expand(b, {B, K, N})},
      {"dense x column slice (copied)", a, slice(bs, 2, 0, 2 * N, 2)},
  };
  for (const Operands& c : cases) {
    INFO(c.name);
    Tensor got = empty({B, M, N}, DType::BFloat16, kCUDA), want32 = empty({B, M, N}, DType::Float32, kCUDA);
    gpu().matmul(c.a, c.b, got, Tensor());
    gpu().matmul(widened(c.a), widened(c.b), want32, Tensor());  // float32, TF32 off (the default)
    // The products of bfloat16 values are exact in float32; only the order
    // of the float32 sums differs: one ulp after rounding, plus K float ulps
    // of the sum of |products| near a rounding edge.
    const std::vector<double> av = values_of(c.a), bv = values_of(c.b), gv = values_of(got), wv = values_of(want32);
    for (int64_t p = 0; p < B; ++p)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double abs_sum = 0;
          for (int64_t k = 0; k < K; ++k) abs_sum += std::abs(av[(p * M + i) * K + k] * bv[(p * K + k) * N + j]);
          const size_t o = static_cast<size_t>((p * M + i) * N + j);
          INFO("out[" << p << ", " << i << ", " << j << "]: bfloat16 " << gv[o] << ", float32 " << wv[o]);
          REQUIRE(std::abs(gv[o] - wv[o]) <= std::ldexp(std::abs(wv[o]), -8) + std::ldexp(std::abs(wv[o]), -7) +
                                                 double(K) * std::ldexp(abs_sum, -24));
        }
  }
}

TEST_CASE("cuda bfloat16: index_select, gather, scatter_add and index_add", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const Tensor x = permute(to_device(host_tensor({6, 5}, DType::BFloat16, wavy), kCUDA), {1, 0});  // [5, 6], strided
  const Tensor idx = to_device(host_tensor({4}, DType::Int64, [](int64_t i) { return double((i * 3) % 5); }), kCUDA);
  Tensor sel = empty({4, 6}, DType::BFloat16, kCUDA), sel32 = empty({4, 6}, DType::Float32, kCUDA);
  gpu().index_select(x, 0, idx, sel);
  gpu().index_select(widened(x), 0, idx, sel32);
  REQUIRE(values_of(sel) == values_of(sel32));  // moves bits: exact
  const Tensor gidx = to_device(host_tensor({5, 3}, DType::Int64, [](int64_t i) { return double((i * 7) % 6); }), kCUDA);
  Tensor gat = empty({5, 3}, DType::BFloat16, kCUDA), gat32 = empty({5, 3}, DType::Float32, kCUDA);
  gpu().gather(x, 1, gidx, gat);
  gpu().gather(widened(x), 1, gidx, gat32);
  REQUIRE(values_of(gat) == values_of(gat32));

  // Sums carried in float32 and rounded once: 1 + 2^-8 + 2^-8 is 1 + 2^-7,
  // where a bfloat16 running sum would stay at 1 (each 1 + 2^-8 is a tie to even).
  const Tensor small = to_device(host_tensor({3, 4}, DType::BFloat16, [](int64_t) { return std::ldexp(1.0, -8); }), kCUDA);
  const Tensor dup = to_device(host_tensor({3}, DType::Int64, [](int64_t i) { return i < 2 ? 1.0 : 0.0; }), kCUDA);
  Tensor dst = empty({2, 4}, DType::BFloat16, kCUDA);
  gpu().fill(dst, 1);
  gpu().index_add(dst, 0, dup, small);
  // Row 0 gets one 2^-8 (1 + 2^-8 is a tie: 1), row 1 two (1 + 2^-7).
  const std::vector<double> once_rounded = {1, 1, 1, 1, 1.0078125, 1.0078125, 1.0078125, 1.0078125};
  REQUIRE(values_of(dst) == once_rounded);
  const Tensor dup2 = to_device(host_tensor({3, 4}, DType::Int64, [](int64_t i) { return i < 8 ? 1.0 : 0.0; }), kCUDA);
  Tensor dst2 = empty({2, 4}, DType::BFloat16, kCUDA);
  gpu().fill(dst2, 1);
  gpu().scatter_add(dst2, 0, dup2, small);
  REQUIRE(values_of(dst2) == once_rounded);

  // Larger, with duplicates and a strided src: float32's kernels on widened tensors, rounded.
  const Tensor src = permute(to_device(host_tensor({7, 50}, DType::BFloat16, wavy), kCUDA), {1, 0});  // [50, 7]
  const Tensor many = to_device(host_tensor({50}, DType::Int64, [](int64_t i) { return double((i * 13) % 9); }), kCUDA);
  Tensor d16 = to_device(host_tensor({9, 7}, DType::BFloat16, [](int64_t i) { return 0.5 * double(i % 3); }), kCUDA);
  Tensor d32 = widened(d16);
  gpu().index_add(d16, 0, many, src);
  gpu().index_add(d32, 0, many, widened(src));
  require_rounded(values_of(d16), values_of(d32));
  const Tensor sidx = to_device(host_tensor({50, 7}, DType::Int64, [](int64_t i) { return double((i * 5) % 9); }), kCUDA);
  Tensor s16 = to_device(host_tensor({9, 7}, DType::BFloat16, [](int64_t i) { return 0.25 * double(i % 5); }), kCUDA);
  Tensor s32 = widened(s16);
  gpu().scatter_add(s16, 0, sidx, src);
  gpu().scatter_add(s32, 0, sidx, widened(src));
  require_rounded(values_of(s16), values_of(s32));
  // A bad index leaves a bfloat16 dst untouched.
  const Tensor bad = to_device(host_tensor({50, 7}, DType::Int64, [](int64_t i) { return i == 40 ? 9.0 : 0.0; }), kCUDA);
  const std::vector<double> before = values_of(s16);
  REQUIRE_THROWS_AS(gpu().scatter_add(s16, 0, bad, src), Error);
  REQUIRE(values_of(s16) == before);
}

TEST_CASE("cuda bfloat16: adam_step and random draws are float32's, rounded on store", "[cuda][bfloat16]") {
  HEED_SKIP_WITHOUT_GPU();
  const int64_t n = 1000;
  auto state = [&](DType t, double scale, int64_t shift) {
    return to_device(host_tensor({n}, t, [&](int64_t i) { return scale * std::sin(double(i + shift) * 0.3); }), kCUDA);
  };
  for (bool decoupled : {false, true}) {
    AdamStepArgs args{1e-3, 0.9, 0.999, 1e-8, decoupled ? 0.0 : 0.01, decoupled ? 0.01 : 0.0, 1 - 0.9 * 0.9,
                      std::sqrt(1 - 0.999 * 0.999), false};
    Tensor p = state(DType::BFloat16, 1, 0), g = state(DType::BFloat16, 0.1, 7);
    Tensor m = state(DType::BFloat16, 0.01, 3), v = to_device(host_tensor({n}, DType::BFloat16, [](int64_t i) {
                                                  return 1e-4 * double(i % 10);
                                                }), kCUDA);
    Tensor p32 = widened(p), g32 = widened(g), m32 = widened(m), v32 = widened(v);
    gpu().adam_step(p, g, m, v, args);
    gpu().adam_step(p32, g32, m32, v32, args);
    INFO("decoupled " << decoupled);
    require_rounded(values_of(p), values_of(p32));
    require_rounded(values_of(m), values_of(m32));
    require_rounded(values_of(v), values_of(v32));
  }
  for (RandomDist dist : {RandomDist::Uniform, RandomDist::Normal, RandomDist::Bernoulli}) {
    INFO("dist " << int(dist));
    const double a = dist == RandomDist::Bernoulli ? 0.3 : -2, b = 3;
    Tensor got = empty({1001}, DType::BFloat16, kCUDA), want32 = empty({1001}, DType::Float32, kCUDA);
    gpu().random(dist, a, b, 1234, 77, got);
    gpu().random(dist, a, b, 1234, 77, want32);  // the same words: float32's draw, rounded
    require_rounded(values_of(got), values_of(want32));
  }
}

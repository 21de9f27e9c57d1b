// The index math and the per-element formulas of the CUDA elementwise kernels,
// checked on the CPU (no GPU needed, built in every configuration):
//  - StridedIndexer (cuda/strided.h) against a naive offset computation over
//    contiguous, transposed, sliced, expanded (stride 0) and size-1-dim layouts;
//  - the formulas of tensor/elementwise_formulas.h (cast, unary, binary, where)
//    against the CPU backend, value by value, for every dtype.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/elementwise_formulas.h"
#include "cuda/strided.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

using heed::BinaryOp;
using heed::cuda::StridedIndexer;
using heed::UnaryOp;

namespace {

// ---- the indexer ---------------------------------------------------------------

struct Layout {
  std::vector<int64_t> shape;
  std::vector<std::vector<int64_t>> strides;  // one per operand, in elements
};

template <int N>
using Offsets = std::vector<std::array<int64_t, N>>;

// Row-major over the shape, offset = sum of index * stride: the definition.
template <int N>
Offsets<N> naive_offsets(const Layout& l) {
  int64_t numel = 1;
  for (int64_t s : l.shape) numel *= s;
  Offsets<N> out;
  for (int64_t flat = 0; flat < numel; ++flat) {
    std::array<int64_t, N> off{};
    int64_t rest = flat;
    for (size_t d = l.shape.size(); d-- > 0;) {
      const int64_t i = rest % l.shape[d];
      rest /= l.shape[d];
      for (int k = 0; k < N; ++k) off[k] += i * l.strides[k][d];
    }
    out.push_back(off);
  }
  return out;
}

template <int N>
StridedIndexer<N> build(const Layout& l, bool reorder) {
  const int64_t* strides[N];
  for (int k = 0; k < N; ++k) strides[k] = l.strides[k].data();
  StridedIndexer<N> ix;
  REQUIRE(heed::cuda::make_strided_indexer<N>(static_cast<int>(l.shape.size()), l.shape.data(), strides, ix, reorder));
  return ix;
}

template <int N, class I>
Offsets<N> indexer_offsets(const StridedIndexer<N>& ix) {
  Offsets<N> out;
  for (int64_t i = 0; i < ix.numel; ++i) {
    I off[N];
    ix.offsets(static_cast<I>(i), off);
    std::array<int64_t, N> o{};
    for (int k = 0; k < N; ++k) o[k] = off[k];
    out.push_back(o);
  }
  return out;
}

// Without reordering the indexer visits the elements in row-major order, so
// its offsets equal the naive ones one for one (with 64- and 32-bit indices);
// with reordering it visits the same elements in another order.
template <int N>
void check_layout(const Layout& l) {
  INFO("shape of " << l.shape.size() << " dims");
  const Offsets<N> want = naive_offsets<N>(l);
  const StridedIndexer<N> plain = build<N>(l, false);
  REQUIRE(plain.numel == static_cast<int64_t>(want.size()));
  CHECK(indexer_offsets<N, int64_t>(plain) == want);
  REQUIRE(plain.fits_int32());  // the test shapes are small
  CHECK(indexer_offsets<N, int32_t>(plain) == want);

  const StridedIndexer<N> reordered = build<N>(l, true);
  REQUIRE(reordered.numel == static_cast<int64_t>(want.size()));
  Offsets<N> got = indexer_offsets<N, int64_t>(reordered);
  CHECK(indexer_offsets<N, int32_t>(reordered) == got);
  Offsets<N> sorted_want = want;
  std::sort(got.begin(), got.end());
  std::sort(sorted_want.begin(), sorted_want.end());
  CHECK(got == sorted_want);
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t step = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    s[d] = step;
    step *= shape[d];
  }
  return s;
}

}  // namespace

TEST_CASE("cuda strided: contiguous operands merge into one dim and need no index math", "[cuda][strided]") {
  const Layout l{{2, 3, 4}, {{12, 4, 1}, {12, 4, 1}, {12, 4, 1}}};
  const auto ix = build<3>(l, true);
  CHECK(ix.ndim == 1);
  CHECK(ix.sizes[0] == 24);
  CHECK(ix.contiguous());
  check_layout<3>(l);
}

TEST_CASE("cuda strided: size-1 dims are dropped whatever their strides", "[cuda][strided]") {
  const Layout l{{1, 3, 1, 2}, {{999, 2, 777, 1}, {5, 2, 0, 1}}};
  const auto ix = build<2>(l, true);
  CHECK(ix.ndim == 1);
  CHECK(ix.contiguous());
  check_layout<2>(l);
}

TEST_CASE("cuda strided: a scalar and an empty shape", "[cuda][strided]") {
  const Layout scalar{{}, {{}, {}}};
  const auto s = build<2>(scalar, true);
  CHECK(s.numel == 1);
  CHECK(s.contiguous());
  check_layout<2>(scalar);

  const Layout all_ones{{1, 1}, {{7, 3}, {0, 0}}};
  check_layout<2>(all_ones);

  const Layout empty{{2, 0, 3}, {{0, 3, 1}, {3, 3, 1}}};
  const auto e = build<2>(empty, true);
  CHECK(e.numel == 0);
}

TEST_CASE("cuda strided: a transposed input keeps two dims", "[cuda][strided]") {
  // out [3, 4] contiguous; x is a [4, 3] tensor transposed.
  const Layout l{{3, 4}, {{4, 1}, {1, 3}}};
  const auto ix = build<2>(l, true);
  CHECK(ix.ndim == 2);
  CHECK_FALSE(ix.contiguous());
  check_layout<2>(l);
}

TEST_CASE("cuda strided: a transposed output is walked in its own memory order", "[cuda][strided]") {
  // out is a dense [4, 3] tensor seen transposed as [3, 4]; x is contiguous.
  const Layout l{{3, 4}, {{1, 3}, {4, 1}}};
  const auto ix = build<2>(l, true);
  const Offsets<2> got = indexer_offsets<2, int64_t>(ix);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i][0] == static_cast<int64_t>(i));
  check_layout<2>(l);
  // The same in 3-d, out permuted (2, 0, 1) of a dense [4, 2, 3].
  const Layout l3{{2, 3, 4}, {{3, 1, 6}, {12, 4, 1}, {0, 1, 3}}};
  const Offsets<3> got3 = indexer_offsets<3, int64_t>(build<3>(l3, true));
  for (size_t i = 0; i < got3.size(); ++i) CHECK(got3[i][0] == static_cast<int64_t>(i));
  check_layout<3>(l3);
}

TEST_CASE("cuda strided: slices merge only where they stay contiguous", "[cuda][strided]") {
  // x = t[1:3, 1:4] of a [4, 5] tensor: rows of 3 at a stride of 5.
  const Layout rows{{2, 3}, {{3, 1}, {5, 1}}};
  CHECK(build<2>(rows, true).ndim == 2);
  check_layout<2>(rows);
  // x = t[:, ::2] of a [4, 6] tensor, and y = t[::2] of an [8, 3] one.
  const Layout stepped{{4, 3}, {{3, 1}, {6, 2}, {6, 1}}};
  check_layout<3>(stepped);
  // Whole rows of a [4, 5, 6] tensor sliced along dim 0: still one block.
  const Layout block{{2, 5, 6}, {{30, 6, 1}, {30, 6, 1}}};
  CHECK(build<2>(block, true).ndim == 1);
}

TEST_CASE("cuda strided: expanded (stride 0) operands", "[cuda][strided]") {
  // out [4, 3] = x [1, 3] expanded (a row) op y [4, 1] expanded (a column).
  const Layout l{{4, 3}, {{3, 1}, {0, 1}, {1, 0}}};
  const auto ix = build<3>(l, true);
  CHECK(ix.ndim == 2);
  check_layout<3>(l);
  // A scalar expanded over everything merges with the contiguous output.
  const Layout scalar{{5, 6}, {{6, 1}, {0, 0}}};
  const auto s = build<2>(scalar, true);
  CHECK(s.ndim == 1);
  CHECK_FALSE(s.contiguous());
  check_layout<2>(scalar);
}

TEST_CASE("cuda strided: four operands (where) of mixed layouts", "[cuda][strided]") {
  // out [2, 3, 4] contiguous, cond [1, 3, 4] expanded, x transposed, y sliced.
  const Layout l{{2, 3, 4}, {{12, 4, 1}, {0, 4, 1}, {1, 8, 2}, {40, 10, 2}}};
  check_layout<4>(l);
}

TEST_CASE("cuda strided: random layouts agree with the naive offsets", "[cuda][strided]") {
  std::mt19937 rng(1234);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 300; ++trial) {
    Layout l;
    const int ndim = pick(0, 5);
    for (int d = 0; d < ndim; ++d) l.shape.push_back(pick(1, 4));
    for (int k = 0; k < 3; ++k) {
      // A dense tensor of a permuted shape, seen through the permutation, with
      // some dims stepped (sliced every 2nd or 3rd) and, for inputs, some expanded.
      std::vector<int> order(ndim);
      for (int d = 0; d < ndim; ++d) order[d] = d;
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<int64_t> strides(ndim);
      int64_t step = pick(1, 2);
      for (int j = ndim; j-- > 0;) {
        const int d = order[j];
        strides[d] = step;
        step *= l.shape[d] * pick(1, 3);
      }
      if (k > 0)
        for (int d = 0; d < ndim; ++d)
          if (pick(0, 4) == 0) strides[d] = 0;
      l.strides.push_back(strides);
    }
    check_layout<3>(l);
  }
}

TEST_CASE("cuda strided: 32-bit indexing only where every offset fits", "[cuda][strided]") {
  auto fits = [](std::vector<int64_t> shape, std::vector<int64_t> strides) {
    const int64_t* s[1] = {strides.data()};
    StridedIndexer<1> ix;
    REQUIRE(heed::cuda::make_strided_indexer<1>(static_cast<int>(shape.size()), shape.data(), s, ix));
    return ix.fits_int32();
  };
  CHECK(fits({1 << 20, 1 << 10}, contiguous_strides({1 << 20, 1 << 10})));
  CHECK_FALSE(fits({1 << 20, 1 << 12}, contiguous_strides({1 << 20, 1 << 12})));  // 2^32 elements
  CHECK(fits({2}, {int64_t(1) << 30}));                                          // reaches 2^30
  CHECK_FALSE(fits({3}, {int64_t(1) << 30}));                                    // reaches 2^31
  CHECK_FALSE(fits({2, 2}, {int64_t(1) << 31, 1}));
  CHECK(fits({1, 5}, {int64_t(1) << 40, 1}));  // a size-1 dim's stride never counts
}

TEST_CASE("cuda strided: too many dims that cannot merge is refused, not overrun", "[cuda][strided]") {
  // 17 dims of size 2, each stride 3x the next: none merge.
  std::vector<int64_t> shape(17, 2), strides(17);
  int64_t s = 1;
  for (size_t d = strides.size(); d-- > 0;) {
    strides[d] = s;
    s *= 3;
  }
  const int64_t* p[1] = {strides.data()};
  StridedIndexer<1> ix;
  CHECK_FALSE(heed::cuda::make_strided_indexer<1>(17, shape.data(), p, ix));
  // 16 of them fit.
  const int64_t* q[1] = {strides.data() + 1};
  CHECK(heed::cuda::make_strided_indexer<1>(16, shape.data() + 1, q, ix));
  CHECK(ix.ndim == 16);
}

// ---- the formulas against the CPU backend -------------------------------------------

namespace {

const heed::Backend& cpu() { return heed::backend(heed::DeviceType::CPU); }

template <class T>
heed::Tensor make(const std::vector<T>& values) {
  heed::Tensor t = heed::empty({static_cast<int64_t>(values.size())}, heed::dtype_of<T>::value);
  T* p = static_cast<T*>(t.raw_data());  // raw: data_ptr has no bfloat16 instance
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

template <class T>
std::vector<T> read(const heed::Tensor& t) {
  const T* p = static_cast<const T*>(t.raw_data());
  return std::vector<T>(p, p + t.numel());
}

template <class T>
std::vector<T> samples() {
  if constexpr (std::is_same_v<T, heed::bfloat16>) {
    // float32's samples rounded, and values whose products and sums round (1 + 2^-7 is 1 ulp above 1).
    std::vector<T> out;
    for (float v : samples<float>()) out.push_back(T(v));
    for (float v : {1.0078125f, -3.140625f, 0.333984375f, 65280.0f, 1e-38f, -0.0078125f}) out.push_back(T(v));
    return out;
  } else if constexpr (std::is_floating_point_v<T>) {
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    return {T(0), -T(0), T(1), T(-1), T(0.5), T(-2.5), T(3), T(1e-3), T(-7), T(20), T(-20), T(100), T(-100),
            T(1e30), T(-1e30), T(87), T(-87), T(-88), T(-90), T(89), T(2), T(0.25), T(255), inf, -inf, nan};
  } else if constexpr (std::is_same_v<T, bool>) {
    return {false, true};
  } else if constexpr (std::is_signed_v<T>) {
    return {0, 1, -1, 2, -3, 7, 100, -128, 255, 256, std::numeric_limits<T>::max(), std::numeric_limits<T>::min()};
  } else {
    return {0, 1, 2, 3, 7, 100, 127, 128, 200, 255};
  }
}

// Equal, NaN equal to NaN; within a relative tolerance when `approx` (the CPU's
// float32 exp/tanh/erf are its own vectorised approximations, not libm's).
template <class T>
bool same(T got, T want, bool approx) {
  if constexpr (std::is_same_v<T, heed::bfloat16>) {
    // Computed in float and rounded once: within a float ulp or two before
    // rounding, so one bfloat16 ulp apart at most where the CPU approximates.
    const float g = got, w = want;
    if (std::isnan(g) || std::isnan(w)) return std::isnan(g) && std::isnan(w);
    if (g == w) return std::signbit(g) == std::signbit(w) || approx;
    if (!approx || std::isinf(g) || std::isinf(w)) return false;
    return std::abs(g - w) <= 0x1p-7f * std::abs(w) + 1e-37f;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
    if (got == want) return std::signbit(got) == std::signbit(want) || approx;
    if (!approx || std::isinf(got) || std::isinf(want)) return false;
    return std::abs(got - want) <= T(2e-6) * std::abs(want) + T(1e-37);
  } else {
    return got == want;
  }
}

bool approximated_on_cpu(UnaryOp k) {
  return k == UnaryOp::Exp || k == UnaryOp::Tanh || k == UnaryOp::Sigmoid || k == UnaryOp::GeluErf ||
         k == UnaryOp::GeluTanh || k == UnaryOp::Erf;
}

// Binary ops whose float formula runs the CPU's own powf or exp/tanh/erf.
template <class T>
bool approximated_on_cpu(BinaryOp k) {
  if (k == BinaryOp::Pow) return std::is_same_v<T, float>;
  return (k == BinaryOp::GeluErfGrad || k == BinaryOp::GeluTanhGrad) && !std::is_same_v<T, double>;
}

constexpr int kUnaryCount = static_cast<int>(UnaryOp::IsNonFinite) + 1;
constexpr int kBinaryCount = static_cast<int>(BinaryOp::LogicalOr) + 1;

// heed's op of the same name (the enums list the ops in the same order; the
// CPU's error messages, checked below, confirm the names line up).
heed::UnaryOp heed_op(UnaryOp k) { return static_cast<heed::UnaryOp>(static_cast<int>(k)); }
heed::BinaryOp heed_op(BinaryOp k) { return static_cast<heed::BinaryOp>(static_cast<int>(k)); }

template <class T>
void check_unary(UnaryOp kind, double a, double b) {
  const std::vector<T> x = samples<T>();
  heed::dispatch_unary(kind, [&](auto k) {
    constexpr UnaryOp K = decltype(k)::value;
    if constexpr (heed::unary_defined<T>(K)) {
      using Out = typename heed::UnaryFn<K, T>::Out;
      heed::Tensor out = heed::empty({static_cast<int64_t>(x.size())}, heed::dtype_of<Out>::value);
      cpu().unary(heed_op(K), make(x), a, b, out);
      const std::vector<Out> want = read<Out>(out);
      const auto fn = heed::make_unary_fn<K, T>(a, b);
      for (size_t i = 0; i < x.size(); ++i) {
        INFO(heed::unary_op_name(K) << " of " << heed::dtype_name(heed::dtype_of<T>::value) << " "
                                            << +x[i] << " (a " << a << ", b " << b << ")");
        CHECK(same<Out>(fn(x[i]), want[i], approximated_on_cpu(K)));
      }
    }
  });
}

template <class T>
void check_every_unary() {
  for (int i = 0; i < kUnaryCount; ++i) {
    const auto kind = static_cast<UnaryOp>(i);
    if (!heed::unary_defined<T>(kind)) continue;
    if (kind == UnaryOp::PowScalar) {
      for (double e : {2.0, 1.0, 0.5, 3.0, -1.0, 0.0}) check_unary<T>(kind, e, 0);
    } else if (kind == UnaryOp::Clamp) {
      check_unary<T>(kind, -1.5, 2.5);
      check_unary<T>(kind, 0, 100);
      check_unary<T>(kind, -1e30, 1e30);  // integers saturate the bounds
    } else {
      check_unary<T>(kind, 2.5, 0);
      check_unary<T>(kind, -3, 0);
    }
  }
}

template <class T>
void check_binary(BinaryOp kind) {
  heed::dispatch_binary(kind, [&](auto k) {
    constexpr BinaryOp K = decltype(k)::value;
    if constexpr (heed::binary_defined<T>(K)) {
      using Out = typename heed::BinaryFn<K, T>::Out;
      // Every pair of samples, leaving out what the CPU refuses (tested below).
      std::vector<T> xs, ys;
      for (T p : samples<T>())
        for (T q : samples<T>()) {
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
            if (K == BinaryOp::Div && q == T(0)) continue;
            if (K == BinaryOp::Pow && heed::is_negative(q)) continue;
          }
          xs.push_back(p);
          ys.push_back(q);
        }
      heed::Tensor out = heed::empty({static_cast<int64_t>(xs.size())}, heed::dtype_of<Out>::value);
      cpu().binary(heed_op(K), make(xs), make(ys), out);
      const std::vector<Out> want = read<Out>(out);
      int64_t error[2] = {0, 0};
      const heed::BinaryFn<K, T> fn{error};
      for (size_t i = 0; i < xs.size(); ++i) {
        INFO(heed::binary_op_name(K) << " of " << heed::dtype_name(heed::dtype_of<T>::value) << " " << +xs[i]
                                             << " and " << +ys[i]);
        CHECK(same<Out>(fn(xs[i], ys[i]), want[i], approximated_on_cpu<T>(K)));
      }
      CHECK(error[0] == heed::kNoError);
    }
  });
}

template <class T>
void check_every_binary() {
  for (int i = 0; i < kBinaryCount; ++i)
    if (heed::binary_defined<T>(static_cast<BinaryOp>(i))) check_binary<T>(static_cast<BinaryOp>(i));
}

// Samples of S that the CPU converts to D without undefined behaviour.
template <class D, class S>
std::vector<S> castable() {
  std::vector<S> out;
  for (S v : samples<S>()) {
    if constexpr (heed::is_floating_type_v<S> && std::is_integral_v<D> && !std::is_same_v<D, bool>) {
      const double lo = std::is_signed_v<D> ? -1e18 : 0.0, hi = std::is_signed_v<D> ? 1e18 : 255.0;
      if (!(v >= lo && v <= hi)) continue;
    }
    out.push_back(v);
  }
  return out;
}

template <class D, class S>
void check_cast() {
  const std::vector<S> x = castable<D, S>();
  heed::Tensor out = heed::empty({static_cast<int64_t>(x.size())}, heed::dtype_of<D>::value);
  cpu().copy(make(x), out);
  const std::vector<D> want = read<D>(out);
  for (size_t i = 0; i < x.size(); ++i) {
    INFO(heed::dtype_name(heed::dtype_of<S>::value) << " " << +x[i] << " to " << heed::dtype_name(heed::dtype_of<D>::value));
    CHECK(same<D>(heed::cast_value<D>(x[i]), want[i], false));
  }
}

template <class S>
void check_casts_from() {
  check_cast<float, S>();
  check_cast<double, S>();
  check_cast<int64_t, S>();
  check_cast<uint8_t, S>();
  check_cast<bool, S>();
}

}  // namespace

TEST_CASE("cuda elementwise formulas: the ops defined per dtype are the CPU's", "[cuda][elementwise]") {
  heed::dispatch_dtype(GENERATE(heed::DType::Float32, heed::DType::Float64, heed::DType::Int64, heed::DType::UInt8,
                                heed::DType::Bool),
                       [](auto zero) {
                         using T = decltype(zero);
                         const heed::DType dt = heed::dtype_of<T>::value;
                         heed::Tensor x = heed::zeros({3}, dt);
                         for (int i = 0; i < kUnaryCount; ++i) {
                           const auto kind = static_cast<UnaryOp>(i);
                           const bool to_bool = heed::unary_writes_bool(kind);
                           heed::Tensor out = heed::empty({3}, to_bool ? heed::DType::Bool : dt);
                           INFO("unary " << heed::unary_op_name(kind) << " of " << heed::dtype_name(dt));
                           if (heed::unary_defined<T>(kind)) {
                             CHECK_NOTHROW(cpu().unary(heed_op(kind), x, 1, 2, out));
                           } else {
                             CHECK_THROWS_WITH(cpu().unary(heed_op(kind), x, 1, 2, out),
                                               Catch::Contains(heed::unary_op_name(kind)));
                           }
                         }
                         heed::Tensor y = heed::ones({3}, dt);
                         for (int i = 0; i < kBinaryCount; ++i) {
                           const auto kind = static_cast<BinaryOp>(i);
                           const bool to_bool = heed::binary_writes_bool(kind);
                           heed::Tensor out = heed::empty({3}, to_bool ? heed::DType::Bool : dt);
                           INFO("binary " << heed::binary_op_name(kind) << " of " << heed::dtype_name(dt));
                           if (heed::binary_defined<T>(kind)) {
                             CHECK_NOTHROW(cpu().binary(heed_op(kind), x, y, out));
                           } else {
                             CHECK_THROWS_WITH(cpu().binary(heed_op(kind), x, y, out),
                                               Catch::Contains(heed::binary_op_name(kind)));
                           }
                         }
                       });
}

TEST_CASE("cuda elementwise formulas: unary ops give the CPU's values", "[cuda][elementwise]") {
  check_every_unary<float>();
  check_every_unary<double>();
  check_every_unary<int64_t>();
  check_every_unary<uint8_t>();
  check_every_unary<bool>();
}

TEST_CASE("cuda elementwise formulas: binary ops give the CPU's values", "[cuda][elementwise]") {
  check_every_binary<float>();
  check_every_binary<double>();
  check_every_binary<int64_t>();
  check_every_binary<uint8_t>();
  check_every_binary<bool>();
}

TEST_CASE("cuda elementwise formulas: casts give the CPU copy's values", "[cuda][elementwise]") {
  check_casts_from<float>();
  check_casts_from<double>();
  check_casts_from<int64_t>();
  check_casts_from<uint8_t>();
  check_casts_from<bool>();
}

TEST_CASE("cuda elementwise formulas: where reads the mask as bytes", "[cuda][elementwise]") {
  const heed::WhereFn<float> fn;
  CHECK(fn(0, 1.0f, 2.0f) == 2.0f);
  CHECK(fn(1, 1.0f, 2.0f) == 1.0f);
  CHECK(fn(255, 1.0f, 2.0f) == 1.0f);  // a uint8 mask: any non-zero byte
}

TEST_CASE("cuda elementwise formulas: integer faults go to the error cell", "[cuda][elementwise]") {
  int64_t error[2] = {0, 0};
  const heed::BinaryFn<BinaryOp::Div, int64_t> div{error};
  CHECK(div(7, -2) == -3);  // toward zero
  CHECK(div(std::numeric_limits<int64_t>::min(), -1) == std::numeric_limits<int64_t>::min());  // wraps
  CHECK(error[0] == heed::kNoError);
  CHECK(div(5, 0) == 0);
  CHECK(error[0] == heed::kDivisionByZero);
  // The CPU refuses the same division.
  CHECK_THROWS_WITH(cpu().binary(heed::BinaryOp::Div, make<int64_t>({5}), make<int64_t>({0}),
                                 heed::empty({1}, heed::DType::Int64)),
                    Catch::Contains("division by zero"));

  int64_t error8[2] = {0, 0};
  const heed::BinaryFn<BinaryOp::Div, uint8_t> div8{error8};
  CHECK(div8(200, 0) == 0);
  CHECK(error8[0] == heed::kDivisionByZero);

  int64_t perror[2] = {0, 0};
  const heed::BinaryFn<BinaryOp::Pow, int64_t> pow{perror};
  CHECK(pow(3, 4) == 81);
  CHECK(pow(2, 64) == 0);  // wraps
  CHECK(perror[0] == heed::kNoError);
  CHECK(pow(2, -3) == 0);
  CHECK(perror[0] == heed::kNegativePower);
  CHECK(perror[1] == -3);
  CHECK(heed::binary_may_fail<int64_t>(BinaryOp::Pow));
  CHECK_FALSE(heed::binary_may_fail<uint8_t>(BinaryOp::Pow));
  CHECK(heed::binary_may_fail<uint8_t>(BinaryOp::Div));
  CHECK_FALSE(heed::binary_may_fail<float>(BinaryOp::Div));
}

// ---- bfloat16: float32's formulas on widened values, rounded once -------------------

namespace {

using heed::bfloat16;

// Equal as values, NaN equal to NaN, zeros' signs compared.
bool same_value(float got, float want) {
  if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
  return got == want && std::signbit(got) == std::signbit(want);
}

// The bfloat16 formula of op K is exactly the float32 one on the widened input, rounded.
template <UnaryOp K>
void check_bf16_unary_as_float(double a, double b) {
  using Fn = heed::UnaryFn<K, bfloat16>;
  const auto fn = heed::make_unary_fn<K, bfloat16>(a, b);
  const auto fn32 = heed::make_unary_fn<K, float>(a, b);
  for (bfloat16 x : samples<bfloat16>()) {
    INFO(heed::unary_op_name(K) << " of bfloat16 " << float(x) << " (a " << a << ", b " << b << ")");
    if constexpr (std::is_same_v<typename Fn::Out, bool>) {
      CHECK(fn(x) == fn32(float(x)));
    } else {
      CHECK(same_value(fn(x), bfloat16(fn32(float(x)))));
    }
  }
}

template <BinaryOp K>
void check_bf16_binary_as_float() {
  using Fn = heed::BinaryFn<K, bfloat16>;
  const Fn fn{nullptr};
  const heed::BinaryFn<K, float> fn32{nullptr};
  for (bfloat16 p : samples<bfloat16>())
    for (bfloat16 q : samples<bfloat16>()) {
      INFO(heed::binary_op_name(K) << " of bfloat16 " << float(p) << " and " << float(q));
      if constexpr (std::is_same_v<typename Fn::Out, bool>) {
        CHECK(fn(p, q) == fn32(float(p), float(q)));
      } else {
        CHECK(same_value(fn(p, q), bfloat16(fn32(float(p), float(q)))));
      }
    }
}

// Whether the CPU backend computes bfloat16 elementwise ops yet (the CPU side
// lands separately; before it does, its switches may skip bfloat16 silently),
// judged by the values it writes over 0xff bytes; the comparisons with it are
// skipped with a warning if not.
bool cpu_has_bf16_elementwise() {
  auto scratch = [](heed::DType dt) {
    heed::Tensor t = heed::empty({1}, dt);
    std::memset(t.raw_data(), 0xff, heed::dtype_size(dt));
    return t;
  };
  try {
    const heed::Tensor x = make<bfloat16>({bfloat16(1.0f)});
    heed::Tensor e = scratch(heed::DType::BFloat16), two = scratch(heed::DType::BFloat16);
    heed::Tensor flag = scratch(heed::DType::Bool), i = scratch(heed::DType::Int64), one = scratch(heed::DType::BFloat16);
    cpu().unary(heed::UnaryOp::Exp, x, 0, 0, e);
    cpu().binary(heed::BinaryOp::Add, x, x, two);
    cpu().binary(heed::BinaryOp::Lt, x, x, flag);
    cpu().copy(x, i);
    cpu().copy(make<double>({1.0}), one);
    return std::abs(read<bfloat16>(e)[0] - 2.71875f) < 0.02f && float(read<bfloat16>(two)[0]) == 2.0f &&
           read<uint8_t>(flag)[0] == 0 && read<int64_t>(i)[0] == 1 && float(read<bfloat16>(one)[0]) == 1.0f;
  } catch (const heed::Error&) {
    return false;
  }
}

}  // namespace

TEST_CASE("cuda elementwise formulas: bfloat16 is float32's formula on the widened value, rounded once",
          "[cuda][elementwise][bfloat16]") {
  for (int i = 0; i < kUnaryCount; ++i) {
    const auto kind = static_cast<UnaryOp>(i);
    CHECK(heed::unary_defined<bfloat16>(kind) == heed::unary_defined<float>(kind));
    heed::dispatch_unary(kind, [&](auto k) {
      constexpr UnaryOp K = decltype(k)::value;
      if constexpr (heed::unary_defined<bfloat16>(K)) {
        if (K == UnaryOp::PowScalar) {
          for (double e : {2.0, 1.0, 0.5, 3.0, -1.0, 0.0}) check_bf16_unary_as_float<K>(e, 0);
        } else if (K == UnaryOp::Clamp) {
          check_bf16_unary_as_float<K>(-1.5, 2.5);
          check_bf16_unary_as_float<K>(0.1, 100);  // 0.1 is a float bound, not a bfloat16 one (as on the CPU)
        } else {
          check_bf16_unary_as_float<K>(2.5, 0);
          check_bf16_unary_as_float<K>(0.1, 0);
        }
      }
    });
  }
  for (int i = 0; i < kBinaryCount; ++i) {
    const auto kind = static_cast<BinaryOp>(i);
    CHECK(heed::binary_defined<bfloat16>(kind) == heed::binary_defined<float>(kind));
    CHECK_FALSE(heed::binary_may_fail<bfloat16>(kind));
    heed::dispatch_binary(kind, [&](auto k) {
      constexpr BinaryOp K = decltype(k)::value;
      if constexpr (heed::binary_defined<bfloat16>(K)) check_bf16_binary_as_float<K>();
    });
  }
  // One rounding, not two: 1 + 2^-8 is a tie in bfloat16 (rounds to even, 1),
  // 1 + 2^-8 + 2^-20 is just above it (rounds up).
  const heed::BinaryFn<BinaryOp::Add, bfloat16> add{nullptr};
  CHECK(float(add(bfloat16(1.0f), bfloat16(0x1p-8f))) == 1.0f);
  CHECK(float(add(bfloat16(1.0f), bfloat16(0x1p-8f + 0x1p-15f))) == 1.0078125f);
  // Comparisons compare the bfloat16 values, exactly.
  const heed::BinaryFn<BinaryOp::Lt, bfloat16> lt{nullptr};
  CHECK(lt(bfloat16(1.0f), bfloat16(1.0078125f)));
  CHECK_FALSE(lt(bfloat16(1.0f), bfloat16(1.001f)));  // 1.001 rounds to 1
}

TEST_CASE("cuda elementwise formulas: bfloat16 casts", "[cuda][elementwise][bfloat16]") {
  using heed::cast_value;
  for (bfloat16 v : samples<bfloat16>()) {
    const float f = v;
    INFO("bfloat16 " << f);
    CHECK(same_value(cast_value<float>(v), f));
    CHECK(same_value(static_cast<float>(cast_value<double>(v)), f));
    CHECK(cast_value<bfloat16>(v).bits == v.bits);
    CHECK(cast_value<bool>(v) == (f != 0.0f));  // NaN is true
    if (f >= -1e18f && f <= 1e18f) CHECK(cast_value<int64_t>(v) == static_cast<int64_t>(f));
    if (f >= 0.0f && f <= 255.0f) CHECK(cast_value<uint8_t>(v) == static_cast<uint8_t>(static_cast<int64_t>(f)));
  }
  CHECK(cast_value<uint8_t>(bfloat16(300.0f)) == 44);  // through int64, wrapping like the CPU
  CHECK(cast_value<int64_t>(bfloat16(-2.75f)) == -2);  // truncates toward zero
  CHECK(float(cast_value<bfloat16>(257.0)) == 256.0f);  // a tie: to even
  CHECK(float(cast_value<bfloat16>(int64_t{259})) == 260.0f);
  CHECK(float(cast_value<bfloat16>(true)) == 1.0f);
  // A double goes through float: 1 + 2^-8 + 2^-30 rounds to the float 1 + 2^-8, a tie, then to 1.
  CHECK(float(cast_value<bfloat16>(1.0 + 0x1p-8 + 0x1p-30)) == 1.0f);
  CHECK(std::isnan(float(cast_value<bfloat16>(std::nan("")))));
  CHECK(std::isinf(float(cast_value<bfloat16>(1e300))));
}

TEST_CASE("cuda elementwise formulas: bfloat16 ops and casts give the CPU's values",
          "[cuda][elementwise][bfloat16]") {
  if (!cpu_has_bf16_elementwise()) {
    WARN("the CPU backend has no bfloat16 elementwise kernels yet: comparison skipped");
    return;
  }
  check_every_unary<bfloat16>();
  check_every_binary<bfloat16>();
  check_casts_from<bfloat16>();
  check_cast<bfloat16, float>();
  check_cast<bfloat16, double>();
  check_cast<bfloat16, int64_t>();
  check_cast<bfloat16, uint8_t>();
  check_cast<bfloat16, bool>();
  check_cast<bfloat16, bfloat16>();
}

// ---- the kernels on a GPU (skipped without one) ------------------------------------

namespace {

bool have_gpu() {
  if (!heed::cuda_is_available()) {
    WARN("[skip] no GPU visible (or heed was built without CUDA): the device kernels are not run");
    return false;
  }
  return true;
}

const heed::Backend& gpu() { return heed::backend(heed::DeviceType::CUDA); }

// `shape` on the CPU holding the samples of T over and over, from sample `shift`.
template <class T>
heed::Tensor tiled(const heed::Shape& shape, size_t shift, const std::vector<T>& values = samples<T>()) {
  heed::Tensor t = heed::empty(shape, heed::dtype_of<T>::value);
  T* p = static_cast<T*>(t.raw_data());  // raw: data_ptr has no bfloat16 instance
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = values[(static_cast<size_t>(i) + shift) % values.size()];
  return t;
}

// Views of shape [3, 4, 5] over a base tensor: dense, transposed, stepped, expanded.
struct ViewCase {
  const char* name;
  heed::Shape base;
  heed::Tensor (*view)(const heed::Tensor&);
};
const ViewCase kViews[] = {
    {"contiguous", {3, 4, 5}, [](const heed::Tensor& t) { return t; }},
    {"transposed", {5, 4, 3}, [](const heed::Tensor& t) { return heed::permute(t, {2, 1, 0}); }},
    {"stepped", {6, 4, 10}, [](const heed::Tensor& t) { return heed::slice(heed::slice(t, 0, 0, 6, 2), 2, 1, 10, 2); }},
    {"expanded", {1, 4, 1}, [](const heed::Tensor& t) { return heed::expand(t, {3, 4, 5}); }},
};
const heed::Shape kViewShape{3, 4, 5};

// Compares a GPU result with the CPU's, element by element.
template <class T>
void check_close(const heed::Tensor& gpu_out, const heed::Tensor& cpu_out, bool approx) {
  const heed::Tensor back = gpu_out.to(heed::kCPU).contiguous();
  const std::vector<T> got = read<T>(back), want = read<T>(cpu_out.contiguous());
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": cuda " << +got[i] << ", cpu " << +want[i]);
    bool ok = same<T>(got[i], want[i], false);
    if constexpr (std::is_floating_point_v<T>) {
      // CUDA's exp, log, sin, pow, ... are a few ulp from libm and from the
      // CPU's own float32 versions; GELU's 1 + tanh(..) cancels in the far
      // negative tail, hence an absolute part.
      const bool f32 = std::is_same_v<T, float>;
      const T rtol = f32 ? T(4e-6) : T(1e-13), atol = f32 ? T(1e-5) : T(1e-14);
      if (!ok && approx && std::isfinite(got[i]) && std::isfinite(want[i]))
        ok = std::abs(got[i] - want[i]) <= rtol * std::abs(want[i]) + atol;
      if (!ok && approx && got[i] == want[i]) ok = true;  // +0 and -0
    } else if constexpr (std::is_same_v<T, heed::bfloat16>) {
      // Both compute in float and round once: a float ulp or two apart before
      // rounding is one bfloat16 ulp (2^-7 relative) after, at a rounding edge.
      const float g = got[i], w = want[i];
      if (!ok && approx && std::isfinite(g) && std::isfinite(w)) ok = std::abs(g - w) <= 0x1p-7f * std::abs(w) + 1e-5f;
      if (!ok && approx && g == w) ok = true;  // +0 and -0
    }
    CHECK(ok);
  }
}

bool transcendental(UnaryOp k) {
  return approximated_on_cpu(k) || k == UnaryOp::Log || k == UnaryOp::Sin || k == UnaryOp::Cos ||
         k == UnaryOp::PowScalar;
}

template <class T>
void check_unary_on_gpu() {
  for (const ViewCase& v : kViews) {
    const heed::Tensor base = tiled<T>(v.base, 0);
    const heed::Tensor x_cpu = v.view(base), x_gpu = v.view(base.to(heed::kCUDA));
    for (int i = 0; i < kUnaryCount; ++i) {
      const auto kind = static_cast<UnaryOp>(i);
      if (!heed::unary_defined<T>(kind)) continue;
      const double a = kind == UnaryOp::Clamp ? -1.5 : (kind == UnaryOp::PowScalar ? 3.0 : 2.5);
      const double b = 2.5;
      heed::dispatch_unary(kind, [&](auto k) {
        constexpr UnaryOp K = decltype(k)::value;
        if constexpr (heed::unary_defined<T>(K)) {
          using Out = typename heed::UnaryFn<K, T>::Out;
          INFO(heed::unary_op_name(K) << " of a " << v.name << " " << heed::dtype_name(heed::dtype_of<T>::value)
                                              << " tensor");
          heed::Tensor out_cpu = heed::empty(kViewShape, heed::dtype_of<Out>::value);
          heed::Tensor out_gpu = heed::empty(kViewShape, heed::dtype_of<Out>::value, heed::kCUDA);
          cpu().unary(heed_op(K), x_cpu, a, b, out_cpu);
          gpu().unary(heed_op(K), x_gpu, a, b, out_gpu);
          check_close<Out>(out_gpu, out_cpu, transcendental(K));
        }
      });
    }
  }
}

template <class T>
void check_binary_on_gpu() {
  // y avoids what integer div and pow refuse (tested on its own below).
  std::vector<T> y_values = samples<T>();
  if constexpr (heed::kIsInteger<T>) y_values = {1, 2, 3, 5, 7, 100};
  for (const ViewCase& vx : kViews)
    for (const ViewCase& vy : kViews) {
      const heed::Tensor bx = tiled<T>(vx.base, 0), by = tiled<T>(vy.base, 3, y_values);
      const heed::Tensor x_cpu = vx.view(bx), x_gpu = vx.view(bx.to(heed::kCUDA));
      const heed::Tensor y_cpu = vy.view(by), y_gpu = vy.view(by.to(heed::kCUDA));
      for (int i = 0; i < kBinaryCount; ++i) {
        const auto kind = static_cast<BinaryOp>(i);
        if (!heed::binary_defined<T>(kind)) continue;
        heed::dispatch_binary(kind, [&](auto k) {
          constexpr BinaryOp K = decltype(k)::value;
          if constexpr (heed::binary_defined<T>(K)) {
            using Out = typename heed::BinaryFn<K, T>::Out;
            INFO(heed::binary_op_name(K) << " of " << vx.name << " and " << vy.name << " "
                                                 << heed::dtype_name(heed::dtype_of<T>::value) << " tensors");
            heed::Tensor out_cpu = heed::empty(kViewShape, heed::dtype_of<Out>::value);
            heed::Tensor out_gpu = heed::empty(kViewShape, heed::dtype_of<Out>::value, heed::kCUDA);
            cpu().binary(heed_op(K), x_cpu, y_cpu, out_cpu);
            gpu().binary(heed_op(K), x_gpu, y_gpu, out_gpu);
            check_close<Out>(out_gpu, out_cpu, K == BinaryOp::Pow || approximated_on_cpu<T>(K));
          }
        });
      }
    }
}

template <class D, class S>
void check_copy_on_gpu() {
  // Values every dtype holds: 0 to 9 and a few more.
  const std::vector<S> values = {S(0), S(1), S(2), S(3), S(7), S(9), S(1), S(0)};
  for (const ViewCase& vs : kViews)
    for (const ViewCase& vd : kViews) {
      if (std::string(vd.name) == "expanded") continue;  // not a destination
      INFO(heed::dtype_name(heed::dtype_of<S>::value) << " " << vs.name << " to "
                                                      << heed::dtype_name(heed::dtype_of<D>::value) << " " << vd.name);
      const heed::Tensor src_base = tiled<S>(vs.base, 1, values);
      const heed::Tensor src_cpu = vs.view(src_base), src_gpu = vs.view(src_base.to(heed::kCUDA));
      heed::Tensor want = heed::empty(kViewShape, heed::dtype_of<D>::value);
      cpu().copy(src_cpu, want);
      // GPU to GPU, host to GPU and GPU to host, into strided destinations.
      heed::Tensor dst_base = heed::zeros(vd.base, heed::dtype_of<D>::value, heed::kCUDA);
      gpu().copy(src_gpu, vd.view(dst_base));
      check_close<D>(vd.view(dst_base), want, false);
      heed::Tensor dst2 = heed::zeros(vd.base, heed::dtype_of<D>::value, heed::kCUDA);
      gpu().copy(src_cpu, vd.view(dst2));
      check_close<D>(vd.view(dst2), want, false);
      heed::Tensor host = heed::zeros(vd.base, heed::dtype_of<D>::value);
      gpu().copy(src_gpu, vd.view(host));
      check_close<D>(vd.view(host), want, false);
    }
}

template <class S>
void check_copies_from_on_gpu() {
  check_copy_on_gpu<float, S>();
  check_copy_on_gpu<double, S>();
  check_copy_on_gpu<int64_t, S>();
  check_copy_on_gpu<uint8_t, S>();
  check_copy_on_gpu<bool, S>();
}

// Every bfloat16 sample through each dtype and back on the GPU: the CPU's
// casts (truncation through int64, "!= 0", double through float).
void check_bf16_round_trips_on_gpu() {
  const heed::Tensor x = tiled<heed::bfloat16>({7, 9}, 0);
  const heed::Tensor xg = heed::transpose(x.to(heed::kCUDA), 0, 1);
  for (heed::DType dt : {heed::DType::Float32, heed::DType::Float64, heed::DType::Int64, heed::DType::UInt8,
                         heed::DType::Bool}) {
    INFO("bfloat16 to " << heed::dtype_name(dt) << " and back");
    heed::Tensor mid = heed::empty({9, 7}, dt), mid_g = heed::empty({9, 7}, dt, heed::kCUDA);
    cpu().copy(heed::transpose(x, 0, 1), mid);
    gpu().copy(xg, mid_g);
    heed::Tensor back = heed::empty({9, 7}, heed::DType::BFloat16);
    heed::Tensor back_g = heed::empty({9, 7}, heed::DType::BFloat16, heed::kCUDA);
    cpu().copy(mid, back);
    gpu().copy(mid_g, back_g);
    heed::dispatch_dtype(dt, [&](auto zero) { check_close<decltype(zero)>(mid_g, mid, false); });
    check_close<heed::bfloat16>(back_g, back, false);
  }
}

}  // namespace

TEST_CASE("cuda elementwise kernels: unary ops match the CPU on strided inputs", "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  check_unary_on_gpu<float>();
  check_unary_on_gpu<double>();
  check_unary_on_gpu<int64_t>();
  check_unary_on_gpu<uint8_t>();
  check_unary_on_gpu<bool>();
  if (cpu_has_bf16_elementwise()) check_unary_on_gpu<heed::bfloat16>();
  else WARN("the CPU backend has no bfloat16 elementwise kernels yet: bfloat16 not compared");
}

TEST_CASE("cuda elementwise kernels: binary ops match the CPU on strided and broadcast inputs",
          "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  check_binary_on_gpu<float>();
  check_binary_on_gpu<double>();
  check_binary_on_gpu<int64_t>();
  check_binary_on_gpu<uint8_t>();
  check_binary_on_gpu<bool>();
  if (cpu_has_bf16_elementwise()) check_binary_on_gpu<heed::bfloat16>();
  else WARN("the CPU backend has no bfloat16 elementwise kernels yet: bfloat16 not compared");
}

TEST_CASE("cuda elementwise kernels: where with bool and uint8 masks", "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  for (heed::DType mask_type : {heed::DType::Bool, heed::DType::UInt8}) {
    const heed::Tensor mask_base = heed::to_dtype(tiled<uint8_t>({1, 4, 5}, 0, {0, 1, 0, 0, 2, 255}), mask_type);
    const heed::Tensor x_base = tiled<float>({5, 4, 3}, 0), y_base = tiled<float>({3, 4, 5}, 5);
    const heed::Tensor m = heed::expand(mask_base, kViewShape), x = heed::permute(x_base, {2, 1, 0});
    heed::Tensor want = heed::empty(kViewShape);
    cpu().where(m, x, y_base, want);
    heed::Tensor got = heed::empty(kViewShape, heed::DType::Float32, heed::kCUDA);
    gpu().where(heed::expand(mask_base.to(heed::kCUDA), kViewShape),
                heed::permute(x_base.to(heed::kCUDA), {2, 1, 0}), y_base.to(heed::kCUDA), got);
    check_close<float>(got, want, false);
  }
}

TEST_CASE("cuda elementwise kernels: copies cast and scatter between any layouts and devices",
          "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  check_copies_from_on_gpu<float>();
  check_copies_from_on_gpu<double>();
  check_copies_from_on_gpu<int64_t>();
  check_copies_from_on_gpu<uint8_t>();
  check_copies_from_on_gpu<bool>();
  if (!cpu_has_bf16_elementwise()) {
    WARN("the CPU backend has no bfloat16 copies yet: bfloat16 not compared");
    return;
  }
  check_copies_from_on_gpu<heed::bfloat16>();
  check_copy_on_gpu<heed::bfloat16, float>();
  check_copy_on_gpu<heed::bfloat16, double>();
  check_copy_on_gpu<heed::bfloat16, int64_t>();
  check_copy_on_gpu<heed::bfloat16, uint8_t>();
  check_copy_on_gpu<heed::bfloat16, bool>();
  check_copy_on_gpu<heed::bfloat16, heed::bfloat16>();
  check_bf16_round_trips_on_gpu();
}

TEST_CASE("cuda elementwise kernels: large transfers go through the pinned staging buffer",
          "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  // 9 MiB + 12 bytes: more than two 4 MiB chunks, the last one short.
  const int64_t n = (int64_t(9) << 18) + 3;
  heed::Tensor host = heed::arange(0.0, static_cast<double>(n), 1.0, heed::DType::Float32);
  const heed::Tensor device = host.to(heed::kCUDA);
  const heed::Tensor back = device.to(heed::kCPU);
  CHECK(back.to_vector<float>() == host.to_vector<float>());
  // A transposed host tensor too: staged contiguously on the host first.
  const heed::Tensor t = heed::transpose(heed::reshape(host.narrow(0, 0, 1024 * 1024), {1024, 1024}), 0, 1);
  CHECK(t.to(heed::kCUDA).to(heed::kCPU).to_vector<float>() == heed::contiguous(t).to_vector<float>());
}

TEST_CASE("cuda elementwise kernels: fill writes strided views only", "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  heed::Tensor base = heed::zeros({6, 4, 10}, heed::DType::Int64, heed::kCUDA);
  heed::Tensor view = kViews[2].view(base);  // every other row and column
  gpu().fill(view, 7);
  heed::Tensor want = heed::zeros({6, 4, 10}, heed::DType::Int64);
  cpu().fill(kViews[2].view(want), 7);
  check_close<int64_t>(base, want, false);
  heed::Tensor t = heed::zeros({5, 4, 3}, heed::DType::Float32, heed::kCUDA);
  gpu().fill(heed::permute(t, {2, 1, 0}), -1.5);
  CHECK(t.to(heed::kCPU).to_vector<float>() == std::vector<float>(60, -1.5f));
  // bfloat16: the value rounded through float, into a strided view.
  heed::Tensor h = heed::zeros({6, 4, 10}, heed::DType::BFloat16, heed::kCUDA);
  gpu().fill(kViews[2].view(h), 0.1);
  const std::vector<heed::bfloat16> hv = read<heed::bfloat16>(h.to(heed::kCPU));
  for (size_t i = 0; i < hv.size(); ++i) {
    const bool written = (i / 40) % 2 == 0 && (i % 10) % 2 == 1;  // rows 0, 2, 4 and columns 1, 3, ... of kViews[2]
    CHECK(hv[i].bits == (written ? heed::bfloat16(0.1f).bits : uint16_t{0}));
  }
}

TEST_CASE("cuda elementwise kernels: integer division by zero and negative powers throw like the CPU",
          "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  const heed::Tensor x = heed::from_vector<int64_t>({4, 5, 6}).to(heed::kCUDA);
  const heed::Tensor zero = heed::from_vector<int64_t>({1, 0, 2}).to(heed::kCUDA);
  const heed::Tensor negative = heed::from_vector<int64_t>({1, -2, 2}).to(heed::kCUDA);
  heed::Tensor out = heed::empty({3}, heed::DType::Int64, heed::kCUDA);
  CHECK_THROWS_WITH(gpu().binary(heed::BinaryOp::Div, x, zero, out), Catch::Contains("division by zero"));
  CHECK_THROWS_WITH(gpu().binary(heed::BinaryOp::Pow, x, negative, out), Catch::Contains("negative power -2"));
  CHECK_NOTHROW(gpu().binary(heed::BinaryOp::Div, x, negative, out));
  CHECK(out.to(heed::kCPU).to_vector<int64_t>() == std::vector<int64_t>{4, -2, 3});
}

TEST_CASE("cuda elementwise kernels: copies between two GPUs", "[cuda][elementwise][device]") {
  if (!have_gpu()) return;
  if (heed::device_count(heed::DeviceType::CUDA) < 2) {
    WARN("[skip] one GPU only: no peer copy to test");
    return;
  }
  const heed::Device other{heed::DeviceType::CUDA, 1};
  const heed::Tensor base = tiled<float>({5, 4, 3}, 0);
  const heed::Tensor on0 = base.to(heed::kCUDA);
  CHECK(on0.to(other).to(heed::kCPU).to_vector<float>() == base.to_vector<float>());
  // Transposed source, casting, into a strided destination.
  heed::Tensor dst = heed::zeros({6, 4, 10}, heed::DType::Float64, other);
  gpu().copy(heed::permute(on0, {2, 1, 0}), kViews[2].view(dst));
  heed::Tensor want = heed::zeros({6, 4, 10}, heed::DType::Float64);
  cpu().copy(heed::permute(base, {2, 1, 0}), kViews[2].view(want));
  check_close<double>(dst, want, false);
}

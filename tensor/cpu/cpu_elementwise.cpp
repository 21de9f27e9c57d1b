// Elementwise CPU kernels: copy, fill, unary, binary, where. Each runs a
// functor of tensor/elementwise_formulas.h, the formulas the GPU runs too,
// through map1/map2/map3 (strided_loop.h), which run it over contiguous runs
// the compiler vectorises. float32 math goes through vec_math.h's
// vectorisable exp/tanh/erf (the VecMath policy), float64 through the C
// library; bfloat16 is computed in float and rounded once.
#include <limits>
#include <type_traits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/cpu/vec_math.h"
#include "tensor/elementwise_formulas.h"

namespace heed::cpu {
namespace {

// Ops whose formula costs tens of cycles an element get smaller parallel chunks.
constexpr bool is_costly(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Log || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid ||
         op == UnaryOp::GeluErf || op == UnaryOp::GeluTanh || op == UnaryOp::Erf || op == UnaryOp::Sin ||
         op == UnaryOp::Cos || op == UnaryOp::PowScalar;
}

// ---- float32 runs at the CPU's full vector width -------------------------------
// The ops whose float formula is mostly vec_math's exp, tanh or erf: their
// contiguous float32 runs go through HEED_ISA_CLONES loops (isa_clones.h),
// 2-4x faster than the baseline build's 4-lane loop on an AVX-512 CPU.
constexpr bool has_wide_run(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid || op == UnaryOp::GeluErf ||
         op == UnaryOp::GeluTanh || op == UnaryOp::Erf;
}
constexpr bool has_wide_run(BinaryOp op) { return op == BinaryOp::GeluErfGrad || op == BinaryOp::GeluTanhGrad; }

template <UnaryOp K>
__attribute__((always_inline)) inline void unary_run(const float* x, float* o, int64_t n) {
  const UnaryFn<K, float, VecMath> f{};
  for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
}
template <BinaryOp K>
__attribute__((always_inline)) inline void binary_run(const float* x, const float* y, float* o, int64_t n) {
  const BinaryFn<K, float, VecMath> f{};
  for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
}

// One cloned function per op (flatten: every call in it is inlined into each
// clone, so the formula and vec_math run at the clone's width; an
// out-of-line call would run the baseline code an element at a time).
#define HEED_WIDE_UNARY(name) \
  HEED_ISA_CLONES __attribute__((flatten)) void wide_##name(const float* x, float* o, int64_t n) { \
    unary_run<UnaryOp::name>(x, o, n);                                                          \
  }
HEED_WIDE_UNARY(Exp)
HEED_WIDE_UNARY(Tanh)
HEED_WIDE_UNARY(Sigmoid)
HEED_WIDE_UNARY(GeluErf)
HEED_WIDE_UNARY(GeluTanh)
HEED_WIDE_UNARY(Erf)
#undef HEED_WIDE_UNARY
HEED_ISA_CLONES __attribute__((flatten)) void wide_GeluErfGrad(const float* x, const float* y, float* o, int64_t n) {
  binary_run<BinaryOp::GeluErfGrad>(x, y, o, n);
}
HEED_ISA_CLONES __attribute__((flatten)) void wide_GeluTanhGrad(const float* x, const float* y, float* o, int64_t n) {
  binary_run<BinaryOp::GeluTanhGrad>(x, y, o, n);
}

template <UnaryOp K>
void wide_unary_run(const float* x, float* o, int64_t n) {
  if constexpr (K == UnaryOp::Exp) wide_Exp(x, o, n);
  else if constexpr (K == UnaryOp::Tanh) wide_Tanh(x, o, n);
  else if constexpr (K == UnaryOp::Sigmoid) wide_Sigmoid(x, o, n);
  else if constexpr (K == UnaryOp::GeluErf) wide_GeluErf(x, o, n);
  else if constexpr (K == UnaryOp::GeluTanh) wide_GeluTanh(x, o, n);
  else wide_Erf(x, o, n);
}
template <BinaryOp K>
void wide_binary_run(const float* x, const float* y, float* o, int64_t n) {
  if constexpr (K == BinaryOp::GeluErfGrad) wide_GeluErfGrad(x, y, o, n);
  else wide_GeluTanhGrad(x, y, o, n);
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out) {
  if constexpr (kIsFloat<T>) {
    // pow(x, 2) is x * x and pow(x, 1) is x in the formula too; chosen here,
    // once per call, their loops vectorise (a branch per element does not).
    if (op == UnaryOp::PowScalar && static_cast<compute_t<T>>(a) == compute_t<T>(2)) op = UnaryOp::Square;
    if (op == UnaryOp::PowScalar && static_cast<compute_t<T>>(a) == compute_t<T>(1))
      return map1<T, T>(out, x, kGrainCheap, CastFn<T, T>{});
  }
  dispatch_unary(op, [&](auto kind) {
    constexpr UnaryOp K = decltype(kind)::value;
    if constexpr (unary_defined<T>(K)) {
      using Fn = UnaryFn<K, T, VecMath>;
      const int64_t grain = is_costly(K) ? kGrainCostly : kGrainCheap;
      if constexpr (std::is_same_v<T, float> && has_wide_run(K)) {
        map1<float, float>(out, x, grain, make_unary_fn<K, T, VecMath>(a, b),
                           [](float* o, const float* in, int64_t n) { wide_unary_run<K>(in, o, n); });
      } else {
        map1<typename Fn::Out, T>(out, x, grain, make_unary_fn<K, T, VecMath>(a, b));
      }
    } else {
      HEED_FAIL("cpu unary: {} is not defined for {} tensors", unary_op_name(K), dtype_name(x.dtype()));
    }
  });
}

// The first element of t (in its order) for which bad(v) holds, if any: the
// integer divisors and exponents are checked before the pass, so a bad one
// throws here instead of in the middle of it (the GPU records it instead).
template <class T, class Bad>
bool find_bad(const Tensor& t, Bad bad, T& found) {
  auto plan = make_plan<1>(t.shape(), {&t.strides()}, {int64_t(sizeof(T))});
  bool any = false;
  char* base[1] = {bytes_of(t)};
  plan.walk(base, 0, plan.numel, [&](char* const* p, const int64_t* s, int64_t n) {
    for (int64_t i = 0; i < n && !any; ++i) {
      const T v = *reinterpret_cast<const T*>(p[0] + i * s[0]);
      if (bad(v)) any = true, found = v;
    }
  });
  return any;
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  dispatch_binary(op, [&](auto kind) {
    constexpr BinaryOp K = decltype(kind)::value;
    if constexpr (binary_defined<T>(K)) {
      if constexpr (binary_may_fail<T>(K)) {
        T bad{};
        if constexpr (K == BinaryOp::Div) {
          HEED_CHECK(!find_bad<T>(y, [](T q) { return q == T(0); }, bad),
                     "cpu binary: integer division by zero in a {} tensor", dtype_name(dtype_of<T>::value));
        } else {
          HEED_CHECK(!find_bad<T>(y, [](T q) { return is_negative(q); }, bad),
                     "cpu binary: pow of {} tensors to the negative power {} (use a float tensor)",
                     dtype_name(dtype_of<T>::value), static_cast<int64_t>(bad));
        }
      }
      using Fn = BinaryFn<K, T, VecMath>;
      int64_t unused_error[2] = {0, 0};  // never written: the operands were checked above
      constexpr bool costly = kIsFloat<T> && (K == BinaryOp::Pow || has_wide_run(K));
      const int64_t grain = costly ? kGrainCostly : kGrainCheap;
      if constexpr (std::is_same_v<T, float> && has_wide_run(K)) {
        map2<float, float>(out, x, y, grain, Fn{unused_error},
                           [](float* o, const float* p, const float* q, int64_t n) { wide_binary_run<K>(p, q, o, n); });
      } else {
        map2<typename Fn::Out, T>(out, x, y, grain, Fn{unused_error});
      }
    } else {
      HEED_FAIL("cpu binary: {} is not defined for {} tensors", binary_op_name(K), dtype_name(x.dtype()));
    }
  });
}

// ---- copy ----------------------------------------------------------------------

// Same-dtype copy where src is contiguous along a dim other than the innermost
// (a transpose): walking dst in order would read src a cache line per element,
// so the (k, inner) plane is copied in square tiles that fit in L1 instead.
constexpr int64_t kTile = 16;

template <class T>
void copy_tiled(const StridedPlan<2>& plan, int k, char* dst, const char* src) {
  const int last = plan.ndim - 1;
  const int64_t rows = plan.shape[k], cols = plan.shape[last];
  const int64_t dr = plan.strides[0][k], sc = plan.strides[1][last];  // bytes
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t planes = plan.numel / (rows * cols);
  parallel_for(0, planes * row_tiles, std::max<int64_t>(1, kGrainCheap / (kTile * cols)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t plane = t / row_tiles, r0 = (t % row_tiles) * kTile, r1 = std::min(rows, r0 + kTile);
      int64_t d_off = 0, s_off = 0;  // the plane's position over the other dims
      int64_t rem = plane;
      for (int d = last - 1; d >= 0; --d) {
        if (d == k) continue;
        d_off += (rem % plan.shape[d]) * plan.strides[0][d];
        s_off += (rem % plan.shape[d]) * plan.strides[1][d];
        rem /= plan.shape[d];
      }
      // In elements from here: dst is unit-stride along c, src along r.
      T* d = reinterpret_cast<T*>(dst + d_off);
      const T* s = reinterpret_cast<const T*>(src + s_off);
      const int64_t dr_e = dr / int64_t(sizeof(T)), sc_e = sc / int64_t(sizeof(T));
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t r = r0; r < r1; ++r) {
          T* d_row = d + r * dr_e;
          const T* s_col = s + r;
          for (int64_t c = c0; c < c1; ++c) d_row[c] = s_col[c * sc_e];
        }
      }
    }
  });
}

template <class U>
void copy_same(const Tensor& dst, const Tensor& src) {
  map1<U, U>(dst, src, kGrainCheap, [](U v) { return v; });
}

// True (and k set) when copy_tiled applies: src's unit-stride dim is not the innermost one.
bool transposed_copy(const StridedPlan<2>& plan, int64_t size, int& k) {
  const int last = plan.ndim - 1;
  if (last < 1 || plan.strides[1][last] == size || plan.strides[0][last] != size) return false;
  for (k = 0; k < last; ++k)
    if (plan.strides[1][k] == size) return plan.shape[k] >= kTile && plan.shape[last] >= kTile;
  return false;
}

}  // namespace

// ---- the kernels -----------------------------------------------------------------

void copy(const Tensor& src, const Tensor& dst) {
  HEED_CHECK(src.shape() == dst.shape(), "cpu copy: shapes {} and {} differ", shape_str(src.shape()),
             shape_str(dst.shape()));
  if (src.dtype() == dst.dtype()) {
    // Same type: bytes moved as unsigned integers of the element's size.
    const int64_t size = static_cast<int64_t>(dtype_size(src.dtype()));
    auto plan = make_plan<2>(dst.shape(), {&dst.strides(), &src.strides()}, {size, size});
    int k = 0;
    const bool tiled = transposed_copy(plan, size, k);
    char* d = bytes_of(dst);
    const char* s = bytes_of(src);
    switch (size) {
      case 1: return tiled ? copy_tiled<uint8_t>(plan, k, d, s) : copy_same<uint8_t>(dst, src);
      case 2: return tiled ? copy_tiled<uint16_t>(plan, k, d, s) : copy_same<uint16_t>(dst, src);
      case 4: return tiled ? copy_tiled<uint32_t>(plan, k, d, s) : copy_same<uint32_t>(dst, src);
      case 8: return tiled ? copy_tiled<uint64_t>(plan, k, d, s) : copy_same<uint64_t>(dst, src);
      default: HEED_FAIL("cpu copy: unexpected element size {}", size);
    }
  }
  dispatch_dtype(src.dtype(), [&](auto s) {
    using S = decltype(s);
    dispatch_dtype(dst.dtype(), [&](auto d) {
      using D = decltype(d);
      map1<D, S>(dst, src, kGrainCheap, CastFn<D, S>{});
    });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T v = cast_value<T>(value);
    auto plan = make_plan<1>(dst.shape(), {&dst.strides()}, {int64_t(sizeof(T))});
    for_each(plan, {bytes_of(dst)}, kGrainCheap, [v](char* const* p, const int64_t* s, int64_t n) {
      if (s[0] == int64_t(sizeof(T))) {
        T* o = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) o[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
      }
    });
  });
}

void unary(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out) {
  const DType want = unary_writes_bool(op) ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cpu unary: {} of a {} tensor writes {}, got an out of {}", unary_op_name(op),
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  dispatch_dtype(x.dtype(), [&](auto zero) { unary_typed<decltype(zero)>(op, x, a, b, out); });
}

void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  HEED_CHECK(x.dtype() == y.dtype(), "cpu binary: {} of {} and {} tensors (one dtype expected)", binary_op_name(op),
             dtype_name(x.dtype()), dtype_name(y.dtype()));
  const DType want = binary_writes_bool(op) ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cpu binary: {} of {} tensors writes {}, got an out of {}", binary_op_name(op),
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  dispatch_dtype(x.dtype(), [&](auto zero) { binary_typed<decltype(zero)>(op, x, y, out); });
}

void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  // bool and uint8 masks are both one byte, 0 or not.
  HEED_CHECK(cond.dtype() == DType::Bool || cond.dtype() == DType::UInt8,
             "cpu where: the condition must be bool or uint8, got {}", dtype_name(cond.dtype()));
  HEED_CHECK(x.dtype() == out.dtype() && y.dtype() == out.dtype(), "cpu where: x {}, y {} and out {} differ",
             dtype_name(x.dtype()), dtype_name(y.dtype()), dtype_name(out.dtype()));
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    map3<T, uint8_t>(out, cond, x, y, kGrainCheap, WhereFn<T>{});
  });
}

}  // namespace heed::cpu

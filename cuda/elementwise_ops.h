#pragma once
// The per-element formulas of the CUDA elementwise kernels (cuda/elementwise.cu):
// the dtype cast of copy, every unary and binary op, where. They are HEED_HD
// templates so that tests/cuda_strided_test.cpp can run the very same code on
// the CPU and compare it with the CPU backend (tensor/cpu/cpu_elementwise.cpp),
// whose semantics they reproduce:
//  - float32 math in float, float64 in double; integers wrap on overflow like
//    two's complement; bool is a byte holding 0 or 1;
//  - bfloat16 is a float stored in 16 bits (tensor/bfloat16.h): each element
//    is widened to float, the float32 formula runs, and the result is rounded
//    once on store; comparisons compare the (exactly widened) values;
//  - casting to bool is "!= 0" (NaN gives true); float to an integer truncates
//    toward zero;
//  - Maximum/Minimum, Clamp, Relu and Sign let NaN through;
//  - comparisons, LogicalNot and IsNonFinite write bool;
//  - integer division truncates toward zero and integer pow is by squaring,
//    both wrapping; a zero divisor or a negative exponent cannot throw on the
//    GPU, so the formula records it in an error cell the launcher reads back.
// float32 exp/tanh/erf/sigmoid/GELU use CUDA's own functions (a few ulp, as the
// CPU's vectorised ones), in the same formulas; exp flushes results below the
// smallest normal (x < -87.3) to 0 as the CPU does.
//
// No heed headers here but tensor/bfloat16.h, which nvcc compiles on its own.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "cuda/hd.h"
#include "tensor/bfloat16.h"

namespace heed::cuda {

// The ops of heed::UnaryOp and heed::BinaryOp (tensor/backend.h), for code
// that cannot include heed headers; cuda/elementwise.cpp maps one to the other.
enum class UnaryKind {
  Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, GeluErf, GeluTanh, Abs, Sign, Erf, Sin, Cos,
  Reciprocal, Square, AddScalar, MulScalar, PowScalar, Clamp, LogicalNot, IsNonFinite,
};
enum class BinaryKind {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
};

template <class T>
inline constexpr bool kIsBool = std::is_same_v<T, bool>;
// bfloat16 counts as a float everywhere here: its formulas are float32's.
template <class T>
inline constexpr bool kIsFloat = std::is_floating_point_v<T> || std::is_same_v<T, bfloat16>;
template <class T>
inline constexpr bool kIsInteger = std::is_integral_v<T> && !kIsBool<T>;

HEED_HD constexpr bool unary_writes_bool(UnaryKind k) { return k == UnaryKind::LogicalNot || k == UnaryKind::IsNonFinite; }
HEED_HD constexpr bool binary_writes_bool(BinaryKind k) { return k >= BinaryKind::Eq; }

// Whether the CPU backend defines op k for dtype T (it throws otherwise).
template <class T>
HEED_HD constexpr bool unary_defined(UnaryKind k) {
  if constexpr (kIsBool<T>) {
    return k == UnaryKind::LogicalNot || k == UnaryKind::IsNonFinite;
  } else if constexpr (kIsFloat<T>) {
    return k != UnaryKind::LogicalNot;
  } else {
    return k == UnaryKind::Neg || k == UnaryKind::Abs || k == UnaryKind::Sign || k == UnaryKind::Square ||
           k == UnaryKind::AddScalar || k == UnaryKind::MulScalar || k == UnaryKind::Clamp ||
           k == UnaryKind::IsNonFinite;
  }
}

template <class T>
HEED_HD constexpr bool binary_defined(BinaryKind k) {
  if (k >= BinaryKind::Eq && k <= BinaryKind::Ge) return true;  // every dtype compares
  if constexpr (kIsBool<T>) {
    return k == BinaryKind::LogicalAnd || k == BinaryKind::LogicalOr || k == BinaryKind::Maximum ||
           k == BinaryKind::Minimum;
  } else {
    return k <= BinaryKind::Minimum;
  }
}

// Whether op k on dtype T can record an error (integer Div and Pow), so the
// caller must pass an error cell and read it back.
template <class T>
HEED_HD constexpr bool binary_may_fail(BinaryKind k) {
  return kIsInteger<T> && (k == BinaryKind::Div || (k == BinaryKind::Pow && std::is_signed_v<T>));
}

// The ops' names, as the CPU backend's error messages spell them.
inline const char* unary_kind_name(UnaryKind k) {
  constexpr const char* kNames[] = {"neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu",
                                    "gelu_erf", "gelu_tanh", "abs", "sign", "erf", "sin", "cos", "reciprocal",
                                    "square", "add_scalar", "mul_scalar", "pow_scalar", "clamp", "logical_not",
                                    "is_non_finite"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(UnaryKind::IsNonFinite) + 1);
  return kNames[static_cast<int>(k)];
}
inline const char* binary_kind_name(BinaryKind k) {
  constexpr const char* kNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq",
                                    "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(BinaryKind::LogicalOr) + 1);
  return kNames[static_cast<int>(k)];
}

// ---- cast ---------------------------------------------------------------------

// A value as type To, as the CPU copy casts it. Floats go to integers through
// int64_t: the same value wherever int64 holds it, where a direct conversion
// to uint8 would differ between the CPU (wraps) and the GPU (saturates).
// bfloat16 is read as its exact float; a bfloat16 is written by rounding a
// float, so a double or an int64 rounds to float first (as on the CPU).
template <class To, class From>
HEED_HD To cast_value(From v) {
  if constexpr (std::is_same_v<From, bfloat16>) {
    return cast_value<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bfloat16>) {
    return bfloat16(cast_value<float>(v));
  } else if constexpr (kIsBool<To>) {
    return v != From(0);
  } else if constexpr (kIsInteger<To> && kIsFloat<From>) {
    return static_cast<To>(static_cast<int64_t>(v));
  } else {
    return static_cast<To>(v);
  }
}

// ---- helpers -------------------------------------------------------------------

// Two's-complement arithmetic without signed-overflow UB.
template <class T>
HEED_HD T wrap_add(T x, T y) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(x) + static_cast<U>(y)));
}
template <class T>
HEED_HD T wrap_sub(T x, T y) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(x) - static_cast<U>(y)));
}
template <class T>
HEED_HD T wrap_mul(T x, T y) {
  using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
  return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
}

// v < 0, without a "comparison of unsigned with zero" warning for uint8.
template <class T>
HEED_HD bool is_negative(T v) {
  if constexpr (std::is_signed_v<T>) {
    return v < T(0);
  } else {
    return false;
  }
}

// A double as an integer bound: infinities and out-of-range values saturate.
template <class T>
T saturate_to(double v) {
  if (!(v > static_cast<double>(std::numeric_limits<T>::lowest()))) return std::numeric_limits<T>::lowest();
  if (!(v < static_cast<double>(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// The math library, one name per function for float and double. The global
// C names exist on both sides: CUDA's device versions on the GPU, libm's on the CPU.
HEED_HD inline float math_exp(float v) { return v < -87.3f ? 0.0f : ::expf(v); }  // the CPU flushes there
HEED_HD inline double math_exp(double v) { return ::exp(v); }
HEED_HD inline float math_log(float v) { return ::logf(v); }
HEED_HD inline double math_log(double v) { return ::log(v); }
HEED_HD inline float math_sqrt(float v) { return ::sqrtf(v); }
HEED_HD inline double math_sqrt(double v) { return ::sqrt(v); }
HEED_HD inline float math_tanh(float v) { return ::tanhf(v); }
HEED_HD inline double math_tanh(double v) { return ::tanh(v); }
HEED_HD inline float math_erf(float v) { return ::erff(v); }
HEED_HD inline double math_erf(double v) { return ::erf(v); }
HEED_HD inline float math_sin(float v) { return ::sinf(v); }
HEED_HD inline double math_sin(double v) { return ::sin(v); }
HEED_HD inline float math_cos(float v) { return ::cosf(v); }
HEED_HD inline double math_cos(double v) { return ::cos(v); }
HEED_HD inline float math_abs(float v) { return ::fabsf(v); }
HEED_HD inline double math_abs(double v) { return ::fabs(v); }
HEED_HD inline float math_pow(float v, float e) { return ::powf(v, e); }
HEED_HD inline double math_pow(double v, double e) { return ::pow(v, e); }

// The error cell of a binary kernel: [0] is what went wrong (0: nothing), [1] a value to report.
enum BinaryError : int64_t { kNoError = 0, kDivisionByZero = 1, kNegativePower = 2 };

// x ^ n by squaring, wrapping on overflow. A negative n has no integer result:
// it is recorded in `error` and gives 0.
template <class T>
HEED_HD T integer_pow(T base, T n, int64_t* error) {
  if constexpr (std::is_signed_v<T>) {
    if (n < 0) {
      error[1] = static_cast<int64_t>(n);
      error[0] = kNegativePower;
      return T(0);
    }
  }
  T result = 1;
  while (n != 0) {
    if (n & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
    n = static_cast<T>(n >> 1);
  }
  return result;
}

// ---- unary ---------------------------------------------------------------------

// out = op(x) for one element; a and b are the op's scalars (make_unary_fn sets them).
// C is the type the formula computes in (compute_t: float for bfloat16, whose
// elements are widened on load and the result rounded once on return).
template <UnaryKind K, class T>
struct UnaryFn {
  static_assert(unary_defined<T>(K), "this op is not defined for this dtype");
  using C = compute_t<T>;
  using Out = std::conditional_t<unary_writes_bool(K), bool, T>;
  C a{}, b{};

  HEED_HD Out operator()(T x) const {
    if constexpr (K == UnaryKind::IsNonFinite) {
      if constexpr (kIsFloat<T>) {
        const C v = static_cast<C>(x);
        return !(v - v == C(0));  // x - x is 0 exactly when x is finite
      } else {
        return false;
      }
    } else if constexpr (kIsBool<T>) {
      return !x;  // LogicalNot
    } else if constexpr (kIsFloat<T>) {
      return static_cast<T>(floating(static_cast<C>(x)));
    } else {
      return integer(x);
    }
  }

 private:
  HEED_HD C floating(C v) const {
    if constexpr (K == UnaryKind::Neg) return -v;
    else if constexpr (K == UnaryKind::Exp) return math_exp(v);
    else if constexpr (K == UnaryKind::Log) return math_log(v);
    else if constexpr (K == UnaryKind::Sqrt) return math_sqrt(v);
    else if constexpr (K == UnaryKind::Rsqrt) return C(1) / math_sqrt(v);
    else if constexpr (K == UnaryKind::Tanh) return math_tanh(v);
    else if constexpr (K == UnaryKind::Sigmoid) {
      // 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = exp(-|x|) never overflows.
      const C e = math_exp(-math_abs(v));
      const C s = C(1) / (C(1) + e);
      return v >= C(0) ? s : (v < C(0) ? e * s : v);  // the last case is NaN
    } else if constexpr (K == UnaryKind::Relu) {
      return (v > C(0) || v != v) ? v : C(0);  // NaN stays NaN
    } else if constexpr (K == UnaryKind::GeluErf) {
      return C(0.5) * v * (C(1) + math_erf(v * C(0.70710678118654752440)));
    } else if constexpr (K == UnaryKind::GeluTanh) {
      const C k = C(0.79788456080286535588);  // sqrt(2 / pi)
      return C(0.5) * v * (C(1) + math_tanh(k * (v + C(0.044715) * v * v * v)));
    } else if constexpr (K == UnaryKind::Abs) return math_abs(v);
    else if constexpr (K == UnaryKind::Sign) return v != v ? v : C((v > C(0)) - (v < C(0)));  // NaN stays NaN
    else if constexpr (K == UnaryKind::Erf) return math_erf(v);
    else if constexpr (K == UnaryKind::Sin) return math_sin(v);
    else if constexpr (K == UnaryKind::Cos) return math_cos(v);
    else if constexpr (K == UnaryKind::Reciprocal) return C(1) / v;
    else if constexpr (K == UnaryKind::Square) return v * v;
    else if constexpr (K == UnaryKind::AddScalar) return v + a;
    else if constexpr (K == UnaryKind::MulScalar) return v * a;
    else if constexpr (K == UnaryKind::PowScalar) {
      // x*x is what pow(x, 2) rounds to anyway, and much cheaper (the CPU's special cases).
      if (a == C(2)) return v * v;
      if (a == C(1)) return v;
      return math_pow(v, a);
    } else {  // Clamp: max before min, x first, so NaN propagates
      v = v < a ? a : v;
      return v > b ? b : v;
    }
  }

  HEED_HD T integer(T v) const {
    if constexpr (K == UnaryKind::Neg) return wrap_sub(T(0), v);
    else if constexpr (K == UnaryKind::Abs) return is_negative(v) ? wrap_sub(T(0), v) : v;
    else if constexpr (K == UnaryKind::Sign) return T((v > T(0)) - is_negative(v));
    else if constexpr (K == UnaryKind::Square) return wrap_mul(v, v);
    else if constexpr (K == UnaryKind::AddScalar) return wrap_add(v, a);
    else if constexpr (K == UnaryKind::MulScalar) return wrap_mul(v, a);
    else {  // Clamp to [a, b], the integer bounds make_unary_fn rounded inwards
      v = v < a ? a : v;
      return v > b ? b : v;
    }
  }
};

// The functor of op K for dtype T with the op's scalars converted as the CPU
// does: to the compute type for floats (float for bfloat16); truncated through int64 for integer Add/MulScalar;
// rounded inwards and saturated for integer Clamp.
template <UnaryKind K, class T>
UnaryFn<K, T> make_unary_fn(double a, double b) {
  UnaryFn<K, T> fn;
  if constexpr (kIsFloat<T>) {
    fn.a = static_cast<compute_t<T>>(a);
    fn.b = static_cast<compute_t<T>>(b);
  } else if constexpr (kIsInteger<T>) {
    if constexpr (K == UnaryKind::Clamp) {
      fn.a = saturate_to<T>(::ceil(a));
      fn.b = saturate_to<T>(::floor(b));
    } else if constexpr (K == UnaryKind::AddScalar || K == UnaryKind::MulScalar) {
      fn.a = static_cast<T>(static_cast<int64_t>(a));
    }
  }
  return fn;
}

// ---- binary --------------------------------------------------------------------

// out = op(x, y) for one element. `error` (two int64 in device memory) is only
// used by integer Div and Pow.
// bfloat16 operands are widened to float (exactly), so comparisons compare
// their values and arithmetic rounds once, on return.
template <BinaryKind K, class T>
struct BinaryFn {
  static_assert(binary_defined<T>(K), "this op is not defined for this dtype");
  using Out = std::conditional_t<binary_writes_bool(K), bool, T>;
  int64_t* error = nullptr;

  HEED_HD Out operator()(T x, T y) const {
    if constexpr (std::is_same_v<T, bfloat16>) {
      return static_cast<Out>(BinaryFn<K, float>{error}(static_cast<float>(x), static_cast<float>(y)));
    } else {
      return apply(x, y);
    }
  }

 private:
  HEED_HD Out apply(T p, T q) const {
    if constexpr (K == BinaryKind::Eq) return p == q;
    else if constexpr (K == BinaryKind::Ne) return p != q;
    else if constexpr (K == BinaryKind::Lt) return p < q;
    else if constexpr (K == BinaryKind::Le) return p <= q;
    else if constexpr (K == BinaryKind::Gt) return p > q;
    else if constexpr (K == BinaryKind::Ge) return p >= q;
    else if constexpr (kIsBool<T>) {
      if constexpr (K == BinaryKind::LogicalAnd || K == BinaryKind::Minimum) return p && q;
      else return p || q;  // LogicalOr, Maximum
    } else if constexpr (kIsFloat<T>) {
      if constexpr (K == BinaryKind::Add) return p + q;
      else if constexpr (K == BinaryKind::Sub) return p - q;
      else if constexpr (K == BinaryKind::Mul) return p * q;
      else if constexpr (K == BinaryKind::Div) return p / q;
      else if constexpr (K == BinaryKind::Pow) return math_pow(p, q);
      else if constexpr (K == BinaryKind::Maximum) return (p > q || p != p) ? p : q;  // NaN in either propagates
      else return (p < q || p != p) ? p : q;                                        // Minimum
    } else {
      if constexpr (K == BinaryKind::Add) return wrap_add(p, q);
      else if constexpr (K == BinaryKind::Sub) return wrap_sub(p, q);
      else if constexpr (K == BinaryKind::Mul) return wrap_mul(p, q);
      else if constexpr (K == BinaryKind::Div) {  // truncates toward zero, like C++
        if (q == T(0)) {
          error[0] = kDivisionByZero;
          return T(0);
        }
        if constexpr (std::is_signed_v<T>) {
          if (q == T(-1)) return wrap_sub(T(0), p);  // INT64_MIN / -1 would trap
        }
        return static_cast<T>(p / q);
      } else if constexpr (K == BinaryKind::Pow) {
        return integer_pow(p, q, error);
      } else if constexpr (K == BinaryKind::Maximum) {
        return p > q ? p : q;
      } else {
        return p < q ? p : q;  // Minimum
      }
    }
  }
};


// ---- copy and where ------------------------------------------------------------

template <class To, class From>
struct CastFn {
  HEED_HD To operator()(From v) const { return cast_value<To>(v); }
};

// cond is read as bytes: bool and uint8 masks are both one byte, 0 or not.
template <class T>
struct WhereFn {
  HEED_HD T operator()(uint8_t c, T p, T q) const { return c != 0 ? p : q; }
};

template <class T>
struct FillFn {
  T value;
  HEED_HD T operator()() const { return value; }
};

// ---- run-time op to compile-time op ----------------------------------------------

// Calls f(std::integral_constant<UnaryKind, k>{}): one instantiation per op.
template <class F>
decltype(auto) dispatch_unary(UnaryKind k, F&& f) {
  using K = UnaryKind;
#define HEED_UNARY_CASE(name) \
  case K::name: return f(std::integral_constant<K, K::name>{});
  switch (k) {
    HEED_UNARY_CASE(Neg) HEED_UNARY_CASE(Exp) HEED_UNARY_CASE(Log) HEED_UNARY_CASE(Sqrt) HEED_UNARY_CASE(Rsqrt)
    HEED_UNARY_CASE(Tanh) HEED_UNARY_CASE(Sigmoid) HEED_UNARY_CASE(Relu) HEED_UNARY_CASE(GeluErf)
    HEED_UNARY_CASE(GeluTanh) HEED_UNARY_CASE(Abs) HEED_UNARY_CASE(Sign) HEED_UNARY_CASE(Erf) HEED_UNARY_CASE(Sin)
    HEED_UNARY_CASE(Cos) HEED_UNARY_CASE(Reciprocal) HEED_UNARY_CASE(Square) HEED_UNARY_CASE(AddScalar)
    HEED_UNARY_CASE(MulScalar) HEED_UNARY_CASE(PowScalar) HEED_UNARY_CASE(Clamp) HEED_UNARY_CASE(LogicalNot)
    HEED_UNARY_CASE(IsNonFinite)
  }
#undef HEED_UNARY_CASE
  throw std::logic_error("heed::cuda::dispatch_unary: unknown op");
}

// Calls f(std::integral_constant<BinaryKind, k>{}).
template <class F>
decltype(auto) dispatch_binary(BinaryKind k, F&& f) {
  using K = BinaryKind;
#define HEED_BINARY_CASE(name) \
  case K::name: return f(std::integral_constant<K, K::name>{});
  switch (k) {
    HEED_BINARY_CASE(Add) HEED_BINARY_CASE(Sub) HEED_BINARY_CASE(Mul) HEED_BINARY_CASE(Div) HEED_BINARY_CASE(Pow)
    HEED_BINARY_CASE(Maximum) HEED_BINARY_CASE(Minimum) HEED_BINARY_CASE(Eq) HEED_BINARY_CASE(Ne)
    HEED_BINARY_CASE(Lt) HEED_BINARY_CASE(Le) HEED_BINARY_CASE(Gt) HEED_BINARY_CASE(Ge)
    HEED_BINARY_CASE(LogicalAnd) HEED_BINARY_CASE(LogicalOr)
  }
#undef HEED_BINARY_CASE
  throw std::logic_error("heed::cuda::dispatch_binary: unknown op");
}

}  // namespace heed::cuda

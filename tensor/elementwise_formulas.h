#pragma once
// The per-element formulas of both backends' elementwise kernels, written
// once: the dtype cast of copy, every unary and binary op, where and fill.
// The CPU (tensor/cpu/cpu_elementwise.cpp) and the GPU (cuda/elementwise.cu)
// run these very functors over their strided loops; HEED_HD makes them
// compile for both. The rules:
//  - float32 math in float, float64 in double; integers wrap on overflow like
//    two's complement; bool is a byte holding 0 or 1;
//  - bfloat16 is a float stored in 16 bits (tensor/bfloat16.h): each element
//    is widened to float, the float32 formula runs, and the result is rounded
//    once on store; comparisons compare the (exactly widened) values;
//  - casting to bool is "!= 0" (NaN gives true); float to an integer truncates
//    toward zero (through int64, so uint8 wraps the same way on both sides);
//  - Maximum/Minimum, Clamp, Relu and Sign let NaN through;
//  - comparisons, LogicalNot and IsNonFinite write bool;
//  - integer division truncates toward zero and integer pow is by squaring,
//    both wrapping; a zero divisor or a negative exponent cannot throw on the
//    GPU, so the formula records it in an error cell the launcher reads back
//    (the CPU checks its operands before the pass instead).
// The transcendental functions come from a Math policy: LibMath (the C
// library's, and CUDA's own on the device: a few ulp) by default, the CPU's
// vectorisable float32 ones (tensor/cpu/vec_math.h) on the CPU. exp flushes
// results below the smallest normal (x < -87.3) to 0 in both.
//
// No heed headers here but hd.h and tensor/bfloat16.h, which nvcc compiles on
// their own.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "tensor/hd.h"
#include "tensor/bfloat16.h"

namespace heed {

// The elementwise ops of the op table (tensor/backend.h's unary and binary
// kernels); their scalars a, b are the kernel's arguments.
enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, GeluErf, GeluTanh, Abs, Sign, Erf, Sin, Cos,
  Reciprocal, Square,
  AddScalar,   // x + a
  MulScalar,   // x * a
  PowScalar,   // x ^ a
  Clamp,       // min(max(x, a), b)
  LogicalNot,  // bool -> bool
  IsNonFinite, // any -> bool: NaN or +-inf
};

enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  ReluGrad,                // float only: x where y > 0, else 0 (ReLU's backward: x the gradient, y the output)
  GeluErfGrad, GeluTanhGrad,  // float only: x * gelu'(y) (GELU's backward: x the gradient, y the input)
  Eq, Ne, Lt, Le, Gt, Ge,  // out is bool
  LogicalAnd, LogicalOr,   // bool x bool -> bool
};

template <class T>
inline constexpr bool kIsBool = std::is_same_v<T, bool>;
// bfloat16 counts as a float everywhere here: its formulas are float32's.
template <class T>
inline constexpr bool kIsFloat = std::is_floating_point_v<T> || std::is_same_v<T, bfloat16>;
template <class T>
inline constexpr bool kIsInteger = std::is_integral_v<T> && !kIsBool<T>;

HEED_HD constexpr bool unary_writes_bool(UnaryOp k) { return k == UnaryOp::LogicalNot || k == UnaryOp::IsNonFinite; }
HEED_HD constexpr bool binary_writes_bool(BinaryOp k) { return k >= BinaryOp::Eq; }

// Whether the CPU backend defines op k for dtype T (it throws otherwise).
template <class T>
HEED_HD constexpr bool unary_defined(UnaryOp k) {
  if constexpr (kIsBool<T>) {
    return k == UnaryOp::LogicalNot || k == UnaryOp::IsNonFinite;
  } else if constexpr (kIsFloat<T>) {
    return k != UnaryOp::LogicalNot;
  } else {
    return k == UnaryOp::Neg || k == UnaryOp::Abs || k == UnaryOp::Sign || k == UnaryOp::Square ||
           k == UnaryOp::AddScalar || k == UnaryOp::MulScalar || k == UnaryOp::Clamp ||
           k == UnaryOp::IsNonFinite;
  }
}

template <class T>
HEED_HD constexpr bool binary_defined(BinaryOp k) {
  if (k >= BinaryOp::Eq && k <= BinaryOp::Ge) return true;  // every dtype compares
  if constexpr (kIsBool<T>) {
    return k == BinaryOp::LogicalAnd || k == BinaryOp::LogicalOr || k == BinaryOp::Maximum ||
           k == BinaryOp::Minimum;
  } else {
    return k <= BinaryOp::Minimum || (k >= BinaryOp::ReluGrad && k <= BinaryOp::GeluTanhGrad && kIsFloat<T>);
  }
}

// Whether op k on dtype T can record an error (integer Div and Pow), so the
// caller must pass an error cell and read it back.
template <class T>
HEED_HD constexpr bool binary_may_fail(BinaryOp k) {
  return kIsInteger<T> && (k == BinaryOp::Div || (k == BinaryOp::Pow && std::is_signed_v<T>));
}

// The ops' names, as the CPU backend's error messages spell them.
inline const char* unary_op_name(UnaryOp k) {
  constexpr const char* kNames[] = {"neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu",
                                    "gelu_erf", "gelu_tanh", "abs", "sign", "erf", "sin", "cos", "reciprocal",
                                    "square", "add_scalar", "mul_scalar", "pow_scalar", "clamp", "logical_not",
                                    "is_non_finite"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(UnaryOp::IsNonFinite) + 1);
  return kNames[static_cast<int>(k)];
}
inline const char* binary_op_name(BinaryOp k) {
  constexpr const char* kNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "relu_grad",
                                    "gelu_erf_grad", "gelu_tanh_grad", "eq", "ne", "lt", "le", "gt", "ge",
                                    "logical_and", "logical_or"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(BinaryOp::LogicalOr) + 1);
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

// The default Math policy of the formulas: the functions above.
struct LibMath {
  template <class T> static HEED_HD T exp(T v) { return math_exp(v); }
  template <class T> static HEED_HD T log(T v) { return math_log(v); }
  template <class T> static HEED_HD T sqrt(T v) { return math_sqrt(v); }
  template <class T> static HEED_HD T tanh(T v) { return math_tanh(v); }
  template <class T> static HEED_HD T erf(T v) { return math_erf(v); }
  template <class T> static HEED_HD T sin(T v) { return math_sin(v); }
  template <class T> static HEED_HD T cos(T v) { return math_cos(v); }
  template <class T> static HEED_HD T abs(T v) { return math_abs(v); }
  template <class T> static HEED_HD T pow(T v, T e) { return math_pow(v, e); }
};

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
template <UnaryOp K, class T, class M = LibMath>
struct UnaryFn {
  static_assert(unary_defined<T>(K), "this op is not defined for this dtype");
  using C = compute_t<T>;
  using Out = std::conditional_t<unary_writes_bool(K), bool, T>;
  C a{}, b{};

  HEED_HD Out operator()(T x) const {
    if constexpr (K == UnaryOp::IsNonFinite) {
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
    if constexpr (K == UnaryOp::Neg) return -v;
    else if constexpr (K == UnaryOp::Exp) return M::exp(v);
    else if constexpr (K == UnaryOp::Log) return M::log(v);
    else if constexpr (K == UnaryOp::Sqrt) return M::sqrt(v);
    else if constexpr (K == UnaryOp::Rsqrt) return C(1) / M::sqrt(v);
    else if constexpr (K == UnaryOp::Tanh) return M::tanh(v);
    else if constexpr (K == UnaryOp::Sigmoid) {
      // 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = exp(-|x|) never overflows.
      const C e = M::exp(-M::abs(v));
      const C s = C(1) / (C(1) + e);
      return v >= C(0) ? s : (v < C(0) ? e * s : v);  // the last case is NaN
    } else if constexpr (K == UnaryOp::Relu) {
      return (v > C(0) || v != v) ? v : C(0);  // NaN stays NaN
    } else if constexpr (K == UnaryOp::GeluErf) {
      return C(0.5) * v * (C(1) + M::erf(v * C(0.70710678118654752440)));
    } else if constexpr (K == UnaryOp::GeluTanh) {
      const C k = C(0.79788456080286535588);  // sqrt(2 / pi)
      return C(0.5) * v * (C(1) + M::tanh(k * (v + C(0.044715) * v * v * v)));
    } else if constexpr (K == UnaryOp::Abs) return M::abs(v);
    else if constexpr (K == UnaryOp::Sign) return v != v ? v : C((v > C(0)) - (v < C(0)));  // NaN stays NaN
    else if constexpr (K == UnaryOp::Erf) return M::erf(v);
    else if constexpr (K == UnaryOp::Sin) return M::sin(v);
    else if constexpr (K == UnaryOp::Cos) return M::cos(v);
    else if constexpr (K == UnaryOp::Reciprocal) return C(1) / v;
    else if constexpr (K == UnaryOp::Square) return v * v;
    else if constexpr (K == UnaryOp::AddScalar) return v + a;
    else if constexpr (K == UnaryOp::MulScalar) return v * a;
    else if constexpr (K == UnaryOp::PowScalar) {
      // x*x is what pow(x, 2) rounds to anyway, and much cheaper (the CPU's special cases).
      if (a == C(2)) return v * v;
      if (a == C(1)) return v;
      return M::pow(v, a);
    } else {  // Clamp: max before min, x first, so NaN propagates
      v = v < a ? a : v;
      return v > b ? b : v;
    }
  }

  HEED_HD T integer(T v) const {
    if constexpr (K == UnaryOp::Neg) return wrap_sub(T(0), v);
    else if constexpr (K == UnaryOp::Abs) return is_negative(v) ? wrap_sub(T(0), v) : v;
    else if constexpr (K == UnaryOp::Sign) return T((v > T(0)) - is_negative(v));
    else if constexpr (K == UnaryOp::Square) return wrap_mul(v, v);
    else if constexpr (K == UnaryOp::AddScalar) return wrap_add(v, a);
    else if constexpr (K == UnaryOp::MulScalar) return wrap_mul(v, a);
    else {  // Clamp to [a, b], the integer bounds make_unary_fn rounded inwards
      v = v < a ? a : v;
      return v > b ? b : v;
    }
  }
};

// The functor of op K for dtype T with the op's scalars converted as the CPU
// does: to the compute type for floats (float for bfloat16); truncated through int64 for integer Add/MulScalar;
// rounded inwards and saturated for integer Clamp.
template <UnaryOp K, class T, class M = LibMath>
UnaryFn<K, T, M> make_unary_fn(double a, double b) {
  UnaryFn<K, T, M> fn;
  if constexpr (kIsFloat<T>) {
    fn.a = static_cast<compute_t<T>>(a);
    fn.b = static_cast<compute_t<T>>(b);
  } else if constexpr (kIsInteger<T>) {
    if constexpr (K == UnaryOp::Clamp) {
      fn.a = saturate_to<T>(::ceil(a));
      fn.b = saturate_to<T>(::floor(b));
    } else if constexpr (K == UnaryOp::AddScalar || K == UnaryOp::MulScalar) {
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
template <BinaryOp K, class T, class M = LibMath>
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
    if constexpr (K == BinaryOp::Eq) return p == q;
    else if constexpr (K == BinaryOp::Ne) return p != q;
    else if constexpr (K == BinaryOp::Lt) return p < q;
    else if constexpr (K == BinaryOp::Le) return p <= q;
    else if constexpr (K == BinaryOp::Gt) return p > q;
    else if constexpr (K == BinaryOp::Ge) return p >= q;
    else if constexpr (kIsBool<T>) {
      if constexpr (K == BinaryOp::LogicalAnd || K == BinaryOp::Minimum) return p && q;
      else return p || q;  // LogicalOr, Maximum
    } else if constexpr (kIsFloat<T>) {
      if constexpr (K == BinaryOp::Add) return p + q;
      else if constexpr (K == BinaryOp::Sub) return p - q;
      else if constexpr (K == BinaryOp::Mul) return p * q;
      else if constexpr (K == BinaryOp::Div) return p / q;
      else if constexpr (K == BinaryOp::Pow) return M::pow(p, q);
      else if constexpr (K == BinaryOp::ReluGrad) return q > T(0) ? p : T(0);  // a select, as torch's threshold_backward
      else if constexpr (K == BinaryOp::GeluErfGrad) {
        // Phi(q) + q phi(q), the erf form's derivative
        const T cdf = T(0.5) * (T(1) + M::erf(q * T(0.70710678118654752440)));
        const T pdf = M::exp(T(-0.5) * q * q) * T(0.39894228040143267794);  // 1 / sqrt(2 pi)
        return p * (cdf + q * pdf);
      } else if constexpr (K == BinaryOp::GeluTanhGrad) {
        // t = tanh(u), u = k (q + c q^3): 0.5 (1 + t) + 0.5 q (1 - t^2) k (1 + 3 c q^2)
        const T k = T(0.79788456080286535588), c = T(0.044715);
        const T q2 = q * q;
        const T t = M::tanh(k * q * (T(1) + c * q2));
        return p * (T(0.5) * (T(1) + t) + T(0.5) * k * q * (T(1) - t * t) * (T(1) + T(3) * c * q2));
      }
      else if constexpr (K == BinaryOp::Maximum) return (p > q || p != p) ? p : q;  // NaN in either propagates
      else return (p < q || p != p) ? p : q;                                        // Minimum
    } else {
      if constexpr (K == BinaryOp::Add) return wrap_add(p, q);
      else if constexpr (K == BinaryOp::Sub) return wrap_sub(p, q);
      else if constexpr (K == BinaryOp::Mul) return wrap_mul(p, q);
      else if constexpr (K == BinaryOp::Div) {  // truncates toward zero, like C++
        if (q == T(0)) {
          error[0] = kDivisionByZero;
          return T(0);
        }
        if constexpr (std::is_signed_v<T>) {
          if (q == T(-1)) return wrap_sub(T(0), p);  // INT64_MIN / -1 would trap
        }
        return static_cast<T>(p / q);
      } else if constexpr (K == BinaryOp::Pow) {
        return integer_pow(p, q, error);
      } else if constexpr (K == BinaryOp::Maximum) {
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

// Calls f(std::integral_constant<UnaryOp, k>{}): one instantiation per op.
template <class F>
decltype(auto) dispatch_unary(UnaryOp k, F&& f) {
  using K = UnaryOp;
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
  throw std::logic_error("heed::dispatch_unary: unknown op");
}

// Calls f(std::integral_constant<BinaryOp, k>{}).
template <class F>
decltype(auto) dispatch_binary(BinaryOp k, F&& f) {
  using K = BinaryOp;
#define HEED_BINARY_CASE(name) \
  case K::name: return f(std::integral_constant<K, K::name>{});
  switch (k) {
    HEED_BINARY_CASE(Add) HEED_BINARY_CASE(Sub) HEED_BINARY_CASE(Mul) HEED_BINARY_CASE(Div) HEED_BINARY_CASE(Pow)
    HEED_BINARY_CASE(Maximum) HEED_BINARY_CASE(Minimum) HEED_BINARY_CASE(ReluGrad) HEED_BINARY_CASE(GeluErfGrad)
    HEED_BINARY_CASE(GeluTanhGrad) HEED_BINARY_CASE(Eq) HEED_BINARY_CASE(Ne)
    HEED_BINARY_CASE(Lt) HEED_BINARY_CASE(Le) HEED_BINARY_CASE(Gt) HEED_BINARY_CASE(Ge)
    HEED_BINARY_CASE(LogicalAnd) HEED_BINARY_CASE(LogicalOr)
  }
#undef HEED_BINARY_CASE
  throw std::logic_error("heed::dispatch_binary: unknown op");
}

}  // namespace heed

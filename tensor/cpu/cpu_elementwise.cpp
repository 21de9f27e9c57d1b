// Elementwise CPU kernels: copy, fill, unary, binary, where. Each op is a
// scalar formula handed to map1/map2/map3 (strided_loop.h), which run it over
// contiguous runs the compiler vectorises. float32 and bfloat16 math is done
// in float (a bfloat16 result rounded once), float64 in double; integers wrap
// on overflow like two's complement.
#include <cmath>
#include <limits>
#include <type_traits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/cpu/vec_math.h"

namespace heed::cpu {
namespace {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::GeluErf: return "gelu_erf";
    case UnaryOp::GeluTanh: return "gelu_tanh";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Erf: return "erf";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::Square: return "square";
    case UnaryOp::AddScalar: return "add_scalar";
    case UnaryOp::MulScalar: return "mul_scalar";
    case UnaryOp::PowScalar: return "pow_scalar";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::LogicalNot: return "logical_not";
    case UnaryOp::IsNonFinite: return "is_non_finite";
  }
  return "?";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::LogicalAnd: return "logical_and";
    case BinaryOp::LogicalOr: return "logical_or";
  }
  return "?";
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

// A value as dtype To: bool means "not zero" (NaN included, as in PyTorch).
template <class To, class From>
inline To cast_to(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else {
    return static_cast<To>(v);
  }
}

// Two's-complement arithmetic without signed-overflow UB.
template <class T>
inline T wrap_add(T x, T y) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(x) + static_cast<U>(y)));
}
template <class T>
inline T wrap_sub(T x, T y) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(x) - static_cast<U>(y)));
}
template <class T>
inline T wrap_mul(T x, T y) {
  using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
  return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
}

// A double as an integer bound: infinities and out-of-range values saturate.
template <class T>
inline T saturate(double v) {
  if (!(v > static_cast<double>(std::numeric_limits<T>::lowest()))) return std::numeric_limits<T>::lowest();
  if (!(v < static_cast<double>(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// ---- unary -------------------------------------------------------------------

// float32 takes the vectorisable forms of vec_math.h; float64 the exact
// library functions (it serves gradient checks, not speed).
inline float exp_of(float v) { return exp_f32(v); }
inline double exp_of(double v) { return std::exp(v); }
inline float tanh_of(float v) { return tanh_f32(v); }
inline double tanh_of(double v) { return std::tanh(v); }
inline float erf_of(float v) { return erf_f32(v); }
inline double erf_of(double v) { return std::erf(v); }
inline float sigmoid_of(float v) { return sigmoid_f32(v); }
inline double sigmoid_of(double v) {
  // exp(-|x|) never overflows: 1/(1+e) for x >= 0, e/(1+e) for x < 0.
  const double e = std::exp(-std::abs(v));
  const double s = 1.0 / (1.0 + e);
  return v >= 0 ? s : e * s;
}
inline float gelu_erf_of(float v) { return gelu_erf_f32(v); }
inline double gelu_erf_of(double v) { return 0.5 * v * (1.0 + std::erf(v * 0.70710678118654752440)); }
inline float gelu_tanh_of(float v) { return gelu_tanh_f32(v); }
inline double gelu_tanh_of(double v) {
  const double k = 0.79788456080286535588;  // sqrt(2 / pi)
  return 0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v)));
}

// T is float, double or bfloat16; C is what the formulas compute in (float for
// bfloat16: each element is widened, computed and rounded once on store).
template <class T, class C = compute_t<T>>
void unary_floating(UnaryOp op, const Tensor& x, double a_in, double b_in, const Tensor& out) {
  const C a = static_cast<C>(a_in), b = static_cast<C>(b_in);
  const int64_t cheap = kGrainCheap, costly = kGrainCostly;
  switch (op) {
    case UnaryOp::Neg: return map1<T, T>(out, x, cheap, [](C v) { return -v; });
    case UnaryOp::Exp: return map1<T, T>(out, x, costly, [](C v) { return exp_of(v); });
    case UnaryOp::Log: return map1<T, T>(out, x, costly, [](C v) { return std::log(v); });
    case UnaryOp::Sqrt: return map1<T, T>(out, x, cheap, [](C v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return map1<T, T>(out, x, cheap, [](C v) { return C(1) / std::sqrt(v); });
    case UnaryOp::Tanh: return map1<T, T>(out, x, costly, [](C v) { return tanh_of(v); });
    case UnaryOp::Sigmoid:
      // exp(-|x|) never overflows: 1/(1+e) for x >= 0, e/(1+e) for x < 0.
      return map1<T, T>(out, x, costly, [](C v) { return sigmoid_of(v); });
    case UnaryOp::Relu:  // NaN stays NaN
      return map1<T, T>(out, x, cheap, [](C v) { return (v > C(0) || v != v) ? v : C(0); });
    case UnaryOp::GeluErf:
      return map1<T, T>(out, x, costly, [](C v) { return gelu_erf_of(v); });
    case UnaryOp::GeluTanh:
      return map1<T, T>(out, x, costly, [](C v) { return gelu_tanh_of(v); });
    case UnaryOp::Abs: return map1<T, T>(out, x, cheap, [](C v) { return std::abs(v); });
    case UnaryOp::Sign:  // NaN stays NaN
      return map1<T, T>(out, x, cheap, [](C v) { return v != v ? v : C((v > C(0)) - (v < C(0))); });
    case UnaryOp::Erf: return map1<T, T>(out, x, costly, [](C v) { return erf_of(v); });
    case UnaryOp::Sin: return map1<T, T>(out, x, costly, [](C v) { return std::sin(v); });
    case UnaryOp::Cos: return map1<T, T>(out, x, costly, [](C v) { return std::cos(v); });
    case UnaryOp::Reciprocal: return map1<T, T>(out, x, cheap, [](C v) { return C(1) / v; });
    case UnaryOp::Square: return map1<T, T>(out, x, cheap, [](C v) { return v * v; });
    case UnaryOp::AddScalar: return map1<T, T>(out, x, cheap, [a](C v) { return v + a; });
    case UnaryOp::MulScalar: return map1<T, T>(out, x, cheap, [a](C v) { return v * a; });
    case UnaryOp::PowScalar:
      // x*x is what pow(x, 2) rounds to anyway, and much cheaper.
      if (a_in == 2.0) return map1<T, T>(out, x, cheap, [](C v) { return v * v; });
      if (a_in == 1.0) return map1<T, T>(out, x, cheap, [](C v) { return v; });
      return map1<T, T>(out, x, costly, [a](C v) { return std::pow(v, a); });
    case UnaryOp::Clamp:  // max before min, x first: NaN propagates
      return map1<T, T>(out, x, cheap, [a, b](C v) {
        v = v < a ? a : v;
        return v > b ? b : v;
      });
    case UnaryOp::IsNonFinite:  // x - x is 0 exactly when x is finite
      return map1<bool, T>(out, x, cheap, [](C v) { return !(v - v == C(0)); });
    case UnaryOp::LogicalNot: break;
  }
  HEED_FAIL("cpu unary: {} is not defined for {} tensors", unary_name(op), dtype_name(x.dtype()));
}

template <class T>
void unary_integer(UnaryOp op, const Tensor& x, double a_in, double b_in, const Tensor& out) {
  const int64_t cheap = kGrainCheap;
  switch (op) {
    case UnaryOp::Neg: return map1<T, T>(out, x, cheap, [](T v) { return wrap_sub(T(0), v); });
    case UnaryOp::Abs:
      return map1<T, T>(out, x, cheap, [](T v) { return v < T(0) ? wrap_sub(T(0), v) : v; });
    case UnaryOp::Sign: return map1<T, T>(out, x, cheap, [](T v) { return T((v > T(0)) - (v < T(0))); });
    case UnaryOp::Square: return map1<T, T>(out, x, cheap, [](T v) { return wrap_mul(v, v); });
    case UnaryOp::AddScalar: {
      const T a = static_cast<T>(static_cast<int64_t>(a_in));
      return map1<T, T>(out, x, cheap, [a](T v) { return wrap_add(v, a); });
    }
    case UnaryOp::MulScalar: {
      const T a = static_cast<T>(static_cast<int64_t>(a_in));
      return map1<T, T>(out, x, cheap, [a](T v) { return wrap_mul(v, a); });
    }
    case UnaryOp::Clamp: {
      const T lo = saturate<T>(std::ceil(a_in)), hi = saturate<T>(std::floor(b_in));
      return map1<T, T>(out, x, cheap, [lo, hi](T v) {
        v = v < lo ? lo : v;
        return v > hi ? hi : v;
      });
    }
    case UnaryOp::IsNonFinite: return map1<bool, T>(out, x, cheap, [](T) { return false; });
    default: break;
  }
  HEED_FAIL("cpu unary: {} is not defined for {} tensors", unary_name(op), dtype_name(x.dtype()));
}

void unary_bool(UnaryOp op, const Tensor& x, const Tensor& out) {
  switch (op) {
    case UnaryOp::LogicalNot: return map1<bool, bool>(out, x, kGrainCheap, [](bool v) { return !v; });
    case UnaryOp::IsNonFinite: return map1<bool, bool>(out, x, kGrainCheap, [](bool) { return false; });
    default: break;
  }
  HEED_FAIL("cpu unary: {} is not defined for bool tensors", unary_name(op));
}

// ---- binary ------------------------------------------------------------------

template <class T>
void comparison(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  const int64_t g = kGrainCheap;
  switch (op) {
    case BinaryOp::Eq: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p == q; });
    case BinaryOp::Ne: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p != q; });
    case BinaryOp::Lt: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p < q; });
    case BinaryOp::Le: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p <= q; });
    case BinaryOp::Gt: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p > q; });
    case BinaryOp::Ge: return map2<bool, T>(out, x, y, g, [](T p, T q) { return p >= q; });
    default: HEED_FAIL("cpu binary: {} is not a comparison", binary_name(op));
  }
}

template <class T, class C = compute_t<T>>
void binary_floating(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  const int64_t g = kGrainCheap;
  switch (op) {
    case BinaryOp::Add: return map2<T, T>(out, x, y, g, [](C p, C q) { return p + q; });
    case BinaryOp::Sub: return map2<T, T>(out, x, y, g, [](C p, C q) { return p - q; });
    case BinaryOp::Mul: return map2<T, T>(out, x, y, g, [](C p, C q) { return p * q; });
    case BinaryOp::Div: return map2<T, T>(out, x, y, g, [](C p, C q) { return p / q; });
    case BinaryOp::Pow: return map2<T, T>(out, x, y, kGrainCostly, [](C p, C q) { return std::pow(p, q); });
    case BinaryOp::Maximum:  // NaN in either propagates
      return map2<T, T>(out, x, y, g, [](C p, C q) { return (p > q || p != p) ? p : q; });
    case BinaryOp::Minimum:
      return map2<T, T>(out, x, y, g, [](C p, C q) { return (p < q || p != p) ? p : q; });
    default: break;
  }
  if (is_comparison(op)) return comparison<T>(op, x, y, out);
  HEED_FAIL("cpu binary: {} is not defined for {} tensors", binary_name(op), dtype_name(x.dtype()));
}

// x ^ n by squaring, wrapping on overflow; a negative n has no integer result.
template <class T>
T integer_pow(T base, T n) {
  if constexpr (std::is_signed_v<T>) {
    HEED_CHECK(n >= 0, "cpu binary: pow of {} tensors to the negative power {} (use a float tensor)",
               dtype_name(dtype_of<T>::value), static_cast<int64_t>(n));
  }
  T result = 1;
  while (n != 0) {
    if (n & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
    n = static_cast<T>(n >> 1);
  }
  return result;
}

template <class T>
void binary_integer(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  const int64_t g = kGrainCheap;
  switch (op) {
    case BinaryOp::Add: return map2<T, T>(out, x, y, g, [](T p, T q) { return wrap_add(p, q); });
    case BinaryOp::Sub: return map2<T, T>(out, x, y, g, [](T p, T q) { return wrap_sub(p, q); });
    case BinaryOp::Mul: return map2<T, T>(out, x, y, g, [](T p, T q) { return wrap_mul(p, q); });
    case BinaryOp::Div:  // truncates toward zero, like C++
      return map2<T, T>(out, x, y, g, [](T p, T q) {
        HEED_CHECK(q != T(0), "cpu binary: integer division by zero in a {} tensor", dtype_name(dtype_of<T>::value));
        if constexpr (std::is_signed_v<T>) {
          if (q == T(-1)) return wrap_sub(T(0), p);  // INT64_MIN / -1 would trap
        }
        return static_cast<T>(p / q);
      });
    case BinaryOp::Pow: return map2<T, T>(out, x, y, g, [](T p, T q) { return integer_pow(p, q); });
    case BinaryOp::Maximum: return map2<T, T>(out, x, y, g, [](T p, T q) { return p > q ? p : q; });
    case BinaryOp::Minimum: return map2<T, T>(out, x, y, g, [](T p, T q) { return p < q ? p : q; });
    default: break;
  }
  if (is_comparison(op)) return comparison<T>(op, x, y, out);
  HEED_FAIL("cpu binary: {} is not defined for {} tensors", binary_name(op), dtype_name(x.dtype()));
}

void binary_bool(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  const int64_t g = kGrainCheap;
  switch (op) {
    case BinaryOp::LogicalAnd: return map2<bool, bool>(out, x, y, g, [](bool p, bool q) { return p && q; });
    case BinaryOp::LogicalOr: return map2<bool, bool>(out, x, y, g, [](bool p, bool q) { return p || q; });
    case BinaryOp::Maximum: return map2<bool, bool>(out, x, y, g, [](bool p, bool q) { return p || q; });
    case BinaryOp::Minimum: return map2<bool, bool>(out, x, y, g, [](bool p, bool q) { return p && q; });
    default: break;
  }
  if (is_comparison(op)) return comparison<bool>(op, x, y, out);
  HEED_FAIL("cpu binary: {} is not defined for bool tensors", binary_name(op));
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
      map1<D, S>(dst, src, kGrainCheap, [](S v) { return cast_to<D>(v); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T v = cast_to<T>(value);
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
  const bool to_bool = op == UnaryOp::LogicalNot || op == UnaryOp::IsNonFinite;
  const DType want = to_bool ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cpu unary: {} of a {} tensor writes {}, got an out of {}", unary_name(op),
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  switch (x.dtype()) {
    case DType::Float32: return unary_floating<float>(op, x, a, b, out);
    case DType::Float64: return unary_floating<double>(op, x, a, b, out);
    case DType::BFloat16: return unary_floating<bfloat16>(op, x, a, b, out);
    case DType::Int64: return unary_integer<int64_t>(op, x, a, b, out);
    case DType::UInt8: return unary_integer<uint8_t>(op, x, a, b, out);
    case DType::Bool: return unary_bool(op, x, out);
  }
}

void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  HEED_CHECK(x.dtype() == y.dtype(), "cpu binary: {} of {} and {} tensors (one dtype expected)", binary_name(op),
             dtype_name(x.dtype()), dtype_name(y.dtype()));
  const bool to_bool = is_comparison(op) || op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr;
  const DType want = to_bool ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cpu binary: {} of {} tensors writes {}, got an out of {}", binary_name(op),
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  switch (x.dtype()) {
    case DType::Float32: return binary_floating<float>(op, x, y, out);
    case DType::Float64: return binary_floating<double>(op, x, y, out);
    case DType::BFloat16: return binary_floating<bfloat16>(op, x, y, out);
    case DType::Int64: return binary_integer<int64_t>(op, x, y, out);
    case DType::UInt8: return binary_integer<uint8_t>(op, x, y, out);
    case DType::Bool: return binary_bool(op, x, y, out);
  }
}

void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  // bool and uint8 masks are both one byte, 0 or not.
  HEED_CHECK(cond.dtype() == DType::Bool || cond.dtype() == DType::UInt8,
             "cpu where: the condition must be bool or uint8, got {}", dtype_name(cond.dtype()));
  HEED_CHECK(x.dtype() == out.dtype() && y.dtype() == out.dtype(), "cpu where: x {}, y {} and out {} differ",
             dtype_name(x.dtype()), dtype_name(y.dtype()), dtype_name(out.dtype()));
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    map3<T, uint8_t>(out, cond, x, y, kGrainCheap, [](uint8_t c, T p, T q) { return c != 0 ? p : q; });
  });
}

}  // namespace heed::cpu

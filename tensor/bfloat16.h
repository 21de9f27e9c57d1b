#pragma once
// bfloat16: the top 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa
// bits). It keeps float32's range with a third of a decimal digit less than
// three, which is what a matmul on tensor cores needs and a sum does not: heed
// stores bf16 but computes in float32 on both devices (load, widen, compute,
// round once on store), as cuBLAS and PyTorch's kernels do.
//
// The conversions are HEED_HD so CUDA kernels and CPU kernels round the same
// way: float -> bf16 rounds to nearest, ties to even; NaN stays a quiet NaN
// (sign and top payload bits kept); bf16 -> float is exact. A double goes
// through float (as PyTorch's c10::BFloat16 does), so a value rounds twice.
//
// No heed headers but hd.h: nvcc compiles this on its own.
#include <cstdint>
#include <cstring>
#include <limits>

#include "tensor/hd.h"

namespace heed {

struct bfloat16 {
  uint16_t bits = 0;

  bfloat16() = default;
  // Implicit both ways, like a float: arithmetic on bf16 values is float
  // arithmetic, and storing a float into a bf16 slot rounds it.
  HEED_HD bfloat16(float f) : bits(round_bits(f)) {}
  HEED_HD operator float() const { return widen(bits); }

  // a op= b computes in float and rounds once.
  HEED_HD bfloat16& operator+=(float v) { return *this = bfloat16(float(*this) + v); }
  HEED_HD bfloat16& operator-=(float v) { return *this = bfloat16(float(*this) - v); }
  HEED_HD bfloat16& operator*=(float v) { return *this = bfloat16(float(*this) * v); }
  HEED_HD bfloat16& operator/=(float v) { return *this = bfloat16(float(*this) / v); }

  static HEED_HD bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }

  static HEED_HD uint16_t round_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (carries into the exponent)
    return static_cast<uint16_t>(u >> 16);
  }
  static HEED_HD float widen(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

static_assert(sizeof(bfloat16) == 2, "bfloat16 must be two bytes (it is read by cuBLAS as __nv_bfloat16)");

// True for the element types heed computes in floating point.
template <class T>
inline constexpr bool is_floating_type_v = std::numeric_limits<T>::is_iec559;

// The type a kernel computes in for elements of type T: float for bf16, T otherwise.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<bfloat16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

}  // namespace heed

namespace std {
template <>
class numeric_limits<heed::bfloat16> {
  using B = heed::bfloat16;

 public:
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool is_exact = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr bool is_iec559 = true;  // IEEE-754 layout and rules, at 16 bits
  static constexpr int digits = 8;
  static constexpr int radix = 2;
  static HEED_HD B min() { return B::from_bits(0x0080); }       // smallest normal, 1.2e-38
  static HEED_HD B lowest() { return B::from_bits(0xff7f); }    // -3.39e38
  static HEED_HD B max() { return B::from_bits(0x7f7f); }       // 3.39e38
  static HEED_HD B epsilon() { return B::from_bits(0x3c00); }   // 2^-7
  static HEED_HD B infinity() { return B::from_bits(0x7f80); }
  static HEED_HD B quiet_NaN() { return B::from_bits(0x7fc0); }
  static HEED_HD B denorm_min() { return B::from_bits(0x0001); }
};
}  // namespace std

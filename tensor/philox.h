#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator. Output block = f(counter, key) with no
// state, so element i of a draw can be computed by whichever thread or device
// owns it and the stream never depends on the number of threads or on the
// device. Header-only, constexpr, and free of std:: calls in the core rounds
// so that a CUDA kernel can include it (HEED_HD, from tensor/hd.h, marks the
// functions __host__ __device__ under nvcc and is empty for g++).
//
// THE MAPPING every backend must reproduce (Backend::random). A draw of n
// samples, each taking w 32-bit words (philox_words below: 1 for float32
// uniform and Bernoulli, 2 for float32 normal and float64 uniform, 4 for
// float64 normal), owns the Philox blocks offset, offset + 1, ...; sample i
// reads words (i*w) % 4 ... of block offset + (i*w) / 4, where
//   key     = {seed & 0xffffffff, seed >> 32}
//   counter = {block & 0xffffffff, block >> 32, 0, 0}
//   w[0..3] = philox4x32(counter, key)
// and, with v = the sample's words:
//   Uniform   float32: u = (v0 >> 8) * 2^-24;                 out = a + (b - a) * u
//             float64: u = ((v0 << 32 | v1) >> 11) * 2^-53;    out = a + (b - a) * u
//             (computed in the output's type; a result that rounds up to b
//             becomes a, keeping the half-open range)
//   Normal    float32: u1 = 1 - (v0 >> 8) * 2^-24  in (0, 1], u2 = (v1 >> 8) * 2^-24,
//                      z = sqrt(-2 log u1) * cos(2 pi u2)  in float; out = a + b * z
//             float64: u1 = 1 - 53-bit(v0, v1), u2 = 53-bit(v2, v3), same in double
//   Bernoulli any dtype: out = 1 if (v0 >> 8) * 2^-24 < a (compared in double), else 0
// Using every word of a block keeps the cost at one Philox call per 4 / w
// samples; the generator hands out whole blocks, so two draws never share one.
// Uniform and Bernoulli are bit-identical on every device; Normal matches up to
// the rounding of the device's log/cos/sqrt (an ulp or two).
#include <cstdint>
#include <math.h>  // the C functions, which CUDA also provides on the device

#include "tensor/hd.h"
#include "tensor/rounded_math.h"

namespace heed {

struct Philox4x32 {
  uint32_t w[4];
};
struct PhiloxKey {
  uint32_t k[2];
};

namespace philox_detail {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // golden ratio, sqrt(3) - 1

HEED_HD constexpr Philox4x32 philox_round(const Philox4x32& c, const PhiloxKey& key) {
  const uint64_t p0 = static_cast<uint64_t>(kMul0) * c.w[0];
  const uint64_t p1 = static_cast<uint64_t>(kMul1) * c.w[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  return Philox4x32{{hi1 ^ c.w[1] ^ key.k[0], lo1, hi0 ^ c.w[3] ^ key.k[1], lo0}};
}

}  // namespace philox_detail

// Ten rounds, the key bumped by the Weyl constants between rounds.
HEED_HD constexpr Philox4x32 philox4x32(Philox4x32 counter, PhiloxKey key) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      key.k[0] += philox_detail::kWeyl0;
      key.k[1] += philox_detail::kWeyl1;
    }
    counter = philox_detail::philox_round(counter, key);
  }
  return counter;
}

// Words per sample (see the mapping above).
HEED_HD constexpr int philox_words(bool normal, bool is_double) {
  return normal ? (is_double ? 4 : 2) : (is_double ? 2 : 1);
}

// Philox block number `index` of the stream seeded with `seed`.
HEED_HD constexpr Philox4x32 philox_block(uint64_t seed, uint64_t index) {
  return philox4x32(
      Philox4x32{{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, 0u}},
      PhiloxKey{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}});
}

// [0, 1) from the top 24 bits: every value is exactly representable in float.
HEED_HD constexpr float uint_to_unit_float(uint32_t w) {
  return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
}
// [0, 1) from the top 53 bits of (hi << 32 | lo): exact in double.
HEED_HD constexpr double uint_to_unit_double(uint32_t hi, uint32_t lo) {
  return static_cast<double>(((static_cast<uint64_t>(hi) << 32) | lo) >> 11) *
         (1.0 / 9007199254740992.0);
}

// ---- the per-element samples of the mapping above ---------------------------
// Every operation rounded on its own (tensor/rounded_math.h): nvcc would
// otherwise contract a + (b - a) * u into an fma on the device, and the CPU
// and the GPU (cuda/random.cu runs these too) would differ in the last bit.

template <class T>
HEED_HD inline T uniform_from(const uint32_t* v, T a, T b);
template <>
HEED_HD inline float uniform_from<float>(const uint32_t* v, float a, float b) {
  const float x = add_rn(a, mul_rn(sub_rn(b, a), uint_to_unit_float(v[0])));
  return x < b ? x : a;
}
template <>
HEED_HD inline double uniform_from<double>(const uint32_t* v, double a, double b) {
  const double x = add_rn(a, mul_rn(sub_rn(b, a), uint_to_unit_double(v[0], v[1])));
  return x < b ? x : a;
}

template <class T>
HEED_HD inline T normal_from(const uint32_t* v, T mean, T std);
template <>
HEED_HD inline float normal_from<float>(const uint32_t* v, float mean, float std) {
  const float u1 = sub_rn(1.0f, uint_to_unit_float(v[0]));  // (0, 1]: log never sees 0
  const float u2 = uint_to_unit_float(v[1]);
  const float z = mul_rn(sqrt_rn(mul_rn(-2.0f, ::logf(u1))), ::cosf(mul_rn(6.28318530717958647692f, u2)));
  return add_rn(mean, mul_rn(std, z));
}
template <>
HEED_HD inline double normal_from<double>(const uint32_t* v, double mean, double std) {
  const double u1 = sub_rn(1.0, uint_to_unit_double(v[0], v[1]));
  const double u2 = uint_to_unit_double(v[2], v[3]);
  const double z = mul_rn(sqrt_rn(mul_rn(-2.0, ::log(u1))), ::cos(mul_rn(6.28318530717958647692, u2)));
  return add_rn(mean, mul_rn(std, z));
}

HEED_HD inline bool bernoulli_from(const uint32_t* v, double p) {
  return static_cast<double>(uint_to_unit_float(v[0])) < p;
}

}  // namespace heed

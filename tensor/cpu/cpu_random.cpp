// Random fills from Philox4x32-10. Element i of the contiguous out is a pure
// function of (seed, offset, i) (the mapping is spelled out in tensor/philox.h,
// which the CUDA backend shares), so chunks can go to any thread in any order
// and the numbers never depend on the thread count or the device.
#include <algorithm>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/parallel.h"
#include "tensor/philox.h"

namespace heed::cpu {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel chunk

// out[i] = sample(words of sample i) over the contiguous out, following the
// block/word mapping of tensor/philox.h; each chunk computes a block once for
// the 4 / w samples that share it.
template <class T, class F>
void fill_from_philox(const Tensor& out, uint64_t seed, uint64_t offset, int words, F sample) {
  T* po = static_cast<T*>(out.raw_data());
  parallel_for(0, out.numel(), kGrain, [&](int64_t b, int64_t e) {
    uint64_t cached = ~uint64_t{0};
    Philox4x32 block{};
    for (int64_t i = b; i < e; ++i) {
      const uint64_t q = static_cast<uint64_t>(i) * static_cast<uint64_t>(words);
      const uint64_t index = offset + q / 4;
      if (index != cached) {
        block = philox_block(seed, index);
        cached = index;
      }
      po[i] = sample(block.w + q % 4);
    }
  });
}

}  // namespace

void random(RandomDist dist, double a, double b, uint64_t seed, uint64_t offset, const Tensor& out) {
  HEED_CHECK(out.is_contiguous(), "cpu random: out must be contiguous");
  if (out.dtype() == DType::BFloat16 && dist != RandomDist::Bernoulli) {  // float32's samples, rounded
    Tensor out32 = float32_like(out);
    random(dist, a, b, seed, offset, out32);
    return store_rounded(out32, out);
  }
  switch (dist) {
    case RandomDist::Uniform:
      return dispatch_floating(out.dtype(), "cpu random (uniform)", [&](auto zero) {
        using T = decltype(zero);
        const T lo = static_cast<T>(a), hi = static_cast<T>(b);
        fill_from_philox<T>(out, seed, offset, philox_words(false, sizeof(T) == 8),
                            [lo, hi](const uint32_t* v) { return uniform_from<T>(v, lo, hi); });
      });
    case RandomDist::Normal:
      return dispatch_floating(out.dtype(), "cpu random (normal)", [&](auto zero) {
        using T = decltype(zero);
        const T mean = static_cast<T>(a), std = static_cast<T>(b);
        fill_from_philox<T>(out, seed, offset, philox_words(true, sizeof(T) == 8),
                            [mean, std](const uint32_t* v) { return normal_from<T>(v, mean, std); });
      });
    case RandomDist::Bernoulli:
      return dispatch_dtype(out.dtype(), [&](auto zero) {
        using T = decltype(zero);
        fill_from_philox<T>(out, seed, offset, 1,
                            [p = a](const uint32_t* v) { return bernoulli_from(v, p) ? T(1) : T(0); });
      });
  }
  HEED_FAIL("cpu random: unknown distribution {}", static_cast<int>(dist));
}

}  // namespace heed::cpu

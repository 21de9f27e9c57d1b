// Random fills from Philox4x32-10. Element i of the contiguous out is a pure
// function of (seed, offset + i) (the mapping is spelled out in tensor/philox.h,
// which the CUDA backend shares), so chunks can go to any thread in any order
// and the numbers never depend on the thread count or the device.
#include <algorithm>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/parallel.h"
#include "tensor/philox.h"

namespace heed::cpu {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel chunk

// out[i] = sample(philox_element(seed, offset + i)) over the contiguous out.
template <class T, class F>
void fill_from_philox(const Tensor& out, uint64_t seed, uint64_t offset, F sample) {
  T* po = static_cast<T*>(out.raw_data());
  parallel_for(0, out.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = sample(philox_element(seed, offset + static_cast<uint64_t>(i)));
  });
}

}  // namespace

void random(RandomDist dist, double a, double b, uint64_t seed, uint64_t offset, const Tensor& out) {
  HEED_CHECK(out.is_contiguous(), "cpu random: out must be contiguous");
  switch (dist) {
    case RandomDist::Uniform:
      return dispatch_floating(out.dtype(), "cpu random (uniform)", [&](auto zero) {
        using T = decltype(zero);
        const T lo = static_cast<T>(a), hi = static_cast<T>(b);
        fill_from_philox<T>(out, seed, offset, [lo, hi](const Philox4x32& r) { return uniform_from<T>(r, lo, hi); });
      });
    case RandomDist::Normal:
      return dispatch_floating(out.dtype(), "cpu random (normal)", [&](auto zero) {
        using T = decltype(zero);
        const T mean = static_cast<T>(a), std = static_cast<T>(b);
        fill_from_philox<T>(out, seed, offset,
                            [mean, std](const Philox4x32& r) { return normal_from<T>(r, mean, std); });
      });
    case RandomDist::Bernoulli:
      return dispatch_dtype(out.dtype(), [&](auto zero) {
        using T = decltype(zero);
        fill_from_philox<T>(out, seed, offset,
                            [p = a](const Philox4x32& r) { return bernoulli_from(r, p) ? T(1) : T(0); });
      });
  }
  HEED_FAIL("cpu random: unknown distribution {}", static_cast<int>(dist));
}

}  // namespace heed::cpu

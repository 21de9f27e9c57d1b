// Random fills from Philox4x32-10. Element i of the contiguous out is a pure
// function of (seed, offset, i) (the mapping is spelled out in tensor/philox.h,
// which the CUDA backend shares), so chunks can go to any thread in any order
// and the numbers never depend on the thread count or the device.
#include <algorithm>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/philox_blocks.h"
#include "tensor/dropout_rule.h"
#include "tensor/philox.h"

namespace heed::cpu {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel chunk
constexpr int64_t kBatchBlocks = 256;  // Philox blocks computed per batch (4 KiB of words, in L1)

using BlocksFn = int64_t (*)(uint64_t, uint64_t, int64_t, uint32_t*);

// The widest SIMD body this CPU runs (null: scalar only).
BlocksFn simd_blocks() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f")) return &philox_simd::blocks_avx512;
  if (__builtin_cpu_supports("avx2")) return &philox_simd::blocks_avx2;
#endif
  return nullptr;
}

// out[i] = sample(words of sample i) over the contiguous out, following the
// block/word mapping of tensor/philox.h: sample i reads the w words at
// position i*w of the stream of words of blocks offset, offset + 1, ...
// (a sample never straddles two blocks: w divides 4). The blocks are made in
// batches, several side by side (philox_blocks), then sampled.
template <class T, int kWords, class F>
void fill_from_philox(const Tensor& out, uint64_t seed, uint64_t offset, F sample) {
  T* po = static_cast<T*>(out.raw_data());
  constexpr uint64_t w = kWords;  // a constant, so the sampling loop vectorises
  parallel_for(0, out.numel(), kGrain, [&](int64_t b, int64_t e) {
    alignas(64) uint32_t batch[4 * kBatchBlocks];
    for (int64_t i = b; i < e;) {
      const uint64_t block = static_cast<uint64_t>(i) * w / 4;  // relative to offset
      // The samples whose blocks are block .. block + kBatchBlocks - 1.
      const int64_t end = std::min<int64_t>(e, static_cast<int64_t>((block + kBatchBlocks) * 4 / w));
      const int64_t count = static_cast<int64_t>((static_cast<uint64_t>(end - 1) * w / 4) - block + 1);
      philox_blocks(seed, offset + block, count, batch);
      for (; i < end; ++i) po[i] = sample(batch + (static_cast<uint64_t>(i) * w - block * 4));
    }
  });
}

}  // namespace

void philox_blocks(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  static const BlocksFn simd = simd_blocks();
  int64_t done = simd != nullptr && count > 0 ? simd(seed, first, count, words) : 0;
  for (; done < count; ++done) {
    const Philox4x32 block = philox_block(seed, first + static_cast<uint64_t>(done));
    for (int t = 0; t < 4; ++t) words[4 * done + t] = block.w[t];
  }
}

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
        fill_from_philox<T, philox_words(false, sizeof(T) == 8)>(out, seed, offset, [lo, hi](const uint32_t* v) { return uniform_from<T>(v, lo, hi); });
      });
    case RandomDist::Normal:
      return dispatch_floating(out.dtype(), "cpu random (normal)", [&](auto zero) {
        using T = decltype(zero);
        const T mean = static_cast<T>(a), std = static_cast<T>(b);
        fill_from_philox<T, philox_words(true, sizeof(T) == 8)>(out, seed, offset, [mean, std](const uint32_t* v) { return normal_from<T>(v, mean, std); });
      });
    case RandomDist::Bernoulli:
      return dispatch_dtype(out.dtype(), [&](auto zero) {
        using T = decltype(zero);
        fill_from_philox<T, 1>(out, seed, offset, [p = a](const uint32_t* v) { return bernoulli_from(v, p) ? T(1) : T(0); });
      });
  }
  HEED_FAIL("cpu random: unknown distribution {}", static_cast<int>(dist));
}

namespace {

// out[i] = dropout(x[i]) (+ residual[i]) for n elements whose words start at
// `words`. The float32 loop is compiled for AVX-512 / AVX2 / baseline
// (isa_clones.h; this file is built with -ffp-contract=off, so the product
// and the sum stay two roundings, as in dropout_rule.h, in every clone).
template <class T>
__attribute__((always_inline)) inline void dropout_run(const T* x, const T* r, const uint32_t* words,
                                                       uint32_t threshold, compute_t<T> scale, T* out, int64_t n) {
  if (r != nullptr)
    for (int64_t i = 0; i < n; ++i) out[i] = dropout_add_value(x[i], r[i], dropout_keeps(words[i], threshold), scale);
  else
    for (int64_t i = 0; i < n; ++i) out[i] = dropout_value(x[i], dropout_keeps(words[i], threshold), scale);
}
HEED_ISA_CLONES __attribute__((flatten)) void dropout_wide(const float* x, const float* r, const uint32_t* words,
                                                           uint32_t threshold, float scale, float* out, int64_t n) {
  dropout_run(x, r, words, threshold, scale, out, n);
}
template <class T>
void dropout_wide(const T* x, const T* r, const uint32_t* words, uint32_t threshold, compute_t<T> scale, T* out,
                  int64_t n) {
  dropout_run(x, r, words, threshold, scale, out, n);
}

template <class T>
void dropout_typed(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t offset, const Tensor& out) {
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pr = residual.defined() ? static_cast<const T*>(residual.raw_data()) : nullptr;
  T* po = static_cast<T*>(out.raw_data());
  const compute_t<T> scale = dropout_scale<T>(p);
  const uint32_t threshold = dropout_threshold(p);
  // Sample i reads word i of the blocks offset, offset + 1, ... (Bernoulli's one word a sample).
  parallel_for(0, out.numel(), kGrain, [&](int64_t b, int64_t e) {
    alignas(64) uint32_t batch[4 * kBatchBlocks];
    for (int64_t i = b; i < e;) {
      const int64_t block = i / 4, end = std::min<int64_t>(e, (block + kBatchBlocks) * 4);
      philox_blocks(seed, offset + static_cast<uint64_t>(block), (end - 1) / 4 - block + 1, batch);
      const int64_t first = block * 4;
      dropout_wide(px + i, pr != nullptr ? pr + i : nullptr, batch + (i - first), threshold, scale, po + i, end - i);
      i = end;
    }
  });
}

}  // namespace

void dropout(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t offset, const Tensor& out) {
  HEED_CHECK(x.is_contiguous() && out.is_contiguous() && (!residual.defined() || residual.is_contiguous()),
             "cpu dropout: tensors must be contiguous");
  switch (out.dtype()) {
    case DType::Float32: return dropout_typed<float>(x, residual, p, seed, offset, out);
    case DType::Float64: return dropout_typed<double>(x, residual, p, seed, offset, out);
    case DType::BFloat16: return dropout_typed<bfloat16>(x, residual, p, seed, offset, out);
    default: HEED_FAIL("cpu dropout: expected a float tensor, got {}", out.dtype());
  }
}

}  // namespace heed::cpu

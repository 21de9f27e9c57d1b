#pragma once
// The per-element arithmetic of the CUDA random kernel (cuda/random.cu), and
// through tensor/adam_rule.h that of adam_step (cuda/optim.cu), written once
// for both sides so that tests/cuda_index_math_test.cpp can run it on the CPU
// against the CPU kernels.
//
// Bit-identical to the CPU: the arithmetic lives in tensor/philox.h and
// tensor/adam_rule.h, with every operation rounded on its own
// (tensor/rounded_math.h), so nvcc cannot contract it into fused multiply-adds.
#include <cstdint>
#include <math.h>

#include "tensor/hd.h"
#include "tensor/adam_rule.h"
#include "tensor/bfloat16.h"
#include "tensor/philox.h"

namespace heed::cuda {

// The samplers of cuda/random.cu: tensor/philox.h's samples, as functors.
template <class T>
struct UniformSampler {
  T a, b;
  HEED_HD T operator()(const uint32_t* v) const { return uniform_from<T>(v, a, b); }
};

template <class T>
struct NormalSampler {
  T mean, std;
  HEED_HD T operator()(const uint32_t* v) const { return normal_from<T>(v, mean, std); }
};

template <class T>
struct BernoulliSampler {
  double p;
  HEED_HD T operator()(const uint32_t* v) const { return bernoulli_from(v, p) ? T(1) : T(0); }
};

// The samples of Philox block offset + b: out[b * per + s] for s < per = 4 / words
// (those below n), sample s reading words s * words ... of the block. A
// bfloat16 out takes the float32 sampler's value, rounded (so uniform's b,
// excluded in float32, can be reached by rounding up: [a, b] for bfloat16).
template <class T, class Sampler>
HEED_HD inline void random_block(T* out, int64_t n, uint64_t seed, uint64_t offset, int words, int64_t b,
                                 const Sampler& sample) {
  const Philox4x32 r = philox_block(seed, offset + static_cast<uint64_t>(b));
  const int per = 4 / words;
  for (int s = 0; s < per; ++s) {
    const int64_t i = b * per + s;
    if (i < n) out[i] = static_cast<T>(sample(r.w + s * words));
  }
}

// Philox blocks a draw of n samples of `words` words each takes.
HEED_HD inline int64_t random_blocks(int64_t n, int words) { return (n * words + 3) / 4; }

}  // namespace heed::cuda

#pragma once
// Arithmetic rounded one operation at a time, on both sides. The CPU backend is
// compiled for x86-64 without FMA, so every product and sum there is rounded
// on its own; nvcc instead contracts a * b + c into one fused multiply-add by
// default, which rounds once and changes the last bits. The _rn intrinsics are
// never contracted, so kernels that must match the CPU bit for bit (adam_step, lerp,
// random, softmax, layer norm, reductions) use these.
#include <math.h>

#include "tensor/hd.h"

namespace heed {

// The device rounds through the intrinsics; the host's operators already
// round each operation: the CPU build targets x86-64 without FMA, and the
// files whose loops are also compiled for AVX2 / AVX-512 (isa_clones.h) are
// built with -ffp-contract=off (CMakeLists.txt). One definition per side.
#ifdef __CUDA_ARCH__
HEED_HD inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
HEED_HD inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
HEED_HD inline float sub_rn(float a, float b) { return __fsub_rn(a, b); }
HEED_HD inline float div_rn(float a, float b) { return __fdiv_rn(a, b); }
HEED_HD inline float sqrt_rn(float a) { return __fsqrt_rn(a); }
HEED_HD inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
HEED_HD inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
HEED_HD inline double sub_rn(double a, double b) { return __dsub_rn(a, b); }
HEED_HD inline double div_rn(double a, double b) { return __ddiv_rn(a, b); }
HEED_HD inline double sqrt_rn(double a) { return __dsqrt_rn(a); }
#else
HEED_HD inline float mul_rn(float a, float b) { return a * b; }
HEED_HD inline float add_rn(float a, float b) { return a + b; }
HEED_HD inline float sub_rn(float a, float b) { return a - b; }
HEED_HD inline float div_rn(float a, float b) { return a / b; }
HEED_HD inline float sqrt_rn(float a) { return ::sqrtf(a); }
HEED_HD inline double mul_rn(double a, double b) { return a * b; }
HEED_HD inline double add_rn(double a, double b) { return a + b; }
HEED_HD inline double sub_rn(double a, double b) { return a - b; }
HEED_HD inline double div_rn(double a, double b) { return a / b; }
HEED_HD inline double sqrt_rn(double a) { return ::sqrt(a); }
#endif

}  // namespace heed

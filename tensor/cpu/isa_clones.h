#pragma once
// HEED_ISA_CLONES: compile a function three times, for AVX-512 (x86-64-v4),
// AVX2 + FMA (x86-64-v3) and baseline x86-64, and let the dynamic loader pick
// the best this CPU runs (GCC's target_clones; an ifunc). The library is built
// for any x86-64, so without it a loop vectorises 4 floats wide. For the
// per-element loops whose math (vec_math.h's exp, tanh, erf) costs tens of
// cycles an element; the GEMM has hand-written kernels of its own.
//
// What a clone calls must be inlined into it to run at its width: write the
// loop's helpers __attribute__((always_inline)), or the clone
// __attribute__((flatten)). Results are the same on every run of one machine;
// the clones may round differently from each other where the compiler
// contracts a * b + c into an FMA, unless the file is compiled with
// -ffp-contract=off (cpu_elementwise.cpp is: CMakeLists.txt).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HEED_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HEED_ISA_CLONES
#endif

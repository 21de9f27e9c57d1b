#pragma once
// General matrix multiply on the CPU, for any strided layout.
//
// Results are deterministic: every element of C is summed over k in the same
// order by the same micro-kernel whatever the number of threads, so a run with 1
// thread and a run with 16 agree to the bit. They may differ between kernels
// (avx512 / avx2 / portable), i.e. between CPUs.
//
// gemm may be called from several threads at once, and from inside a
// parallel_for chunk (it then runs on that thread alone).
#include <cstdint>
#include <string>
#include <vector>

namespace heed::cpu {

// C[i,j] = alpha * sum_k A[i,k] * B[k,j] + beta * C[i,j]   (0 <= i < M, 0 <= j < N)
// Every matrix is addressed by (row stride, column stride) in elements, so
// transposed, sliced and broadcast (stride 0) operands need no copy: A[i,k] is
// A[i*rsa + k*csa]. beta == 0 means C is never read (NaN in C is ignored).
// K == 0 or alpha == 0 gives C = beta*C without reading A or B (as BLAS does).
// C must not overlap A or B, and no two (i,j) may share an element of C (no
// stride-0 C). Negative sizes throw std::invalid_argument.
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
          const float* B, int64_t rsb, int64_t csb, float beta, float* C, int64_t rsc, int64_t csc);
void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa,
          int64_t csa, const double* B, int64_t rsb, int64_t csb, double beta, double* C,
          int64_t rsc, int64_t csc);

// The float micro-kernel gemm uses: "avx512", "avx2" or "portable". The default
// is the best one this CPU supports; the environment variable
// HEED_GEMM_KERNEL=portable|avx2|avx512 (read once) or set_gemm_kernel may pick
// a lower one.
const char* gemm_kernel_name();

// The float micro-kernels this CPU can run, best first (always ends with "portable").
std::vector<std::string> gemm_available_kernels();

// Forces the float micro-kernel (for tests and benchmarks). Throws
// std::invalid_argument for an unknown name or one this CPU cannot run.
void set_gemm_kernel(const std::string& name);

}  // namespace heed::cpu

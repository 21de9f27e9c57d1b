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
#include <memory>
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

// C[i,j] = alpha * sum_k A[i,k] * B[k,j] + beta * D[i*rsd + j*csd]: gemm with
// what the product is added to read from D instead of C, so a bias (D a
// broadcast row: rsd = 0, csd = 1) or a residual is read by the tile that
// needs it, while the tile is in L1, rather than copied into C in a pass of
// its own first. The bits equal that copy followed by gemm with the same beta.
// D may be C itself (same strides: gemm), or must not overlap C; beta == 0
// never reads D.
void gemm_add(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
              const float* B, int64_t rsb, int64_t csb, float beta, const float* D, int64_t rsd, int64_t csd,
              float* C, int64_t rsc, int64_t csc);
void gemm_add(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa, int64_t csa,
              const double* B, int64_t rsb, int64_t csb, double beta, const double* D, int64_t rsd,
              int64_t csd, double* C, int64_t rsc, int64_t csc);

// ---- a B operand packed once, multiplied many times ---------------------------
// Kernels made of many small products that share an operand (fused attention
// multiplies every query tile by the same keys and values) pack it once into
// the micro-kernel's column panels instead of on every call. Not thread-safe
// to pack; any number of threads may multiply by a packed operand at once.
template <typename T>
class PackedA;

namespace gemm_detail {
// The 64-byte-aligned buffer a packed operand keeps its panels in. It grows
// and never shrinks, so packing another operand of the same size or smaller
// allocates nothing.
template <typename T>
class PanelBuffer {
 public:
  void reserve(size_t elements);  // throws std::bad_alloc
  T* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const;
  };
  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;  // elements
};
}  // namespace gemm_detail

template <typename T>
class PackedB {
 public:
  // Packs B[k, j] = b[k*rsb + j*csb] for 0 <= k < K, 0 <= j < N, with the
  // micro-kernel gemm would use now.
  void pack(int64_t K, int64_t N, const T* b, int64_t rsb, int64_t csb);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }

 private:
  template <typename U>
  friend void gemm_packed_b(int64_t, int64_t, int64_t, U, const U*, int64_t, int64_t, const PackedB<U>&, int64_t,
                            int64_t, U, U*, int64_t, int64_t);
  template <typename U>
  friend void gemm_packed_ab(int64_t, U, const PackedA<U>&, const PackedB<U>&, int64_t, int64_t, U, U*, int64_t,
                             int64_t);
  gemm_detail::PanelBuffer<T> panels_;
  int64_t K_ = 0, N_ = 0;
  int isa_ = 0, nr_ = 0;
};

// An A operand packed once into the micro-kernel's row panels, for an A
// that several products read (a query tile against every key tile).
template <typename T>
class PackedA {
 public:
  // Packs A[i, k] = a[i*rsa + k*csa] for 0 <= i < M, 0 <= k < K.
  void pack(int64_t M, int64_t K, const T* a, int64_t rsa, int64_t csa);
  int64_t rows() const { return M_; }
  int64_t cols() const { return K_; }

 private:
  template <typename U>
  friend void gemm_packed_ab(int64_t, U, const PackedA<U>&, const PackedB<U>&, int64_t, int64_t, U, U*, int64_t,
                             int64_t);
  gemm_detail::PanelBuffer<T> panels_;
  int64_t M_ = 0, K_ = 0;
  int isa_ = 0;
};

// C[i,j] = alpha * sum_{k<K} A[i,k] * B[k0+k, j0+j] + beta * C[i,j]  (i < M, j < N)
// with B packed; A and C as for gemm. j0 must be a multiple of 64 (every
// kernel's panel width divides 64), and k0 + K, j0 + N must lie within B.
// Runs on the calling thread alone, with the kernel B was packed for; the
// sum over k is the micro-kernel's, so results do not depend on threads.
template <typename T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                   const PackedB<T>& B, int64_t k0, int64_t j0, T beta, T* C, int64_t rsc, int64_t csc);

// The same with A packed too: M = A.rows(), K = A.cols(). Both must have been
// packed for the same kernel (std::invalid_argument otherwise).
template <typename T>
void gemm_packed_ab(int64_t N, T alpha, const PackedA<T>& A, const PackedB<T>& B, int64_t k0, int64_t j0, T beta, T* C,
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

// The CPU GEMM driver: kernel choice, the small-matrix path, packing and the
// BLIS-style blocked loops around the micro-kernels (gemm_kernels.h).
//
// Loop structure of the packed path, for one "superblock" of C and K:
//   pack   A rows [i0, i0+ms) x k [p0, p0+ks) into MR-row panels, and
//          B k [p0, p0+ks) x cols [j0, j0+ns) into NR-column panels  (parallel)
//   tasks  C tiles of (mc, nc); each task walks its K blocks of depth kc in
//          ascending order, then its NR-column panels (B panel in L1), then
//          its MR-row panels (A block in L2), calling the micro-kernel  (parallel)
// Each C element is produced by one task, and its sum runs over the K blocks
// in ascending order with the same kernel whatever the thread count or the task
// shapes, so results are bit-identical for any number of threads.
#include "tensor/cpu/gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "tensor/cpu/gemm_kernels.h"
#include "tensor/cpu/parallel.h"

namespace heed::cpu {
namespace {

using namespace gemm_detail;

// ---- the portable micro-kernels ---------------------------------------------
// Plain loops the compiler vectorises for the baseline ISA (SSE2 on x86-64):
// MR*NR accumulators fill 8 of the 16 xmm registers.
constexpr int kPortableRowsF32 = 4, kPortableColsF32 = 8;
constexpr int kPortableRowsF64 = 4, kPortableColsF64 = 4;

template <typename T, int MR, int NR>
void portable_kernel(int64_t kc, const T* a, const T* b, T* c, int64_t rsc, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] += a[r] * b[j];
    a += MR;
    b += NR;
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      T& out = c[r * rsc + j];
      out = beta == T(0) ? alpha * acc[r][j] : alpha * acc[r][j] + beta * out;
    }
}

KernelSpecF32 portable_kernel_f32() {
  return {"portable", kPortableRowsF32, kPortableColsF32, 256, 64, 256,
          &portable_kernel<float, kPortableRowsF32, kPortableColsF32>, nullptr, nullptr};
}

KernelSpecF64 portable_kernel_f64() {
  return {"portable", kPortableRowsF64, kPortableColsF64, 256, 64, 256,
          &portable_kernel<double, kPortableRowsF64, kPortableColsF64>, nullptr, nullptr};
}

// ---- which float kernel runs --------------------------------------------------
enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports also checks that the OS saves the wide registers.
  switch (isa) {
    case Isa::avx512:
      // gemm_avx512.cpp is compiled with all four, so the compiler may use any.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("fma");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return isa == Isa::portable;
#endif
}

Isa best_isa() {
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (cpu_supports(isa)) return isa;
  return Isa::portable;
}

Isa parse_isa(const std::string& name, const char* who) {
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument(std::string(who) + ": unknown GEMM kernel '" + name +
                              "', expected one of avx512, avx2, portable");
}

// The default: HEED_GEMM_KERNEL may only lower the choice; naming a kernel the
// CPU lacks (a setting copied from another machine) gives the best it has.
Isa default_isa() {
  Isa best = best_isa();
  const char* env = std::getenv("HEED_GEMM_KERNEL");
  if (env == nullptr || *env == '\0') return best;
  Isa wanted = parse_isa(env, "HEED_GEMM_KERNEL");
  return static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best;
}

std::atomic<int> g_forced_isa{-1};  // set by set_gemm_kernel

Isa current_isa() {
  int forced = g_forced_isa.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa isa = default_isa();
  return isa;
}

// ---- scratch memory ---------------------------------------------------------------
// The packed panels of one call, kept per calling thread: allocating (and
// page-faulting) megabytes on every call would cost more than packing them.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      data_ = nullptr;
      size_ = 0;
      size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
      size_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

thread_local PackBuffer t_pack_buffer;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// ---- C = beta*C, for K == 0 and alpha == 0 -----------------------------------------
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t rsc, int64_t csc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T& c = C[i * rsc + j * csc];
      c = beta == T(0) ? T(0) : beta * c;  // beta == 0 must not read (NaN) C
    }
}

// ---- small or skinny products: no packing ------------------------------------------
// Columns [j_begin, j_end) of C. Two loop orders, chosen by B's layout so that
// the inner loop reads memory contiguously; both sum k in ascending order per
// partial sum, and neither depends on how the columns are split between threads.
template <typename T>
void gemm_unpacked(int64_t M, int64_t j_begin, int64_t j_end, int64_t K, T alpha, const T* A,
                   int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb, T beta, T* C,
                   int64_t rsc, int64_t csc) {
  auto store = [&](T* out, T sum) { *out = beta == T(0) ? alpha * sum : alpha * sum + beta * *out; };
  if (rsb == 1 && csb != 1) {
    // B's columns are contiguous (x W^T): one dot product per element, with
    // eight partial sums so the compiler can keep them in a vector.
    constexpr int kLanes = 8;
    for (int64_t i = 0; i < M; ++i) {
      const T* a = A + i * rsa;
      for (int64_t j = j_begin; j < j_end; ++j) {
        const T* b = B + j * csb;
        T part[kLanes] = {};
        int64_t k = 0;
        for (; k + kLanes <= K; k += kLanes)
          for (int l = 0; l < kLanes; ++l) part[l] += a[(k + l) * csa] * b[k + l];
        for (; k < K; ++k) part[0] += a[k * csa] * b[k];
        for (int w = kLanes / 2; w > 0; w /= 2)
          for (int l = 0; l < w; ++l) part[l] += part[l + w];
        store(C + i * rsc + j * csc, part[0]);
      }
    }
    return;
  }
  // Otherwise row by row: acc[j] += A[i,k] * B[k,j] over k, a loop over j that
  // the compiler vectorises when B's rows are contiguous.
  constexpr int64_t kCols = 128;
  T acc[kCols];
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kCols) {
      const int64_t nb = std::min(kCols, j_end - j0);
      std::fill(acc, acc + nb, T(0));
      for (int64_t k = 0; k < K; ++k) {
        const T a = A[i * rsa + k * csa];
        const T* b = B + k * rsb + j0 * csb;
        if (csb == 1) {
          for (int64_t j = 0; j < nb; ++j) acc[j] += a * b[j];
        } else {
          for (int64_t j = 0; j < nb; ++j) acc[j] += a * b[j * csb];
        }
      }
      for (int64_t j = 0; j < nb; ++j) store(C + i * rsc + (j0 + j) * csc, acc[j]);
    }
  }
}

// ---- packing -------------------------------------------------------------------------
// dst (kc, MR): dst[k*MR + r] = A[r, k] for r < rows, 0 beyond. a points at A[i0, p0].
template <typename T, int MR>
void pack_a_panel(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                  int64_t rows, int64_t kc) {
  if (csa == 1 && spec.pack_a_rows != nullptr) {
    spec.pack_a_rows(dst, a, rsa, rows, kc);
  } else if (rows == MR && rsa == 1) {  // column-major A: each k is MR contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = a[k * csa + r];
  } else if (rows == MR && csa == 1) {  // row-major A: read each row once, in order
    for (int r = 0; r < MR; ++r) {
      const T* src = a + r * rsa;
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = a[r * rsa + k * csa];
      for (int64_t r = rows; r < MR; ++r) dst[k * MR + r] = T(0);
    }
  }
}

// dst (kc, NR): dst[k*NR + j] = B[k, j] for j < cols, 0 beyond. b points at B[p0, j0].
template <typename T, int NR>
void pack_b_panel(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                  int64_t cols, int64_t kc) {
  if (cols == NR && csb == 1) {  // row-major B: each k is NR contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = b[k * rsb + j];
  } else if (rsb == 1 && spec.pack_b_cols != nullptr) {
    spec.pack_b_cols(dst, b, csb, cols, kc);
  } else if (cols == NR && rsb == 1) {  // column-major B (x W^T): read each column in order
    for (int j = 0; j < NR; ++j) {
      const T* src = b + j * csb;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < cols; ++j) dst[k * NR + j] = b[k * rsb + j * csb];
      for (int64_t j = cols; j < NR; ++j) dst[k * NR + j] = T(0);
    }
  }
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*MR*kc. a points at
// A[i0, p0] and the block has `rows` rows (its last panel may be partial).
template <typename T, int MR>
void pack_a_panels(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                   int64_t rows, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, rows / MR);
  if (rsa == 1 && csa != 1 && p_begin < full_end) {
    // Column-major A: walk each column once, a long contiguous read, dealing
    // MR-long pieces to the panels.
    for (int64_t k = 0; k < kc; ++k) {
      const T* col = a + k * csa;
      for (int64_t p = p_begin; p < full_end; ++p)
        for (int r = 0; r < MR; ++r) dst[p * MR * kc + k * MR + r] = col[p * MR + r];
    }
    p_begin = full_end;
  }
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_a_panel<T, MR>(spec, dst + p * MR * kc, a + p * MR * rsa, rsa, csa,
                        std::min<int64_t>(MR, rows - p * MR), kc);
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*NR*kc. b points at
// B[p0, j0] and the block has `cols` columns (its last panel may be partial).
template <typename T, int NR>
void pack_b_panels(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                   int64_t cols, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, cols / NR);
  if (csb == 1 && rsb != 1 && p_begin < full_end) {
    // Row-major B: walk each row once, a long contiguous read (panel by panel
    // would jump a whole row stride per NR values), dealing NR-wide pieces.
    for (int64_t k = 0; k < kc; ++k) {
      const T* row = b + k * rsb;
      for (int64_t p = p_begin; p < full_end; ++p)
        for (int j = 0; j < NR; ++j) dst[p * NR * kc + k * NR + j] = row[p * NR + j];
    }
    p_begin = full_end;
  }
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_b_panel<T, NR>(spec, dst + p * NR * kc, b + p * NR * csb, rsb, csb,
                        std::min<int64_t>(NR, cols - p * NR), kc);
}

// ---- the packed, blocked path ---------------------------------------------------------
// Superblock limits: the packed panels of one superblock take at most
// (kSuperRows + kSuperCols) * kc * kSuperDepthBlocks elements.
constexpr int64_t kSuperRows = 2048, kSuperCols = 2048, kSuperDepthBlocks = 4;
// Below this many flops a parallel phase costs more in wake-ups than it saves.
constexpr double kParallelFlops = 1 << 21;
// Rows (columns) of A (B) packed per packing job: long enough for streaming reads.
constexpr int64_t kPackJobLines = 256;

template <typename T, int MR, int NR>
void gemm_packed(const KernelSpec<T>& spec, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb, T beta, T* C,
                 int64_t rsc, int64_t csc) {
  const auto kernel = spec.run;
  auto tune = [](const char* n, int64_t d) { const char* e = std::getenv(n); return e ? std::atoll(e) : d; };  // TUNE
  const int64_t KC = tune("TUNE_KC", spec.kc);
  const int64_t MC = round_up(tune("TUNE_MC", spec.mc), MR), NC = round_up(tune("TUNE_NC", spec.nc), NR);
  const int64_t MS = round_up(kSuperRows, MC), NS = round_up(kSuperCols, NC);
  const int64_t KS = KC * kSuperDepthBlocks;

  // One tile of C at (i, j) relative to C, from packed panels; partial tiles
  // (and a C whose rows are not contiguous) go through a scratch tile so the
  // kernel always sees a full one.
  auto run_tile = [&](const T* ap, const T* bp, int64_t kc, int64_t i, int64_t j, int64_t rows,
                      int64_t cols, T beta_k) {
    T* c = C + i * rsc + j * csc;
    if (rows == MR && cols == NR && csc == 1) {
      kernel(kc, ap, bp, c, rsc, alpha, beta_k);
      return;
    }
    alignas(64) T tile[MR * NR] = {};
    if (beta_k != T(0))
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q) tile[r * NR + q] = c[r * rsc + q * csc];
    kernel(kc, ap, bp, tile, NR, alpha, beta_k);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t q = 0; q < cols; ++q) c[r * rsc + q * csc] = tile[r * NR + q];
  };

  for (int64_t j0 = 0; j0 < N; j0 += NS) {
    const int64_t ns = std::min(NS, N - j0), ns_pad = round_up(ns, NR);
    for (int64_t p0 = 0; p0 < K; p0 += KS) {
      const int64_t ks = std::min(KS, K - p0), num_kb = ceil_div(ks, KC);
      bool b_packed = false;
      for (int64_t i0 = 0; i0 < M; i0 += MS) {
        const int64_t ms = std::min(MS, M - i0), ms_pad = round_up(ms, MR);
        const double flops = 2.0 * ms * ns * ks;
        const bool parallel = flops >= kParallelFlops;

        // Block kb of the packed panels starts at kb*KC*{ms,ns}_pad; panel p of
        // block kb at p*{MR,NR}*kc, i.e. at row (column) offset times kc.
        T* bpack = static_cast<T*>(t_pack_buffer.get(sizeof(T) * (ns_pad + ms_pad) * ks));
        T* apack = bpack + ns_pad * ks;

        const int64_t a_panels = ms_pad / MR, b_panels = ns_pad / NR;
        const int64_t a_per_job = std::max<int64_t>(1, kPackJobLines / MR);
        const int64_t b_per_job = std::max<int64_t>(1, kPackJobLines / NR);
        const int64_t a_jobs_kb = ceil_div(a_panels, a_per_job);
        const int64_t b_jobs_kb = b_packed ? 0 : ceil_div(b_panels, b_per_job);
        const int64_t pack_jobs = num_kb * (a_jobs_kb + b_jobs_kb);
        auto tp0 = std::chrono::steady_clock::now();
        parallel_for(0, pack_jobs, parallel ? 1 : pack_jobs, [&](int64_t first, int64_t last) {
          for (int64_t job = first; job < last; ++job) {
            const int64_t kb = job / (a_jobs_kb + b_jobs_kb);
            const int64_t slot = job % (a_jobs_kb + b_jobs_kb);
            const int64_t k0 = kb * KC, kc = std::min(KC, ks - k0);
            if (slot < a_jobs_kb) {
              pack_a_panels<T, MR>(spec, apack + k0 * ms_pad, A + i0 * rsa + (p0 + k0) * csa, rsa,
                                   csa, ms, slot * a_per_job,
                                   std::min(a_panels, (slot + 1) * a_per_job), kc);
            } else {
              const int64_t bslot = slot - a_jobs_kb;
              pack_b_panels<T, NR>(spec, bpack + k0 * ns_pad, B + (p0 + k0) * rsb + j0 * csb, rsb,
                                   csb, ns, bslot * b_per_job,
                                   std::min(b_panels, (bslot + 1) * b_per_job), kc);
            }
          }
        });
        b_packed = true;
        auto tp1 = std::chrono::steady_clock::now();

        const int64_t tiles_i = ceil_div(ms, MC), tiles_j = ceil_div(ns, NC);
        const int64_t tasks = tiles_i * tiles_j;
        parallel_for(0, tasks, parallel ? 1 : tasks, [&](int64_t first, int64_t last) {
          for (int64_t task = first; task < last; ++task) {
            const int64_t ti = task / tiles_j, tj = task % tiles_j;
            const int64_t ib = ti * MC, ie = std::min(ms, ib + MC);
            const int64_t jb = tj * NC, je = std::min(ns, jb + NC);
            for (int64_t kb = 0; kb < num_kb; ++kb) {
              const int64_t k0 = kb * KC, kc = std::min(KC, ks - k0);
              const T beta_k = (p0 + k0 == 0) ? beta : T(1);
              const T* ablock = apack + k0 * ms_pad;
              const T* bblock = bpack + k0 * ns_pad;
              for (int64_t jr = jb; jr < je; jr += NR) {
                const T* bp = bblock + jr * kc;
                const int64_t cols = std::min<int64_t>(NR, je - jr);
                for (int64_t ir = ib; ir < ie; ir += MR)
                  run_tile(ablock + ir * kc, bp, kc, i0 + ir, j0 + jr,
                           std::min<int64_t>(MR, ie - ir), cols, beta_k);
              }
            }
          }
        });
        auto tp2 = std::chrono::steady_clock::now();
        if (getenv("TUNE_PRINT")) fprintf(stderr, "pack %.3f ms compute %.3f ms\n", std::chrono::duration<double>(tp1-tp0).count()*1e3, std::chrono::duration<double>(tp2-tp1).count()*1e3);
      }
    }
  }
}

// Below this many multiply-adds, or with this few rows (or columns), packing
// costs more than it saves: one token's projection while decoding (M = 1) reads
// each weight once instead of packing all of them.
constexpr double kSmallMacs = 32 * 32 * 32;
constexpr int64_t kSkinny = 4;
// Columns per parallel chunk of the unpacked path.
constexpr int64_t kUnpackedCols = 256;

template <typename T, typename Packed>
void gemm_any(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
              const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc,
              Packed packed) {
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument("heed::cpu::gemm: negative size M=" + std::to_string(M) +
                                " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  // C^T = B^T A^T: the same product with the roles of rows and columns swapped.
  auto transpose_problem = [&] {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(rsa, csb);
    std::swap(csa, rsb);
    std::swap(rsc, csc);
  };
  const double macs = static_cast<double>(M) * N * K;
  if (macs >= kSmallMacs && N <= kSkinny && M > kSkinny) transpose_problem();
  if (macs < kSmallMacs || M <= kSkinny) {
    const int64_t grain = 2 * macs < kParallelFlops ? N : kUnpackedCols;
    parallel_for(0, N, grain, [&](int64_t jb, int64_t je) {
      gemm_unpacked(M, jb, je, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
    });
    return;
  }
  // The kernels write rows of C; a column-major C becomes a row-major C^T.
  if (csc != 1 && rsc == 1) transpose_problem();
  packed(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
          const float* B, int64_t rsb, int64_t csb, float beta, float* C, int64_t rsc,
          int64_t csc) {
  gemm_any<float>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc,
                  [](auto... args) {
                    switch (current_isa()) {
                      case Isa::avx512:
                        return gemm_packed<float, kAvx512Rows, kAvx512Cols>(avx512_kernel_f32(),
                                                                            args...);
                      case Isa::avx2:
                        return gemm_packed<float, kAvx2Rows, kAvx2Cols>(avx2_kernel_f32(), args...);
                      default:
                        return gemm_packed<float, kPortableRowsF32, kPortableColsF32>(
                            portable_kernel_f32(), args...);
                    }
                  });
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa,
          int64_t csa, const double* B, int64_t rsb, int64_t csb, double beta, double* C,
          int64_t rsc, int64_t csc) {
  gemm_any<double>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc,
                   [](auto... args) {
                     gemm_packed<double, kPortableRowsF64, kPortableColsF64>(portable_kernel_f64(),
                                                                            args...);
                   });
}

const char* gemm_kernel_name() { return isa_name(current_isa()); }

std::vector<std::string> gemm_available_kernels() {
  std::vector<std::string> names;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (cpu_supports(isa)) names.push_back(isa_name(isa));
  return names;
}

void set_gemm_kernel(const std::string& name) {
  Isa isa = parse_isa(name, "heed::cpu::set_gemm_kernel");
  if (!cpu_supports(isa))
    throw std::invalid_argument("heed::cpu::set_gemm_kernel: this CPU cannot run the '" + name +
                                "' GEMM kernel");
  g_forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace heed::cpu

// The CPU GEMM driver: kernel choice, the unpacked path for small or skinny
// products, and the BLIS-style blocked loops around the micro-kernels
// (gemm_kernels.h) with their packing (gemm_pack.h).
//
// Loop structure of the packed path, for one superblock of B (columns
// [j0, j0+ns) x depth [p0, p0+ks)):
//   pack   B into NR-column panels, shared by all threads          (parallel)
//   tasks  C tiles of (mc, nc), each walking its K blocks of depth kc in
//          ascending order: pack that (mc, kc) block of A into MR-row panels
//          (a per-thread buffer, stays in L2), then for each NR-column panel
//          of B and each MR-row panel of A call the micro-kernel   (parallel)
// Each C element is produced by one task, and its sum runs over the K blocks
// in ascending order with the same kernel whatever the thread count or the task
// shapes, so results are bit-identical for any number of threads.
#include "tensor/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "tensor/bfloat16.h"
#include "tensor/cpu/gemm_kernels.h"
#include "tensor/cpu/gemm_pack.h"
#include "tensor/cpu/matmul.h"
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

// The bf16 kernel: the avx512 kernel's instructions and AVX512-BF16.
bool cpu_supports_bf16_kernel() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_supports(Isa::avx512) && __builtin_cpu_supports("avx512bf16");
#else
  return false;
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
  static constexpr size_t kHugePage = size_t(2) << 20;

 public:
  ~PackBuffer() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      data_ = nullptr;
      size_ = 0;
      // Large buffers are 2 MiB aligned and asked to be backed by huge pages:
      // the kernels sweep megabytes of panels, and 4 KiB pages would cost a
      // TLB miss every few panels.
      const size_t align = bytes >= kHugePage ? kHugePage : 64;
      const size_t rounded = (bytes + align - 1) / align * align;
      data_ = std::aligned_alloc(align, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (align == kHugePage) madvise(data_, rounded, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
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

// What the product is added to (beta * D): D is C itself for gemm, another
// matrix (a broadcast bias, a residual) for gemm_add. Each C element reads its
// D element once, before the product is added, so D == C is plain accumulation.
template <typename T>
struct Addend {
  const T* d;
  int64_t rsd, csd;
  const T& at(int64_t i, int64_t j) const { return d[i * rsd + j * csd]; }
  bool is(const T* c, int64_t rsc, int64_t csc) const { return d == c && rsd == rsc && csd == csc; }
};

// ---- C = beta*D, for K == 0 and alpha == 0 -----------------------------------------
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, Addend<T> D, T* C, int64_t rsc, int64_t csc) {
  if (beta == T(1) && D.is(C, rsc, csc)) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T& c = C[i * rsc + j * csc];
      c = beta == T(0) ? T(0) : beta * D.at(i, j);  // beta == 0 must not read (NaN) D
    }
}

template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t rsc, int64_t csc) {
  scale_c(M, N, beta, Addend<T>{C, rsc, csc}, C, rsc, csc);
}

// ---- small or skinny products: no packing ------------------------------------------
// Columns [j_begin, j_end) of C. Two loop orders, chosen by B's layout so that
// the inner loop reads memory contiguously; both sum k in ascending order per
// partial sum, and neither depends on how the columns are split between threads.
// kRound: each A and B value is rounded to bf16 as it is read (bf16 matmuls).
template <typename T, bool kRound>
void gemm_unpacked(int64_t M, int64_t j_begin, int64_t j_end, int64_t K, T alpha, const T* A,
                   int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb, T beta, Addend<T> D, T* C,
                   int64_t rsc, int64_t csc) {
  auto in = [](T x) -> T {
    if constexpr (kRound) return bfloat16::widen(bfloat16::round_bits(x));
    return x;
  };
  auto store = [&](int64_t i, int64_t j, T sum) {
    T* out = C + i * rsc + j * csc;
    *out = beta == T(0) ? alpha * sum : alpha * sum + beta * D.at(i, j);
  };
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
          for (int l = 0; l < kLanes; ++l) part[l] += in(a[(k + l) * csa]) * in(b[k + l]);
        for (; k < K; ++k) part[0] += in(a[k * csa]) * in(b[k]);
        for (int w = kLanes / 2; w > 0; w /= 2)
          for (int l = 0; l < w; ++l) part[l] += part[l + w];
        store(i, j, part[0]);
      }
    }
    return;
  }
  // Otherwise k outermost over a block of rows and columns: acc[i,j] += A[i,k] *
  // B[k,j], reading each row of B in one long run (vectorised when csb == 1)
  // instead of jumping a whole row stride per few values.
  // acc (up to 64 rows, up to 256 KiB) stays in L2 while rows of B stream past.
  constexpr int64_t kAccElems = 65536, kMaxRows = 64;
  static thread_local std::vector<T> acc_buffer;
  if (acc_buffer.size() < static_cast<size_t>(kAccElems)) acc_buffer.resize(kAccElems);
  T* acc = acc_buffer.data();
  for (int64_t i0 = 0; i0 < M; i0 += kMaxRows) {
    const int64_t mb = std::min(kMaxRows, M - i0), cols = kAccElems / mb;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += cols) {
      const int64_t nb = std::min(cols, j_end - j0);
      std::fill(acc, acc + mb * nb, T(0));
      for (int64_t k = 0; k < K; ++k) {
        const T* b = B + k * rsb + j0 * csb;
        for (int64_t i = 0; i < mb; ++i) {
          const T a = in(A[(i0 + i) * rsa + k * csa]);
          T* row = acc + i * nb;
          if (csb == 1) {
            for (int64_t j = 0; j < nb; ++j) row[j] += a * in(b[j]);
          } else {
            for (int64_t j = 0; j < nb; ++j) row[j] += a * in(b[j * csb]);
          }
        }
      }
      for (int64_t i = 0; i < mb; ++i)
        for (int64_t j = 0; j < nb; ++j) store(i0 + i, j0 + j, acc[i * nb + j]);
    }
  }
}

// ---- one tile of C ------------------------------------------------------------------
// The MR x NR tile at c (rows x cols of it inside C) through multiply(out,
// ldo, beta), the micro-kernel on the tile's panels: a full tile of a C with
// contiguous rows in place, a partial one (or a C whose rows are not
// contiguous) in a scratch tile, so the kernel always sees a full one. What
// beta multiplies is c's own values, or, where `from` is set (the tile's first
// K block adding the product to an addend other than C), the addend's: copied
// into the tile just before, while it is hot in L1, so it is never a pass over
// the whole of C, and the bits are those of copying it into C first.
template <typename T, int MR, int NR, class Multiply>
void run_tile(const Multiply& multiply, T* c, int64_t rsc, int64_t csc, int64_t rows, int64_t cols, T beta,
              const Addend<T>* from, int64_t i, int64_t j) {
  const bool from_d = from != nullptr && beta != T(0);
  if (rows == MR && cols == NR && csc == 1) {
    if (from_d)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q) c[r * rsc + q] = from->at(i + r, j + q);
    multiply(c, rsc, beta);
    return;
  }
  alignas(64) T tile[MR * NR] = {};
  if (beta != T(0))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t q = 0; q < cols; ++q) tile[r * NR + q] = from_d ? from->at(i + r, j + q) : c[r * rsc + q * csc];
  multiply(tile, int64_t{NR}, beta);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < cols; ++q) c[r * rsc + q * csc] = tile[r * NR + q];
}

// ---- the packed, blocked path ---------------------------------------------------------
// B is packed for a whole superblock (at most kSuperCols columns x kSuperDepth
// deep) before the tasks start, and shared by them; A is packed by each task,
// one (mc, kc) block at a time, into a buffer of the thread running it, where
// it stays in L2 while the task sweeps its columns.
constexpr int64_t kSuperCols = 4096, kSuperDepth = 1024;
// Below this many flops a parallel phase costs more in wake-ups than it saves.
constexpr double kParallelFlops = 1 << 21;
// Columns of B packed per packing job: long enough for streaming reads.
constexpr int64_t kPackJobCols = 256;

thread_local PackBuffer t_a_block;

// Every panel of an operand for each of the num_kb K blocks of a superblock
// (ks deep, blocks KC deep), in parallel jobs of about kPackJobCols rows or
// columns: pack(k0, kc, first panel, end panel) packs one job.
template <class F>
void pack_every_block(int64_t panels, int64_t width, int64_t num_kb, int64_t KC, int64_t ks, bool parallel,
                      const F& pack) {
  // At least two jobs per thread when there are few blocks: a deep, narrow
  // operand (a weight gradient's, 2048 tokens by 256) was one or two jobs,
  // packed by one thread while the other waited.
  int64_t per_job = std::max<int64_t>(1, kPackJobCols / width);
  if (parallel && num_kb * ceil_div(panels, per_job) < 2 * int64_t{num_threads()})
    per_job = std::max<int64_t>(1, ceil_div(panels * num_kb, 2 * int64_t{num_threads()}));
  const int64_t jobs_kb = ceil_div(panels, per_job);
  parallel_for(0, num_kb * jobs_kb, parallel ? 1 : num_kb * jobs_kb, [&](int64_t first, int64_t last) {
    for (int64_t job = first; job < last; ++job) {
      const int64_t kb = job / jobs_kb, slot = job % jobs_kb, k0 = kb * KC;
      pack(k0, std::min(KC, ks - k0), slot * per_job, std::min(panels, (slot + 1) * per_job));
    }
  });
}
// A column-major A packed whole (see gemm_packed), on the calling thread.
thread_local PackBuffer t_a_whole;

// ---- both operands k-major: read in place -------------------------------------
// A column-major A and a row-major B (a weight gradient dY^T X, both read
// along the tokens) already hold the kernel's panels, a stride apart: per k,
// MR contiguous values of A and NR of B. The kernel reads them where they are,
// so nothing is packed, and the threads share one parallel phase instead of
// three per 1024-deep superblock (packing these two operands was a memory-bound
// fifth of the GEMM on one thread, a third on two). The K blocks are the
// packed path's (kc deep, from k = 0), so the bits are the same; partial
// panels at the edges are packed, zero padded, as there.
thread_local PackBuffer t_edge_panels;

// Where reading in place wins (Zen 5, K 2040, GFLOP/s on 1 / 2 threads, packed ->
// in place): 256x256 183/240 -> 191/355, 2000x256 168/298 -> 176/337, 4096x256
// 172/323 -> 187/375, 256x1024 on 2 threads 264 -> 326. Where it loses: wide
// B rows (256x4096: 164/297 -> 143/263) and large squares (2048^3: 176/349 ->
// 140/279), whose long strides cost cache sets and TLB entries that packing
// saves; 512x512 is even. The bits are the same either way.
constexpr int64_t kKmajorMaxCols = 1024, kKmajorMinSide = 512;

template <typename T, int MR, int NR>
void gemm_kmajor(const KernelSpec<T>& spec, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, Addend<T> D, T* C, int64_t rsc) {
  const auto kernel = spec.run_strided;
  const int64_t KC = spec.kc;
  const bool d_is_c = D.is(C, rsc, 1);
  const bool parallel = 2.0 * M * N * K >= kParallelFlops;
  // Tasks as the packed path's, (mc, nc) tiles of C, smaller when there are too
  // few to keep every thread busy (task shapes never change the arithmetic).
  int64_t mc = round_up(spec.mc, MR), nc = round_up(spec.nc, NR);
  const int64_t enough = parallel ? 4 * int64_t{num_threads()} : 1;
  while (ceil_div(M, mc) * ceil_div(N, nc) < enough && nc > NR) nc = round_up(nc / 2, NR);
  while (ceil_div(M, mc) * ceil_div(N, nc) < enough && mc > MR) mc = round_up(mc / 2, MR);
  const int64_t tiles_i = ceil_div(M, mc), tiles_j = ceil_div(N, nc), tasks = tiles_i * tiles_j;
  parallel_for(0, tasks, parallel ? 1 : tasks, [&](int64_t first_task, int64_t last_task) {
    // The edge panels of this thread: one of A (MR wide) and one of B (NR wide).
    const int64_t a_room = round_up(MR * KC, 64);  // keeps b_edge 64-byte aligned
    T* a_edge = static_cast<T*>(t_edge_panels.get(sizeof(T) * (a_room + NR * KC)));
    T* b_edge = a_edge + a_room;
    for (int64_t task = first_task; task < last_task; ++task) {
      const int64_t ib = task / tiles_j * mc, ie = std::min(M, ib + mc);
      const int64_t jb = task % tiles_j * nc, je = std::min(N, jb + nc);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        const bool first = k0 == 0;
        const T beta_k = first ? beta : T(1);
        for (int64_t jr = jb; jr < je; jr += NR) {
          const int64_t cols = std::min<int64_t>(NR, je - jr);
          const T* bp = B + k0 * ldb + jr;
          int64_t ldbp = ldb;
          if (cols < NR) {
            pack_b_panels<T, NR>(spec, b_edge, bp, ldb, 1, cols, 0, 1, kc);
            bp = b_edge, ldbp = NR;
          }
          for (int64_t ir = ib; ir < ie; ir += MR) {
            const int64_t rows = std::min<int64_t>(MR, ie - ir);
            const T* ap = A + k0 * lda + ir;
            int64_t ldap = lda;
            if (rows < MR) {
              pack_a_panels<T, MR>(spec, a_edge, ap, 1, lda, rows, 0, 1, kc);
              ap = a_edge, ldap = MR;
            }
            run_tile<T, MR, NR>([&](T* out, int64_t ldo, T b) { kernel(kc, ap, ldap, bp, ldbp, out, ldo, alpha, b); },
                                C + ir * rsc + jr, rsc, 1, rows, cols, beta_k, first && !d_is_c ? &D : nullptr, ir,
                                jr);
          }
        }
      }
    }
  });
}

template <typename T, int MR, int NR>
void gemm_packed(const KernelSpec<T>& spec, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb, T beta, Addend<T> D, T* C,
                 int64_t rsc, int64_t csc) {
  const auto kernel = spec.run;
  if (spec.run_strided != nullptr && rsa == 1 && csa >= M && csb == 1 && rsb >= N && csc == 1 && M >= MR &&
      N >= NR && N <= kKmajorMaxCols && std::min(M, N) < kKmajorMinSide)
    return gemm_kmajor<T, MR, NR>(spec, M, N, K, alpha, A, csa, B, rsb, beta, D, C, rsc);
  const bool d_is_c = D.is(C, rsc, csc);
  const int64_t KC = spec.kc;
  const int64_t MC = round_up(spec.mc, MR), NC = round_up(spec.nc, NR);
  const auto depth = [&spec](int64_t k) { return panel_depth(spec, k); };
  const int64_t NS = round_up(kSuperCols, NR);
  const int64_t KS = std::max<int64_t>(1, kSuperDepth / KC) * KC;

  // One tile of C at (i, j) from packed panels; its first K block adds the
  // product to D.
  auto tile_at = [&](const T* ap, const T* bp, int64_t kc, int64_t i, int64_t j, int64_t rows,
                     int64_t cols, T beta_k, bool first) {
    run_tile<T, MR, NR>([&](T* out, int64_t ldo, T b) { kernel(kc, ap, bp, out, ldo, alpha, b); },
                        C + i * rsc + j * csc, rsc, csc, rows, cols, beta_k, first && !d_is_c ? &D : nullptr, i, j);
  };

  for (int64_t j0 = 0; j0 < N; j0 += NS) {
    const int64_t ns = std::min(NS, N - j0), ns_pad = round_up(ns, NR);
    for (int64_t p0 = 0; p0 < K; p0 += KS) {
      const int64_t ks = std::min(KS, K - p0), num_kb = ceil_div(ks, KC);
      const bool parallel = 2.0 * M * ns * ks >= kParallelFlops;

      // Block kb of packed B starts at depth(kb*KC)*ns_pad; its panel at
      // column offset c0 starts c0*depth(kc) further (depth: panel_depth, the
      // k values a panel's row holds, halved for a kernel of pairs; KC is even).
      T* bpack = static_cast<T*>(t_pack_buffer.get(sizeof(T) * ns_pad * depth(ks)));
      pack_every_block(ns_pad / NR, NR, num_kb, KC, ks, parallel, [&](int64_t k0, int64_t kc, int64_t pb, int64_t pe) {
        pack_b_panels<T, NR>(spec, bpack + depth(k0) * ns_pad, B + (p0 + k0) * rsb + j0 * csb, rsb, csb, ns, pb, pe,
                             kc);
      });

      // A column-major A (a weight gradient's dY^T) is packed whole here, like
      // B, reading each of its columns end to end: packed per task, each
      // column was read in mc-long pieces a row stride apart, and the loads
      // stalled for a third of the GEMM. The panels are the same either way.
      const bool a_whole = rsa == 1 && csa != 1;
      const int64_t m_pad = round_up(M, MR);
      T* apack_whole = nullptr;
      if (a_whole) {
        apack_whole = static_cast<T*>(t_a_whole.get(sizeof(T) * m_pad * depth(ks)));
        pack_every_block(m_pad / MR, MR, num_kb, KC, ks, parallel, [&](int64_t k0, int64_t kc, int64_t pb, int64_t pe) {
          pack_a_panels<T, MR>(spec, apack_whole + depth(k0) * m_pad, A + (p0 + k0) * csa, rsa, csa, M, pb, pe, kc);
        });
      }

      // Smaller tasks when there are too few to keep every thread busy to the
      // end. Task shapes never change an element's arithmetic, so this may
      // depend on the thread count.
      int64_t mc = MC, nc = NC;
      const int64_t enough = parallel ? 4 * int64_t{num_threads()} : 1;
      while (ceil_div(M, mc) * ceil_div(ns, nc) < enough && nc > NR) nc = round_up(nc / 2, NR);
      while (ceil_div(M, mc) * ceil_div(ns, nc) < enough && mc > MR) mc = round_up(mc / 2, MR);
      const int64_t tiles_i = ceil_div(M, mc), tiles_j = ceil_div(ns, nc);
      const int64_t tasks = tiles_i * tiles_j;
      parallel_for(0, tasks, parallel ? 1 : tasks, [&](int64_t first, int64_t last) {
        T* apack = a_whole ? nullptr : static_cast<T*>(t_a_block.get(sizeof(T) * mc * depth(KC)));
        for (int64_t task = first; task < last; ++task) {
          const int64_t ti = task / tiles_j, tj = task % tiles_j;
          const int64_t ib = ti * mc, ie = std::min(M, ib + mc);
          const int64_t jb = tj * nc, je = std::min(ns, jb + nc);
          for (int64_t kb = 0; kb < num_kb; ++kb) {
            const int64_t k0 = kb * KC, kc = std::min(KC, ks - k0);
            const bool first = p0 + k0 == 0;
            const T beta_k = first ? beta : T(1);
            const T* ablock = a_whole ? apack_whole + depth(k0) * m_pad + ib * depth(kc) : apack;
            if (!a_whole)
              pack_a_panels<T, MR>(spec, apack, A + ib * rsa + (p0 + k0) * csa, rsa, csa, ie - ib, 0,
                                   ceil_div(ie - ib, MR), kc);
            const T* bblock = bpack + depth(k0) * ns_pad;
            for (int64_t jr = jb; jr < je; jr += NR) {
              const T* bp = bblock + jr * depth(kc);
              const int64_t cols = std::min<int64_t>(NR, je - jr);
              for (int64_t ir = ib; ir < ie; ir += MR)
                tile_at(ablock + (ir - ib) * depth(kc), bp, kc, ir, j0 + jr, std::min<int64_t>(MR, ie - ir),
                         cols, beta_k, first);
            }
          }
        }
      });
    }
  }
}

// Below this many multiply-adds, or with this few rows (or columns), packing
// costs more than it saves: one token's projection while decoding (M = 1) reads
// each weight once instead of packing all of them.
constexpr double kSmallMacs = 32 * 32 * 32;
constexpr int64_t kSkinny = 4;
// Fewest columns per parallel chunk of the unpacked path.
constexpr int64_t kUnpackedCols = 1024;

template <typename T, bool kRound, typename Packed>
void gemm_any(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
              const T* B, int64_t rsb, int64_t csb, T beta, Addend<T> D, T* C, int64_t rsc, int64_t csc,
              Packed packed) {
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument("heed::cpu::gemm: negative size M=" + std::to_string(M) +
                                " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) return scale_c(M, N, beta, D, C, rsc, csc);
  // C^T = B^T A^T: the same product with the roles of rows and columns swapped.
  auto transpose_problem = [&] {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(rsa, csb);
    std::swap(csa, rsb);
    std::swap(rsc, csc);
    std::swap(D.rsd, D.csd);
  };
  const double macs = static_cast<double>(M) * N * K;
  if (macs >= kSmallMacs && N <= kSkinny && M > kSkinny) transpose_problem();
  if (macs < kSmallMacs || M <= kSkinny) {
    // One chunk of columns per thread: each then streams long runs of B's rows.
    // (The split does not change any element's arithmetic.)
    const int64_t grain = 2 * macs < kParallelFlops
                              ? N
                              : std::max(kUnpackedCols, round_up(ceil_div(N, num_threads()), 64));
    parallel_for(0, N, grain, [&](int64_t jb, int64_t je) {
      gemm_unpacked<T, kRound>(M, jb, je, K, alpha, A, rsa, csa, B, rsb, csb, beta, D, C, rsc, csc);
    });
    return;
  }
  // The kernels write rows of C; a column-major C becomes a row-major C^T.
  if (csc != 1 && rsc == 1) transpose_problem();
  packed(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, D, C, rsc, csc);
}

}  // namespace

namespace {

std::atomic<bool> g_bf16_matmul{false};  // set_allow_bf16_matmul

bool bf16_native() { return current_isa() == Isa::avx512 && cpu_supports_bf16_kernel(); }

void gemm_packed_f32(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
                     const float* B, int64_t rsb, int64_t csb, float beta, Addend<float> D, float* C, int64_t rsc,
                     int64_t csc) {
  switch (current_isa()) {
    case Isa::avx512:
      return gemm_packed<float, kAvx512Rows, kAvx512Cols>(avx512_kernel_f32(), M, N, K, alpha, A, rsa, csa, B, rsb,
                                                          csb, beta, D, C, rsc, csc);
    case Isa::avx2:
      return gemm_packed<float, kAvx2Rows, kAvx2Cols>(avx2_kernel_f32(), M, N, K, alpha, A, rsa, csa, B, rsb, csb,
                                                      beta, D, C, rsc, csc);
    default:
      return gemm_packed<float, kPortableRowsF32, kPortableColsF32>(portable_kernel_f32(), M, N, K, alpha, A, rsa,
                                                                    csa, B, rsb, csb, beta, D, C, rsc, csc);
  }
}

// bf16 inputs without AVX512-BF16: the float32 kernel on copies of A and B
// rounded to bf16 (row-major, in parallel).
void gemm_packed_rounded(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
                         const float* B, int64_t rsb, int64_t csb, float beta, Addend<float> D, float* C, int64_t rsc,
                         int64_t csc) {
  std::vector<float> a(static_cast<size_t>(M * K)), b(static_cast<size_t>(K * N));
  auto round_into = [](float* dst, const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
    parallel_for(0, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        for (int64_t j = 0; j < cols; ++j)
          dst[i * cols + j] = bfloat16::widen(bfloat16::round_bits(src[i * rs + j * cs]));
    });
  };
  round_into(a.data(), A, M, K, rsa, csa);
  round_into(b.data(), B, K, N, rsb, csb);
  gemm_packed_f32(M, N, K, alpha, a.data(), K, 1, b.data(), N, 1, beta, D, C, rsc, csc);
}

template <typename T>
void gemm_with_kernel(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
                      int64_t rsb, int64_t csb, T beta, Addend<T> D, T* C, int64_t rsc, int64_t csc) {
  if constexpr (std::is_same_v<T, float>) {
    if (g_bf16_matmul.load(std::memory_order_relaxed)) {
      const bool native = bf16_native();
      return gemm_any<float, true>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, D, C, rsc, csc,
                                   [native](auto... args) {
                                     if (native)
                                       return gemm_packed<float, kAvx512Rows, kAvx512Cols>(avx512bf16_kernel_f32(),
                                                                                            args...);
                                     gemm_packed_rounded(args...);
                                   });
    }
    gemm_any<float, false>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, D, C, rsc, csc,
                           [](auto... args) { gemm_packed_f32(args...); });
  } else {
    gemm_any<double, false>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, D, C, rsc, csc, [](auto... args) {
      gemm_packed<double, kPortableRowsF64, kPortableColsF64>(portable_kernel_f64(), args...);
    });
  }
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
          const float* B, int64_t rsb, int64_t csb, float beta, float* C, int64_t rsc,
          int64_t csc) {
  gemm_with_kernel<float>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, {C, rsc, csc}, C, rsc, csc);
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa,
          int64_t csa, const double* B, int64_t rsb, int64_t csb, double beta, double* C,
          int64_t rsc, int64_t csc) {
  gemm_with_kernel<double>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, {C, rsc, csc}, C, rsc, csc);
}

void gemm_add(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsa, int64_t csa,
              const float* B, int64_t rsb, int64_t csb, float beta, const float* D, int64_t rsd, int64_t csd,
              float* C, int64_t rsc, int64_t csc) {
  gemm_with_kernel<float>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, {D, rsd, csd}, C, rsc, csc);
}

void gemm_add(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa, int64_t csa,
              const double* B, int64_t rsb, int64_t csb, double beta, const double* D, int64_t rsd,
              int64_t csd, double* C, int64_t rsc, int64_t csc) {
  gemm_with_kernel<double>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, {D, rsd, csd}, C, rsc, csc);
}

// ---- PackedB ---------------------------------------------------------------------
// Panel p of a packed B (columns [p*NR, p*NR + NR), every row) starts at
// data + p*NR*K; element (k, j) of it is at k*NR + j. Depth is not blocked:
// the products it serves are small (K is a head width or a tile).

namespace {

template <typename T>
KernelSpec<T> spec_for(int isa);
template <>
KernelSpecF32 spec_for<float>(int isa) {
  switch (static_cast<Isa>(isa)) {
    case Isa::avx512: return avx512_kernel_f32();
    case Isa::avx2: return avx2_kernel_f32();
    default: return portable_kernel_f32();
  }
}
template <>
KernelSpecF64 spec_for<double>(int) {
  return portable_kernel_f64();
}
template <typename T>
int isa_for() {
  return std::is_same<T, float>::value ? static_cast<int>(current_isa()) : static_cast<int>(Isa::portable);
}

template <typename T, int MR, int NR>
void pack_b_with(const KernelSpec<T>& spec, T* dst, int64_t K, int64_t N, const T* b, int64_t rsb, int64_t csb) {
  pack_b_panels<T, NR>(spec, dst, b, rsb, csb, N, 0, ceil_div(N, NR), K);
}

thread_local PackBuffer t_packed_b_a;  // gemm_packed_b's A panels

// The micro-tiles of C from A panels (apack: panel p at apack + p*MR*K) and
// the packed B's panels from row k0, column j0 on.
template <typename T, int MR, int NR>
void multiply_panels(const KernelSpec<T>& spec, int64_t M, int64_t N, int64_t K, T alpha, const T* apack,
                     const T* bdata, int64_t bK, int64_t k0, int64_t j0, T beta, T* C, int64_t rsc, int64_t csc) {
  for (int64_t jr = 0; jr < N; jr += NR) {
    const T* bp = bdata + (j0 + jr) * bK + k0 * NR;  // panel (j0 + jr) / NR, from row k0
    const int64_t cols = std::min<int64_t>(NR, N - jr);
    for (int64_t ir = 0; ir < M; ir += MR) {
      const int64_t rows = std::min<int64_t>(MR, M - ir);
      const T* ap = apack + ir * K;
      run_tile<T, MR, NR>([&](T* out, int64_t ldo, T b) { spec.run(K, ap, bp, out, ldo, alpha, b); },
                          C + ir * rsc + jr * csc, rsc, csc, rows, cols, beta, nullptr, ir, jr);
    }
  }
}

template <typename T, int MR, int NR>
void multiply_packed_b(const KernelSpec<T>& spec, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa,
                       int64_t csa, const T* bdata, int64_t bK, int64_t k0, int64_t j0, T beta, T* C, int64_t rsc,
                       int64_t csc) {
  T* apack = static_cast<T*>(t_packed_b_a.get(sizeof(T) * round_up(M, MR) * K));
  pack_a_panels<T, MR>(spec, apack, A, rsa, csa, M, 0, ceil_div(M, MR), K);
  multiply_panels<T, MR, NR>(spec, M, N, K, alpha, apack, bdata, bK, k0, j0, beta, C, rsc, csc);
}

// Calls f.template operator()<MR, NR>() for the kernel `isa` of T.
template <typename T, typename F>
void with_tile(int isa, F&& f) {
  if (std::is_same<T, double>::value) return f(std::integral_constant<int, kPortableRowsF64>(),
                                               std::integral_constant<int, kPortableColsF64>());
  switch (static_cast<Isa>(isa)) {
    case Isa::avx512:
      return f(std::integral_constant<int, kAvx512Rows>(), std::integral_constant<int, kAvx512Cols>());
    case Isa::avx2: return f(std::integral_constant<int, kAvx2Rows>(), std::integral_constant<int, kAvx2Cols>());
    default:
      return f(std::integral_constant<int, kPortableRowsF32>(), std::integral_constant<int, kPortableColsF32>());
  }
}

// Throws for a block [k0, k0 + K) x [j0, j0 + N) that does not lie in a packed B of bK x bN.
[[noreturn]] void throw_bad_block(const char* fn, int64_t K, int64_t N, int64_t k0, int64_t j0, int64_t bK,
                                  int64_t bN) {
  throw std::invalid_argument(std::string("heed::cpu::") + fn + ": the block [" + std::to_string(k0) + ", " +
                              std::to_string(k0 + K) + ") x [" + std::to_string(j0) + ", " + std::to_string(j0 + N) +
                              ") does not lie in the packed " + std::to_string(bK) + " x " + std::to_string(bN) +
                              " (j0 must be a multiple of 64)");
}

}  // namespace

namespace gemm_detail {

template <typename T>
void PanelBuffer<T>::Free::operator()(T* p) const {
  std::free(p);
}

template <typename T>
void PanelBuffer<T>::reserve(size_t elements) {
  if (elements <= capacity_) return;
  void* p = std::aligned_alloc(64, (sizeof(T) * elements + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(static_cast<T*>(p));
  capacity_ = elements;
}

template class PanelBuffer<float>;
template class PanelBuffer<double>;

}  // namespace gemm_detail

template <typename T>
void PackedB<T>::pack(int64_t K, int64_t N, const T* b, int64_t rsb, int64_t csb) {
  if (K < 0 || N < 0) throw std::invalid_argument("heed::cpu::PackedB: negative size");
  isa_ = isa_for<T>();
  const KernelSpec<T> spec = spec_for<T>(isa_);
  nr_ = spec.nr;
  K_ = K, N_ = N;
  const size_t need = static_cast<size_t>(round_up(std::max<int64_t>(N, 1), nr_) * std::max<int64_t>(K, 1));
  panels_.reserve(need);
  if (K == 0 || N == 0) return;
  with_tile<T>(isa_, [&](auto mr, auto nr) {
    pack_b_with<T, decltype(mr)::value, decltype(nr)::value>(spec, panels_.get(), K, N, b, rsb, csb);
  });
}

template <typename T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                   const PackedB<T>& B, int64_t k0, int64_t j0, T beta, T* C, int64_t rsc, int64_t csc) {
  if (M < 0 || N < 0 || K < 0 || k0 < 0 || j0 < 0 || j0 % 64 != 0 || k0 + K > B.K_ || j0 + N > B.N_)
    throw_bad_block("gemm_packed_b", K, N, k0, j0, B.K_, B.N_);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  const KernelSpec<T> spec = spec_for<T>(B.isa_);
  with_tile<T>(B.isa_, [&](auto mr, auto nr) {
    multiply_packed_b<T, decltype(mr)::value, decltype(nr)::value>(spec, M, N, K, alpha, A, rsa, csa, B.panels_.get(),
                                                                   B.K_, k0, j0, beta, C, rsc, csc);
  });
}

template <typename T>
void PackedA<T>::pack(int64_t M, int64_t K, const T* a, int64_t rsa, int64_t csa) {
  if (M < 0 || K < 0) throw std::invalid_argument("heed::cpu::PackedA: negative size");
  isa_ = isa_for<T>();
  const KernelSpec<T> spec = spec_for<T>(isa_);
  M_ = M, K_ = K;
  const size_t need = static_cast<size_t>(round_up(std::max<int64_t>(M, 1), spec.mr) * std::max<int64_t>(K, 1));
  panels_.reserve(need);
  if (M == 0 || K == 0) return;
  with_tile<T>(isa_, [&](auto mr, auto) {
    constexpr int MR = decltype(mr)::value;
    pack_a_panels<T, MR>(spec, panels_.get(), a, rsa, csa, M, 0, ceil_div(M, MR), K);
  });
}

template <typename T>
void gemm_packed_ab(int64_t N, T alpha, const PackedA<T>& A, const PackedB<T>& B, int64_t k0, int64_t j0, T beta, T* C,
                    int64_t rsc, int64_t csc) {
  const int64_t M = A.M_, K = A.K_;
  if (A.isa_ != B.isa_)
    throw std::invalid_argument("heed::cpu::gemm_packed_ab: A and B were packed for different kernels");
  if (N < 0 || k0 < 0 || j0 < 0 || j0 % 64 != 0 || k0 + K > B.K_ || j0 + N > B.N_)
    throw_bad_block("gemm_packed_ab", K, N, k0, j0, B.K_, B.N_);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  const KernelSpec<T> spec = spec_for<T>(B.isa_);
  with_tile<T>(B.isa_, [&](auto mr, auto nr) {
    multiply_panels<T, decltype(mr)::value, decltype(nr)::value>(spec, M, N, K, alpha, A.panels_.get(), B.panels_.get(),
                                                                 B.K_, k0, j0, beta, C, rsc, csc);
  });
}

template class PackedA<float>;
template class PackedA<double>;
template void gemm_packed_ab<float>(int64_t, float, const PackedA<float>&, const PackedB<float>&, int64_t, int64_t,
                                    float, float*, int64_t, int64_t);
template void gemm_packed_ab<double>(int64_t, double, const PackedA<double>&, const PackedB<double>&, int64_t, int64_t,
                                     double, double*, int64_t, int64_t);
template class PackedB<float>;
template class PackedB<double>;
template void gemm_packed_b<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                                   const PackedB<float>&, int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm_packed_b<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                                    const PackedB<double>&, int64_t, int64_t, double, double*, int64_t, int64_t);

const char* gemm_kernel_name() { return isa_name(current_isa()); }

std::vector<std::string> gemm_available_kernels() {
  std::vector<std::string> names;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (cpu_supports(isa)) names.push_back(isa_name(isa));
  return names;
}

void set_allow_bf16_matmul(bool allow) { g_bf16_matmul.store(allow, std::memory_order_relaxed); }
bool allow_bf16_matmul() { return g_bf16_matmul.load(std::memory_order_relaxed); }
std::string bf16_matmul_kernel() { return bf16_native() ? "avx512bf16" : "emulated"; }

void set_gemm_kernel(const std::string& name) {
  Isa isa = parse_isa(name, "heed::cpu::set_gemm_kernel");
  if (!cpu_supports(isa))
    throw std::invalid_argument("heed::cpu::set_gemm_kernel: this CPU cannot run the '" + name +
                                "' GEMM kernel");
  g_forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace heed::cpu

// Fused attention (FlashAttention-2, Dao 2023) on the GPU: the kernels of
// Backend::attention_forward / attention_backward (tensor/backend.h has the
// contract, cuda/attention.h the launchers, cuda/attention.cpp the checks).
//
// Forward: one block per (batch, query head, tile of queries). The block
// keeps its queries in shared memory and, per row, the running max m and sum
// l of exp(s - m) and an unnormalised output row in registers; it visits the
// key tiles in order:
//   S = Q K_j^T * scale (masked pairs -inf);  m' = max(m, rowmax S)
//   P = exp(S - m');  l = l e^(m - m') + rowsum P;  O = O e^(m - m') + (P z) V_j
// (z the dropout factors) and ends with out = O / l, lse = m + log l.
//
// Backward: D = rowsum(grad_out * out) per row first (delta_kernel), then two
// kernels that each recompute P = exp(S - lse) tile by tile:
//   grad_kv: one block per (batch, kv head, tile of keys), looping over the G
//            query heads of the group and their query tiles in a fixed order:
//            dV += (P z)^T dO,  dK += dS^T Q * scale
//   grad_q:  one block per (batch, query head, tile of queries), looping over
//            the key tiles:  dQ += dS K * scale
// with dP = (dO V^T) z and dS = P (dP - D). Each block owns the rows it
// writes and sums in a fixed order: no atomics, the same bits every run.
//
// Tiles that the pattern's structure masks entirely (tile_state: Empty) are
// skipped in every kernel; on Partial tiles, and wherever a free-form mask
// exists, each pair is tested on its own.
//
// Two implementations of the three tile kernels:
//  * SIMT (every dtype, head dims up to 256): tiles widened to the compute
//    type in shared memory (rows padded to an odd stride, so column reads
//    are free of bank conflicts), 128 threads, each owning a small grid of
//    accumulators; see SimtTiles.
//  * Tensor cores (mma.sync, bfloat16 m16n8k16 and float32 as TF32
//    m16n8k8, float32 accumulators; d == dv of 64 or 128); see the second
//    half of this file.
#include <cstdint>
#include <type_traits>

#include <cuda/std/limits>

#include "cuda/attention.h"
#include "cuda/check.h"

namespace heed::cuda {

namespace {

constexpr int kThreads = 128;  // every attention kernel: four warps
constexpr unsigned kFullMask = 0xffffffffu;

extern __shared__ __align__(16) unsigned char attention_shared[];

template <class C>
__device__ __forceinline__ C* shared_as() {
  return reinterpret_cast<C*>(attention_shared);
}

__device__ __forceinline__ float exp_c(float x) { return expf(x); }
__device__ __forceinline__ double exp_c(double x) { return exp(x); }
__device__ __forceinline__ float log_c(float x) { return logf(x); }
__device__ __forceinline__ double log_c(double x) { return log(x); }

template <class C>
__device__ __forceinline__ C neg_inf() {
  return -::cuda::std::numeric_limits<C>::infinity();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The pattern's verdict on queries [i0, i0 + rows) x keys [j0, j0 + cols).
__device__ __forceinline__ TileState tile_of(const AttentionPatternView& pat, int64_t i0, int rows, int64_t j0,
                                             int cols, bool rows_global, bool cols_global) {
  return pat.tile_state(i0, i0 + rows, j0, j0 + cols, rows_global, cols_global);
}

// Whether pair (i, j) of a tile in `state` is masked; the caller has checked
// that (i, j) lies inside [0, T) x [0, S).
__device__ __forceinline__ bool pair_masked(const AttentionPatternView& pat, TileState state, int64_t b, int64_t h,
                                            int64_t i, int64_t j) {
  return state == TileState::Full ? pat.free_form_masked(b, h, i, j) : pat.masked(b, h, i, j);
}

// The dropout factor of weight (b, h, i, j): 1 / (1 - p) when kept, else 0;
// 1 without dropout.
template <class C>
__device__ __forceinline__ C dropout_factor(const AttentionProblem& p, C inv_keep, int64_t b, int64_t h, int64_t i,
                                            int64_t j) {
  if (p.dropout_p <= 0) return C(1);
  const uint64_t idx = static_cast<uint64_t>(((b * p.Hq + h) * p.T + i) * p.S + j);
  return attention_dropout_keep(p.seed, p.offset, idx, 1.0 - p.dropout_p) ? inv_keep : C(0);
}

// The queries a forward or grad_q block owns, one block per (batch b, query
// head h, tile of kRows queries): bh = b * Hq + h, hk the kv head h reads,
// queries [i0, i0 + rows).
struct QueryBlock {
  int64_t bh, i0, b, h, hk;
  int rows;
};
template <int kRows>
__device__ __forceinline__ QueryBlock query_block(const AttentionProblem& p) {
  const int64_t tiles = (p.T + kRows - 1) / kRows;
  const int64_t bh = blockIdx.x / tiles;
  const int64_t i0 = (blockIdx.x % tiles) * kRows;
  const int64_t b = bh / p.Hq, h = bh % p.Hq, hk = h / (p.Hq / p.Hkv);
  const int rows = static_cast<int>(p.T - i0 < kRows ? p.T - i0 : kRows);
  return {bh, i0, b, h, hk, rows};
}

// The keys a grad_kv block owns, one block per (batch b, kv head hk, tile of
// kRows keys): bhk = b * Hkv + hk, G query heads per kv head, keys
// [j0, j0 + cols).
struct KeyBlock {
  int64_t bhk, j0, b, hk, G;
  int cols;
};
template <int kRows>
__device__ __forceinline__ KeyBlock key_block(const AttentionProblem& p) {
  const int64_t tiles = (p.S + kRows - 1) / kRows;
  const int64_t bhk = blockIdx.x / tiles;
  const int64_t j0 = (blockIdx.x % tiles) * kRows;
  const int64_t b = bhk / p.Hkv, hk = bhk % p.Hkv, G = p.Hq / p.Hkv;
  const int cols = static_cast<int>(p.S - j0 < kRows ? p.S - j0 : kRows);
  return {bhk, j0, b, hk, G, cols};
}

// ---- the rowsum D = rowsum(grad_out * out), one warp per row ----------------

// grad_out, out [rows, dv]; delta [rows].
template <class T>
__global__ void __launch_bounds__(kThreads)
    delta_kernel(const T* grad_out, const T* out, compute_t<T>* delta, int64_t rows, int64_t dv) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; row < rows;
       row += warps) {
    double acc = 0;
    for (int64_t c = lane; c < dv; c += 32)
      acc += static_cast<double>(static_cast<compute_t<T>>(grad_out[row * dv + c])) *
             static_cast<double>(static_cast<compute_t<T>>(out[row * dv + c]));
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(kFullMask, acc, off);
    if (lane == 0) delta[row] = static_cast<compute_t<T>>(acc);
  }
}

// =============================================================================
// SIMT kernels
// =============================================================================

// Tile shapes of the SIMT kernels for compute type C and head-dim bucket D
// (d and dv are at most D). A block owns kRows rows (queries in the forward
// and grad_q kernels, keys in grad_kv) and steps through the other side
// kStep rows at a time. Its 128 threads form a kTY x kTX grid: thread (ty,
// tx) owns rows ty + kTY a of every [kRows, n] product and its columns
// tx + kTX b, so the kTX threads of one row are adjacent lanes of one warp
// (the forward's row max and sum are warp shuffles). Per thread that is
// kRows * D / 128 accumulators (32 for float, 16 for double) and
// kRows * kStep / 128 for a tile of scores. Shared memory: a few tiles of
// [rows, D + 1] in C, under 110 KB for every bucket.
template <class C, int D>
struct SimtTiles {
  static constexpr int kWide = sizeof(C) == 8 ? 2 : 1;
  static constexpr int kRowsWanted = 4096 / D / kWide;
  static constexpr int kRows = kRowsWanted < 64 ? kRowsWanted : 64;
  static constexpr int kStep = (D == 256 ? 32 : 64) / kWide;
  static constexpr int kTY = kRows < 16 ? kRows : 16;
  static constexpr int kTX = kThreads / kTY;
  static constexpr int kLd = D + 1;          // row stride of a [rows, D] tile in shared memory
  static constexpr int kLdStep = kStep + 1;  // row stride of a [kRows, kStep] tile of weights
  static constexpr int kRowsPer = kRows / kTY;
  static constexpr int kStepPer = kStep / kTX;
  static constexpr int kDPer = D / kTX;
  static_assert(kRows % kTY == 0 && kStep % kTX == 0 && D % kTX == 0, "tile shapes must divide the thread grid");
  static_assert(kTX <= 32 && 32 % kTX == 0, "a row's threads must be lanes of one warp");
};

// dst [R, D + 1] (shared, C) = rows [0, rows) x cols [0, cols) of src (row
// stride `stride`, unit column stride), zero elsewhere.
template <int R, int D, class T, class C>
__device__ __forceinline__ void load_tile(C* dst, const T* src, int64_t stride, int rows, int64_t cols) {
  for (int idx = threadIdx.x; idx < R * D; idx += kThreads) {
    const int r = idx / D, c = idx % D;
    C x = C(0);
    if (r < rows && c < cols) x = static_cast<C>(src[r * stride + c]);
    dst[r * (D + 1) + c] = x;
  }
}

// acc[a][b] += sum over k < K of A(ty + TY a, k) * B(k, tx + TX b), with
// A(r, k) = a[r * ARS + k * AKS] and B(k, c) = b[k * BKS + c * BCS] in shared memory.
template <int TY, int TX, int ARS, int AKS, int BKS, int BCS, int MA, int NB, class C>
__device__ __forceinline__ void smem_product(C (&acc)[MA][NB], const C* a, const C* b, int K, int ty, int tx) {
  const C* a0 = a + ty * ARS;
  const C* b0 = b + tx * BCS;
#pragma unroll 4
  for (int k = 0; k < K; ++k) {
    C av[MA], bv[NB];
#pragma unroll
    for (int i = 0; i < MA; ++i) av[i] = a0[i * TY * ARS + k * AKS];
#pragma unroll
    for (int j = 0; j < NB; ++j) bv[j] = b0[k * BKS + j * TX * BCS];
#pragma unroll
    for (int i = 0; i < MA; ++i)
#pragma unroll
      for (int j = 0; j < NB; ++j) acc[i][j] += av[i] * bv[j];
  }
}

// Max and sum over the TX adjacent lanes that share a row.
template <int TX, class C>
__device__ __forceinline__ C row_max(C v) {
#pragma unroll
  for (int off = 1; off < TX; off <<= 1) v = fmax(v, __shfl_xor_sync(kFullMask, v, off));
  return v;
}
template <int TX, class C>
__device__ __forceinline__ C row_sum(C v) {
#pragma unroll
  for (int off = 1; off < TX; off <<= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// ---- forward -----------------------------------------------------------------
// Grid: B * Hq * ceil(T / kRows) blocks of 128 threads. Shared memory:
//   qs  [kRows, D + 1]   the block's queries
//   kvs [kStep, D + 1]   the key tile, then its value tile
//   ps  [kRows, kStep + 1] the tile's weights (P z)
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    simt_forward_kernel(const AttentionProblem p, const T* __restrict__ q, const T* __restrict__ k,
                        const T* __restrict__ v, T* __restrict__ out, compute_t<T>* __restrict__ lse) {
  using C = compute_t<T>;
  using L = SimtTiles<C, D>;
  C* qs = shared_as<C>();
  C* kvs = qs + L::kRows * L::kLd;
  C* ps = kvs + L::kStep * L::kLd;
  const AttentionPatternView& pat = p.pattern;
  const int ty = threadIdx.x / L::kTX, tx = threadIdx.x % L::kTX;

  const auto [bh, i0, b, h, hk, rows] = query_block<L::kRows>(p);
  const T* kh = k + b * p.k_stride[0] + hk * p.k_stride[1];
  const T* vh = v + b * p.v_stride[0] + hk * p.v_stride[1];
  load_tile<L::kRows, D>(qs, q + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2], rows,
                         p.d);

  const C scale = static_cast<C>(p.scale);
  const C inv_keep = static_cast<C>(1.0 / (1.0 - p.dropout_p));
  C m[L::kRowsPer], l[L::kRowsPer], o[L::kRowsPer][L::kDPer];
#pragma unroll
  for (int a = 0; a < L::kRowsPer; ++a) {
    m[a] = neg_inf<C>();
    l[a] = C(0);
#pragma unroll
    for (int c = 0; c < L::kDPer; ++c) o[a][c] = C(0);
  }
  const bool rows_global = pat.has_global(i0 + pat.shift, i0 + rows + pat.shift);

  for (int64_t j0 = 0; j0 < p.S; j0 += L::kStep) {
    const int cols = static_cast<int>(p.S - j0 < L::kStep ? p.S - j0 : L::kStep);
    const TileState state = tile_of(pat, i0, rows, j0, cols, rows_global, pat.has_global(j0, j0 + cols));
    if (state == TileState::Empty) continue;  // the same verdict in every thread
    const bool test = state == TileState::Partial || pat.has_free_form();
    __syncthreads();  // the previous tile's values and weights are used up
    load_tile<L::kStep, D>(kvs, kh + j0 * p.k_stride[2], p.k_stride[2], cols, p.d);
    __syncthreads();
    C s[L::kRowsPer][L::kStepPer] = {};
    smem_product<L::kTY, L::kTX, L::kLd, 1, 1, L::kLd>(s, qs, kvs, static_cast<int>(p.d), ty, tx);
#pragma unroll
    for (int a = 0; a < L::kRowsPer; ++a) {
      const int r = ty + L::kTY * a;
      C mx = neg_inf<C>();
#pragma unroll
      for (int c = 0; c < L::kStepPer; ++c) {
        const int col = tx + L::kTX * c;
        const bool off = r >= rows || col >= cols || (test && pair_masked(pat, state, b, h, i0 + r, j0 + col));
        s[a][c] = off ? neg_inf<C>() : s[a][c] * scale;
        mx = fmax(mx, s[a][c]);
      }
      mx = row_max<L::kTX>(mx);
      const C m_new = fmax(m[a], mx);
      const C base = m_new == neg_inf<C>() ? C(0) : m_new;  // all masked so far: every exp is 0
      const C alpha = exp_c(m[a] - base);                   // 0 on the row's first unmasked tile
      C sum = C(0);
#pragma unroll
      for (int c = 0; c < L::kStepPer; ++c) {
        const int col = tx + L::kTX * c;
        C w = exp_c(s[a][c] - base);
        sum += w;
        if (p.dropout_p > 0 && w != C(0)) w *= dropout_factor(p, inv_keep, b, h, i0 + r, j0 + col);
        ps[r * L::kLdStep + col] = w;
      }
      sum = row_sum<L::kTX>(sum);
      l[a] = l[a] * alpha + sum;
      m[a] = m_new;
#pragma unroll
      for (int c = 0; c < L::kDPer; ++c) o[a][c] *= alpha;
    }
    __syncthreads();  // keys used up, weights written
    load_tile<L::kStep, D>(kvs, vh + j0 * p.v_stride[2], p.v_stride[2], cols, p.dv);
    __syncthreads();
    smem_product<L::kTY, L::kTX, L::kLdStep, 1, L::kLd, 1>(o, ps, kvs, cols, ty, tx);
  }

#pragma unroll
  for (int a = 0; a < L::kRowsPer; ++a) {
    const int r = ty + L::kTY * a;
    if (r >= rows) continue;
    const int64_t row = bh * p.T + i0 + r;
    const C inv = l[a] > C(0) ? C(1) / l[a] : C(0);
    T* orow = out + row * p.dv;
#pragma unroll
    for (int c = 0; c < L::kDPer; ++c) {
      const int col = tx + L::kTX * c;
      if (col < p.dv) orow[col] = static_cast<T>(o[a][c] * inv);
    }
    if (tx == 0) lse[row] = l[a] > C(0) ? m[a] + log_c(l[a]) : neg_inf<C>();
  }
}

// ---- backward: grad_k and grad_v -------------------------------------------------
// Grid: B * Hkv * ceil(S / kRows) blocks. Shared memory:
//   ks, vs   [kRows, D + 1]    the block's keys and values
//   qs, dos  [kStep, D + 1]    a query tile and its grad_out
//   ws       [kRows, kStep + 1] the tile's P z, then dS (keys x queries)
//   lse_s, delta_s [kStep]
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    simt_grad_kv_kernel(const AttentionProblem p, const T* __restrict__ grad_out, const T* __restrict__ q,
                        const T* __restrict__ k, const T* __restrict__ v, const compute_t<T>* __restrict__ lse,
                        const compute_t<T>* __restrict__ delta, T* __restrict__ grad_k, T* __restrict__ grad_v) {
  using C = compute_t<T>;
  using L = SimtTiles<C, D>;
  C* ks = shared_as<C>();
  C* vs = ks + L::kRows * L::kLd;
  C* qs = vs + L::kRows * L::kLd;
  C* dos = qs + L::kStep * L::kLd;
  C* ws = dos + L::kStep * L::kLd;
  C* lse_s = ws + L::kRows * L::kLdStep;
  C* delta_s = lse_s + L::kStep;
  const AttentionPatternView& pat = p.pattern;
  const int ty = threadIdx.x / L::kTX, tx = threadIdx.x % L::kTX;

  const auto [bhk, j0, b, hk, G, cols] = key_block<L::kRows>(p);
  load_tile<L::kRows, D>(ks, k + b * p.k_stride[0] + hk * p.k_stride[1] + j0 * p.k_stride[2], p.k_stride[2], cols,
                         p.d);
  load_tile<L::kRows, D>(vs, v + b * p.v_stride[0] + hk * p.v_stride[1] + j0 * p.v_stride[2], p.v_stride[2], cols,
                         p.dv);

  const C scale = static_cast<C>(p.scale);
  const C inv_keep = static_cast<C>(1.0 / (1.0 - p.dropout_p));
  C dk[L::kRowsPer][L::kDPer] = {}, dv[L::kRowsPer][L::kDPer] = {};
  const bool cols_global = pat.has_global(j0, j0 + cols);

  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = hk * G + g, bh = b * p.Hq + h;
    const T* qh = q + b * p.q_stride[0] + h * p.q_stride[1];
    for (int64_t i0 = 0; i0 < p.T; i0 += L::kStep) {
      const int rows = static_cast<int>(p.T - i0 < L::kStep ? p.T - i0 : L::kStep);  // queries of the step
      const TileState state =
          tile_of(pat, i0, rows, j0, cols, pat.has_global(i0 + pat.shift, i0 + rows + pat.shift), cols_global);
      if (state == TileState::Empty) continue;
      const bool test = state == TileState::Partial || pat.has_free_form();
      __syncthreads();  // the previous step's tiles are used up
      load_tile<L::kStep, D>(qs, qh + i0 * p.q_stride[2], p.q_stride[2], rows, p.d);
      load_tile<L::kStep, D>(dos, grad_out + (bh * p.T + i0) * p.dv, p.dv, rows, p.dv);
      for (int r = threadIdx.x; r < L::kStep; r += kThreads) {
        lse_s[r] = r < rows ? lse[bh * p.T + i0 + r] : neg_inf<C>();
        delta_s[r] = r < rows ? delta[bh * p.T + i0 + r] : C(0);
      }
      __syncthreads();
      // Transposed tiles: row r is key j0 + r, column c is query i0 + c.
      C st[L::kRowsPer][L::kStepPer] = {}, dpt[L::kRowsPer][L::kStepPer] = {};
      smem_product<L::kTY, L::kTX, L::kLd, 1, 1, L::kLd>(st, ks, qs, static_cast<int>(p.d), ty, tx);
      smem_product<L::kTY, L::kTX, L::kLd, 1, 1, L::kLd>(dpt, vs, dos, static_cast<int>(p.dv), ty, tx);
#pragma unroll
      for (int a = 0; a < L::kRowsPer; ++a) {
        const int r = ty + L::kTY * a;
#pragma unroll
        for (int c = 0; c < L::kStepPer; ++c) {
          const int col = tx + L::kTX * c;
          const C row_lse = lse_s[col];
          const bool off = r >= cols || col >= rows || row_lse == neg_inf<C>() ||
                           (test && pair_masked(pat, state, b, h, i0 + col, j0 + r));
          const C prob = off ? C(0) : exp_c(st[a][c] * scale - row_lse);
          const C z = off ? C(0) : dropout_factor(p, inv_keep, b, h, i0 + col, j0 + r);
          ws[r * L::kLdStep + col] = prob * z;
          st[a][c] = prob * (dpt[a][c] * z - delta_s[col]);  // dS
        }
      }
      __syncthreads();  // ws holds P z
      smem_product<L::kTY, L::kTX, L::kLdStep, 1, L::kLd, 1>(dv, ws, dos, rows, ty, tx);
      __syncthreads();  // P z used up
#pragma unroll
      for (int a = 0; a < L::kRowsPer; ++a)
#pragma unroll
        for (int c = 0; c < L::kStepPer; ++c) ws[(ty + L::kTY * a) * L::kLdStep + tx + L::kTX * c] = st[a][c];
      __syncthreads();  // ws holds dS
      smem_product<L::kTY, L::kTX, L::kLdStep, 1, L::kLd, 1>(dk, ws, qs, rows, ty, tx);
    }
  }

#pragma unroll
  for (int a = 0; a < L::kRowsPer; ++a) {
    const int r = ty + L::kTY * a;
    if (r >= cols) continue;
    T* gk = grad_k + (bhk * p.S + j0 + r) * p.d;
    T* gv = grad_v + (bhk * p.S + j0 + r) * p.dv;
#pragma unroll
    for (int c = 0; c < L::kDPer; ++c) {
      const int col = tx + L::kTX * c;
      if (col < p.d) gk[col] = static_cast<T>(dk[a][c] * scale);
      if (col < p.dv) gv[col] = static_cast<T>(dv[a][c]);
    }
  }
}

// ---- backward: grad_q ------------------------------------------------------------
// Grid: B * Hq * ceil(T / kRows) blocks. Shared memory:
//   qs, dos  [kRows, D + 1]     the block's queries and their grad_out
//   ks, vs   [kStep, D + 1]     a key tile and its values
//   ws       [kRows, kStep + 1] the tile's dS
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    simt_grad_q_kernel(const AttentionProblem p, const T* __restrict__ grad_out, const T* __restrict__ q,
                       const T* __restrict__ k, const T* __restrict__ v, const compute_t<T>* __restrict__ lse,
                       const compute_t<T>* __restrict__ delta, T* __restrict__ grad_q) {
  using C = compute_t<T>;
  using L = SimtTiles<C, D>;
  C* qs = shared_as<C>();
  C* dos = qs + L::kRows * L::kLd;
  C* ks = dos + L::kRows * L::kLd;
  C* vs = ks + L::kStep * L::kLd;
  C* ws = vs + L::kStep * L::kLd;
  const AttentionPatternView& pat = p.pattern;
  const int ty = threadIdx.x / L::kTX, tx = threadIdx.x % L::kTX;

  const auto [bh, i0, b, h, hk, rows] = query_block<L::kRows>(p);
  const T* kh = k + b * p.k_stride[0] + hk * p.k_stride[1];
  const T* vh = v + b * p.v_stride[0] + hk * p.v_stride[1];
  load_tile<L::kRows, D>(qs, q + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2], rows,
                         p.d);
  load_tile<L::kRows, D>(dos, grad_out + (bh * p.T + i0) * p.dv, p.dv, rows, p.dv);

  const C scale = static_cast<C>(p.scale);
  const C inv_keep = static_cast<C>(1.0 / (1.0 - p.dropout_p));
  C row_lse[L::kRowsPer], row_delta[L::kRowsPer], dq[L::kRowsPer][L::kDPer] = {};
#pragma unroll
  for (int a = 0; a < L::kRowsPer; ++a) {
    const int r = ty + L::kTY * a;
    row_lse[a] = r < rows ? lse[bh * p.T + i0 + r] : neg_inf<C>();
    row_delta[a] = r < rows ? delta[bh * p.T + i0 + r] : C(0);
  }
  const bool rows_global = pat.has_global(i0 + pat.shift, i0 + rows + pat.shift);

  for (int64_t j0 = 0; j0 < p.S; j0 += L::kStep) {
    const int cols = static_cast<int>(p.S - j0 < L::kStep ? p.S - j0 : L::kStep);
    const TileState state = tile_of(pat, i0, rows, j0, cols, rows_global, pat.has_global(j0, j0 + cols));
    if (state == TileState::Empty) continue;
    const bool test = state == TileState::Partial || pat.has_free_form();
    __syncthreads();  // the previous tile's keys and dS are used up
    load_tile<L::kStep, D>(ks, kh + j0 * p.k_stride[2], p.k_stride[2], cols, p.d);
    load_tile<L::kStep, D>(vs, vh + j0 * p.v_stride[2], p.v_stride[2], cols, p.dv);
    __syncthreads();
    C s[L::kRowsPer][L::kStepPer] = {}, dp[L::kRowsPer][L::kStepPer] = {};
    smem_product<L::kTY, L::kTX, L::kLd, 1, 1, L::kLd>(s, qs, ks, static_cast<int>(p.d), ty, tx);
    smem_product<L::kTY, L::kTX, L::kLd, 1, 1, L::kLd>(dp, dos, vs, static_cast<int>(p.dv), ty, tx);
#pragma unroll
    for (int a = 0; a < L::kRowsPer; ++a) {
      const int r = ty + L::kTY * a;
#pragma unroll
      for (int c = 0; c < L::kStepPer; ++c) {
        const int col = tx + L::kTX * c;
        const bool off = r >= rows || col >= cols || row_lse[a] == neg_inf<C>() ||
                         (test && pair_masked(pat, state, b, h, i0 + r, j0 + col));
        const C prob = off ? C(0) : exp_c(s[a][c] * scale - row_lse[a]);
        const C z = off ? C(0) : dropout_factor(p, inv_keep, b, h, i0 + r, j0 + col);
        ws[r * L::kLdStep + col] = prob * (dp[a][c] * z - row_delta[a]);
      }
    }
    __syncthreads();  // ws holds dS
    smem_product<L::kTY, L::kTX, L::kLdStep, 1, L::kLd, 1>(dq, ws, ks, cols, ty, tx);
  }

#pragma unroll
  for (int a = 0; a < L::kRowsPer; ++a) {
    const int r = ty + L::kTY * a;
    if (r >= rows) continue;
    T* gq = grad_q + (bh * p.T + i0 + r) * p.d;
#pragma unroll
    for (int c = 0; c < L::kDPer; ++c) {
      const int col = tx + L::kTX * c;
      if (col < p.d) gq[col] = static_cast<T>(dq[a][c] * scale);
    }
  }
}

// ---- SIMT launches ----------------------------------------------------------------

template <class C, int D>
constexpr size_t simt_forward_shared() {
  using L = SimtTiles<C, D>;
  return sizeof(C) * ((L::kRows + L::kStep) * L::kLd + L::kRows * L::kLdStep);
}
template <class C, int D>
constexpr size_t simt_grad_kv_shared() {
  using L = SimtTiles<C, D>;
  return sizeof(C) * (2 * (L::kRows + L::kStep) * L::kLd + L::kRows * L::kLdStep + 2 * L::kStep);
}
template <class C, int D>
constexpr size_t simt_grad_q_shared() {
  using L = SimtTiles<C, D>;
  return sizeof(C) * (2 * (L::kRows + L::kStep) * L::kLd + L::kRows * L::kLdStep);
}

// Launches `kernel` on `blocks` blocks of 128 threads with `shared` bytes of
// dynamic shared memory (raising the kernel's limit past the default 48 KB).
template <class Kernel, class... Args>
void launch(Kernel kernel, int64_t blocks, size_t shared, Args... args) {
  if (blocks <= 0) return;
  HEED_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  kernel<<<static_cast<unsigned>(blocks), kThreads, shared>>>(args...);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T, int D>
void simt_forward(const AttentionProblem& p, const T* q, const T* k, const T* v, T* out, compute_t<T>* lse) {
  using L = SimtTiles<compute_t<T>, D>;
  launch(simt_forward_kernel<T, D>, p.B * p.Hq * ceil_div(p.T, L::kRows), simt_forward_shared<compute_t<T>, D>(), p,
         q, k, v, out, lse);
}

template <class T, int D>
void simt_backward(const AttentionProblem& p, const T* grad_out, const T* q, const T* k, const T* v,
                   const compute_t<T>* lse, const compute_t<T>* delta, T* grad_q, T* grad_k, T* grad_v) {
  using L = SimtTiles<compute_t<T>, D>;
  launch(simt_grad_kv_kernel<T, D>, p.B * p.Hkv * ceil_div(p.S, L::kRows), simt_grad_kv_shared<compute_t<T>, D>(),
         p, grad_out, q, k, v, lse, delta, grad_k, grad_v);
  launch(simt_grad_q_kernel<T, D>, p.B * p.Hq * ceil_div(p.T, L::kRows), simt_grad_q_shared<compute_t<T>, D>(), p,
         grad_out, q, k, v, lse, delta, grad_q);
}

// The head-dim bucket: the smallest of 32, 64, 128, 256 that holds d and dv.
template <class F>
void with_head_bucket(const AttentionProblem& p, F&& f) {
  const int64_t dim = p.d > p.dv ? p.d : p.dv;
  if (dim <= 32) return f(std::integral_constant<int, 32>{});
  if (dim <= 64) return f(std::integral_constant<int, 64>{});
  if (dim <= 128) return f(std::integral_constant<int, 128>{});
  return f(std::integral_constant<int, 256>{});
}

// =============================================================================
// Tensor-core kernels (mma.sync)
// =============================================================================
//
// The same three kernels with every tile product on the tensor cores, for
// d == dv == D of 64 or 128. Each of the four warps owns 16 rows of the
// block's 64 (queries in the forward and grad_q kernels, keys in grad_kv)
// and computes its [16, n] products as a row of m16n8 tiles: the forward's
// S = Q K^T is 16 x 64 per warp, O += P V 16 x D. Operands sit in shared
// memory in the mma's input type (bfloat16 bits, or float32 rounded to TF32
// with cvt.rna), rows padded by 16 bytes so that the fragment loads of the
// eight row groups fall into distinct banks. A product's result stays in the
// accumulator layout and feeds the next product directly (P into P V, dS into
// dS K): the registers of accumulator tiles hold exactly the A fragment a
// following mma needs, for bfloat16 as FlashAttention-2 does it, for TF32
// with the k index permuted within each step of 8 (see Tf32Ops::acc_to_a).
// Softmax, masks and dropout run on the float32 accumulators. Fragment
// layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 / m16n8k8"), lane
// l = 4 g + t:
//   A (16 x k): bf16 reg r holds row g + 8 (r % 2), k 2t + 8 (r / 2) + {0, 1};
//               tf32 reg r holds row g + 8 (r % 2), k t + 4 (r / 2)
//   B (k x 8):  bf16 reg r holds k 2t + 8 r + {0, 1}, column g;
//               tf32 reg r holds k t + 4 r, column g
//   C (16 x 8): reg r holds row g + 8 (r / 2), column 2t + (r % 2)

// ---- PTX (begin) ----
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_tf32_1688(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// float32 -> TF32 bits (round to nearest, ties away from zero).
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
// ---- PTX (end) ----

__device__ __forceinline__ uint32_t shared_word(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
// Two floats as bfloat16 in one register: `lo` (the lower k index) in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return static_cast<uint32_t>(bfloat16::round_bits(lo)) | (static_cast<uint32_t>(bfloat16::round_bits(hi)) << 16);
}

// bfloat16 operands, m16n8k16. Shared tiles hold bf16 bits, row-major.
struct Bf16Ops {
  using Elem = uint16_t;
  static constexpr int kK = 16;   // k of one mma
  static constexpr int kPad = 8;  // row padding in elements: 16 bytes
  static __device__ __forceinline__ Elem from(bfloat16 x) { return x.bits; }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    mma_bf16_16816(d, a, b);
  }
  // A = rows m0.., columns k0.. of a row-major tile s (row stride ld).
  static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const Elem* s, int ld, int m0, int k0, int g,
                                                int t) {
    const Elem* p = s + (m0 + g) * ld + k0 + 2 * t;
    a[0] = shared_word(p);
    a[1] = shared_word(p + 8 * ld);
    a[2] = shared_word(p + 8);
    a[3] = shared_word(p + 8 * ld + 8);
  }
  // B(k, n) = s[(n0 + n) * ld + k0 + k]: the tile holds B transposed (keys for Q K^T).
  static __device__ __forceinline__ void load_b_nk(uint32_t (&b)[2], const Elem* s, int ld, int n0, int k0, int g,
                                                   int t) {
    const Elem* p = s + (n0 + g) * ld + k0 + 2 * t;
    b[0] = shared_word(p);
    b[1] = shared_word(p + 8);
  }
  // A fragment of columns 8 nt .. 8 nt + 15 of a 16-row accumulator c (n-tiles nt, nt + 1).
  template <int N>
  static __device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[N][4], int nt) {
    a[0] = pack_bf16(c[nt][0], c[nt][1]);
    a[1] = pack_bf16(c[nt][2], c[nt][3]);
    a[2] = pack_bf16(c[nt + 1][0], c[nt + 1][1]);
    a[3] = pack_bf16(c[nt + 1][2], c[nt + 1][3]);
  }
  // B(k, n) = s[(k0 + k) * ld + n0 + n] in the k order of acc_to_a (the natural one).
  static __device__ __forceinline__ void load_b_kn_acc(uint32_t (&b)[2], const Elem* s, int ld, int k0, int n0, int g,
                                                       int t) {
    const Elem* p = s + (k0 + 2 * t) * ld + n0 + g;
    b[0] = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[ld]) << 16);
    b[1] = static_cast<uint32_t>(p[8 * ld]) | (static_cast<uint32_t>(p[9 * ld]) << 16);
  }
};

// float32 operands as TF32, m16n8k8. Shared tiles hold TF32 bits, row-major.
struct Tf32Ops {
  using Elem = uint32_t;
  static constexpr int kK = 8;
  static constexpr int kPad = 4;
  static __device__ __forceinline__ Elem from(float x) { return to_tf32(x); }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    mma_tf32_1688(d, a, b);
  }
  static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const Elem* s, int ld, int m0, int k0, int g,
                                                int t) {
    const Elem* p = s + (m0 + g) * ld + k0 + t;
    a[0] = p[0];
    a[1] = p[8 * ld];
    a[2] = p[4];
    a[3] = p[8 * ld + 4];
  }
  static __device__ __forceinline__ void load_b_nk(uint32_t (&b)[2], const Elem* s, int ld, int n0, int k0, int g,
                                                   int t) {
    const Elem* p = s + (n0 + g) * ld + k0 + t;
    b[0] = p[0];
    b[1] = p[4];
  }
  // Columns 8 nt .. 8 nt + 7 of accumulator c as an A fragment whose k slot t
  // is column 2t and slot t + 4 is column 2t + 1 (this lane's own values: no
  // shuffle). load_b_kn_acc reads B's rows in the same order, and a product
  // sums over k in any order.
  template <int N>
  static __device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[N][4], int nt) {
    a[0] = to_tf32(c[nt][0]);  // row g,     column 2t
    a[1] = to_tf32(c[nt][2]);  // row g + 8, column 2t
    a[2] = to_tf32(c[nt][1]);  // row g,     column 2t + 1
    a[3] = to_tf32(c[nt][3]);  // row g + 8, column 2t + 1
  }
  static __device__ __forceinline__ void load_b_kn_acc(uint32_t (&b)[2], const Elem* s, int ld, int k0, int n0, int g,
                                                       int t) {
    const Elem* p = s + (k0 + 2 * t) * ld + n0 + g;
    b[0] = p[0];   // k slot t:     row 2t
    b[1] = p[ld];  // k slot t + 4: row 2t + 1
  }
};

template <class T>
struct TcOps;
template <>
struct TcOps<bfloat16> {
  using type = Bf16Ops;
};
template <>
struct TcOps<float> {
  using type = Tf32Ops;
};

// dst [R, D + kPad] (shared, Ops::Elem) = rows [0, rows) of src (row stride
// `stride`, D columns), zero below. `vec`: src rows are 16-byte aligned, so
// they are read 16 bytes at a time.
template <class Ops, int R, int D, class T>
__device__ __forceinline__ void load_tile_tc(typename Ops::Elem* dst, const T* src, int64_t stride, int rows,
                                             bool vec) {
  using E = typename Ops::Elem;
  constexpr int kLd = D + Ops::kPad;
  if (vec) {
    constexpr int kVec = 16 / sizeof(T);  // elements per 16-byte load (8 bf16 or 4 float)
    static_assert(sizeof(E) * kVec == 16 || sizeof(E) * kVec == 8, "one load fills 8 or 16 bytes of the tile");
    for (int idx = threadIdx.x; idx < R * D / kVec; idx += kThreads) {
      const int r = idx / (D / kVec), c = idx % (D / kVec) * kVec;
      E* d = dst + r * kLd + c;
      if (r < rows) {
        const uint4 raw = *reinterpret_cast<const uint4*>(src + r * stride + c);
        const T* x = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int e = 0; e < kVec; ++e) d[e] = Ops::from(x[e]);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) d[e] = E(0);
      }
    }
    return;
  }
  for (int idx = threadIdx.x; idx < R * D; idx += kThreads) {
    const int r = idx / D, c = idx % D;
    dst[r * kLd + c] = r < rows ? Ops::from(src[r * stride + c]) : E(0);
  }
}

// Max and sum over the four lanes of a quad (one accumulator row).
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFullMask, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(kFullMask, v, 1);
  return v + __shfl_xor_sync(kFullMask, v, 2);
}

// The backward's two score-like products side by side, over the head dim D,
// for the warp's 16 rows m0..: acc1 += A1 B1 and acc2 += A2 B2, with A1, A2
// row-major tiles and B1, B2 held transposed (row n of the tile is column n
// of B: load_b_nk), kNt column tiles of 8. grad_kv: S^T = K Q^T and
// dP^T = V dO^T; grad_q: S = Q K^T and dP = dO V^T.
template <class Ops, int D, int kNt>
__device__ __forceinline__ void mma_pair_nk(float (&acc1)[kNt][4], float (&acc2)[kNt][4], const typename Ops::Elem* a1,
                                            const typename Ops::Elem* b1, const typename Ops::Elem* a2,
                                            const typename Ops::Elem* b2, int ld, int m0, int g, int t) {
#pragma unroll
  for (int kk = 0; kk < D; kk += Ops::kK) {
    uint32_t fa1[4], fa2[4];
    Ops::load_a(fa1, a1, ld, m0, kk, g, t);
    Ops::load_a(fa2, a2, ld, m0, kk, g, t);
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      uint32_t fb1[2], fb2[2];
      Ops::load_b_nk(fb1, b1, ld, nt * 8, kk, g, t);
      Ops::mma(acc1[nt], fa1, fb1);
      Ops::load_b_nk(fb2, b2, ld, nt * 8, kk, g, t);
      Ops::mma(acc2[nt], fa2, fb2);
    }
  }
}

// acc += P B over kStep keys (or queries), P the warp's [16, kStep] tile still
// in accumulator registers (acc_to_a) and B row-major in shared memory
// (load_b_kn_acc), kDt column tiles of 8: the forward's O += (P z) V and
// grad_q's dQ += dS K.
template <class Ops, int kStep, int kNt, int kDt>
__device__ __forceinline__ void mma_acc_kn(float (&acc)[kDt][4], const float (&p)[kNt][4],
                                           const typename Ops::Elem* b, int ld, int g, int t) {
#pragma unroll
  for (int kk = 0; kk < kStep; kk += Ops::kK) {
    uint32_t a[4];
    Ops::acc_to_a(a, p, kk / 8);
#pragma unroll
    for (int dt = 0; dt < kDt; ++dt) {
      uint32_t bf[2];
      Ops::load_b_kn_acc(bf, b, ld, kk, dt * 8, g, t);
      Ops::mma(acc[dt], a, bf);
    }
  }
}

// Tile shapes: kRows rows per block (16 per warp); the forward steps 64 keys
// at a time, the backward kernels 64 rows (32 at D = 128, which keeps grad_kv's
// two [16, 128] accumulators and its two [16, step] tiles in registers).
template <int D>
struct TcTiles {
  static constexpr int kRows = 64;
  static constexpr int kFwdStep = 64;
  static constexpr int kBwdStep = D == 128 ? 32 : 64;
};

// ---- forward ----------------------------------------------------------------------
// Grid: B * Hq * ceil(T / 64) blocks of 128 threads. Shared memory (Elem):
//   qs [64, D + kPad], ks [64, D + kPad], vs [64, D + kPad]
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    tc_forward_kernel(const AttentionProblem p, bool vec, const T* __restrict__ q, const T* __restrict__ k,
                      const T* __restrict__ v, T* __restrict__ out, float* __restrict__ lse) {
  using Ops = typename TcOps<T>::type;
  using E = typename Ops::Elem;
  constexpr int kRows = TcTiles<D>::kRows, kStep = TcTiles<D>::kFwdStep, kLd = D + Ops::kPad;
  constexpr int kNt = kStep / 8, kDt = D / 8;  // n-tiles of S and of O
  E* qs = shared_as<E>();
  E* ks = qs + kRows * kLd;
  E* vs = ks + kStep * kLd;
  const AttentionPatternView& pat = p.pattern;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int m0 = warp * 16;  // the warp's first row

  const auto [bh, i0, b, h, hk, rows] = query_block<kRows>(p);
  const T* kh = k + b * p.k_stride[0] + hk * p.k_stride[1];
  const T* vh = v + b * p.v_stride[0] + hk * p.v_stride[1];
  load_tile_tc<Ops, kRows, D>(qs, q + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2], rows,
                              vec);

  const float scale = static_cast<float>(p.scale);
  const float inv_keep = static_cast<float>(1.0 / (1.0 - p.dropout_p));
  float m[2] = {neg_inf<float>(), neg_inf<float>()}, l[2] = {0.f, 0.f}, o[kDt][4] = {};
  const bool rows_global = pat.has_global(i0 + pat.shift, i0 + rows + pat.shift);

  for (int64_t j0 = 0; j0 < p.S; j0 += kStep) {
    const int cols = static_cast<int>(p.S - j0 < kStep ? p.S - j0 : kStep);
    const TileState state = tile_of(pat, i0, rows, j0, cols, rows_global, pat.has_global(j0, j0 + cols));
    if (state == TileState::Empty) continue;
    const bool test = state == TileState::Partial || pat.has_free_form();
    __syncthreads();  // the previous tile's keys and values are used up
    load_tile_tc<Ops, kStep, D>(ks, kh + j0 * p.k_stride[2], p.k_stride[2], cols, vec);
    load_tile_tc<Ops, kStep, D>(vs, vh + j0 * p.v_stride[2], p.v_stride[2], cols, vec);
    __syncthreads();
    float s[kNt][4] = {};
#pragma unroll
    for (int kk = 0; kk < D; kk += Ops::kK) {
      uint32_t a[4];
      Ops::load_a(a, qs, kLd, m0, kk, g, t);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        uint32_t bf[2];
        Ops::load_b_nk(bf, ks, kLd, nt * 8, kk, g, t);
        Ops::mma(s[nt], a, bf);
      }
    }
    // Rows m0 + g (half 0: registers 0, 1) and m0 + g + 8 (half 1: registers 2, 3).
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = m0 + g + 8 * half;
      float mx = neg_inf<float>();
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = nt * 8 + 2 * t + e;
          float& x = s[nt][2 * half + e];
          const bool off = r >= rows || col >= cols || (test && pair_masked(pat, state, b, h, i0 + r, j0 + col));
          x = off ? neg_inf<float>() : x * scale;
          mx = fmaxf(mx, x);
        }
      mx = quad_max(mx);
      const float m_new = fmaxf(m[half], mx);
      const float base = m_new == neg_inf<float>() ? 0.f : m_new;
      const float alpha = expf(m[half] - base);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[nt][2 * half + e];
          float w = expf(x - base);
          sum += w;
          if (p.dropout_p > 0 && w != 0.f) w *= dropout_factor(p, inv_keep, b, h, i0 + r, j0 + nt * 8 + 2 * t + e);
          x = w;
        }
      sum = quad_sum(sum);
      l[half] = l[half] * alpha + sum;
      m[half] = m_new;
#pragma unroll
      for (int dt = 0; dt < kDt; ++dt) {
        o[dt][2 * half] *= alpha;
        o[dt][2 * half + 1] *= alpha;
      }
    }
    mma_acc_kn<Ops, kStep>(o, s, vs, kLd, g, t);  // O += (P z) V over the tile's keys
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = m0 + g + 8 * half;
    if (r >= rows) continue;
    const int64_t row = bh * p.T + i0 + r;
    const float inv = l[half] > 0.f ? 1.f / l[half] : 0.f;
    T* orow = out + row * D;
#pragma unroll
    for (int dt = 0; dt < kDt; ++dt)
#pragma unroll
      for (int e = 0; e < 2; ++e) orow[dt * 8 + 2 * t + e] = static_cast<T>(o[dt][2 * half + e] * inv);
    if (t == 0) lse[row] = l[half] > 0.f ? m[half] + logf(l[half]) : neg_inf<float>();
  }
}

// ---- backward: grad_k and grad_v ----------------------------------------------------
// Grid: B * Hkv * ceil(S / 64) blocks. Shared memory:
//   ks, vs  [64, D + kPad]     the block's keys and values (Elem)
//   qs, dos [kStep, D + kPad]  a query tile and its grad_out (Elem)
//   lse_s, delta_s [kStep]     float
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    tc_grad_kv_kernel(const AttentionProblem p, bool vec, const T* __restrict__ grad_out, const T* __restrict__ q,
                      const T* __restrict__ k, const T* __restrict__ v, const float* __restrict__ lse,
                      const float* __restrict__ delta, T* __restrict__ grad_k, T* __restrict__ grad_v) {
  using Ops = typename TcOps<T>::type;
  using E = typename Ops::Elem;
  constexpr int kRows = TcTiles<D>::kRows, kStep = TcTiles<D>::kBwdStep, kLd = D + Ops::kPad;
  constexpr int kNt = kStep / 8, kDt = D / 8;
  E* ks = shared_as<E>();
  E* vs = ks + kRows * kLd;
  E* qs = vs + kRows * kLd;
  E* dos = qs + kStep * kLd;
  float* lse_s = reinterpret_cast<float*>(dos + kStep * kLd);
  float* delta_s = lse_s + kStep;
  const AttentionPatternView& pat = p.pattern;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int m0 = warp * 16;  // the warp's first key

  const auto [bhk, j0, b, hk, G, cols] = key_block<kRows>(p);
  load_tile_tc<Ops, kRows, D>(ks, k + b * p.k_stride[0] + hk * p.k_stride[1] + j0 * p.k_stride[2], p.k_stride[2],
                              cols, vec);
  load_tile_tc<Ops, kRows, D>(vs, v + b * p.v_stride[0] + hk * p.v_stride[1] + j0 * p.v_stride[2], p.v_stride[2],
                              cols, vec);

  const float scale = static_cast<float>(p.scale);
  const float inv_keep = static_cast<float>(1.0 / (1.0 - p.dropout_p));
  float dk[kDt][4] = {}, dv[kDt][4] = {};
  const bool cols_global = pat.has_global(j0, j0 + cols);

  for (int64_t gi = 0; gi < G; ++gi) {
    const int64_t h = hk * G + gi, bh = b * p.Hq + h;
    const T* qh = q + b * p.q_stride[0] + h * p.q_stride[1];
    for (int64_t i0 = 0; i0 < p.T; i0 += kStep) {
      const int rows = static_cast<int>(p.T - i0 < kStep ? p.T - i0 : kStep);  // queries of the step
      const TileState state =
          tile_of(pat, i0, rows, j0, cols, pat.has_global(i0 + pat.shift, i0 + rows + pat.shift), cols_global);
      if (state == TileState::Empty) continue;
      const bool test = state == TileState::Partial || pat.has_free_form();
      __syncthreads();  // the previous step's tiles are used up
      load_tile_tc<Ops, kStep, D>(qs, qh + i0 * p.q_stride[2], p.q_stride[2], rows, vec);
      load_tile_tc<Ops, kStep, D>(dos, grad_out + (bh * p.T + i0) * D, D, rows, vec);
      for (int r = threadIdx.x; r < kStep; r += kThreads) {
        lse_s[r] = r < rows ? lse[bh * p.T + i0 + r] : neg_inf<float>();
        delta_s[r] = r < rows ? delta[bh * p.T + i0 + r] : 0.f;
      }
      __syncthreads();
      // Transposed tiles: row = key m0 + ..., column = query i0 + ...
      float st[kNt][4] = {}, dpt[kNt][4] = {};
      mma_pair_nk<Ops, D>(st, dpt, ks, qs, vs, dos, kLd, m0, g, t);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = m0 + g + 8 * (e / 2), col = nt * 8 + 2 * t + e % 2;
          const float row_lse = lse_s[col];
          const bool off = r >= cols || col >= rows || row_lse == neg_inf<float>() ||
                           (test && pair_masked(pat, state, b, h, i0 + col, j0 + r));
          const float prob = off ? 0.f : expf(st[nt][e] * scale - row_lse);
          const float z = off ? 0.f : dropout_factor(p, inv_keep, b, h, i0 + col, j0 + r);
          st[nt][e] = prob * z;                                    // P z, for grad_v
          dpt[nt][e] = prob * (dpt[nt][e] * z - delta_s[col]);     // dS, for grad_k
        }
      // dV += (P z)^T dO and dK += dS^T Q over the step's queries.
#pragma unroll
      for (int kk = 0; kk < kStep; kk += Ops::kK) {
        uint32_t ap[4], as[4];
        Ops::acc_to_a(ap, st, kk / 8);
        Ops::acc_to_a(as, dpt, kk / 8);
#pragma unroll
        for (int dt = 0; dt < kDt; ++dt) {
          uint32_t bo[2], bq[2];
          Ops::load_b_kn_acc(bo, dos, kLd, kk, dt * 8, g, t);
          Ops::mma(dv[dt], ap, bo);
          Ops::load_b_kn_acc(bq, qs, kLd, kk, dt * 8, g, t);
          Ops::mma(dk[dt], as, bq);
        }
      }
    }
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = m0 + g + 8 * half;
    if (r >= cols) continue;
    T* gk = grad_k + (bhk * p.S + j0 + r) * D;
    T* gv = grad_v + (bhk * p.S + j0 + r) * D;
#pragma unroll
    for (int dt = 0; dt < kDt; ++dt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        gk[dt * 8 + 2 * t + e] = static_cast<T>(dk[dt][2 * half + e] * scale);
        gv[dt * 8 + 2 * t + e] = static_cast<T>(dv[dt][2 * half + e]);
      }
  }
}

// ---- backward: grad_q ------------------------------------------------------------------
// Grid: B * Hq * ceil(T / 64) blocks. Shared memory (Elem):
//   qs, dos [64, D + kPad]     the block's queries and their grad_out
//   ks, vs  [kStep, D + kPad]  a key tile and its values
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    tc_grad_q_kernel(const AttentionProblem p, bool vec, const T* __restrict__ grad_out, const T* __restrict__ q,
                     const T* __restrict__ k, const T* __restrict__ v, const float* __restrict__ lse,
                     const float* __restrict__ delta, T* __restrict__ grad_q) {
  using Ops = typename TcOps<T>::type;
  using E = typename Ops::Elem;
  constexpr int kRows = TcTiles<D>::kRows, kStep = TcTiles<D>::kBwdStep, kLd = D + Ops::kPad;
  constexpr int kNt = kStep / 8, kDt = D / 8;
  E* qs = shared_as<E>();
  E* dos = qs + kRows * kLd;
  E* ks = dos + kRows * kLd;
  E* vs = ks + kStep * kLd;
  const AttentionPatternView& pat = p.pattern;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int m0 = warp * 16;  // the warp's first query

  const auto [bh, i0, b, h, hk, rows] = query_block<kRows>(p);
  const T* kh = k + b * p.k_stride[0] + hk * p.k_stride[1];
  const T* vh = v + b * p.v_stride[0] + hk * p.v_stride[1];
  load_tile_tc<Ops, kRows, D>(qs, q + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2], rows,
                              vec);
  load_tile_tc<Ops, kRows, D>(dos, grad_out + (bh * p.T + i0) * D, D, rows, vec);

  const float scale = static_cast<float>(p.scale);
  const float inv_keep = static_cast<float>(1.0 / (1.0 - p.dropout_p));
  float row_lse[2], row_delta[2], dq[kDt][4] = {};
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = m0 + g + 8 * half;
    row_lse[half] = r < rows ? lse[bh * p.T + i0 + r] : neg_inf<float>();
    row_delta[half] = r < rows ? delta[bh * p.T + i0 + r] : 0.f;
  }
  const bool rows_global = pat.has_global(i0 + pat.shift, i0 + rows + pat.shift);

  for (int64_t j0 = 0; j0 < p.S; j0 += kStep) {
    const int cols = static_cast<int>(p.S - j0 < kStep ? p.S - j0 : kStep);
    const TileState state = tile_of(pat, i0, rows, j0, cols, rows_global, pat.has_global(j0, j0 + cols));
    if (state == TileState::Empty) continue;
    const bool test = state == TileState::Partial || pat.has_free_form();
    __syncthreads();  // the previous tile's keys and values are used up
    load_tile_tc<Ops, kStep, D>(ks, kh + j0 * p.k_stride[2], p.k_stride[2], cols, vec);
    load_tile_tc<Ops, kStep, D>(vs, vh + j0 * p.v_stride[2], p.v_stride[2], cols, vec);
    __syncthreads();
    float s[kNt][4] = {}, dp[kNt][4] = {};
    mma_pair_nk<Ops, D>(s, dp, qs, ks, dos, vs, kLd, m0, g, t);
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e / 2, r = m0 + g + 8 * half, col = nt * 8 + 2 * t + e % 2;
        const bool off = r >= rows || col >= cols || row_lse[half] == neg_inf<float>() ||
                         (test && pair_masked(pat, state, b, h, i0 + r, j0 + col));
        const float prob = off ? 0.f : expf(s[nt][e] * scale - row_lse[half]);
        const float z = off ? 0.f : dropout_factor(p, inv_keep, b, h, i0 + r, j0 + col);
        s[nt][e] = prob * (dp[nt][e] * z - row_delta[half]);  // dS
      }
    mma_acc_kn<Ops, kStep>(dq, s, ks, kLd, g, t);  // dQ += dS K over the tile's keys
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = m0 + g + 8 * half;
    if (r >= rows) continue;
    T* gq = grad_q + (bh * p.T + i0 + r) * D;
#pragma unroll
    for (int dt = 0; dt < kDt; ++dt)
#pragma unroll
      for (int e = 0; e < 2; ++e) gq[dt * 8 + 2 * t + e] = static_cast<T>(dq[dt][2 * half + e] * scale);
  }
}

// ---- tensor-core launches -------------------------------------------------------------

template <class T, int D>
constexpr size_t tc_forward_shared() {
  using E = typename TcOps<T>::type::Elem;
  constexpr int kLd = D + TcOps<T>::type::kPad;
  return sizeof(E) * (TcTiles<D>::kRows + 2 * TcTiles<D>::kFwdStep) * kLd;
}
template <class T, int D>
constexpr size_t tc_backward_shared() {  // grad_kv: the tiles and two [kStep] float rows; grad_q: the tiles
  using E = typename TcOps<T>::type::Elem;
  constexpr int kLd = D + TcOps<T>::type::kPad;
  return sizeof(E) * 2 * (TcTiles<D>::kRows + TcTiles<D>::kBwdStep) * kLd + sizeof(float) * 2 * TcTiles<D>::kBwdStep;
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Whether every row of q, k, v starts 16-byte aligned (the vector loads).
template <class T>
bool rows_aligned(const AttentionProblem& p, const T* q, const T* k, const T* v) {
  constexpr int64_t kVec = 16 / sizeof(T);
  bool ok = aligned16(q) && aligned16(k) && aligned16(v) && p.d % kVec == 0;
  for (int dim = 0; dim < 3; ++dim)
    ok = ok && p.q_stride[dim] % kVec == 0 && p.k_stride[dim] % kVec == 0 && p.v_stride[dim] % kVec == 0;
  return ok;
}

template <class T, int D>
void tc_forward(const AttentionProblem& p, const T* q, const T* k, const T* v, T* out, float* lse) {
  launch(tc_forward_kernel<T, D>, p.B * p.Hq * ceil_div(p.T, TcTiles<D>::kRows), tc_forward_shared<T, D>(), p,
         rows_aligned(p, q, k, v), q, k, v, out, lse);
}

template <class T, int D>
void tc_backward(const AttentionProblem& p, const T* grad_out, const T* q, const T* k, const T* v, const float* lse,
                 const float* delta, T* grad_q, T* grad_k, T* grad_v) {
  const bool vec = rows_aligned(p, q, k, v) && aligned16(grad_out);
  launch(tc_grad_kv_kernel<T, D>, p.B * p.Hkv * ceil_div(p.S, TcTiles<D>::kRows), tc_backward_shared<T, D>(), p, vec,
         grad_out, q, k, v, lse, delta, grad_k, grad_v);
  launch(tc_grad_q_kernel<T, D>, p.B * p.Hq * ceil_div(p.T, TcTiles<D>::kRows), tc_backward_shared<T, D>(), p, vec,
         grad_out, q, k, v, lse, delta, grad_q);
}

}  // namespace

// =============================================================================
// Entry points
// =============================================================================

template <class T>
bool attention_tensor_cores_fit(const AttentionProblem& p) {
  return !std::is_same_v<T, double> && p.d == p.dv && (p.d == 64 || p.d == 128);
}

template <class T>
void launch_attention_forward(const AttentionProblem& p, AttentionPath path, const T* q, const T* k, const T* v,
                              T* out, compute_t<T>* lse) {
  if (p.B * p.Hq * p.T == 0) return;
  if constexpr (!std::is_same_v<T, double>) {
    if (path == AttentionPath::TensorCores && attention_tensor_cores_fit<T>(p)) {
      if (p.d == 64) return tc_forward<T, 64>(p, q, k, v, out, lse);
      return tc_forward<T, 128>(p, q, k, v, out, lse);
    }
  }
  with_head_bucket(p, [&](auto bucket) { simt_forward<T, decltype(bucket)::value>(p, q, k, v, out, lse); });
}

template <class T>
void launch_attention_backward(const AttentionProblem& p, AttentionPath path, const T* grad_out, const T* q,
                               const T* k, const T* v, const T* out, const compute_t<T>* lse, T* grad_q, T* grad_k,
                               T* grad_v, compute_t<T>* delta) {
  const int64_t rows = p.B * p.Hq * p.T;
  if (rows > 0) {
    const int64_t blocks = ceil_div(rows, kThreads / 32);
    launch(delta_kernel<T>, blocks < 65535 ? blocks : 65535, 0, grad_out, out, delta, rows, p.dv);
  }
  if constexpr (!std::is_same_v<T, double>) {
    if (path == AttentionPath::TensorCores && attention_tensor_cores_fit<T>(p)) {
      if (p.d == 64) return tc_backward<T, 64>(p, grad_out, q, k, v, lse, delta, grad_q, grad_k, grad_v);
      return tc_backward<T, 128>(p, grad_out, q, k, v, lse, delta, grad_q, grad_k, grad_v);
    }
  }
  with_head_bucket(p, [&](auto bucket) {
    simt_backward<T, decltype(bucket)::value>(p, grad_out, q, k, v, lse, delta, grad_q, grad_k, grad_v);
  });
}

#define HEED_INSTANTIATE(T)                                                                                       \
  template bool attention_tensor_cores_fit<T>(const AttentionProblem&);                                           \
  template void launch_attention_forward<T>(const AttentionProblem&, AttentionPath, const T*, const T*, const T*, \
                                            T*, compute_t<T>*);                                                    \
  template void launch_attention_backward<T>(const AttentionProblem&, AttentionPath, const T*, const T*, const T*, \
                                             const T*, const T*, const compute_t<T>*, T*, T*, T*, compute_t<T>*);
HEED_INSTANTIATE(float)
HEED_INSTANTIATE(double)
HEED_INSTANTIATE(bfloat16)
#undef HEED_INSTANTIATE

}  // namespace heed::cuda

// Fused attention on the CPU: FlashAttention-2 with the GEMM's micro-kernel
// doing every tile product (docs/attention.md walks through it).
//
// Forward: one task per (batch, query head, tile of kQueryTile queries). The
// task keeps, per query row, the running max m and sum l of exp(s - m) and an
// unnormalised output row, and visits the key tiles in order:
//   S = Q_i K_j^T * scale                        (gemm, kQueryTile x kKeyTile)
//   masked pairs -> -inf;  m' = max(m, rowmax S)
//   P = exp(S - m');  l = l e^(m - m') + rowsum P;  O = O e^(m - m') + P V_j   (gemm)
// and finishes with O / l and lse = m + log l. Working memory: one S tile and
// one O tile per task, never a T x S matrix.
//
// Backward: one task per (batch, key/value head). For each key tile j, each
// query head of the group and each query tile i it recomputes
//   P = exp(Q_i K_j^T * scale - lse_i)
// from the saved row log-sum-exp, then
//   dV_j += P^T dO_i,  dP = dO_i V_j^T,  dS = P (dP - D_i),
//   dQ_i += dS K_j * scale,  dK_j += dS^T Q_i * scale
// with D_i = rowsum(dO_i * O_i). The task owns every row of grad_q, grad_k
// and grad_v it writes, and visits its tiles in a fixed order, so the result
// is the same bits for any number of threads, without atomics.
//
// Tiles that the pattern's structure masks entirely (AttentionPatternView::
// tile_state: past the causal diagonal, outside a sliding window, a false
// block of a layout) are skipped in both directions; a tile whose free-form
// mask turns out to hide every pair skips its products too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/gemm.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/lane_max.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/vec_math.h"
#include "tensor/error.h"

namespace heed::cpu {
namespace {

constexpr int64_t kQueryTile = 96;
constexpr int64_t kKeyTile = 128;  // also the row stride of the score tiles
// A sliding window's band crosses tiles diagonally; narrower tiles there waste
// less of each tile on masked pairs. Square ones keep every query tile's band
// at the same place in its key tiles: a window w reads ceil((w - 1) / 64) + 1
// of them, the fewest 64-row tiles can (48 rows measured 9% slower at
// w = 256, T = 8192: their bands straddle one tile more, half the time).
constexpr int64_t kWindowKeyTile = 64, kWindowQueryTile = 64;
constexpr int64_t kQueryBlock = 8;  // query tiles per forward task

inline float exp_any(float x) { return exp_f32(x); }
inline double exp_any(double x) { return std::exp(x); }

// ---- the per-score loops ------------------------------------------------------
// Everything outside the tile products runs once per score, so these loops
// decide whether the kernel is GEMM-bound. Each keeps kLanes independent
// partial results so that it vectorises without reassociating a sum, and the
// float versions are compiled for AVX-512, AVX2 and baseline x86-64, the best
// chosen when the library loads (target_clones), so vec_math's exp runs at
// the CPU's full vector width although the library is built for any x86-64.
// The lane structure is fixed, so results never depend on the thread count.
constexpr int kLanes = 16;

// x = exp(x - m); returns the sum (lanes in T, combined in double).
template <class T>
__attribute__((always_inline)) inline double exp_shifted_sum(T* x, int64_t n, T m) {
  T lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const T e = exp_any(x[i + j] - m);
      x[i + j] = e;
      lanes[j] += e;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const T e = exp_any(x[i] - m);
    x[i] = e;
    lanes[j] += e;
  }
  double sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += static_cast<double>(lanes[j]);
  return sum;
}

// x = exp(x - m) (the backward's P from the saved log-sum-exp).
template <class T>
__attribute__((always_inline)) inline void exp_shifted(T* x, int64_t n, T m) {
  for (int64_t i = 0; i < n; ++i) x[i] = exp_any(x[i] - m);
}

// dp = p * (dp - di): the softmax's rule, row by row.
template <class T>
__attribute__((always_inline)) inline void softmax_grad(const T* p, T* dp, int64_t n, T di) {
  for (int64_t i = 0; i < n; ++i) dp[i] = p[i] * (dp[i] - di);
}

template <class T>
__attribute__((always_inline)) inline void scale(T* x, int64_t n, T a) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

HEED_ISA_CLONES float row_max(const float* x, int64_t n) { return lane_max(x, n); }
HEED_ISA_CLONES double row_exp_sum(float* x, int64_t n, float m) { return exp_shifted_sum(x, n, m); }
HEED_ISA_CLONES void row_exp(float* x, int64_t n, float m) { exp_shifted(x, n, m); }
HEED_ISA_CLONES void row_softmax_grad(const float* p, float* dp, int64_t n, float di) { softmax_grad(p, dp, n, di); }
HEED_ISA_CLONES void row_scale(float* x, int64_t n, float a) { scale(x, n, a); }
double row_max(const double* x, int64_t n) { return lane_max(x, n); }
double row_exp_sum(double* x, int64_t n, double m) { return exp_shifted_sum(x, n, m); }
void row_exp(double* x, int64_t n, double m) { exp_shifted(x, n, m); }
void row_softmax_grad(const double* p, double* dp, int64_t n, double di) { softmax_grad(p, dp, n, di); }
void row_scale(double* x, int64_t n, double a) { scale(x, n, a); }

// A [B, H, L, w] operand with unit stride on w.
template <class T>
struct Heads {
  const T* data;
  int64_t sb, sh, sl;
  explicit Heads(const Tensor& t)
      : data(static_cast<const T*>(t.raw_data())), sb(t.stride(0)), sh(t.stride(1)), sl(t.stride(2)) {}
  const T* row(int64_t b, int64_t h, int64_t l) const { return data + b * sb + h * sh + l * sl; }
};

struct Dims {
  int64_t B, Hq, Hkv, G, T, S, d, dv;
  explicit Dims(const Tensor& q, const Tensor& k, const Tensor& v)
      : B(q.size(0)), Hq(q.size(1)), Hkv(k.size(1)), G(q.size(1) / k.size(1)), T(q.size(2)), S(k.size(2)),
        d(q.size(3)), dv(v.size(3)) {}
  int64_t query_tile = kQueryTile;  // at most kQueryTile
  int64_t query_tiles() const { return (T + query_tile - 1) / query_tile; }
  int64_t key_tile = kKeyTile;
};

// The dropout factors of one row of a tile: z[c] = keep ? 1 / (1 - p) : 0 for
// the weights (bi, h, i, j0 + c), flat index first_idx + c. keep is
// bernoulli_from's test u < 1 - p on u = (w >> 8) 2^-24, done exactly on the
// integer, (w >> 8) < ceil((1 - p) 2^24), so the loop over Philox blocks
// vectorises and the bits equal nn::dropout's.
template <class T>
__attribute__((always_inline)) inline void keep_factors(uint64_t seed, uint64_t block0, int64_t blocks,
                                                        uint32_t threshold, T inv, T* z) {
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4x32 r = philox_block(seed, block0 + static_cast<uint64_t>(b));
    for (int w = 0; w < 4; ++w) z[b * 4 + w] = (r.w[w] >> 8) < threshold ? inv : T(0);
  }
}
HEED_ISA_CLONES void row_keep_factors(uint64_t seed, uint64_t block0, int64_t blocks, uint32_t threshold, float inv,
                                      float* z) {
  keep_factors(seed, block0, blocks, threshold, inv, z);
}
void row_keep_factors(uint64_t seed, uint64_t block0, int64_t blocks, uint32_t threshold, double inv, double* z) {
  keep_factors(seed, block0, blocks, threshold, inv, z);
}

template <class T>
void dropout_factors(const AttentionArgs& a, uint64_t first_idx, int64_t n, T* z) {
  if (n <= 0) return;
  const double keep_prob = 1.0 - a.dropout_p;
  const auto threshold = static_cast<uint32_t>(std::ceil(keep_prob * 16777216.0));
  const T inv = static_cast<T>(1.0 / keep_prob);
  // Whole Philox blocks covering [first_idx, first_idx + n), into a scratch
  // row aligned to them, then the n wanted factors.
  const uint64_t block0 = first_idx / 4, last = (first_idx + static_cast<uint64_t>(n) - 1) / 4;
  const int64_t blocks = static_cast<int64_t>(last - block0 + 1);
  T scratch[4 * (kKeyTile / 4 + 2)];
  row_keep_factors(a.seed, a.offset + block0, blocks, threshold, inv, scratch);
  std::copy(scratch + first_idx % 4, scratch + first_idx % 4 + n, z);
}

// queries: Q_i packed; keys_t: K^T of the keys from key_base on.
template <class T>
bool scores_tile(const PackedA<T>& queries, const PackedB<T>& keys_t, int64_t key_base, const AttentionPatternView& pat,
                 TileState state, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T scale,
                 T* s) {
  gemm_packed_ab(cols, scale, queries, keys_t, 0, j0 - key_base, T(0), s, kKeyTile, 1);
  if (state == TileState::Full && !pat.has_free_form()) return true;
  const T ninf = -std::numeric_limits<T>::infinity();
  if (pat.is_band() && !pat.has_free_form()) {  // the diagonal tiles of causal / sliding-window attention
    bool any = false;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t lo, hi;
      pat.row_band(i0 + r, &lo, &hi);
      const int64_t c_lo = std::min(cols, std::max<int64_t>(0, lo - j0));
      const int64_t c_hi = std::max(c_lo, std::min(cols, hi - j0));
      T* sr = s + r * kKeyTile;
      std::fill(sr, sr + c_lo, ninf);
      std::fill(sr + c_hi, sr + cols, ninf);
      any = any || c_lo < c_hi;
    }
    return any;
  }
  bool any = false;
  for (int64_t r = 0; r < rows; ++r) {
    T* sr = s + r * kKeyTile;
    for (int64_t c = 0; c < cols; ++c) {
      const bool masked = state == TileState::Full ? pat.free_form_masked(b, h, i0 + r, j0 + c)
                                                   : pat.masked(b, h, i0 + r, j0 + c);
      if (masked) sr[c] = ninf;
      else any = true;
    }
  }
  return any;
}

TileState tile_of(const AttentionPatternView& pat, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  return pat.tile_state(i0, i1, j0, j1, pat.has_global(i0 + pat.shift, i1 + pat.shift), pat.has_global(j0, j1));
}

// Buffers a thread keeps between calls: packing into fresh memory every time
// would page-fault it in again and leave the allocator holding the peaks.
template <class T>
struct Workspace {
  PackedB<T> keys_t, values;  // the backward packs V^T into `values`
  PackedB<T> keys;            // K [S, d], the backward's dQ operand
  PackedA<T> query_a, grad_a;  // Q_i and dO_i as A operands
  std::vector<T> s, dp, o, z, m, delta;
  std::vector<double> l;
};

template <class T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

template <class T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

template <class T>
void forward_impl(const Tensor& qt, const Tensor& kt, const Tensor& vt, const AttentionArgs& args, const Tensor& outt,
                  const Tensor& lset) {
  Dims D(qt, kt, vt);
  if (args.window > 0) D.key_tile = kWindowKeyTile, D.query_tile = kWindowQueryTile;
  const Heads<T> q(qt), k(kt), v(vt);
  T* out = static_cast<T*>(outt.raw_data());
  T* lse = static_cast<T*>(lset.raw_data());
  const AttentionPatternView pat = attention_pattern_view(args, D.T, D.S);
  const T scale = static_cast<T>(args.scale);
  const bool dropout = args.dropout_p > 0;
  const T ninf = -std::numeric_limits<T>::infinity();
  // A task: one kv head of one batch row, every query head of its group, and
  // a block of kQueryBlock query tiles. It packs K^T [d, S] and V [S, dv]
  // once for all of those tiles, so packing is a small share of its work,
  // and long sequences still give every thread tasks.
  const int64_t blocks = (D.query_tiles() + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = D.B * D.Hkv * blocks;

  parallel_for(0, tasks, 1, [&](int64_t tb, int64_t te) {
    Workspace<T>& w = workspace<T>();
    grow(w.s, kQueryTile * kKeyTile);
    grow(w.o, kQueryTile * D.dv);
    grow(w.z, kKeyTile);
    grow(w.m, kQueryTile);
    grow(w.l, kQueryTile);
    T* s = w.s.data();
    T* o = w.o.data();
    T* m = w.m.data();
    double* l = w.l.data();
    for (int64_t task = tb; task < te; ++task) {
      const int64_t block = task % blocks, bhk = task / blocks;
      const int64_t b = bhk / D.Hkv, hk = bhk % D.Hkv;
      const int64_t it_end = std::min(D.query_tiles(), (block + 1) * kQueryBlock);
      // Only the keys some tile of the block attends are packed: a sliding
      // window's block reads O(window) keys, not all S.
      int64_t k_lo = D.S, k_hi = 0;
      for (int64_t it = block * kQueryBlock; it < it_end; ++it) {
        const int64_t i0 = it * D.query_tile, i1 = std::min(D.T, i0 + D.query_tile);
        for (int64_t j0 = 0; j0 < D.S; j0 += D.key_tile)
          if (tile_of(pat, i0, i1, j0, std::min(D.S, j0 + D.key_tile)) != TileState::Empty) {
            k_lo = std::min(k_lo, j0);
            k_hi = std::max(k_hi, std::min(D.S, j0 + D.key_tile));
          }
      }
      if (k_lo >= k_hi) k_lo = k_hi = 0;  // nothing attended: rows finish as fully masked
      w.keys_t.pack(D.d, k_hi - k_lo, k.row(b, hk, k_lo), 1, k.sl);
      w.values.pack(k_hi - k_lo, D.dv, v.row(b, hk, k_lo), v.sl, 1);
      for (int64_t g = 0; g < D.G; ++g)
        for (int64_t it = block * kQueryBlock; it < it_end; ++it) {
          const int64_t h = hk * D.G + g;
          const int64_t i0 = it * D.query_tile, rows = std::min(D.query_tile, D.T - i0);
          w.query_a.pack(rows, D.d, q.row(b, h, i0), q.sl, 1);
          std::fill(m, m + rows, ninf);
          std::fill(l, l + rows, 0.0);
          std::fill(o, o + rows * D.dv, T(0));
          for (int64_t j0 = k_lo; j0 < k_hi; j0 += D.key_tile) {
            const int64_t cols = std::min(D.key_tile, D.S - j0);
            const TileState state = tile_of(pat, i0, i0 + rows, j0, j0 + cols);
            if (state == TileState::Empty) continue;
            if (!scores_tile(w.query_a, w.keys_t, k_lo, pat, state, b, h, i0, rows, j0, cols, scale, s)) continue;
            for (int64_t r = 0; r < rows; ++r) {
              T* sr = s + r * kKeyTile;
              const T m_new = std::max(m[r], static_cast<T>(row_max(sr, cols)));
              if (m_new == ninf) {  // nothing unmasked in this row yet: P = 0
                std::fill(sr, sr + cols, T(0));
                continue;
              }
              const double sum = row_exp_sum(sr, cols, m_new);
              const T rescale = exp_any(m[r] - m_new);  // 0 on the row's first unmasked tile
              l[r] = l[r] * static_cast<double>(rescale) + sum;
              m[r] = m_new;
              if (rescale != T(1)) row_scale(o + r * D.dv, D.dv, rescale);
              if (dropout) {
                const uint64_t idx = static_cast<uint64_t>(((b * D.Hq + h) * D.T + i0 + r) * D.S + j0);
                dropout_factors(args, idx, cols, w.z.data());
                for (int64_t c = 0; c < cols; ++c) sr[c] *= w.z[c];
              }
            }
            gemm_packed_b(rows, D.dv, cols, T(1), s, kKeyTile, int64_t{1}, w.values, j0 - k_lo, 0, T(1), o, D.dv, 1);
          }
          for (int64_t r = 0; r < rows; ++r) {
            T* dst = out + ((b * D.Hq + h) * D.T + i0 + r) * D.dv;
            T* lse_r = lse + (b * D.Hq + h) * D.T + i0 + r;
            if (l[r] == 0) {  // every key masked
              std::fill(dst, dst + D.dv, T(0));
              *lse_r = ninf;
              continue;
            }
            const T inv = static_cast<T>(1.0 / l[r]);
            const T* orow = o + r * D.dv;
            for (int64_t c = 0; c < D.dv; ++c) dst[c] = orow[c] * inv;
            *lse_r = static_cast<T>(static_cast<double>(m[r]) + std::log(l[r]));
          }
        }
    }
  });
}

template <class T>
void backward_impl(const Tensor& got, const Tensor& qt, const Tensor& kt, const Tensor& vt, const Tensor& outt,
                   const Tensor& lset, const AttentionArgs& args, const Tensor& gqt, const Tensor& gkt,
                   const Tensor& gvt) {
  Dims D(qt, kt, vt);
  if (args.window > 0) D.key_tile = kWindowKeyTile, D.query_tile = kWindowQueryTile;
  const Heads<T> q(qt), k(kt), v(vt);
  const T* gout = static_cast<const T*>(got.raw_data());
  const T* out = static_cast<const T*>(outt.raw_data());
  const T* lse = static_cast<const T*>(lset.raw_data());
  T* gq = static_cast<T*>(gqt.raw_data());
  T* gk = static_cast<T*>(gkt.raw_data());
  T* gv = static_cast<T*>(gvt.raw_data());
  const AttentionPatternView pat = attention_pattern_view(args, D.T, D.S);
  const T scale = static_cast<T>(args.scale);
  const bool dropout = args.dropout_p > 0;
  const T ninf = -std::numeric_limits<T>::infinity();

  parallel_for(0, D.B * D.Hkv, 1, [&](int64_t tb, int64_t te) {
    Workspace<T>& w = workspace<T>();
    grow(w.s, kQueryTile * kKeyTile);
    grow(w.dp, kQueryTile * kKeyTile);
    grow(w.z, kQueryTile * kKeyTile);  // the tile's dropout factors, for dV and dS
    grow(w.delta, D.G * D.T);
    T* s = w.s.data();
    T* dp = w.dp.data();
    T* z = w.z.data();
    T* delta = w.delta.data();
    // The operands the task's tile products read, each packed once: K^T
    // [d, S], K [S, d] and V^T [dv, S] per task, Q_i and dO_i per query tile.
    // dV and dK read their A (P^T, dS^T: the score tiles, transposed) and
    // their B (dO_i, Q_i) where they lie: a score tile's columns are the
    // micro-kernel's A panels a row apart, so gemm multiplies them in place.
    PackedB<T>& keys_t = w.keys_t;
    PackedB<T>& values_t = w.values;
    for (int64_t task = tb; task < te; ++task) {
      const int64_t b = task / D.Hkv, hk = task % D.Hkv;
      keys_t.pack(D.d, D.S, k.row(b, hk, 0), 1, k.sl);
      w.keys.pack(D.S, D.d, k.row(b, hk, 0), k.sl, 1);
      values_t.pack(D.dv, D.S, v.row(b, hk, 0), 1, v.sl);
      // Each task owns its rows of the three gradients: clear them, then accumulate.
      for (int64_t g = 0; g < D.G; ++g) {
        const int64_t h = hk * D.G + g;
        std::fill(gq + (b * D.Hq + h) * D.T * D.d, gq + (b * D.Hq + h + 1) * D.T * D.d, T(0));
        for (int64_t i = 0; i < D.T; ++i) {  // D_i = rowsum(dO * O), in double
          const T* go = gout + ((b * D.Hq + h) * D.T + i) * D.dv;
          const T* o = out + ((b * D.Hq + h) * D.T + i) * D.dv;
          double acc = 0;
          for (int64_t c = 0; c < D.dv; ++c) acc += static_cast<double>(go[c]) * static_cast<double>(o[c]);
          delta[g * D.T + i] = static_cast<T>(acc);
        }
      }
      T* gk_head = gk + (b * D.Hkv + hk) * D.S * D.d;
      T* gv_head = gv + (b * D.Hkv + hk) * D.S * D.dv;
      std::fill(gk_head, gk_head + D.S * D.d, T(0));
      std::fill(gv_head, gv_head + D.S * D.dv, T(0));

      // Every dK_j, dV_j sums its (head, query tile) terms in the same order
      // as every dQ_i sums its key tiles: ascending, whatever the threads.
      for (int64_t g = 0; g < D.G; ++g) {
        const int64_t h = hk * D.G + g;
        for (int64_t i0 = 0; i0 < D.T; i0 += D.query_tile) {
          const int64_t rows = std::min(D.query_tile, D.T - i0);
          const T* go_i = gout + ((b * D.Hq + h) * D.T + i0) * D.dv;
          w.query_a.pack(rows, D.d, q.row(b, h, i0), q.sl, 1);
          w.grad_a.pack(rows, D.dv, go_i, D.dv, 1);
          for (int64_t j0 = 0; j0 < D.S; j0 += D.key_tile) {
            const int64_t cols = std::min(D.key_tile, D.S - j0);
            const TileState state = tile_of(pat, i0, i0 + rows, j0, j0 + cols);
            if (state == TileState::Empty) continue;
            if (!scores_tile(w.query_a, keys_t, 0, pat, state, b, h, i0, rows, j0, cols, scale, s)) continue;
            const T* lse_i = lse + (b * D.Hq + h) * D.T + i0;
            // P (in s) and, with dropout, the dropped P (in dp, for dV).
            for (int64_t r = 0; r < rows; ++r) {
              T* sr = s + r * kKeyTile;
              if (lse_i[r] == ninf) {
                std::fill(sr, sr + cols, T(0));
              } else {
                row_exp(sr, cols, lse_i[r]);
              }
              if (dropout) {
                const uint64_t idx = static_cast<uint64_t>(((b * D.Hq + h) * D.T + i0 + r) * D.S + j0);
                T* zr = z + r * kKeyTile;
                dropout_factors(args, idx, cols, zr);
                T* dr = dp + r * kKeyTile;
                for (int64_t c = 0; c < cols; ++c) dr[c] = sr[c] * zr[c];
              }
            }
            // dV_j += P^T dO_i  (P dropped when dropout is on)
            const T* p_used = dropout ? dp : s;
            gemm(cols, D.dv, rows, T(1), p_used, int64_t{1}, kKeyTile, go_i, D.dv, 1, T(1), gv_head + j0 * D.dv,
                 D.dv, 1);
            // dP = dO_i V_j^T
            gemm_packed_ab(cols, T(1), w.grad_a, values_t, 0, j0, T(0), dp, kKeyTile, 1);
            // dS = P (dP z - D_i), into dp
            for (int64_t r = 0; r < rows; ++r) {
              const T* sr = s + r * kKeyTile;
              T* dr = dp + r * kKeyTile;
              const T di = delta[g * D.T + i0 + r];
              if (dropout) {
                const T* zr = z + r * kKeyTile;
                for (int64_t c = 0; c < cols; ++c) dr[c] = sr[c] * (dr[c] * zr[c] - di);
              } else {
                row_softmax_grad(sr, dr, cols, di);
              }
            }
            // dQ_i += dS K_j * scale;  dK_j += dS^T Q_i * scale
            gemm_packed_b(rows, D.d, cols, scale, dp, kKeyTile, int64_t{1}, w.keys, j0, 0, T(1),
                          gq + ((b * D.Hq + h) * D.T + i0) * D.d, D.d, 1);
            gemm(cols, D.d, rows, scale, dp, int64_t{1}, kKeyTile, q.row(b, h, i0), q.sl, 1, T(1),
                 gk_head + j0 * D.d, D.d, 1);
          }
        }
      }
    }
  });
}

void check_operands(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  HEED_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.stride(3) == 1 && k.stride(3) == 1 &&
                 v.stride(3) == 1,
             "cpu {}: q, k, v must be 4-D with unit stride on the last dim", op);
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args, const Tensor& out,
                       const Tensor& lse) {
  check_operands("attention_forward", q, k, v);
  if (q.dtype() == DType::BFloat16) {  // lse is float32 already
    Tensor out32 = float32_like(out);
    attention_forward(widened(q), widened(k), widened(v), args, out32, lse);
    return store_rounded(out32, out);
  }
  if (out.numel() == 0) return;
  dispatch_floating(q.dtype(), "cpu attention_forward",
                    [&](auto zero) { forward_impl<decltype(zero)>(q, k, v, args, out, lse); });
}

void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const AttentionArgs& args, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v) {
  check_operands("attention_backward", q, k, v);
  if (q.dtype() == DType::BFloat16) {
    Tensor gq32 = float32_like(grad_q), gk32 = float32_like(grad_k), gv32 = float32_like(grad_v);
    attention_backward(widened(grad_out), widened(q), widened(k), widened(v), widened(out), lse, args, gq32, gk32,
                       gv32);
    store_rounded(gq32, grad_q);
    store_rounded(gk32, grad_k);
    return store_rounded(gv32, grad_v);
  }
  if (grad_q.numel() + grad_k.numel() + grad_v.numel() == 0) return;
  dispatch_floating(q.dtype(), "cpu attention_backward", [&](auto zero) {
    backward_impl<decltype(zero)>(grad_out, q, k, v, out, lse, args, grad_q, grad_k, grad_v);
  });
}

}  // namespace heed::cpu

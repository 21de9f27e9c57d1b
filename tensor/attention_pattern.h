#pragma once
// Which (query, key) pairs a fused attention kernel must skip, in a form both
// devices read: the structural parts (causal, sliding window, global tokens,
// a block layout) as rules the kernel can apply to a whole tile at once, and
// the free-form parts (any broadcast Bool mask, key padding) as strided bytes
// read element by element.
//
// Indices are local: query i in [0, T), key j in [0, S); query i sits at
// position p = i + shift with shift = S - T (queries are the last T of the S
// key positions, as nn::scaled_dot_product_attention defines). A pair is
// masked when ANY part masks it:
//   causal               j > p
//   window w > 0         causal: j <= p - w;   not causal: |p - j| >= w
//                        ...unless p or j is a global position (Longformer)
//   layout (block b)     layout[i / b][j / b] is false
//   mask                 mask[bi, h, i, j] (strides 0 on broadcast dims)
//   key_padding          key_padding[bi, j]
// The structural parts decide whole tiles (tile_state): a tile they mask
// entirely is never computed, which is what makes a sliding window of width w
// cost O(T w) instead of O(T S).
#include <cstdint>

#include "tensor/hd.h"
#include "tensor/philox.h"

namespace heed {

enum class TileState : uint8_t {
  Empty,    // every pair masked by structure: skip the tile
  Partial,  // some pairs masked: test each element
  Full,     // nothing masked by structure (free-form masks may still mask)
};

struct AttentionPatternView {
  int64_t T = 0, S = 0, shift = 0;
  bool causal = false;
  int64_t window = 0;
  const uint8_t* global = nullptr;  // [S] by key position, 1 = global; null: none
  const uint8_t* layout = nullptr;  // [ceil(T / block), layout_cols], 1 = attend; null: none
  int64_t block = 0, layout_cols = 0;
  const uint8_t* mask = nullptr;  // 1 = masked, element (bi, h, i, j) at the strides below
  int64_t mask_stride[4] = {0, 0, 0, 0};
  const uint8_t* key_padding = nullptr;  // 1 = padding, element (bi, j) at the strides below
  int64_t padding_stride[2] = {0, 0};

  HEED_HD bool has_free_form() const { return mask != nullptr || key_padding != nullptr; }

  HEED_HD bool outside_window(int64_t p, int64_t j) const {
    if (causal) return j <= p - window;
    const int64_t gap = p > j ? p - j : j - p;
    return gap >= window;
  }

  // Masked by the structural parts alone.
  HEED_HD bool structural_masked(int64_t i, int64_t j) const {
    const int64_t p = i + shift;
    if (causal && j > p) return true;
    // p < 0 only when T > S (no causal mask then): such a query is no position, so never global.
    if (window > 0 && outside_window(p, j) && !(global && ((p >= 0 && global[p]) || global[j]))) return true;
    if (layout && !layout[(i / block) * layout_cols + j / block]) return true;
    return false;
  }

  HEED_HD bool free_form_masked(int64_t bi, int64_t h, int64_t i, int64_t j) const {
    if (mask && mask[bi * mask_stride[0] + h * mask_stride[1] + i * mask_stride[2] + j * mask_stride[3]]) return true;
    if (key_padding && key_padding[bi * padding_stride[0] + j * padding_stride[1]]) return true;
    return false;
  }

  HEED_HD bool masked(int64_t bi, int64_t h, int64_t i, int64_t j) const {
    return structural_masked(i, j) || free_form_masked(bi, h, i, j);
  }

  // Causal and window alone leave each query one interval of keys: then
  // row_band gives it, [lo, hi) (empty when lo >= hi), so a kernel can mask a
  // row with two fills instead of testing each element.
  HEED_HD bool is_band() const { return global == nullptr && layout == nullptr; }
  HEED_HD void row_band(int64_t i, int64_t* lo, int64_t* hi) const {
    const int64_t p = i + shift;
    int64_t a = 0, b = S;
    if (causal && p + 1 < b) b = p + 1;
    if (window > 0) {
      if (p - window + 1 > a) a = p - window + 1;
      if (!causal && p + window < b) b = p + window;
    }
    *lo = a;
    *hi = b;
  }

  // The structural verdict on queries [i0, i1) x keys [j0, j1) (both
  // non-empty). rows_global / cols_global: whether any query position in the
  // tile / key in the tile is global (the caller knows its tiles; see
  // has_global). Exact for causal and window; for a layout it inspects the
  // blocks the tile overlaps.
  HEED_HD TileState tile_state(int64_t i0, int64_t i1, int64_t j0, int64_t j1, bool rows_global,
                               bool cols_global) const {
    const int64_t p0 = i0 + shift, p1 = i1 - 1 + shift;  // first and last query position
    bool full = true;
    if (causal) {
      if (j0 > p1) return TileState::Empty;  // every key after every query
      if (j1 - 1 > p0) full = false;
    }
    if (window > 0) {
      // Inside the window for some pair?  Causal: p - w < j (and j <= p, above).
      // Not causal: |p - j| < w.
      const bool some_inside = causal ? (j1 - 1 > p0 - window) : (j1 - 1 > p0 - window && j0 < p1 + window);
      const bool all_inside = causal ? (j0 > p1 - window) : (j0 > p1 - window && j1 - 1 < p0 + window);
      const bool globals = rows_global || cols_global;
      if (!some_inside && !globals) return TileState::Empty;
      if (!all_inside) full = false;
    }
    if (layout) {
      bool any = false, all = true;
      for (int64_t bi = i0 / block; bi <= (i1 - 1) / block; ++bi)
        for (int64_t bj = j0 / block; bj <= (j1 - 1) / block; ++bj) {
          const bool attend = layout[bi * layout_cols + bj] != 0;
          any = any || attend;
          all = all && attend;
        }
      if (!any) return TileState::Empty;
      if (!all) full = false;
    }
    return full ? TileState::Full : TileState::Partial;
  }

  // Whether any of the positions [a, b) is global.
  HEED_HD bool has_global(int64_t a, int64_t b) const {
    if (!global) return false;
    for (int64_t x = a < 0 ? 0 : a; x < b && x < S; ++x)
      if (global[x]) return true;
    return false;
  }
};

// Dropout on the attention probabilities draws exactly what nn::dropout
// draws for the [B, Hq, T, S] weights of the composed path: element
// idx = ((bi * Hq + h) * T + i) * S + j keeps its weight when its Bernoulli
// sample (word idx % 4 of Philox block offset + idx / 4, tensor/philox.h)
// is 1 with probability 1 - p. So the fused and the composed path, on any
// device, drop the same weights for the same generator state.
HEED_HD inline bool attention_dropout_keep(uint64_t seed, uint64_t offset, uint64_t idx, double keep_prob) {
  const Philox4x32 block = philox_block(seed, offset + idx / 4);
  return bernoulli_from(&block.w[idx % 4], keep_prob);
}

}  // namespace heed

#pragma once
// The index math of the CUDA indexing kernels (cuda/index.cu), written once
// for both sides: each kernel is a grid-stride loop around one of the
// per-element functions below, and tests/cuda_index_math_test.cpp runs the
// very same functions on the CPU against the CPU kernels. No heed headers, so
// nvcc compiles it without them; the builders are plain host code.
//
// Shapes are written outermost first and strides are in elements. A "walk" is
// a row-major traversal of one shape by N operands, each with its own strides:
// walk.at(p) gives every operand's offset at row-major position p.
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/hd.h"
#include "tensor/bfloat16.h"

namespace heed::cuda {

// As many dims as the CPU's strided loops take (tensor/cpu/strided_loop.h).
constexpr int kMaxIndexDims = 16;

template <int N>
struct StridedWalk {
  int ndim = 0;                              // after merging; 0 for a scalar
  int64_t size[kMaxIndexDims] = {};          // outermost first
  int64_t stride[N][kMaxIndexDims] = {};     // operand k's stride of each dim

  // offset[k] = operand k's offset (in elements) at row-major position p.
  HEED_HD void at(int64_t p, int64_t* offset) const {
    for (int k = 0; k < N; ++k) offset[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t c = p % size[d];
      p /= size[d];
      for (int k = 0; k < N; ++k) offset[k] += c * stride[k][d];
    }
  }
};

// The walk of `shape` by N operands with strides[k] (each as long as shape).
// Keeps row-major order (positions mean something to the callers: the
// contiguous output's offset, the index of a bad entry) and only drops size-1
// dims and merges neighbours that are contiguous in every operand. False when
// more than kMaxIndexDims dims remain.
template <int N>
bool make_walk(const std::vector<int64_t>& shape, const std::array<const std::vector<int64_t>*, N>& strides,
               StridedWalk<N>& walk) {
  walk = StridedWalk<N>{};
  int m = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (m > 0) {  // merge into the previous dim when every operand allows it
      bool merge = true;
      for (int k = 0; k < N; ++k)
        merge = merge && walk.stride[k][m - 1] == (*strides[k])[d] * shape[d];
      if (merge) {
        walk.size[m - 1] *= shape[d];
        for (int k = 0; k < N; ++k) walk.stride[k][m - 1] = (*strides[k])[d];
        continue;
      }
    }
    if (m == kMaxIndexDims) return false;
    walk.size[m] = shape[d];
    for (int k = 0; k < N; ++k) walk.stride[k][m] = (*strides[k])[d];
    ++m;
  }
  walk.ndim = m;
  return true;
}

HEED_HD inline bool index_in_range(int64_t v, int64_t size) { return v >= 0 && v < size; }

// dst += v; integers wrap instead of overflowing (as on the CPU).
template <class T>
HEED_HD inline void add_into(T* dst, T v) {
  *dst = *dst + v;
}
template <>
HEED_HD inline void add_into<int64_t>(int64_t* dst, int64_t v) {
  *dst = static_cast<int64_t>(static_cast<uint64_t>(*dst) + static_cast<uint64_t>(v));
}
template <>
HEED_HD inline void add_into<uint8_t>(uint8_t* dst, uint8_t v) {
  *dst = static_cast<uint8_t>(static_cast<unsigned>(*dst) + static_cast<unsigned>(v));
}

// ---- checking an index tensor -----------------------------------------------

// Every entry of a (strided) int64 index tensor must lie in [0, size).
struct IndexCheckArgs {
  StridedWalk<1> walk;  // over the index's shape: the index
  int64_t size;         // the indexed dim's size
};

// Entry p of the index (row-major position) and whether it is in range.
HEED_HD inline bool check_index_entry(const IndexCheckArgs& a, const int64_t* index, int64_t p, int64_t* value) {
  int64_t off;
  a.walk.at(p, &off);
  *value = index[off];
  return index_in_range(*value, a.size);
}

// ---- index_select: out [outer, n, inner] = x [outer, index[i], inner] -------

struct IndexSelectArgs {
  StridedWalk<1> outer;  // x's dims before dim: x
  StridedWalk<1> inner;  // x's dims after dim: x
  int64_t n;             // index entries (out's size along dim)
  int64_t inner_numel;   // elements of out after dim
  int64_t size;          // x's size along dim
  int64_t x_step;        // x's stride along dim
  int64_t index_step;    // the 1-d index's stride (0 for a 0-d index)
};

// The offset in x read by element e of the contiguous out. False when the
// index entry used is out of range: then *bad is its position and x is not read.
HEED_HD inline bool index_select_source(const IndexSelectArgs& a, const int64_t* index, int64_t e, int64_t* x_offset,
                                        int64_t* bad) {
  const int64_t j = e % a.inner_numel, r = e / a.inner_numel;
  const int64_t i = r % a.n, o = r / a.n;
  const int64_t v = index[i * a.index_step];
  if (!index_in_range(v, a.size)) {
    *bad = i;
    return false;
  }
  int64_t outer_off, inner_off;
  a.outer.at(o, &outer_off);
  a.inner.at(j, &inner_off);
  *x_offset = outer_off + v * a.x_step + inner_off;
  return true;
}

// ---- gather: out[p] = x[p with coordinate dim replaced by index[p]] ---------

struct GatherArgs {
  StridedWalk<2> walk;  // over out's (= the index's) shape: x with stride 0 along dim, the index
  int64_t size;         // x's size along dim (1 for a 0-d x)
  int64_t x_step;       // x's stride along dim (0 for a 0-d x)
};

// The offset in x read by element e of the contiguous out; false (x not read)
// when index entry e is out of range.
HEED_HD inline bool gather_source(const GatherArgs& a, const int64_t* index, int64_t e, int64_t* x_offset) {
  int64_t off[2];
  a.walk.at(e, off);
  const int64_t v = index[off[1]];
  if (!index_in_range(v, a.size)) return false;
  *x_offset = off[0] + v * a.x_step;
  return true;
}

// ---- scatter_add: dst[..index[..i..]..] += src[..i..] along dim -------------

// The work is split over lines: the positions of the index with dim left out.
// Each line adds its n sources in increasing i, and two lines never touch the
// same dst element, so every dst element sums its contributions in source
// order, exactly as on the CPU, without atomics.
struct ScatterAddArgs {
  StridedWalk<3> lines;  // over the index's shape without dim: dst, src, index
  int64_t n;             // the index's size along dim
  int64_t dst_step, src_step, index_step;  // strides along dim
};

// Line `line`; the index entries have been checked.
template <class T>
HEED_HD inline void scatter_add_line(const ScatterAddArgs& a, T* dst, const T* src, const int64_t* index,
                                     int64_t line) {
  int64_t off[3];
  a.lines.at(line, off);
  for (int64_t i = 0; i < a.n; ++i) {
    const int64_t v = index[off[2] + i * a.index_step];
    add_into(dst + off[0] + v * a.dst_step, src[off[1] + i * a.src_step]);
  }
}

// ---- index_add: dst [outer, size, inner] += src [outer, n, inner] rows ------

// The entries of the index sorted stably by value (keys: the sorted values,
// order: their positions) put the sources of one destination row next to each
// other, in increasing position. A thread per (outer, sorted position, inner)
// element that starts a run of equal keys sums the whole run into its dst
// element, in that order: the CPU's order, so the sums are bit-identical.
struct IndexAddArgs {
  StridedWalk<1> outer;  // src's dims before dim: src
  StridedWalk<1> inner;  // src's dims after dim: src
  int64_t n;             // index entries (src's size along dim)
  int64_t inner_numel;   // elements of dst after dim
  int64_t size;          // dst's size along dim
  int64_t src_step;      // src's stride along dim
};

// Work item t of outer * n * inner_numel (inner fastest); dst is contiguous.
// The run is summed in compute_t<T> (float for bfloat16) and rounded once.
template <class T>
HEED_HD inline void index_add_run(const IndexAddArgs& a, T* dst, const T* src, const uint64_t* keys,
                                  const int64_t* order, int64_t t) {
  const int64_t j = t % a.inner_numel, r = t / a.inner_numel;
  const int64_t k = r % a.n, o = r / a.n;
  if (k > 0 && keys[k] == keys[k - 1]) return;  // inside a run: its first thread does it
  const uint64_t row = keys[k];
  int64_t outer_off, inner_off;
  a.outer.at(o, &outer_off);
  a.inner.at(j, &inner_off);
  T* d = dst + (o * a.size + static_cast<int64_t>(row)) * a.inner_numel + j;
  using C = compute_t<T>;
  C acc = static_cast<C>(*d);
  for (int64_t q = k; q < a.n && keys[q] == row; ++q)
    add_into(&acc, static_cast<C>(src[outer_off + order[q] * a.src_step + inner_off]));
  *d = static_cast<T>(acc);
}

// Bits of the largest key, size - 1 (at least 1): what the radix sort must look at.
inline int key_bits(int64_t size) {
  int bits = 1;
  while (bits < 63 && (uint64_t{1} << bits) < static_cast<uint64_t>(size)) ++bits;
  return bits;
}

}  // namespace heed::cuda

#pragma once
// The one N-d strided iteration helper every CPU kernel uses.
//
// A StridedPlan describes N operands that share a shape, each with its own
// strides. Building it drops size-1 dims, puts the dims in the order of operand
// 0's strides (so a transposed output is still written front to back) and
// merges dims that are contiguous in every operand, so the common case of
// contiguous tensors becomes one flat dim. Walking it hands the kernel runs of
// the innermost dim: fn(ptrs, byte_strides, n), which the kernel turns into a
// plain loop the compiler vectorises (see map1/map2/map3 below).
//
// for_each splits the flat index range into chunks of a fixed number of
// elements with parallel_for. The chunks depend only on the element count and
// the grain, so work is cut the same way for any thread count (elementwise
// results never depend on the cut anyway: each element is computed alone).
#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "tensor/cpu/parallel.h"
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace heed::cpu {

// Elements per chunk for cheap elementwise work (a few ns per element) and for
// transcendental work (exp, erf, pow: tens of ns per element).
constexpr int64_t kGrainCheap = 32768;
constexpr int64_t kGrainCostly = 4096;
constexpr int kMaxLoopDims = 16;

template <int N>
struct StridedPlan {
  int ndim = 0;                               // after coalescing; 1 at least
  int64_t numel = 0;
  int64_t shape[kMaxLoopDims] = {};           // outermost first
  int64_t strides[N][kMaxLoopDims] = {};      // in bytes

  // Serially walks flat indices [begin, end) (row-major over `shape`) from the
  // operands' base pointers, calling fn(ptrs, inner_byte_strides, n) per run.
  template <class F>
  void walk(char* const* base, int64_t begin, int64_t end, F&& fn) const {
    if (begin >= end) return;
    const int inner = ndim - 1;
    int64_t idx[kMaxLoopDims];
    char* p[N];
    int64_t rem = begin;
    for (int d = inner; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    int64_t inner_strides[N];
    for (int k = 0; k < N; ++k) {
      p[k] = base[k];
      for (int d = 0; d <= inner; ++d) p[k] += idx[d] * strides[k][d];
      inner_strides[k] = strides[k][inner];
    }
    for (;;) {
      const int64_t n = std::min(shape[inner] - idx[inner], end - begin);
      fn(static_cast<char* const*>(p), static_cast<const int64_t*>(inner_strides), n);
      begin += n;
      if (begin >= end) return;
      // The run ended at the end of the inner dim: carry into the outer dims.
      for (int k = 0; k < N; ++k) p[k] += (n - shape[inner]) * inner_strides[k];
      idx[inner] = 0;
      for (int d = inner - 1; d >= 0; --d) {
        for (int k = 0; k < N; ++k) p[k] += strides[k][d];
        if (++idx[d] < shape[d]) break;
        for (int k = 0; k < N; ++k) p[k] -= shape[d] * strides[k][d];
        idx[d] = 0;
      }
    }
  }
};

// Plans N operands of `shape`; strides[k] are operand k's strides in elements
// and itemsize[k] its element size in bytes. reorder = false keeps the
// row-major order of `shape` (for kernels whose visiting order matters).
template <int N>
StridedPlan<N> make_plan(const Shape& shape, const std::array<const Shape*, N>& strides,
                         const std::array<int64_t, N>& itemsize, bool reorder = true) {
  StridedPlan<N> plan;
  plan.numel = numel_of(shape);
  // Keep the dims of size != 1, outermost first.
  int dims[64];
  int nd = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    HEED_CHECK(nd < 64, "strided loop: too many dims ({})", shape.size());
    dims[nd++] = static_cast<int>(d);
  }
  auto stride_of = [&](int k, int d) { return (*strides[k])[d] * itemsize[k]; };
  auto mag = [](int64_t s) { return s < 0 ? -s : s; };
  if (reorder) {
    // Stable: dims with equal operand-0 strides (e.g. both 0) keep their order.
    std::stable_sort(dims, dims + nd, [&](int a, int b) { return mag(stride_of(0, a)) > mag(stride_of(0, b)); });
  }
  // Merge each dim into the running (outer) one when, in every operand, a step
  // of the outer dim equals a full sweep of this one.
  int64_t sh[64];
  int64_t st[N][64];
  int m = 0;
  for (int j = 0; j < nd; ++j) {
    const int d = dims[j];
    bool merge = m > 0;
    for (int k = 0; k < N && merge; ++k) merge = st[k][m - 1] == stride_of(k, d) * shape[d];
    if (merge) {
      sh[m - 1] *= shape[d];
      for (int k = 0; k < N; ++k) st[k][m - 1] = stride_of(k, d);
    } else {
      sh[m] = shape[d];
      for (int k = 0; k < N; ++k) st[k][m] = stride_of(k, d);
      ++m;
    }
  }
  if (m == 0) {  // a scalar or all dims 1: one element
    sh[0] = 1;
    for (int k = 0; k < N; ++k) st[k][0] = itemsize[k];
    m = 1;
  }
  HEED_CHECK(m <= kMaxLoopDims, "strided loop: {} dims that cannot be merged (at most {})", m, kMaxLoopDims);
  plan.ndim = m;
  for (int i = 0; i < m; ++i) {
    plan.shape[i] = sh[i];
    for (int k = 0; k < N; ++k) plan.strides[k][i] = st[k][i];
  }
  return plan;
}

// Walks the whole plan in parallel chunks of `grain` elements.
template <int N, class F>
void for_each(const StridedPlan<N>& plan, const std::array<char*, N>& base, int64_t grain, F&& fn) {
  if (plan.numel == 0) return;
  if (plan.numel <= grain) return plan.walk(base.data(), 0, plan.numel, fn);
  parallel_for(0, plan.numel, grain, [&](int64_t b, int64_t e) { plan.walk(base.data(), b, e, fn); });
}

inline char* bytes_of(const Tensor& t) { return static_cast<char*>(t.raw_data()); }

// ---- typed elementwise maps -------------------------------------------------
// out = f(x...) over tensors of out's shape, with a contiguous fast path (and a
// broadcast-scalar one for two inputs) that the compiler vectorises.

// The contiguous runs of a map, handed whole to a function of their own (a
// loop compiled for several instruction sets, say); the default runs f.
struct NoSpan {};

template <class Out, class In, class F, class Span = NoSpan>
void map1(const Tensor& out, const Tensor& x, int64_t grain, F f, Span span = {}) {
  auto plan = make_plan<2>(out.shape(), {&out.strides(), &x.strides()},
                           {int64_t(sizeof(Out)), int64_t(sizeof(In))});
  for_each(plan, {bytes_of(out), bytes_of(x)}, grain, [&](char* const* p, const int64_t* s, int64_t n) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const In* a = reinterpret_cast<const In*>(p[1]);
    if (s[0] == sizeof(Out) && s[1] == sizeof(In)) {
      if constexpr (std::is_same_v<Span, NoSpan>) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
      } else {
        span(o, a, n);
      }
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[1] + i * s[1]));
    }
  });
}

template <class Out, class In, class F, class Span = NoSpan>
void map2(const Tensor& out, const Tensor& x, const Tensor& y, int64_t grain, F f, Span span = {}) {
  auto plan = make_plan<3>(out.shape(), {&out.strides(), &x.strides(), &y.strides()},
                           {int64_t(sizeof(Out)), int64_t(sizeof(In)), int64_t(sizeof(In))});
  for_each(plan, {bytes_of(out), bytes_of(x), bytes_of(y)}, grain,
           [&](char* const* p, const int64_t* s, int64_t n) {
             Out* o = reinterpret_cast<Out*>(p[0]);
             const In* a = reinterpret_cast<const In*>(p[1]);
             const In* b = reinterpret_cast<const In*>(p[2]);
             constexpr int64_t so = sizeof(Out), si = sizeof(In);
             if (s[0] == so && s[1] == si && s[2] == si) {
               if constexpr (std::is_same_v<Span, NoSpan>) {
                 for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
               } else {
                 span(o, a, b, n);
               }
             } else if (s[0] == so && s[1] == si && s[2] == 0) {
               const In bv = b[0];
               for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
             } else if (s[0] == so && s[1] == 0 && s[2] == si) {
               const In av = a[0];
               for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
             } else {
               for (int64_t i = 0; i < n; ++i)
                 *reinterpret_cast<Out*>(p[0] + i * s[0]) =
                     f(*reinterpret_cast<const In*>(p[1] + i * s[1]), *reinterpret_cast<const In*>(p[2] + i * s[2]));
             }
           });
}

// out = f(c, x, y) with c of type C and x, y, out of type T (for where).
template <class T, class C, class F>
void map3(const Tensor& out, const Tensor& c, const Tensor& x, const Tensor& y, int64_t grain, F f) {
  auto plan = make_plan<4>(out.shape(), {&out.strides(), &c.strides(), &x.strides(), &y.strides()},
                           {int64_t(sizeof(T)), int64_t(sizeof(C)), int64_t(sizeof(T)), int64_t(sizeof(T))});
  for_each(plan, {bytes_of(out), bytes_of(c), bytes_of(x), bytes_of(y)}, grain,
           [&](char* const* p, const int64_t* s, int64_t n) {
             constexpr int64_t st = sizeof(T), sc = sizeof(C);
             if (s[0] == st && s[1] == sc && s[2] == st && s[3] == st) {
               T* o = reinterpret_cast<T*>(p[0]);
               const C* cc = reinterpret_cast<const C*>(p[1]);
               const T* a = reinterpret_cast<const T*>(p[2]);
               const T* b = reinterpret_cast<const T*>(p[3]);
               for (int64_t i = 0; i < n; ++i) o[i] = f(cc[i], a[i], b[i]);
             } else {
               for (int64_t i = 0; i < n; ++i)
                 *reinterpret_cast<T*>(p[0] + i * s[0]) = f(*reinterpret_cast<const C*>(p[1] + i * s[1]),
                                                            *reinterpret_cast<const T*>(p[2] + i * s[2]),
                                                            *reinterpret_cast<const T*>(p[3] + i * s[3]));
             }
           });
}

}  // namespace heed::cpu

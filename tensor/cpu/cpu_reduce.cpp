// Reductions: sum, prod, max, min over any set of dims of a strided tensor,
// and argmax / argmin over one dim.
//
// Determinism: every output is folded in an order fixed by the shapes and
// strides alone. Work is split over outputs (each output computed whole by one
// chunk) or, when there are too few outputs to keep threads busy, over fixed
// blocks of the reduced elements whose partial results are combined in block
// order. Neither cut looks at the thread count.
//
// Two ways to fold, picked from the layout:
//  - per output: walk the reduced elements, spreading them over kLanes
//    independent accumulators (element i of a run goes to lane i % kLanes) so
//    the loop vectorises without reassociating, then merge the lanes in order;
//  - vertical, when the kept dims are the contiguous ones (sum over rows of a
//    [N, D] matrix): a tile of adjacent outputs is updated row by row, each
//    output still folding its elements in row order.
#include <algorithm>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/strided_loop.h"

namespace heed::cpu {
namespace {

constexpr int kLanes = 8;
constexpr int kTile = 128;             // outputs per vertical tile
constexpr int64_t kWork = 32768;       // reduced elements per parallel chunk
constexpr int64_t kBlock = 32768;      // reduced elements per block when splitting one output
constexpr int64_t kMinChunks = 8;      // fewer output chunks than this: split the reduced dims

// Sums and products accumulate floats (bfloat16 too) in double and integers
// in uint64 (which wraps like two's complement instead of overflowing).
template <class T>
using WideAcc = std::conditional_t<is_floating_type_v<T>, double, uint64_t>;

template <class T>
struct SumOp {
  using Acc = WideAcc<T>;
  static Acc init() { return Acc(0); }
  static Acc step(Acc a, T v) { return a + static_cast<Acc>(v); }
  static Acc merge(Acc a, Acc b) { return a + b; }
};
template <class T>
struct ProdOp {
  using Acc = WideAcc<T>;
  static Acc init() { return Acc(1); }
  static Acc step(Acc a, T v) { return a * static_cast<Acc>(v); }
  static Acc merge(Acc a, Acc b) { return a * b; }
};
// NaN wins: once the accumulator is NaN no comparison replaces it.
template <class T>
struct MaxOp {
  using Acc = T;
  static Acc init() { return std::numeric_limits<T>::has_infinity ? Acc(-std::numeric_limits<T>::infinity()) : std::numeric_limits<T>::lowest(); }
  static Acc step(Acc a, T v) { return (v > a || v != v) ? v : a; }
  static Acc merge(Acc a, Acc b) { return step(a, b); }
};
template <class T>
struct MinOp {
  using Acc = T;
  static Acc init() { return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max(); }
  static Acc step(Acc a, T v) { return (v < a || v != v) ? v : a; }
  static Acc merge(Acc a, Acc b) { return step(a, b); }
};

// An accumulator as the output dtype; wrapped integer sums go back through int64.
template <class Out, class Acc>
Out to_out(Acc a) {
  if constexpr (std::is_same_v<Out, bool>) {
    return a != Acc(0);
  } else if constexpr (std::is_same_v<Acc, uint64_t>) {
    return static_cast<Out>(static_cast<int64_t>(a));
  } else {
    return static_cast<Out>(a);
  }
}

// The split of x's dims: kept ones (with out's strides) and reduced ones.
struct Geometry {
  Shape kept_shape, kept_out_strides, kept_x_strides;
  Shape red_shape, red_x_strides;
  int64_t n_out = 1, n_red = 1;
};

Geometry split_dims(const Tensor& x, const Tensor& out, const char* name) {
  HEED_CHECK(x.dim() == out.dim(), "cpu {}: out has {} dims, x has {}", name, out.dim(), x.dim());
  Geometry g;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t xs = x.shape()[d], os = out.shape()[d];
    HEED_CHECK(os == xs || os == 1, "cpu {}: out shape {} does not fit x shape {}", name, shape_str(out.shape()),
               shape_str(x.shape()));
    if (os == xs) {
      g.kept_shape.push_back(xs);
      g.kept_out_strides.push_back(out.strides()[d]);
      g.kept_x_strides.push_back(x.strides()[d]);
      g.n_out *= xs;
    } else {
      g.red_shape.push_back(xs);
      g.red_x_strides.push_back(x.strides()[d]);
      g.n_red *= xs;
    }
  }
  return g;
}

template <class T, class Op>
struct Reducer {
  using Acc = typename Op::Acc;
  StridedPlan<2> kept;  // {out, x} over the kept dims, in out's order
  StridedPlan<1> red;   // x over the reduced dims, innermost = smallest stride
  bool vertical = false;

  // Folds the reduced elements [rb, re) of one output whose x element 0 is at px.
  Acc fold_one(const char* px, int64_t rb, int64_t re) const {
    Acc lanes[kLanes];
    for (auto& l : lanes) l = Op::init();
    auto run = [&](const char* q, int64_t stride, int64_t m) {
      int64_t i = 0;
      if (stride == int64_t(sizeof(T))) {
        const T* v = reinterpret_cast<const T*>(q);
        for (; i + kLanes <= m; i += kLanes) {
          // Kept a loop so that the loop vectoriser, which handles the
          // selects of max/min, sees it (fully unrolled, it stays scalar).
#pragma GCC unroll 1
          for (int j = 0; j < kLanes; ++j) lanes[j] = Op::step(lanes[j], v[i + j]);
        }
        for (int j = 0; i < m; ++i, ++j) lanes[j] = Op::step(lanes[j], v[i]);
      } else {
        for (int64_t j = 0; i < m; ++i, j = (j + 1) % kLanes)
          lanes[j] = Op::step(lanes[j], *reinterpret_cast<const T*>(q + i * stride));
      }
    };
    if (red.ndim == 1) {  // one run: skip the walk's index arithmetic (it matters for short rows)
      run(px + rb * red.strides[0][0], red.strides[0][0], re - rb);
    } else {
      char* base[1] = {const_cast<char*>(px)};
      red.walk(base, rb, re, [&](char* const* q, const int64_t* s, int64_t m) { run(q[0], s[0], m); });
    }
    Acc acc = lanes[0];
    for (int j = 1; j < kLanes; ++j) acc = Op::merge(acc, lanes[j]);
    return acc;
  }

  // Folds outputs [ob, oe) over reduced elements [rb, re); emit(o, out_ptr, acc) takes each result.
  template <class Emit>
  void run(char* out_base, const char* x_base, int64_t ob, int64_t oe, int64_t rb, int64_t re, Emit&& emit) const {
    char* bases[2] = {out_base, const_cast<char*>(x_base)};
    int64_t o = ob;
    kept.walk(bases, ob, oe, [&](char* const* p, const int64_t* s, int64_t n) {
      if (!vertical) {
        for (int64_t j = 0; j < n; ++j) emit(o + j, p[0] + j * s[0], fold_one(p[1] + j * s[1], rb, re));
      } else {
        for (int64_t j0 = 0; j0 < n; j0 += kTile) {
          const int64_t w = std::min<int64_t>(kTile, n - j0);
          Acc acc[kTile];
          for (int64_t j = 0; j < w; ++j) acc[j] = Op::init();
          char* base[1] = {p[1] + j0 * int64_t(sizeof(T))};
          red.walk(base, rb, re, [&](char* const* q, const int64_t* rs, int64_t m) {
            for (int64_t i = 0; i < m; ++i) {
              const T* row = reinterpret_cast<const T*>(q[0] + i * rs[0]);
              for (int64_t j = 0; j < w; ++j) acc[j] = Op::step(acc[j], row[j]);
            }
          });
          for (int64_t j = 0; j < w; ++j) emit(o + j0 + j, p[0] + (j0 + j) * s[0], acc[j]);
        }
      }
      o += n;
    });
  }
};

template <class T, class Op>
void reduce_with(const Tensor& x, const Tensor& out, const Geometry& g) {
  using Acc = typename Op::Acc;
  Reducer<T, Op> r;
  const int64_t xsize = sizeof(T), osize = dtype_size(out.dtype());
  r.kept = make_plan<2>(g.kept_shape, {&g.kept_out_strides, &g.kept_x_strides}, {osize, xsize});
  r.red = make_plan<1>(g.red_shape, {&g.red_x_strides}, {xsize});
  const int last = r.kept.ndim - 1;
  r.vertical = r.kept.strides[1][last] == xsize && r.kept.shape[last] > 1 && r.red.strides[0][r.red.ndim - 1] != xsize;
  char* out_base = bytes_of(out);
  const char* x_base = bytes_of(x);

  dispatch_dtype(out.dtype(), [&](auto zero) {
    using Out = decltype(zero);
    int64_t out_grain = std::max<int64_t>(1, kWork / std::max<int64_t>(1, g.n_red));
    if (r.vertical) out_grain = (out_grain + kTile - 1) / kTile * kTile;  // whole tiles per chunk
    const int64_t out_chunks = (g.n_out + out_grain - 1) / out_grain;
    if (out_chunks >= kMinChunks || g.n_red < 2 * kBlock) {
      parallel_for(0, g.n_out, out_grain, [&](int64_t ob, int64_t oe) {
        r.run(out_base, x_base, ob, oe, 0, g.n_red,
              [](int64_t, char* po, Acc acc) { *reinterpret_cast<Out*>(po) = to_out<Out>(acc); });
      });
      return;
    }
    // Few outputs, many elements each: fold fixed blocks of the reduced
    // elements in parallel, then combine each output's blocks in block order.
    const int64_t n_blocks = (g.n_red + kBlock - 1) / kBlock;
    // (not std::vector: Acc may be bool)
    std::unique_ptr<Acc[]> partial(new Acc[static_cast<size_t>(n_blocks * g.n_out)]);
    parallel_for(0, n_blocks, 1, [&](int64_t bb, int64_t be) {
      for (int64_t b = bb; b < be; ++b) {
        Acc* mine = partial.get() + b * g.n_out;
        r.run(out_base, x_base, 0, g.n_out, b * kBlock, std::min(g.n_red, (b + 1) * kBlock),
              [mine](int64_t o, char*, Acc acc) { mine[o] = acc; });
      }
    });
    // Revisit the outputs in the same order to find where each is written.
    std::vector<char*> dest(static_cast<size_t>(g.n_out));
    char* bases[2] = {out_base, const_cast<char*>(x_base)};
    int64_t o = 0;
    r.kept.walk(bases, 0, g.n_out, [&](char* const* p, const int64_t* s, int64_t n) {
      for (int64_t j = 0; j < n; ++j) dest[o + j] = p[0] + j * s[0];
      o += n;
    });
    for (int64_t k = 0; k < g.n_out; ++k) {
      Acc acc = partial[k];
      for (int64_t b = 1; b < n_blocks; ++b) acc = Op::merge(acc, partial[b * g.n_out + k]);
      *reinterpret_cast<Out*>(dest[k]) = to_out<Out>(acc);
    }
  });
}

// argmax / argmin along the one reduced dim: the first index of the extreme
// value, NaN counting as the extreme (the first NaN wins).
template <class T, bool kMax>
void arg_reduce(const Tensor& x, const Tensor& out, const Geometry& g) {
  auto kept = make_plan<2>(g.kept_shape, {&g.kept_out_strides, &g.kept_x_strides}, {8, int64_t(sizeof(T))});
  const int64_t n = g.n_red;
  const int64_t step = g.red_shape.empty() ? 0 : g.red_x_strides[0] * int64_t(sizeof(T));
  char* bases[2] = {bytes_of(out), bytes_of(x)};
  const int64_t out_grain = std::max<int64_t>(1, kWork / n);
  parallel_for(0, g.n_out, out_grain, [&](int64_t ob, int64_t oe) {
    kept.walk(bases, ob, oe, [&](char* const* p, const int64_t* s, int64_t m) {
      for (int64_t j = 0; j < m; ++j) {
        const char* px = p[1] + j * s[1];
        T best = *reinterpret_cast<const T*>(px);
        int64_t at = 0;
        for (int64_t i = 1; i < n; ++i) {
          const T v = *reinterpret_cast<const T*>(px + i * step);
          const bool better = kMax ? v > best : v < best;
          if (better || (v != v && best == best)) {
            best = v;
            at = i;
          }
        }
        *reinterpret_cast<int64_t*>(p[0] + j * s[0]) = at;
      }
    });
  });
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  const char* name = reduce_op_name(op);
  Geometry g = split_dims(x, out, name);
  if (g.n_out == 0) return;
  const bool extreme = op != ReduceOp::Sum && op != ReduceOp::Prod;
  HEED_CHECK(!extreme || g.n_red > 0, "cpu {}: cannot reduce over zero elements (x shape {})", name,
             shape_str(x.shape()));
  if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) {
    HEED_CHECK(g.red_shape.size() <= 1, "cpu {}: reduces one dim, got x {} -> out {}", name, shape_str(x.shape()),
               shape_str(out.shape()));
    HEED_CHECK(out.dtype() == DType::Int64, "cpu {}: out must be int64, got {}", name, dtype_name(out.dtype()));
    return dispatch_dtype(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      if (op == ReduceOp::ArgMax) arg_reduce<T, true>(x, out, g);
      else arg_reduce<T, false>(x, out, g);
    });
  }
  dispatch_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    switch (op) {
      case ReduceOp::Sum: return reduce_with<T, SumOp<T>>(x, out, g);
      case ReduceOp::Prod: return reduce_with<T, ProdOp<T>>(x, out, g);
      case ReduceOp::Max: return reduce_with<T, MaxOp<T>>(x, out, g);
      case ReduceOp::Min: return reduce_with<T, MinOp<T>>(x, out, g);
      default: break;
    }
  });
}

}  // namespace heed::cpu

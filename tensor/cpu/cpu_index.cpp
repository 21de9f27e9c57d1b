// Indexing kernels: index_select and gather read through an int64 index,
// scatter_add and index_add accumulate through one.
//
// Every index is checked before it is used to address memory; a bad one
// throws heed::Error naming the op, the value, the dim and its size. Indices
// are 0-based and must lie in [0, size) (no negative wrap-around).
// scatter_add and index_add check all indices before writing anything, so a
// failed call leaves dst untouched.
//
// Determinism of the accumulating kernels: every dst element adds its
// contributions in increasing source position along dim, for any thread count
// and with duplicates included. scatter_add splits the work over "lines" (the
// positions with dim removed), which never write to the same dst element.
// index_add (the embedding backward: few long rows, many duplicates) instead
// groups the sources by destination row with a stable sort, and splits over
// destination rows, each one summed whole by one task.
#include <algorithm>
#include <numeric>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/strided_loop.h"

namespace heed::cpu {
namespace {

constexpr int64_t kWork = 32768;   // elements per parallel chunk
constexpr int64_t kLineTile = 64;  // fewest lines per chunk of an accumulating kernel

[[noreturn]] void bad_index(const char* op, int64_t value, int64_t dim, int64_t size) {
  HEED_FAIL("cpu {}: index {} is out of range for dim {} of size {}", op, value, dim, size);
}

void check_index_dtype(const Tensor& index, const char* op) {
  HEED_CHECK(index.dtype() == DType::Int64, "cpu {}: index must be int64, got {}", op, dtype_name(index.dtype()));
}

// Throws for the first index outside [0, size).
void check_all(const Tensor& index, int64_t size, const char* op, int64_t dim) {
  auto plan = make_plan<1>(index.shape(), {&index.strides()}, {8});
  char* base[1] = {bytes_of(index)};
  plan.walk(base, 0, plan.numel, [&](char* const* p, const int64_t* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = *reinterpret_cast<const int64_t*>(p[0] + i * s[0]);
      if (v < 0 || v >= size) bad_index(op, v, dim, size);
    }
  });
}

// Copies n elements of `size` bytes between strided runs.
template <class T>
void copy_run_as(char* d, int64_t ds, const char* s, int64_t ss, int64_t n) {
  if (ds == int64_t(sizeof(T)) && ss == int64_t(sizeof(T))) {
    std::memcpy(d, s, static_cast<size_t>(n) * sizeof(T));
  } else {
    for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * ds, s + i * ss, sizeof(T));
  }
}
void copy_run(char* d, int64_t ds, const char* s, int64_t ss, int64_t n, int64_t size) {
  switch (size) {
    case 1: return copy_run_as<uint8_t>(d, ds, s, ss, n);
    case 4: return copy_run_as<uint32_t>(d, ds, s, ss, n);
    default: return copy_run_as<uint64_t>(d, ds, s, ss, n);
  }
}

// dims of t except `dim`, and t's strides for them.
void drop_dim(const Shape& shape, const Shape& strides, int64_t dim, Shape& out_shape, Shape& out_strides) {
  out_shape.clear();
  out_strides.clear();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (static_cast<int64_t>(d) == dim) continue;
    out_shape.push_back(shape[d]);
    out_strides.push_back(strides[d]);
  }
}

template <class T>
inline void add_into(T* d, T v) {
  if constexpr (is_floating_type_v<T>) {
    *d += v;
  } else {
    *d = wrap_add(*d, v);  // wraps instead of overflowing (tensor/elementwise_formulas.h)
  }
}

// dst[line, index[line, i]] += src[line, i] for i in [0, n) along `dim`, over
// the lines of line_shape. Each operand is addressed by its own strides over
// the lines and along dim.
template <class T>
void accumulate_lines(const Tensor& dst, int64_t dim, const Tensor& index, const Shape& index_line_strides,
                      int64_t index_dim_stride, const Tensor& src, const Shape& line_shape, int64_t n) {
  Shape ignored, dst_line_strides, src_line_strides;
  drop_dim(dst.shape(), dst.strides(), dim, ignored, dst_line_strides);
  drop_dim(src.shape(), src.strides(), dim, ignored, src_line_strides);
  auto lines = make_plan<3>(line_shape, {&dst_line_strides, &src_line_strides, &index_line_strides},
                            {int64_t(sizeof(T)), int64_t(sizeof(T)), 8});
  const int64_t dst_step = dst.strides()[dim] * int64_t(sizeof(T));
  const int64_t src_step = src.strides()[dim] * int64_t(sizeof(T));
  const int64_t index_step = index_dim_stride * 8;
  char* bases[3] = {bytes_of(dst), bytes_of(src), bytes_of(index)};
  const int64_t grain = std::max(kLineTile, kWork / std::max<int64_t>(1, n));
  parallel_for(0, lines.numel, grain, [&](int64_t lb, int64_t le) {
    for (int64_t i = 0; i < n; ++i) {
      char* at_i[3] = {bases[0], bases[1] + i * src_step, bases[2] + i * index_step};
      lines.walk(at_i, lb, le, [&](char* const* p, const int64_t* s, int64_t m) {
        if (s[2] == 0) {  // one index for the whole run (an expanded index): a plain row update
          char* d = p[0] + *reinterpret_cast<const int64_t*>(p[2]) * dst_step;
          if (s[0] == int64_t(sizeof(T)) && s[1] == int64_t(sizeof(T))) {
            T* dt = reinterpret_cast<T*>(d);
            const T* st = reinterpret_cast<const T*>(p[1]);
            for (int64_t j = 0; j < m; ++j) add_into(dt + j, st[j]);
          } else {
            for (int64_t j = 0; j < m; ++j)
              add_into(reinterpret_cast<T*>(d + j * s[0]), *reinterpret_cast<const T*>(p[1] + j * s[1]));
          }
        } else {
          for (int64_t j = 0; j < m; ++j) {
            const int64_t at = *reinterpret_cast<const int64_t*>(p[2] + j * s[2]);
            add_into(reinterpret_cast<T*>(p[0] + j * s[0] + at * dst_step),
                     *reinterpret_cast<const T*>(p[1] + j * s[1]));
          }
        }
      });
    }
  });
}

// index_add as dst [outer, size, inner] += src [outer, n, inner] rows: the
// sources sorted (stably) by destination, then one task per (outer, destination)
// that adds its sources' rows in increasing i.
template <class T>
void index_add_rows(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t n = index.numel(), size = dst.shape()[dim];
  const int64_t index_step = index.dim() == 0 ? 0 : index.strides()[0];
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t p, int64_t q) { return idx[p * index_step] < idx[q * index_step]; });
  std::vector<int64_t> group_start;  // into order; one group per distinct destination
  for (int64_t k = 0; k < n; ++k)
    if (k == 0 || idx[order[k] * index_step] != idx[order[k - 1] * index_step]) group_start.push_back(k);
  const int64_t groups = static_cast<int64_t>(group_start.size());
  group_start.push_back(n);

  const Shape inner_shape(dst.shape().begin() + dim + 1, dst.shape().end());
  const Shape inner_dst(dst.strides().begin() + dim + 1, dst.strides().end());
  const Shape inner_src(src.strides().begin() + dim + 1, src.strides().end());
  auto inner = make_plan<2>(inner_shape, {&inner_dst, &inner_src}, {int64_t(sizeof(T)), int64_t(sizeof(T))});
  const int64_t inner_numel = numel_of(inner_shape);
  const int64_t outer = dst.numel() / (size * inner_numel);
  T* dst_base = static_cast<T*>(dst.raw_data());
  char* src_base = bytes_of(src);
  const int64_t grain = std::max<int64_t>(1, kWork * groups / std::max<int64_t>(1, n * inner_numel));
  parallel_for(0, outer * groups, grain, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t o = t / groups, g = t % groups;
      int64_t src_off = 0;  // src's offset of outer position o
      for (int64_t d = dim - 1, rem = o; d >= 0; --d) {
        src_off += (rem % src.shape()[d]) * src.strides()[d];
        rem /= src.shape()[d];
      }
      const int64_t row = idx[order[group_start[g]] * index_step];
      char* d_row = reinterpret_cast<char*>(dst_base + (o * size + row) * inner_numel);
      for (int64_t k = group_start[g]; k < group_start[g + 1]; ++k) {
        char* bases[2] = {d_row, src_base + (src_off + order[k] * src.strides()[dim]) * int64_t(sizeof(T))};
        inner.walk(bases, 0, inner_numel, [&](char* const* p, const int64_t* s, int64_t m) {
          if (s[0] == int64_t(sizeof(T)) && s[1] == int64_t(sizeof(T))) {
            T* dt = reinterpret_cast<T*>(p[0]);
            const T* st = reinterpret_cast<const T*>(p[1]);
            for (int64_t j = 0; j < m; ++j) add_into(dt + j, st[j]);
          } else {
            for (int64_t j = 0; j < m; ++j)
              add_into(reinterpret_cast<T*>(p[0] + j * s[0]), *reinterpret_cast<const T*>(p[1] + j * s[1]));
          }
        });
      }
    }
  });
}

// *dst += *src for 0-d dst and src.
void add_one(const Tensor& dst, const Tensor& src, const char* op) {
  dispatch_addable(dst.dtype(), "cpu", op, [&](auto zero) {
    using T = decltype(zero);
    add_into(static_cast<T*>(dst.raw_data()), *static_cast<const T*>(src.raw_data()));
  });
}

// scatter_add or index_add of bfloat16 dst and src: float32 sums, rounded once into dst.
void add_in_float32(void (*add)(const Tensor&, int64_t, const Tensor&, const Tensor&), const Tensor& dst,
                    int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor dst32 = widened(dst);
  add(dst32, dim, index, widened(src));
  store_rounded(dst32, dst);
}

}  // namespace

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const char* op = "index_select";
  check_index_dtype(index, op);
  HEED_CHECK(index.dim() <= 1 && x.dim() == out.dim() && dim >= 0 && dim < std::max<int64_t>(x.dim(), 1) &&
                 x.dtype() == out.dtype(),
             "cpu index_select: bad arguments x {} {}, dim {}, index {}, out {} {}", shape_str(x.shape()),
             dtype_name(x.dtype()), dim, shape_str(index.shape()), shape_str(out.shape()), dtype_name(out.dtype()));
  if (x.dim() == 0) {  // a scalar: index must be [0]
    check_all(index, 1, op, dim);
    return cpu::copy(x, out);
  }
  const int64_t n = index.numel(), size = x.shape()[dim];
  HEED_CHECK(out.shape()[dim] == n, "cpu index_select: out has {} entries along dim {}, index has {}",
             out.shape()[dim], dim, n);
  check_all(index, size, op, dim);
  if (out.numel() == 0) return;

  // Rows (outer position, i) of contiguous-or-not inner blocks.
  const int64_t item = static_cast<int64_t>(dtype_size(x.dtype()));
  const Shape inner_shape(x.shape().begin() + dim + 1, x.shape().end());
  const Shape inner_x(x.strides().begin() + dim + 1, x.strides().end());
  const Shape inner_out(out.strides().begin() + dim + 1, out.strides().end());
  auto inner = make_plan<2>(inner_shape, {&inner_out, &inner_x}, {item, item});
  const int64_t inner_numel = numel_of(inner_shape);
  const int64_t outer_numel = out.numel() / (n * inner_numel);
  const int64_t index_step = index.dim() == 0 ? 0 : index.strides()[0];
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  char* out_base = bytes_of(out);
  const char* x_base = bytes_of(x);
  parallel_for(0, outer_numel * n, std::max<int64_t>(1, kWork / inner_numel), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t o = r / n, i = r % n;
      int64_t x_off = idx[i * index_step] * x.strides()[dim], out_off = i * out.strides()[dim];
      for (int64_t d = dim - 1, rem = o; d >= 0; --d) {  // outer position -> offsets
        const int64_t c = rem % x.shape()[d];
        rem /= x.shape()[d];
        x_off += c * x.strides()[d];
        out_off += c * out.strides()[d];
      }
      char* bases[2] = {out_base + out_off * item, const_cast<char*>(x_base) + x_off * item};
      inner.walk(bases, 0, inner_numel, [&](char* const* p, const int64_t* s, int64_t m) {
        copy_run(p[0], s[0], p[1], s[1], m, item);
      });
    }
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const char* op = "gather";
  check_index_dtype(index, op);
  HEED_CHECK(index.shape() == out.shape() && x.dim() == out.dim() && x.dtype() == out.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(x.dim(), 1),
             "cpu gather: bad arguments x {} {}, dim {}, index {}, out {} {}", shape_str(x.shape()),
             dtype_name(x.dtype()), dim, shape_str(index.shape()), shape_str(out.shape()), dtype_name(out.dtype()));
  for (int64_t d = 0; d < x.dim(); ++d)
    HEED_CHECK(d == dim || out.shape()[d] <= x.shape()[d], "cpu gather: index {} is larger than x {} in dim {}",
               shape_str(index.shape()), shape_str(x.shape()), d);
  const int64_t size = x.dim() == 0 ? 1 : x.shape()[dim];
  const int64_t step = x.dim() == 0 ? 0 : x.strides()[dim];
  Shape x_strides = x.strides();  // x walked with out's coordinates, dim added from the index
  if (x.dim() > 0) x_strides[dim] = 0;
  dispatch_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    auto plan = make_plan<3>(out.shape(), {&out.strides(), &index.strides(), &x_strides}, {int64_t(sizeof(T)), 8,
                                                                                           int64_t(sizeof(T))});
    for_each(plan, {bytes_of(out), bytes_of(index), bytes_of(x)}, kWork,
             [&](char* const* p, const int64_t* s, int64_t n) {
               for (int64_t i = 0; i < n; ++i) {
                 const int64_t at = *reinterpret_cast<const int64_t*>(p[1] + i * s[1]);
                 if (at < 0 || at >= size) bad_index(op, at, dim, size);
                 *reinterpret_cast<T*>(p[0] + i * s[0]) = reinterpret_cast<const T*>(p[2] + i * s[2])[at * step];
               }
             });
  });
}

void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  if (dst.dtype() == DType::BFloat16 && src.dtype() == DType::BFloat16)
    return add_in_float32(scatter_add, dst, dim, index, src);
  const char* op = "scatter_add";
  check_index_dtype(index, op);
  HEED_CHECK(dst.dim() == index.dim() && src.dim() == index.dim() && dst.dtype() == src.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(dst.dim(), 1),
             "cpu scatter_add: bad arguments dst {} {}, dim {}, index {}, src {} {}", shape_str(dst.shape()),
             dtype_name(dst.dtype()), dim, shape_str(index.shape()), shape_str(src.shape()), dtype_name(src.dtype()));
  for (int64_t d = 0; d < index.dim(); ++d)
    HEED_CHECK(index.shape()[d] <= src.shape()[d] && (d == dim || index.shape()[d] <= dst.shape()[d]),
               "cpu scatter_add: index {} does not fit src {} and dst {} in dim {}", shape_str(index.shape()),
               shape_str(src.shape()), shape_str(dst.shape()), d);
  if (dst.dim() == 0) {  // scalars: one element, index must be 0
    check_all(index, 1, op, dim);
    return add_one(dst, src, op);
  }
  check_all(index, dst.shape()[dim], op, dim);
  if (index.numel() == 0) return;
  Shape line_shape, index_line_strides;
  drop_dim(index.shape(), index.strides(), dim, line_shape, index_line_strides);
  dispatch_addable(dst.dtype(), "cpu", op, [&](auto zero) {
    accumulate_lines<decltype(zero)>(dst, dim, index, index_line_strides, index.strides()[dim], src, line_shape,
                                     index.shape()[dim]);
  });
}

void index_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  if (dst.dtype() == DType::BFloat16 && src.dtype() == DType::BFloat16)
    return add_in_float32(index_add, dst, dim, index, src);
  const char* op = "index_add";
  check_index_dtype(index, op);
  HEED_CHECK(index.dim() <= 1 && dst.dim() == src.dim() && dst.dtype() == src.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(dst.dim(), 1),
             "cpu index_add: bad arguments dst {} {}, dim {}, index {}, src {} {}", shape_str(dst.shape()),
             dtype_name(dst.dtype()), dim, shape_str(index.shape()), shape_str(src.shape()), dtype_name(src.dtype()));
  HEED_CHECK(dst.is_contiguous(), "cpu index_add: dst must be contiguous");
  const int64_t n = index.numel();
  for (int64_t d = 0; d < dst.dim(); ++d)
    HEED_CHECK(d == dim ? src.shape()[d] == n : src.shape()[d] == dst.shape()[d],
               "cpu index_add: src {} does not match dst {} with {} indices along dim {}", shape_str(src.shape()),
               shape_str(dst.shape()), n, dim);
  if (dst.dim() == 0) {
    check_all(index, 1, op, dim);
    return add_one(dst, src, op);
  }
  check_all(index, dst.shape()[dim], op, dim);
  if (src.numel() == 0) return;
  dispatch_addable(dst.dtype(), "cpu", op, [&](auto zero) { index_add_rows<decltype(zero)>(dst, dim, index, src); });
}

}  // namespace heed::cpu

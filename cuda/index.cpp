// The CUDA op table's index_select, gather, scatter_add and index_add, with
// the CPU's semantics (tensor/cpu/cpu_index.cpp): int64 indices in [0, size),
// strided inputs read in place, a bad index throws heed::Error naming the op,
// the value, the dim and its size.
//
// Checking indices costs one synchronisation per call: a kernel records the
// smallest position of a bad entry in a one-element device buffer, which is
// then copied to the host (a cudaMemcpy, which waits for the kernels before
// it). index_select and gather check inside the copy kernel itself;
// scatter_add and index_add check in a pass of their own before writing, so
// a failed call leaves dst untouched, as on the CPU.
//
// Determinism: neither accumulating kernel uses atomics. scatter_add gives
// each line (index position with dim left out) to one thread, which adds its
// sources in increasing position; index_add sorts the index stably (a CUB
// radix sort) and has one thread per destination element sum its run of
// sources in increasing position. Both are the CPU's order of additions, so
// the sums are bit-identical to the CPU's, duplicates included.
//
// bfloat16 sums are carried in float32 and rounded once per destination
// element: index_add's run sums in float (cuda/index_math.h); scatter_add,
// whose line adds into many destination elements, runs on float32 copies of
// dst and src and rounds dst back (a float32 dst-sized buffer per call).
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/index_math.h"
#include "cuda/kernels.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::cuda {

namespace {

constexpr int64_t kNoBad = std::numeric_limits<int64_t>::max();

Shape slice(const Shape& s, int64_t begin, int64_t end) { return Shape(s.begin() + begin, s.begin() + end); }

template <int N>
StridedWalk<N> walk_of(const Shape& shape, const std::array<const Shape*, N>& strides, const char* op) {
  StridedWalk<N> walk;
  HEED_CHECK(make_walk<N>(shape, strides, walk),
             "cuda {}: shape {} with these strides has more than {} dims that cannot be merged", op, shape_str(shape),
             kMaxIndexDims);
  return walk;
}

void check_index_dtype(const Tensor& index, const char* op) {
  HEED_CHECK(index.dtype() == DType::Int64, "cuda {}: index must be int64, got {}", op, dtype_name(index.dtype()));
}

void check_contiguous_dst(const Tensor& dst, const char* op) {
  HEED_CHECK(dst.is_contiguous(), "cuda {}: dst must be contiguous, got {}", op, describe(dst));
}

// A one-element device buffer in which kernels record the position of the
// first bad index entry; kNoBad until one does.
class BadIndexFlag {
 public:
  explicit BadIndexFlag(Device device) : flag_(empty({1}, DType::Int64, device)) {
    launch_fill<int64_t>(ptr(), 1, kNoBad);
  }
  int64_t* ptr() const { return static_cast<int64_t*>(flag_.raw_data()); }

  // Copies the flag to the host (waiting for the kernels queued before) and
  // throws the CPU's message when an entry of `index` was outside [0, size).
  void throw_if_bad(const Tensor& index, const char* op, int64_t dim, int64_t size) const {
    int64_t position = kNoBad;
    HEED_CUDA_CHECK(cudaMemcpy(&position, ptr(), sizeof(position), cudaMemcpyDeviceToHost));
    if (position == kNoBad) return;
    int64_t offset = 0;  // of entry `position` (row-major) in the strided index
    walk_of<1>(index.shape(), {&index.strides()}, op).at(position, &offset);
    int64_t value = 0;
    HEED_CUDA_CHECK(cudaMemcpy(&value, static_cast<const int64_t*>(index.raw_data()) + offset, sizeof(value),
                               cudaMemcpyDeviceToHost));
    HEED_FAIL("cuda {}: index {} is out of range for dim {} of size {}", op, value, dim, size);
  }

 private:
  Tensor flag_;
};

// Checks every entry of `index` against [0, size), throwing for a bad one.
// keys/order as launch_check_index (index_add's sort input), or null.
void check_all(const Tensor& index, int64_t size, const char* op, int64_t dim, uint64_t* keys = nullptr,
               int64_t* order = nullptr) {
  if (index.numel() == 0) return;
  BadIndexFlag flag(index.device());
  const IndexCheckArgs args{walk_of<1>(index.shape(), {&index.strides()}, op), size};
  launch_check_index(args, static_cast<const int64_t*>(index.raw_data()), index.numel(), flag.ptr(), keys, order);
  flag.throw_if_bad(index, op, dim, size);
}

// Calls f(T{}) with an unsigned type of dtype's size: the copying kernels move bytes.
template <class F>
void dispatch_bytes(DType dtype, F&& f) {
  switch (dtype_size(dtype)) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    default: HEED_FAIL("cuda index kernels: no copy for {}-byte elements", dtype_size(dtype));
  }
}

// *dst += *src for 0-d dst and src.
void add_one(const Tensor& dst, const Tensor& src, const char* op) {
  dispatch_addable_or_bf16(dst.dtype(), op, [&](auto zero) {
    using T = decltype(zero);
    launch_add_one<T>(static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()));
  });
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const char* op = "index_select";
  check_index_dtype(index, op);
  HEED_CHECK(index.dim() <= 1 && x.dim() == out.dim() && dim >= 0 && dim < std::max<int64_t>(x.dim(), 1) &&
                 x.dtype() == out.dtype() && out.is_contiguous(),
             "cuda index_select: bad arguments x {}, dim {}, index {}, out {}", describe(x), dim, describe(index),
             describe(out));
  DeviceGuard guard(x.device().index);
  if (x.dim() == 0) {  // a scalar: index must be [0]
    check_all(index, 1, op, dim);
    return backend(x.device()).copy(x, out);
  }
  const int64_t n = index.numel(), size = x.shape()[dim];
  HEED_CHECK(out.shape()[dim] == n, "cuda index_select: out has {} entries along dim {}, index has {}",
             out.shape()[dim], dim, n);
  if (out.numel() == 0) return check_all(index, size, op, dim);

  const Shape outer_shape = slice(x.shape(), 0, dim), outer_strides = slice(x.strides(), 0, dim);
  const Shape inner_shape = slice(x.shape(), dim + 1, x.dim()), inner_strides = slice(x.strides(), dim + 1, x.dim());
  IndexSelectArgs args;
  args.outer = walk_of<1>(outer_shape, {&outer_strides}, op);
  args.inner = walk_of<1>(inner_shape, {&inner_strides}, op);
  args.n = n;
  args.inner_numel = numel_of(inner_shape);
  args.size = size;
  args.x_step = x.strides()[dim];
  args.index_step = index.dim() == 0 ? 0 : index.strides()[0];
  BadIndexFlag flag(x.device());
  dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_index_select<T>(args, static_cast<const T*>(x.raw_data()), static_cast<const int64_t*>(index.raw_data()),
                           static_cast<T*>(out.raw_data()), out.numel(), flag.ptr());
  });
  flag.throw_if_bad(index, op, dim, size);
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const char* op = "gather";
  check_index_dtype(index, op);
  HEED_CHECK(index.shape() == out.shape() && x.dim() == out.dim() && x.dtype() == out.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(x.dim(), 1) && out.is_contiguous(),
             "cuda gather: bad arguments x {}, dim {}, index {}, out {}", describe(x), dim, describe(index),
             describe(out));
  for (int64_t d = 0; d < x.dim(); ++d)
    HEED_CHECK(d == dim || out.shape()[d] <= x.shape()[d], "cuda gather: index {} is larger than x {} in dim {}",
               shape_str(index.shape()), shape_str(x.shape()), d);
  DeviceGuard guard(x.device().index);
  const int64_t size = x.dim() == 0 ? 1 : x.shape()[dim];
  if (out.numel() == 0) return;
  Shape x_strides = x.strides();  // x walked with out's coordinates, dim added from the index
  if (x.dim() > 0) x_strides[dim] = 0;
  GatherArgs args;
  args.walk = walk_of<2>(out.shape(), {&x_strides, &index.strides()}, op);
  args.size = size;
  args.x_step = x.dim() == 0 ? 0 : x.strides()[dim];
  BadIndexFlag flag(x.device());
  dispatch_bytes(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_gather<T>(args, static_cast<const T*>(x.raw_data()), static_cast<const int64_t*>(index.raw_data()),
                     static_cast<T*>(out.raw_data()), out.numel(), flag.ptr());
  });
  flag.throw_if_bad(index, op, dim, size);
}

void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add";
  check_index_dtype(index, op);
  HEED_CHECK(dst.dim() == index.dim() && src.dim() == index.dim() && dst.dtype() == src.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(dst.dim(), 1),
             "cuda scatter_add: bad arguments dst {}, dim {}, index {}, src {}", describe(dst), dim, describe(index),
             describe(src));
  for (int64_t d = 0; d < index.dim(); ++d)
    HEED_CHECK(index.shape()[d] <= src.shape()[d] && (d == dim || index.shape()[d] <= dst.shape()[d]),
               "cuda scatter_add: index {} does not fit src {} and dst {} in dim {}", shape_str(index.shape()),
               shape_str(src.shape()), shape_str(dst.shape()), d);
  check_contiguous_dst(dst, op);
  DeviceGuard guard(dst.device().index);
  if (dst.dtype() == DType::BFloat16 && dst.numel() > 0) {
    // Sum in float32, round once: dst is only written back when every index was good.
    const Backend& row = backend(dst.device());
    const Tensor wide_dst = empty(dst.shape(), DType::Float32, dst.device());
    const Tensor wide_src = empty(src.shape(), DType::Float32, src.device());
    row.copy(dst, wide_dst);
    row.copy(src, wide_src);
    (scatter_add)(wide_dst, dim, index, wide_src);  // this file's, not heed::scatter_add (no ADL)
    row.copy(wide_dst, dst);
    return;
  }
  if (dst.dim() == 0) {  // scalars: one element, index must be 0
    check_all(index, 1, op, dim);
    return add_one(dst, src, op);
  }
  check_all(index, dst.shape()[dim], op, dim);
  if (index.numel() == 0) return;

  Shape line_shape, dst_lines, src_lines, index_lines;  // the index's dims without dim
  for (int64_t d = 0; d < index.dim(); ++d) {
    if (d == dim) continue;
    line_shape.push_back(index.shape()[d]);
    dst_lines.push_back(dst.strides()[d]);
    src_lines.push_back(src.strides()[d]);
    index_lines.push_back(index.strides()[d]);
  }
  ScatterAddArgs args;
  args.lines = walk_of<3>(line_shape, {&dst_lines, &src_lines, &index_lines}, op);
  args.n = index.shape()[dim];
  args.dst_step = dst.strides()[dim];
  args.src_step = src.strides()[dim];
  args.index_step = index.strides()[dim];
  dispatch_addable_or_bf16(dst.dtype(), op, [&](auto zero) {
    using T = decltype(zero);
    launch_scatter_add<T>(args, static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()),
                          static_cast<const int64_t*>(index.raw_data()), numel_of(line_shape));
  });
}

void index_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "index_add";
  check_index_dtype(index, op);
  HEED_CHECK(index.dim() <= 1 && dst.dim() == src.dim() && dst.dtype() == src.dtype() && dim >= 0 &&
                 dim < std::max<int64_t>(dst.dim(), 1),
             "cuda index_add: bad arguments dst {}, dim {}, index {}, src {}", describe(dst), dim, describe(index),
             describe(src));
  check_contiguous_dst(dst, op);
  const int64_t n = index.numel();
  for (int64_t d = 0; d < dst.dim(); ++d)
    HEED_CHECK(d == dim ? src.shape()[d] == n : src.shape()[d] == dst.shape()[d],
               "cuda index_add: src {} does not match dst {} with {} indices along dim {}", shape_str(src.shape()),
               shape_str(dst.shape()), n, dim);
  DeviceGuard guard(dst.device().index);
  if (dst.dim() == 0) {
    check_all(index, 1, op, dim);
    return add_one(dst, src, op);
  }
  const int64_t size = dst.shape()[dim];
  if (n == 0) return;
  // keys and positions of the index entries, before and after the stable sort
  Tensor pairs = empty({4, n}, DType::Int64, dst.device());
  int64_t* base = static_cast<int64_t*>(pairs.raw_data());
  uint64_t* keys_in = reinterpret_cast<uint64_t*>(base);
  uint64_t* keys = reinterpret_cast<uint64_t*>(base + n);
  int64_t* order_in = base + 2 * n;
  int64_t* order = base + 3 * n;
  check_all(index, size, op, dim, keys_in, order_in);
  if (src.numel() == 0) return;
  dispatch_addable_or_bf16(dst.dtype(), op, [&](auto zero) {
    using T = decltype(zero);
    const int bits = key_bits(size);
    const size_t temp_bytes = index_sort_temp_bytes(n, bits);
    Tensor temp = empty({static_cast<int64_t>(temp_bytes) + 1}, DType::UInt8, dst.device());
    launch_index_sort(temp.raw_data(), temp_bytes, keys_in, keys, order_in, order, n, bits);

    const Shape outer_shape = slice(src.shape(), 0, dim), outer_strides = slice(src.strides(), 0, dim);
    const Shape inner_shape = slice(src.shape(), dim + 1, src.dim());
    const Shape inner_strides = slice(src.strides(), dim + 1, src.dim());
    IndexAddArgs args;
    args.outer = walk_of<1>(outer_shape, {&outer_strides}, op);
    args.inner = walk_of<1>(inner_shape, {&inner_strides}, op);
    args.n = n;
    args.inner_numel = numel_of(inner_shape);
    args.size = size;
    args.src_step = src.strides()[dim];
    launch_index_add<T>(args, static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()), keys, order,
                        src.numel());
  });
}

}  // namespace

void install_index_kernels(Backend& row) {
  row.index_select = index_select;
  row.gather = gather;
  row.scatter_add = scatter_add;
  row.index_add = index_add;
}

}  // namespace heed::cuda

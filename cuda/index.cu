// Indexing kernels: index_select, gather, scatter_add, index_add and the
// index check they share. Each kernel is a grid-stride loop around a
// per-element function of cuda/index_math.h (tested on the CPU); this file
// only launches them, plus the stable radix sort (CUB) behind index_add.
#include <algorithm>
#include <cstdint>

#include <cub/device/device_radix_sort.cuh>

#include "cuda/check.h"
#include "cuda/grid.h"
#include "cuda/index_math.h"
#include "cuda/kernels.h"

namespace heed::cuda {

namespace {


#define HEED_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Keeps the smallest bad position seen: the first bad entry in row-major order,
// whichever thread finds it, so the error names the same entry every run.
__device__ void record_bad(int64_t* first_bad, int64_t p) {
  atomicMin(reinterpret_cast<long long*>(first_bad), static_cast<long long>(p));
}

__global__ void check_index_kernel(IndexCheckArgs a, const int64_t* index, int64_t numel, int64_t* first_bad,
                                   uint64_t* keys, int64_t* order) {  // index: the walk's shape; keys, order: [numel]
  HEED_GRID_STRIDE(p, numel) {
    int64_t v;
    if (!check_index_entry(a, index, p, &v)) record_bad(first_bad, p);
    if (keys != nullptr) {
      keys[p] = static_cast<uint64_t>(v);
      order[p] = p;
    }
  }
}

template <class T>
__global__ void index_select_kernel(IndexSelectArgs a, const T* x, const int64_t* index, T* out, int64_t numel,
                                    int64_t* first_bad) {  // out: [outer, n, inner] contiguous
  HEED_GRID_STRIDE(e, numel) {
    int64_t at, bad;
    if (index_select_source(a, index, e, &at, &bad)) {
      out[e] = x[at];
    } else {
      record_bad(first_bad, bad);
    }
  }
}

template <class T>
__global__ void gather_kernel(GatherArgs a, const T* x, const int64_t* index, T* out, int64_t numel,
                              int64_t* first_bad) {  // out: the index's shape, contiguous
  HEED_GRID_STRIDE(e, numel) {
    int64_t at;
    if (gather_source(a, index, e, &at)) {
      out[e] = x[at];
    } else {
      record_bad(first_bad, e);
    }
  }
}

template <class T>
__global__ void scatter_add_kernel(ScatterAddArgs a, T* dst, const T* src, const int64_t* index, int64_t lines) {
  HEED_GRID_STRIDE(line, lines) { scatter_add_line(a, dst, src, index, line); }
}

template <class T>
__global__ void add_one_kernel(T* dst, const T* src) {
  add_into(dst, *src);
}

template <class T>
__global__ void index_add_kernel(IndexAddArgs a, T* dst, const T* src, const uint64_t* keys, const int64_t* order,
                                 int64_t work) {  // work = outer * n * inner
  HEED_GRID_STRIDE(t, work) { index_add_run(a, dst, src, keys, order, t); }
}

}  // namespace

void launch_check_index(const IndexCheckArgs& a, const int64_t* index, int64_t numel, int64_t* first_bad,
                        uint64_t* keys, int64_t* order) {
  if (numel <= 0) return;
  check_index_kernel<<<grid_stride_blocks(numel), kGridStrideThreads>>>(a, index, numel, first_bad, keys, order);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void launch_index_select(const IndexSelectArgs& a, const T* x, const int64_t* index, T* out, int64_t numel,
                         int64_t* first_bad) {
  if (numel <= 0) return;
  index_select_kernel<T><<<grid_stride_blocks(numel), kGridStrideThreads>>>(a, x, index, out, numel, first_bad);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void launch_gather(const GatherArgs& a, const T* x, const int64_t* index, T* out, int64_t numel,
                   int64_t* first_bad) {
  if (numel <= 0) return;
  gather_kernel<T><<<grid_stride_blocks(numel), kGridStrideThreads>>>(a, x, index, out, numel, first_bad);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void launch_scatter_add(const ScatterAddArgs& a, T* dst, const T* src, const int64_t* index, int64_t lines) {
  if (lines <= 0) return;
  scatter_add_kernel<T><<<grid_stride_blocks(lines), kGridStrideThreads>>>(a, dst, src, index, lines);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void launch_add_one(T* dst, const T* src) {
  add_one_kernel<T><<<1, 1>>>(dst, src);
  HEED_CUDA_CHECK(cudaGetLastError());
}

size_t index_sort_temp_bytes(int64_t n, int bits) {
  size_t bytes = 0;
  HEED_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                                  static_cast<uint64_t*>(nullptr),
                                                  static_cast<const int64_t*>(nullptr),
                                                  static_cast<int64_t*>(nullptr), n, 0, bits));
  return bytes;
}

void launch_index_sort(void* temp, size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                       const int64_t* order_in, int64_t* order_out, int64_t n, int bits) {
  if (n <= 0) return;
  HEED_CUDA_CHECK(
      cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, order_in, order_out, n, 0, bits));
  HEED_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void launch_index_add(const IndexAddArgs& a, T* dst, const T* src, const uint64_t* keys, const int64_t* order,
                      int64_t work) {
  if (work <= 0) return;
  index_add_kernel<T><<<grid_stride_blocks(work), kGridStrideThreads>>>(a, dst, src, keys, order, work);
  HEED_CUDA_CHECK(cudaGetLastError());
}

// Copies move bytes: one instance per element size (1, 2, 4 and 8 bytes).
#define HEED_COPY_INSTANCES(T)                                                                           \
  template void launch_index_select<T>(const IndexSelectArgs&, const T*, const int64_t*, T*, int64_t,   \
                                       int64_t*);                                                        \
  template void launch_gather<T>(const GatherArgs&, const T*, const int64_t*, T*, int64_t, int64_t*);
HEED_COPY_INSTANCES(uint8_t)
HEED_COPY_INSTANCES(uint16_t)
HEED_COPY_INSTANCES(uint32_t)
HEED_COPY_INSTANCES(uint64_t)
#undef HEED_COPY_INSTANCES

// Sums: the dtypes with an addition (not bool).
#define HEED_ADD_INSTANCES(T)                                                                                \
  template void launch_scatter_add<T>(const ScatterAddArgs&, T*, const T*, const int64_t*, int64_t);        \
  template void launch_add_one<T>(T*, const T*);                                                            \
  template void launch_index_add<T>(const IndexAddArgs&, T*, const T*, const uint64_t*, const int64_t*, \
                                    int64_t);
HEED_ADD_INSTANCES(float)
HEED_ADD_INSTANCES(double)
HEED_ADD_INSTANCES(int64_t)
HEED_ADD_INSTANCES(uint8_t)
HEED_ADD_INSTANCES(bfloat16)  // index_add sums in float; scatter_add runs on float32 copies (index.cpp)
#undef HEED_ADD_INSTANCES
#undef HEED_GRID_STRIDE

}  // namespace heed::cuda

// The "cpu" row of the op table: memory here, kernels in cpu_*.cpp.
#include "tensor/cpu/cpu_backend.h"

#include <cstdlib>

#include "tensor/cpu/cpu_profile.h"
#include "tensor/error.h"

namespace heed::cpu {

// 64 bytes: one cache line and one AVX-512 register, so vector loads of a fresh
// tensor never split a line.
constexpr size_t kAlignment = 64;

void* allocate(size_t nbytes, int /*device_index*/) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte tensor still
  // gets its own valid pointer so that storage identity stays meaningful.
  HEED_CHECK(nbytes <= SIZE_MAX - kAlignment, "cpu: cannot allocate {} bytes", nbytes);
  const size_t rounded = nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  HEED_CHECK(ptr != nullptr, "cpu: out of memory allocating {} bytes", nbytes);
  return ptr;
}

void deallocate(void* ptr, size_t /*nbytes*/, int /*device_index*/) { std::free(ptr); }

namespace {
void synchronize(int /*device_index*/) {}
int device_count() { return 1; }
}  // namespace

void register_cpu_backend() {
  Backend row;
  row.name = "cpu";
  row.allocate = &allocate;
  row.deallocate = &deallocate;
  row.copy = &copy;
  row.fill = &fill;
  row.unary = &unary;
  row.binary = &binary;
  row.where = &where;
  row.reduce = &reduce;
  row.matmul = &matmul;
  row.softmax = &softmax;
  row.index_select = &index_select;
  row.gather = &gather;
  row.scatter_add = &scatter_add;
  row.index_add = &index_add;
  row.random = &random;
  row.synchronize = &synchronize;
  row.device_count = &device_count;
  maybe_profile(row);
  register_backend(DeviceType::CPU, row);
}

}  // namespace heed::cpu

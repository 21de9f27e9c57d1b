// The "cpu" row of the op table: memory here, kernels in cpu_*.cpp.
#include "tensor/cpu/cpu_backend.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/cpu/cpu_profile.h"
#include "tensor/error.h"

namespace heed::cpu {

// 64 bytes: one cache line and one AVX-512 register, so vector loads of a fresh
// tensor never split a line.
constexpr size_t kAlignment = 64;

// Blocks of at least this many bytes are kept for reuse when freed. A training
// step frees and re-allocates the same large activations and gradients every
// step; without a cache each one is a fresh mmap whose pages the kernel then
// faults in and zeroes one by one (and an munmap when freed), which cost more
// than the elementwise work on them. Small blocks are left to malloc, which
// already recycles them.
constexpr size_t kCacheMinBytes = size_t(1) << 20;
// Cached (free, not in use) bytes beyond this are given back to the system.
// Under AddressSanitizer nothing is cached, so that a use after free of a
// large tensor is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheMaxBytes = 0;
#else
constexpr size_t kCacheMaxBytes = size_t(2) << 30;
#endif

namespace {

// Size classes of 8 steps per power of two (at most 12.5% rounding), so a
// block freed by one tensor serves the next tensor of about the same size.
size_t size_class(size_t nbytes) {
  size_t pow2 = kCacheMinBytes;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (nbytes + step - 1) / step * step;
}

struct BlockCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  size_t cached_bytes = 0;
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;  // never destroyed: tensors may outlive static destruction
  return *cache;
}

void* aligned_or_throw(size_t rounded, size_t nbytes) {
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  HEED_CHECK(ptr != nullptr, "cpu: out of memory allocating {} bytes", nbytes);
  return ptr;
}

}  // namespace

void* allocate(size_t nbytes, int /*device_index*/) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte tensor still
  // gets its own valid pointer so that storage identity stays meaningful.
  HEED_CHECK(nbytes <= SIZE_MAX / 2, "cpu: cannot allocate {} bytes", nbytes);
  if (nbytes < kCacheMinBytes) {
    const size_t rounded = nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment;
    return aligned_or_throw(rounded, nbytes);
  }
  const size_t cls = size_class(nbytes);  // a multiple of kAlignment
  {
    BlockCache& cache = block_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.free_blocks.find(cls);
    if (it != cache.free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      cache.cached_bytes -= cls;
      return ptr;
    }
  }
  return aligned_or_throw(cls, nbytes);
}

void deallocate(void* ptr, size_t nbytes, int /*device_index*/) {
  if (ptr == nullptr) return;
  if (nbytes >= kCacheMinBytes) {
    const size_t cls = size_class(nbytes);
    BlockCache& cache = block_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.cached_bytes + cls <= kCacheMaxBytes) {
      cache.free_blocks[cls].push_back(ptr);
      cache.cached_bytes += cls;
      return;
    }
  }
  std::free(ptr);
}

size_t cached_bytes() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.cached_bytes;
}

void empty_cache() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& [cls, blocks] : cache.free_blocks)
    for (void* ptr : blocks) std::free(ptr);
  cache.free_blocks.clear();
  cache.cached_bytes = 0;
}

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
  row.softmax_backward = &softmax_backward;
  row.cross_entropy = &cross_entropy;
  row.cross_entropy_backward = &cross_entropy_backward;
  row.attention_forward = &attention_forward;
  row.attention_backward = &attention_backward;
  row.layer_norm = &layer_norm;
  row.layer_norm_backward = &layer_norm_backward;
  row.index_select = &index_select;
  row.gather = &gather;
  row.scatter_add = &scatter_add;
  row.index_add = &index_add;
  row.adam_step = &adam_step;
  row.random = &random;
  row.synchronize = &synchronize;
  row.device_count = &device_count;
  maybe_profile(row);
  register_backend(DeviceType::CPU, row);
}

}  // namespace heed::cpu

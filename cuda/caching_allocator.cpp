#include "cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "tensor/error.h"

namespace heed::cuda {

namespace {
constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
constexpr size_t kSmallAlign = 512;
}  // namespace

CachingAllocator& CachingAllocator::instance() {
  static CachingAllocator* allocator = new CachingAllocator();  // deliberately never deleted
  return *allocator;
}

size_t CachingAllocator::round_size(size_t nbytes) {
  HEED_CHECK(nbytes <= std::numeric_limits<size_t>::max() / 2, "cuda allocate: {} bytes is not a possible size",
             nbytes);
  if (nbytes < kSmallLimit) return (nbytes + kSmallAlign - 1) / kSmallAlign * kSmallAlign;
  size_t top = kSmallLimit;
  while (top <= nbytes / 2) top *= 2;  // largest power of two <= nbytes
  const size_t step = top / 4;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes, int device) {
  if (nbytes == 0) return nullptr;
  check_device_index(device, "cuda allocate");
  const size_t size = round_size(nbytes);

  std::lock_guard<std::mutex> lock(mutex_);
  DeviceState& state = devices_[device];
  MemoryStats& s = state.stats;

  void* ptr = nullptr;
  auto bin = state.free_blocks.find(size);
  if (bin != state.free_blocks.end() && !bin->second.empty()) {
    ptr = bin->second.back();
    bin->second.pop_back();
    ++s.cache_hits;
  } else {
    DeviceGuard guard(device);
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {
      // Cached blocks of other sizes may be what stands in the way: free them and try once more.
      cudaGetLastError();
      release_cached(device, state);
      status = cudaMalloc(&ptr, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      HEED_FAIL(
          "cuda:{} out of memory: asked for {} bytes (rounded to {}); heed holds {} bytes allocated to tensors and "
          "{} reserved in all, after emptying its cache",
          device, nbytes, size, s.allocated, s.reserved);
    }
    HEED_CUDA_CHECK(status);
    ++s.device_mallocs;
    s.reserved += size;
  }
  state.live.emplace(ptr, size);
  s.allocated += size;
  s.peak_allocated = std::max(s.peak_allocated, s.allocated);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, int device) noexcept {
  if (ptr == nullptr) return;
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceState& state = devices_[device];
    auto it = state.live.find(ptr);
    if (it == state.live.end()) {
      std::fprintf(stderr, "heed: cuda deallocate: %p is not a live block on cuda:%d; ignored\n", ptr, device);
      return;
    }
    const size_t size = it->second;
    state.live.erase(it);
    state.stats.allocated -= size;
    state.free_blocks[size].push_back(ptr);
  } catch (const std::exception& e) {  // only std::bad_alloc from the free list can get here
    std::fprintf(stderr, "heed: cuda deallocate: %s; block %p leaked\n", e.what(), ptr);
  }
}

void CachingAllocator::release_cached(int device, DeviceState& state) {
  DeviceGuard guard(device);
  for (auto& [size, blocks] : state.free_blocks) {
    while (!blocks.empty()) {
      void* ptr = blocks.back();
      blocks.pop_back();  // off the list first: a failed cudaFree must not leave it to be freed twice
      state.stats.reserved -= size;
      HEED_CUDA_CHECK(cudaFree(ptr));
    }
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [device, state] : devices_) release_cached(device, state);
}

MemoryStats CachingAllocator::stats(int device) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = devices_.find(device);
  return it == devices_.end() ? MemoryStats{} : it->second.stats;
}

void CachingAllocator::reset_peak(int device) {
  std::lock_guard<std::mutex> lock(mutex_);
  MemoryStats& s = devices_[device].stats;
  s.peak_allocated = s.allocated;
}

// ---- the public functions of cuda/memory.h ----------------------------------

MemoryStats memory_stats(int device_index) { return CachingAllocator::instance().stats(device_index); }
void reset_peak_stats(int device_index) { CachingAllocator::instance().reset_peak(device_index); }
void empty_cache() { CachingAllocator::instance().empty_cache(); }

}  // namespace heed::cuda

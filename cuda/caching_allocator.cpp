#include "cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "tensor/error.h"

namespace heed::cuda {

namespace {

// "1234567 bytes (1.2 MiB)": exact for tests and scripts, readable for people.
std::string bytes_str(size_t n) {
  const double b = static_cast<double>(n);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{} bytes ({:.2f} GiB)", n, b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{} bytes ({:.1f} MiB)", n, b / (1024.0 * 1024));
  return fmt::format("{} bytes", n);
}

// What the driver says is free on the current device, for the out-of-memory message.
std::string device_free_str() {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();
    return "the driver could not say how much is free";
  }
  return fmt::format("the device has {} free of {}", bytes_str(free_bytes), bytes_str(total_bytes));
}

}  // namespace

CachingAllocator& CachingAllocator::instance() {
  static CachingAllocator* allocator = new CachingAllocator();  // deliberately never deleted
  return *allocator;
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
      // Not a sticky error: reading it clears it, so later calls start clean.
      cudaGetLastError();
      // Cached blocks of other sizes may be what stands in the way: free them and try once more.
      release_cached(device, state);
      status = cudaMalloc(&ptr, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      HEED_FAIL(
          "cuda:{} out of memory: asked for {} (rounded to {}); heed holds {} in live tensors and {} reserved in all "
          "(its cache was emptied and the allocation retried); {}. Free some tensors or use smaller batches",
          device, bytes_str(nbytes), bytes_str(size), bytes_str(s.allocated), bytes_str(s.reserved),
          device_free_str());
    }
    HEED_CUDA_CHECK(status);
    ++s.device_mallocs;
    s.reserved += size;
    s.peak_reserved = std::max(s.peak_reserved, s.reserved);
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
      ++state.stats.device_frees;
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
  s.peak_reserved = s.reserved;
}

// ---- the public functions of cuda/memory.h ----------------------------------

MemoryStats memory_stats(int device_index) { return CachingAllocator::instance().stats(device_index); }
void reset_peak_stats(int device_index) { CachingAllocator::instance().reset_peak(device_index); }
void empty_cache() { CachingAllocator::instance().empty_cache(); }

}  // namespace heed::cuda

#pragma once
// Device memory as the CUDA caching allocator sees it (cuda/caching_allocator.h).
// Available in every build: without CUDA no device memory is ever held, so the
// stats are zeros and empty_cache() has nothing to do.
#include <cstddef>
#include <cstdint>

namespace heed::cuda {

struct MemoryStats {
  size_t allocated = 0;       // bytes in blocks handed out to tensors (rounded sizes)
  size_t reserved = 0;        // bytes held from cudaMalloc: allocated + cached
  size_t peak_allocated = 0;  // highest `allocated` since start or reset_peak_stats()
  size_t peak_reserved = 0;   // highest `reserved` since start or reset_peak_stats()
  uint64_t device_mallocs = 0;  // cudaMalloc calls made so far
  uint64_t device_frees = 0;    // cudaFree calls made so far (empty_cache, or a retry after running out)
  uint64_t cache_hits = 0;      // allocations served from the cache, without cudaMalloc
};

// Stats of cuda:<device_index>; zeros for a device heed has not allocated on.
MemoryStats memory_stats(int device_index = 0);
// Sets the peaks to the present values, to measure the peak of one phase.
void reset_peak_stats(int device_index = 0);
// Gives every cached, unused block on every device back to the driver (blocks
// held by live tensors stay). Other processes then see the memory as free.
void empty_cache();

}  // namespace heed::cuda

#pragma once
// Host memory as heed's CPU allocator sees it (tensor/cpu/cpu_allocator.cpp):
// what tensors hold, what the allocator keeps for reuse, and their peaks: the
// CPU's counterpart of cuda/memory.h.
//
// On glibc, heed raises malloc's mmap threshold on first use (to 64 MiB, or
// glibc's 32 MiB maximum) so that tensors come from the heap, where freed
// blocks coalesce and serve the next request of any size instead of being
// unmapped and faulted in again: a training step whose shapes vary with its
// batch reuses its memory that way (docs/performance.md has the measurements).
// HEED_CPU_MALLOC_TUNING=0, or a MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
// of the process's own, leaves malloc as it is.
//
// Where malloc is not tuned, blocks of 1 MiB and more are rounded up to one of
// 8 size classes per power of two and, when freed, kept for the next tensor of
// that class, up to the cache limit.
#include <cstddef>
#include <cstdint>

namespace heed::cpu {

struct MemoryStats {
  size_t allocated = 0;       // bytes in blocks held by live tensors (rounded sizes)
  size_t cached = 0;          // bytes in freed blocks kept for reuse
  size_t peak_allocated = 0;  // highest `allocated` since start or reset_peak_stats()
  size_t peak_reserved = 0;   // highest `allocated + cached` since start or reset_peak_stats()
  size_t cache_limit = 0;     // the most `cached` may reach (set_cache_limit)
  uint64_t system_allocs = 0;  // blocks taken from the system (malloc) so far
  uint64_t cache_hits = 0;     // large allocations served from the cache
  bool malloc_tuned = false;   // glibc's mmap threshold was raised (above)
};

MemoryStats memory_stats();
// Sets the peaks to the present values, to measure the peak of one phase.
void reset_peak_stats();
// Bytes held in freed blocks kept for reuse.
size_t cached_bytes();
// Gives every kept block back to the system.
void empty_cache();
// The most bytes of freed blocks kept for reuse; blocks freed beyond it go
// back to the system, and lowering it gives back what is over at once. The
// default is 0 where malloc was tuned (its heap already recycles), 256 MiB
// elsewhere, or HEED_CPU_CACHE_MB when set; builds with AddressSanitizer keep
// nothing, so that a use after free is caught.
void set_cache_limit(size_t bytes);
size_t cache_limit();

}  // namespace heed::cpu

#pragma once
// A caching allocator for device memory. Freed blocks are not given back to
// the driver: they wait in a free list of their device, binned by rounded
// size, and the next request of that size takes one without calling
// cudaMalloc. A training loop allocates the same shapes every step, so after
// the first step it stops calling the driver (cudaMalloc and cudaFree
// synchronise the device and are slow).
//
// Sizes are rounded so that nearby requests share a bin: below 1 MiB up to a
// multiple of 512 bytes; above, up to a multiple of a quarter of the largest
// power of two not above the request (at most 25% waste, four bins per
// doubling). Blocks are never split or merged: simple, and enough for now.
//
// When cudaMalloc runs out of memory, every cached block of that device is
// given back and the allocation tried once more; if it still fails, heed::Error
// says how much was asked for, what heed holds and what the device has free.
// The failed cudaMalloc's error is read off (cudaGetLastError) so that the
// process carries on: free some tensors, or empty_cache(), and go on.
//
// All work happens on the default stream, so a block freed by one kernel's
// owner and reused by the next kernel is ordered by the stream itself.
//
// This header needs no CUDA headers: round_size() is tested on the CPU.
#include <cstddef>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/memory.h"
#include "tensor/error.h"

namespace heed::cuda {

class CachingAllocator {
 public:
  // The process-wide allocator. Never destroyed: at exit the CUDA runtime may
  // already be gone, and the driver reclaims the memory anyway.
  static CachingAllocator& instance();

  // A block of at least nbytes on cuda:<device>; nullptr for 0 bytes. Throws
  // heed::Error when the device does not exist or memory runs out even after
  // the cache was emptied once.
  void* allocate(size_t nbytes, int device);
  // Returns a block from allocate() to its device's free list. Never throws:
  // it runs from Storage's destructor.
  void deallocate(void* ptr, int device) noexcept;

  // Gives every cached block on every device back to the driver.
  void empty_cache();
  MemoryStats stats(int device) const;
  void reset_peak(int device);

  // The bin a request of nbytes is served from (see above); nbytes > 0.
  static size_t round_size(size_t nbytes) {
    constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
    constexpr size_t kSmallAlign = 512;
    HEED_CHECK(nbytes <= std::numeric_limits<size_t>::max() / 2, "cuda allocate: {} bytes is not a possible size",
               nbytes);
    if (nbytes < kSmallLimit) return (nbytes + kSmallAlign - 1) / kSmallAlign * kSmallAlign;
    size_t top = kSmallLimit;
    while (top <= nbytes / 2) top *= 2;  // the largest power of two <= nbytes
    const size_t step = top / 4;
    return (nbytes + step - 1) / step * step;
  }

 private:
  struct DeviceState {
    std::unordered_map<size_t, std::vector<void*>> free_blocks;  // rounded size -> cached blocks
    std::unordered_map<void*, size_t> live;                        // block -> rounded size
    MemoryStats stats;
  };

  CachingAllocator() = default;
  // Frees the cached blocks of one device; the caller holds mutex_.
  void release_cached(int device, DeviceState& state);

  mutable std::mutex mutex_;
  std::map<int, DeviceState> devices_;  // node-based: references stay valid as devices are added
};

}  // namespace heed::cuda

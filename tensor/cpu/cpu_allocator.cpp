// The CPU backend's memory: 64-byte aligned blocks from the system allocator,
// large ones kept for reuse when freed, with the counts tensor/cpu/cpu_memory.h
// reports.
#include <atomic>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <mutex>
#include <string>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <unordered_map>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_memory.h"
#include "tensor/error.h"

namespace heed::cpu {

namespace {

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

// glibc's malloc gives every block of 128 KiB or more (a threshold that grows
// only up to the largest block freed so far) its own mmap, and each one's pages
// are faulted in and zeroed again on first touch: a training step whose shapes
// vary with its batch pays that for almost every activation. Raised to the
// largest threshold glibc accepts, blocks come from the heap instead, where a
// freed block coalesces with its neighbours and serves the next request of any
// size, and up to kTrimThreshold of free heap is kept rather than given back.
// Measured on the translate step (docs/performance.md): 0.33 GB resident
// instead of 0.58 GB with the size-class cache below, and 9x fewer page faults.
// A process that sets MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ itself,
// or HEED_CPU_MALLOC_TUNING=0, keeps glibc's behaviour.
constexpr size_t kTrimThreshold = size_t(128) << 20;

bool tune_malloc() {
#if defined(__GLIBC__)
  auto set = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0';
  };
  if (set("MALLOC_MMAP_THRESHOLD_") || set("MALLOC_TRIM_THRESHOLD_")) return false;
  const char* opt = std::getenv("HEED_CPU_MALLOC_TUNING");
  if (opt != nullptr && std::string(opt) == "0") return false;
  // 64 MiB where this glibc allows it, else 32 MiB (its documented maximum on 64-bit systems).
  if (mallopt(M_MMAP_THRESHOLD, 64 << 20) == 0 && mallopt(M_MMAP_THRESHOLD, 32 << 20) == 0) return false;
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold));
  return true;
#else
  return false;
#endif
}

// Where malloc was tuned, the heap already recycles large blocks and a cache
// of size classes would only hold memory back from it; elsewhere 256 MiB of
// freed blocks are kept for reuse.
constexpr size_t kUntunedCacheLimit = size_t(256) << 20;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheAllowed = false;  // every large free is a real free, so a use after it is caught
#else
constexpr bool kCacheAllowed = true;
#endif

size_t initial_cache_limit(bool malloc_tuned) {
  if (!kCacheAllowed) return 0;
  const char* env = std::getenv("HEED_CPU_CACHE_MB");
  if (env == nullptr || *env == '\0') return malloc_tuned ? 0 : kUntunedCacheLimit;
  size_t used = 0;
  long long mb = -1;
  try {
    mb = std::stoll(env, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  HEED_CHECK(used == std::string(env).size() && mb >= 0 && mb < (1LL << 40),
             "HEED_CPU_CACHE_MB={}: expected a whole number of MiB >= 0", env);
  return static_cast<size_t>(mb) << 20;
}

// Size classes of 8 steps per power of two (at most 12.5% rounding), so a
// block freed by one tensor serves the next tensor of about the same size.
size_t size_class(size_t nbytes) {
  size_t pow2 = kCacheMinBytes;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (nbytes + step - 1) / step * step;
}

// The bytes a request really takes: small ones rounded to the alignment (a
// zero-byte tensor still gets its own pointer, so storage identity stays
// meaningful), large ones to their size class.
size_t block_size(size_t nbytes) {
  if (nbytes >= kCacheMinBytes) return size_class(nbytes);
  return nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment;
}

struct Allocator {
  std::mutex mutex;  // guards free_blocks and limit, and every change of cached
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  bool malloc_tuned = tune_malloc();
  size_t limit = initial_cache_limit(malloc_tuned);
  std::atomic<size_t> cached{0}, allocated{0}, peak_allocated{0}, peak_reserved{0};
  std::atomic<uint64_t> system_allocs{0}, cache_hits{0};
};

Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: tensors may outlive static destruction
  return *a;
}

void raise_to(std::atomic<size_t>& peak, size_t value) {
  size_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

void count_allocated(Allocator& a, size_t bytes) {
  const size_t now = a.allocated.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  raise_to(a.peak_allocated, now);
  raise_to(a.peak_reserved, now + a.cached.load(std::memory_order_relaxed));
}

// Blocks this large get pages of their own from the system on every
// allocation (they are over malloc's mmap threshold, or about to be), and a
// fresh page is faulted in and zeroed on first touch, 4 KiB at a time. On a
// virtual machine one fault costs microseconds: a [4, 4096, 4096] float32
// tensor took 460 ms of faults for a 30 ms multiply. Aligned to 2 MiB and
// advised as transparent huge pages (Linux's default setting, "madvise",
// honours that), such a block faults 512 times less often.
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugeMinBytes = size_t(32) << 20;

bool is_huge(size_t size) { return kCacheAllowed && size >= kHugeMinBytes; }  // not under ASan: it owns the pages

// glibc's aligned_alloc asks its bins for the size plus the alignment plus a
// chunk header (its worst-case padding) and frees the padding it did not
// use, so a freed block is a little smaller than the next request of the
// same size needs: tensors of one size never reuse each other's memory and
// the heap grows (the fused attention benchmark's heap reached 27 MiB for
// 16 MiB of tensors). Plain malloc of size + 64, aligned by hand, makes
// every request of one size the same malloc request. The malloc'd pointer
// is kept just below the aligned one. (ASan builds keep aligned_alloc, so
// that every byte past the end is poisoned.)
constexpr bool kAlignByHand = kCacheAllowed;

void* aligned_by_hand(size_t size) {
  void* raw = std::malloc(size + kAlignment);
  if (raw == nullptr) return nullptr;
  const uintptr_t at = (reinterpret_cast<uintptr_t>(raw) + sizeof(void*) + kAlignment - 1) & ~(kAlignment - 1);
  reinterpret_cast<void**>(at)[-1] = raw;
  return reinterpret_cast<void*>(at);
}

// Gives a block from from_system back (size: its block_size).
void to_system(void* ptr, size_t size) {
  if (kAlignByHand && !is_huge(size)) return std::free(static_cast<void**>(ptr)[-1]);
  std::free(ptr);
}

void* from_system(Allocator& a, size_t size, size_t nbytes) {
  const bool huge = is_huge(size);
  void* ptr = huge           ? std::aligned_alloc(kHugePage, (size + kHugePage - 1) / kHugePage * kHugePage)
              : kAlignByHand ? aligned_by_hand(size)
                             : std::aligned_alloc(kAlignment, size);
  HEED_CHECK(ptr != nullptr, "cpu: out of memory allocating {} bytes", nbytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(ptr, size, MADV_HUGEPAGE);  // advice only: where it is refused, 4 KiB pages as before
#endif
  a.system_allocs.fetch_add(1, std::memory_order_relaxed);
  return ptr;
}

// Frees kept blocks until at most `limit` bytes are kept (the caller holds the mutex).
void trim_to(Allocator& a, size_t limit) {
  for (auto it = a.free_blocks.begin(); it != a.free_blocks.end() && a.cached > limit;) {
    auto& blocks = it->second;
    while (!blocks.empty() && a.cached > limit) {
      to_system(blocks.back(), it->first);
      blocks.pop_back();
      a.cached -= it->first;
    }
    it = blocks.empty() ? a.free_blocks.erase(it) : std::next(it);
  }
}

}  // namespace

void* allocate(size_t nbytes, int /*device_index*/) {
  HEED_CHECK(nbytes <= SIZE_MAX / 2, "cpu: cannot allocate {} bytes", nbytes);
  Allocator& a = allocator();
  const size_t size = block_size(nbytes);
  if (nbytes >= kCacheMinBytes) {
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.free_blocks.find(size);
    if (it != a.free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      a.cached -= size;
      a.cache_hits.fetch_add(1, std::memory_order_relaxed);
      count_allocated(a, size);
      return ptr;
    }
  }
  void* ptr = from_system(a, size, nbytes);
  count_allocated(a, size);
  return ptr;
}

void deallocate(void* ptr, size_t nbytes, int /*device_index*/) {
  if (ptr == nullptr) return;
  Allocator& a = allocator();
  const size_t size = block_size(nbytes);
  a.allocated.fetch_sub(size, std::memory_order_relaxed);
  if (nbytes >= kCacheMinBytes) {
    std::lock_guard<std::mutex> lock(a.mutex);
    if (a.cached + size <= a.limit) {
      a.free_blocks[size].push_back(ptr);
      a.cached += size;
      return;
    }
  }
  to_system(ptr, size);
}

MemoryStats memory_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  MemoryStats s;
  s.allocated = a.allocated.load(), s.cached = a.cached.load();
  s.peak_allocated = a.peak_allocated.load(), s.peak_reserved = a.peak_reserved.load();
  s.cache_limit = a.limit, s.system_allocs = a.system_allocs.load(), s.cache_hits = a.cache_hits.load();
  s.malloc_tuned = a.malloc_tuned;
  return s;
}

void reset_peak_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.peak_allocated = a.allocated.load();
  a.peak_reserved = a.allocated.load() + a.cached.load();
}

size_t cached_bytes() { return allocator().cached.load(); }

void empty_cache() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  trim_to(a, 0);
}

void set_cache_limit(size_t bytes) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.limit = kCacheAllowed ? bytes : 0;
  trim_to(a, a.limit);
}

size_t cache_limit() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.limit;
}

}  // namespace heed::cpu

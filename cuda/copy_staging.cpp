// Host<->device byte transfers, large ones through a pinned staging buffer
// (the why is in cuda/copy_staging.h).
#include "cuda/copy_staging.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "tensor/cpu/parallel.h"

namespace heed::cuda {

namespace {

// The process-wide pinned buffer: two halves of half_ bytes. Never destroyed.
class PinnedStaging {
 public:
  static PinnedStaging& instance() {
    static PinnedStaging* staging = new PinnedStaging;
    return *staging;
  }

  std::mutex& mutex() { return mutex_; }

  // With mutex() held: the buffer, its halves grown to at least `half` bytes
  // (a power of two, at most kPinnedStagingChunk).
  char* reserve(size_t half) {
    half = std::min(half, kPinnedStagingChunk);
    if (half_ >= half) return buffer_;
    size_t grown = kPinnedStagingThreshold;
    while (grown < half) grown *= 2;
    if (buffer_ != nullptr) {
      char* old = buffer_;
      buffer_ = nullptr;
      half_ = 0;
      HEED_CUDA_CHECK(cudaFreeHost(old));
    }
    void* p = nullptr;
    HEED_CUDA_CHECK(cudaHostAlloc(&p, 2 * grown, cudaHostAllocPortable));
    buffer_ = static_cast<char*>(p);
    half_ = grown;
    return buffer_;
  }

  size_t half() const { return half_; }

 private:
  PinnedStaging() = default;

  std::mutex mutex_;
  char* buffer_ = nullptr;  // [2 * half_] pinned host bytes
  size_t half_ = 0;
};

// memcpy on the CPU threads, 1 MiB per task: one core cannot keep up with the bus.
void host_copy(char* dst, const char* src, size_t nbytes) {
  constexpr size_t kPiece = size_t(1) << 20;
  const int64_t pieces = static_cast<int64_t>((nbytes + kPiece - 1) / kPiece);
  cpu::parallel_for(0, pieces, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const size_t off = static_cast<size_t>(p) * kPiece;
      std::memcpy(dst + off, src + off, std::min(kPiece, nbytes - off));
    }
  });
}

// A transfer of nbytes in direction `kind` on `device`: one cudaMemcpy below
// kPinnedStagingThreshold, else staged(buffer, chunk) with the pinned
// buffer's two halves of `chunk` bytes, under its lock. If staged throws, the
// DMA it may have left in flight is waited for before the lock is released,
// so the next user cannot overwrite a half still being read or written.
template <class Staged>
void copy_small_or_staged(void* dst, const void* src, size_t nbytes, int device, cudaMemcpyKind kind,
                          Staged&& staged) {
  if (nbytes == 0) return;
  DeviceGuard guard(device);
  if (nbytes < kPinnedStagingThreshold) {
    HEED_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
    return;
  }
  PinnedStaging& staging = PinnedStaging::instance();
  std::lock_guard<std::mutex> lock(staging.mutex());
  char* buffer = staging.reserve(nbytes);
  const size_t chunk = staging.half();
  try {
    staged(buffer, chunk);
  } catch (...) {
    (void)cudaStreamSynchronize(0);
    throw;
  }
}

}  // namespace

void copy_host_to_device(void* dst, const void* src, size_t nbytes, int device) {
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  copy_small_or_staged(dst, src, nbytes, device, cudaMemcpyHostToDevice, [&](char* buffer, size_t chunk) {
    // Chunk k is copied into half k % 2 while the DMA of chunk k-1 reads the other half.
    for (size_t k = 0, done = 0; done < nbytes; ++k, done += chunk) {
      const size_t n = std::min(chunk, nbytes - done);
      char* half = buffer + (k % 2) * chunk;
      host_copy(half, from + done, n);
      // Wait for the DMA of chunk k-1: the next iteration refills its half.
      HEED_CUDA_CHECK(cudaStreamSynchronize(0));
      HEED_CUDA_CHECK(cudaMemcpyAsync(to + done, half, n, cudaMemcpyHostToDevice, 0));
    }
    // The data has arrived and the buffer is free for the next transfer.
    HEED_CUDA_CHECK(cudaStreamSynchronize(0));
  });
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes, int device) {
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  copy_small_or_staged(dst, src, nbytes, device, cudaMemcpyDeviceToHost, [&](char* buffer, size_t chunk) {
    const size_t chunks = (nbytes + chunk - 1) / chunk;
    auto size_of = [&](size_t k) { return std::min(chunk, nbytes - k * chunk); };
    auto fetch = [&](size_t k) {  // DMA of chunk k into half k % 2
      HEED_CUDA_CHECK(
          cudaMemcpyAsync(buffer + (k % 2) * chunk, from + k * chunk, size_of(k), cudaMemcpyDeviceToHost, 0));
    };
    fetch(0);
    for (size_t k = 0; k < chunks; ++k) {
      // Chunk k has landed (nothing after it is queued yet).
      HEED_CUDA_CHECK(cudaStreamSynchronize(0));
      // Its successor goes into the half chunk k-1 was copied out of, while the CPU copies chunk k out.
      if (k + 1 < chunks) fetch(k + 1);
      host_copy(to + k * chunk, buffer + (k % 2) * chunk, size_of(k));
    }
  });
}

size_t pinned_staging_bytes() {
  PinnedStaging& staging = PinnedStaging::instance();
  std::lock_guard<std::mutex> lock(staging.mutex());
  return 2 * staging.half();
}

}  // namespace heed::cuda

#pragma once
// Contiguous byte transfers between host memory and one GPU.
//
// Below kPinnedStagingThreshold (1 MiB) a transfer is a plain cudaMemcpy from
// or to the (pageable) host memory. From 1 MiB up it goes through a pinned
// (page-locked) host staging buffer, in chunks, double-buffered: while the GPU's
// copy engine moves one chunk by DMA the CPU copies the next one in or out of
// the other half of the buffer.
//
// Why: the DMA engine can only read and write page-locked memory. cudaMemcpy
// from pageable memory is therefore a hidden staging copy by the driver, through
// small bounce buffers, at well below the bus's bandwidth, and it blocks the
// host anyway. Staging ourselves through a buffer that is allocated once and
// reused gives full-bandwidth DMA overlapped with the host-side copy, and loses
// no asynchrony: the transfer still returns only when the data has arrived, as
// pageable cudaMemcpy does (the caller may free or reuse the host memory at once).
//
// The buffer (cudaHostAlloc, portable to every device) is created on first use,
// grown when a larger transfer needs it (up to 2 x kPinnedStagingChunk) and
// never freed (like the caching allocator: at exit the runtime may be gone).
// One mutex guards it; a transfer holds it from start to end, so concurrent
// large transfers take turns (they would share the same bus anyway).
//
// Both functions work on the legacy default stream of `device`, which they
// make current: a host-to-device transfer lands after every kernel already
// queued there, and a device-to-host one reads what those kernels wrote.
#include <cstddef>

namespace heed::cuda {

constexpr size_t kPinnedStagingThreshold = size_t(1) << 20;  // 1 MiB
constexpr size_t kPinnedStagingChunk = size_t(4) << 20;      // 4 MiB per half of the buffer

// dst (device memory of cuda:<device>) = src (host memory), nbytes bytes.
void copy_host_to_device(void* dst, const void* src, size_t nbytes, int device);
// dst (host memory) = src (device memory of cuda:<device>), nbytes bytes.
void copy_device_to_host(void* dst, const void* src, size_t nbytes, int device);

// Bytes of pinned host memory the staging buffer holds now (0 before the first
// large transfer).
size_t pinned_staging_bytes();

}  // namespace heed::cuda

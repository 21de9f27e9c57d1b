// The CUDA caching allocator's size bins: pure arithmetic, so tested here in
// every build, GPU or not (tests/cuda_test.cpp checks reuse and the
// out-of-memory error on a device).
#include <catch2/catch.hpp>

#include <cstddef>
#include <limits>
#include <vector>

#include "cuda/caching_allocator.h"
#include "cuda/memory.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/ops.h"

using heed::cuda::CachingAllocator;

namespace {
constexpr size_t kMiB = size_t{1} << 20;
}

TEST_CASE("caching allocator: requests below 1 MiB round up to a multiple of 512 bytes", "[cuda][allocator]") {
  CHECK(CachingAllocator::round_size(1) == 512);
  CHECK(CachingAllocator::round_size(511) == 512);
  CHECK(CachingAllocator::round_size(512) == 512);
  CHECK(CachingAllocator::round_size(513) == 1024);
  CHECK(CachingAllocator::round_size(1000) == 1024);
  CHECK(CachingAllocator::round_size(kMiB - 1) == kMiB);
}

TEST_CASE("caching allocator: larger requests round to a quarter of their power of two", "[cuda][allocator]") {
  CHECK(CachingAllocator::round_size(kMiB) == kMiB);
  CHECK(CachingAllocator::round_size(kMiB + 1) == kMiB + kMiB / 4);
  CHECK(CachingAllocator::round_size(2 * kMiB) == 2 * kMiB);
  CHECK(CachingAllocator::round_size(2 * kMiB + 1) == 2 * kMiB + kMiB / 2);
  CHECK(CachingAllocator::round_size(3 * kMiB) == 3 * kMiB);
  CHECK(CachingAllocator::round_size(3 * kMiB + 1) == 3 * kMiB + kMiB / 2);
  CHECK(CachingAllocator::round_size(256 * kMiB) == 256 * kMiB);          // an 8192 x 8192 float matrix
  CHECK(CachingAllocator::round_size(256 * kMiB + 4) == 320 * kMiB);
  CHECK(CachingAllocator::round_size(size_t{1} << 50) == size_t{1} << 50);  // 1 PiB, as the out-of-memory test asks
}

TEST_CASE("caching allocator: bins cover every request with at most 25% waste, four per doubling", "[cuda][allocator]") {
  size_t previous = 0;
  size_t bins_between_4_and_8_mib = 0;
  for (size_t n = 1; n <= 64 * kMiB; n += n < 4096 ? 1 : n / 1024 + 7) {
    const size_t r = CachingAllocator::round_size(n);
    INFO("n = " << n << ", rounded " << r);
    REQUIRE(r >= n);
    REQUIRE(r >= previous);  // monotone: a larger request never gets a smaller bin
    if (n >= kMiB) REQUIRE(static_cast<double>(r - n) <= 0.25 * static_cast<double>(n));
    else REQUIRE(r - n < 512);
    REQUIRE(CachingAllocator::round_size(r) == r);  // a bin's size is its own bin
    if (n > 4 * kMiB && n <= 8 * kMiB && r != previous) ++bins_between_4_and_8_mib;
    previous = r;
  }
  CHECK(bins_between_4_and_8_mib == 4);
}

TEST_CASE("caching allocator: an impossible size is a heed::Error", "[cuda][allocator]") {
  REQUIRE_THROWS_AS(CachingAllocator::round_size(std::numeric_limits<size_t>::max()), heed::Error);
  REQUIRE_THROWS_WITH(CachingAllocator::round_size(std::numeric_limits<size_t>::max()),
                      Catch::Contains("not a possible size"));
}

TEST_CASE("cuda memory stats start at zero for a device never used", "[cuda][allocator]") {
  const heed::cuda::MemoryStats s = heed::cuda::memory_stats(7);
  CHECK(s.allocated == 0);
  CHECK(s.reserved == 0);
  CHECK(s.peak_allocated == 0);
  CHECK(s.peak_reserved == 0);
  CHECK(s.device_mallocs == 0);
  CHECK(s.device_frees == 0);
}

TEST_CASE("caching allocator: a repeated step stops calling cudaMalloc and cudaFree", "[cuda][allocator]") {
  if (!heed::cuda::built_with_cuda() || heed::device_count(heed::DeviceType::CUDA) == 0) {
    WARN("[skip] no CUDA device here (heed built " << (heed::cuda::built_with_cuda() ? "with" : "without")
                                                    << " CUDA)");
    return;
  }
  // The same shapes every "step", as a training loop makes them.
  auto step = [] {
    heed::Tensor a = heed::empty({1000, 300}, heed::DType::Float32, heed::kCUDA);
    heed::Tensor b = heed::empty({17}, heed::DType::Int64, heed::kCUDA);
    {
      heed::Tensor c = heed::empty({3, 1 << 20}, heed::DType::Float32, heed::kCUDA);
      c.fill_(1.0);
    }
    heed::Tensor d = heed::empty({3, 1 << 20}, heed::DType::Float32, heed::kCUDA);  // c's block again
    a.fill_(2.0);
    b.fill_(3);
    d.fill_(4.0);
  };
  step();
  const heed::cuda::MemoryStats warm = heed::cuda::memory_stats(0);
  for (int i = 0; i < 5; ++i) step();
  const heed::cuda::MemoryStats after = heed::cuda::memory_stats(0);
  CHECK(after.device_mallocs == warm.device_mallocs);
  CHECK(after.device_frees == warm.device_frees);
  CHECK(after.cache_hits >= warm.cache_hits + 5 * 4);
  CHECK(after.allocated == warm.allocated);
  CHECK(after.peak_reserved >= after.reserved);

  heed::cuda::empty_cache();
  const heed::cuda::MemoryStats emptied = heed::cuda::memory_stats(0);
  CHECK(emptied.reserved == emptied.allocated);
  CHECK(emptied.device_frees > after.device_frees);
}

TEST_CASE("caching allocator: after running out of memory the device still works", "[cuda][allocator]") {
  if (!heed::cuda::built_with_cuda() || heed::device_count(heed::DeviceType::CUDA) == 0) {
    WARN("[skip] no CUDA device here");
    return;
  }
  heed::Tensor keep = heed::full({1024}, 1.5, heed::DType::Float32, heed::kCUDA);
  REQUIRE_THROWS_WITH(heed::empty({int64_t{1} << 48}, heed::DType::Float32, heed::kCUDA),
                      Catch::Contains("out of memory") && Catch::Contains("asked for") &&
                          Catch::Contains("in live tensors") && Catch::Contains("free of"));
  // The failed cudaMalloc left no error behind: new work and old tensors are fine.
  heed::Tensor fresh = heed::full({1024}, 2.5, heed::DType::Float32, heed::kCUDA);
  CHECK(fresh.to(heed::kCPU).to_vector<float>() == std::vector<float>(1024, 2.5f));
  CHECK(keep.to(heed::kCPU).to_vector<float>() == std::vector<float>(1024, 1.5f));
}

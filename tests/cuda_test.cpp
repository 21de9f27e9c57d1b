// The CUDA backend skeleton: registration, the caching allocator, copies and
// fill. Without a GPU (or without CUDA compiled in) the device tests pass with
// a "[skip]" warning saying why, which ctest reports as skipped.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cuda/memory.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tests/test_devices.h"

using heed::DeviceType;

namespace {

}  // namespace

TEST_CASE("cuda: the backend is registered exactly when heed was built with CUDA", "[cuda]") {
  REQUIRE(heed::has_backend(DeviceType::CUDA) == heed::cuda::built_with_cuda());
  if (heed::cuda::built_with_cuda()) {
    CHECK(std::string(heed::backend(DeviceType::CUDA).name) == "cuda");
    CHECK(heed::backend(DeviceType::CUDA).device_count() >= 0);
  } else {
    REQUIRE_THROWS_AS(heed::backend(DeviceType::CUDA), heed::Error);
    // Without CUDA no device memory is ever held.
    CHECK(heed::cuda::memory_stats().reserved == 0);
  }
}

TEST_CASE("cuda: asking for a CUDA tensor without a GPU is a heed::Error", "[cuda]") {
  if (heed::cuda::built_with_cuda() && heed::backend(DeviceType::CUDA).device_count() > 0) {
    WARN("[skip] a GPU is visible, so CUDA tensors can be made here");
    return;
  }
  REQUIRE_THROWS_AS(heed::empty({2, 3}, heed::DType::Float32, heed::kCUDA), heed::Error);
  REQUIRE_THROWS_WITH(heed::empty({2, 3}, heed::DType::Float32, heed::kCUDA), Catch::Contains("cuda"));
}

TEST_CASE("cuda: the caching allocator reuses freed blocks without cudaMalloc", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const heed::Backend& cuda = heed::backend(DeviceType::CUDA);
  heed::cuda::empty_cache();
  const heed::cuda::MemoryStats before = heed::cuda::memory_stats(0);

  void* p = cuda.allocate(1000, 0);
  REQUIRE(p != nullptr);
  heed::cuda::MemoryStats s = heed::cuda::memory_stats(0);
  CHECK(s.allocated == before.allocated + 1024);  // 1000 bytes round up to a multiple of 512
  CHECK(s.reserved >= s.allocated);
  CHECK(s.peak_allocated >= s.allocated);
  CHECK(s.device_mallocs == before.device_mallocs + 1);

  cuda.deallocate(p, 1000, 0);
  s = heed::cuda::memory_stats(0);
  CHECK(s.allocated == before.allocated);
  CHECK(s.reserved == before.reserved + 1024);  // kept in the cache

  // Any size that rounds to the same bin gets the cached block back.
  void* q = cuda.allocate(900, 0);
  CHECK(q == p);
  s = heed::cuda::memory_stats(0);
  CHECK(s.device_mallocs == before.device_mallocs + 1);
  CHECK(s.cache_hits == before.cache_hits + 1);
  cuda.deallocate(q, 900, 0);

  heed::cuda::empty_cache();
  s = heed::cuda::memory_stats(0);
  CHECK(s.reserved == s.allocated);
  CHECK(cuda.allocate(0, 0) == nullptr);
}

TEST_CASE("cuda: running out of device memory is a heed::Error naming the sizes", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const heed::Backend& cuda = heed::backend(DeviceType::CUDA);
  const size_t too_much = size_t{1} << 50;  // 1 PiB
  REQUIRE_THROWS_AS(cuda.allocate(too_much, 0), heed::Error);
  REQUIRE_THROWS_WITH(cuda.allocate(too_much, 0),
                      Catch::Contains("out of memory") && Catch::Contains(std::to_string(too_much)) &&
                          Catch::Contains("reserved"));
  // The device is still usable afterwards.
  void* p = cuda.allocate(4096, 0);
  CHECK(p != nullptr);
  cuda.deallocate(p, 4096, 0);
}

TEST_CASE("cuda: a nonexistent device index is a heed::Error", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const heed::Backend& cuda = heed::backend(DeviceType::CUDA);
  REQUIRE_THROWS_WITH(cuda.allocate(16, cuda.device_count()), Catch::Contains("does not exist"));
}

TEST_CASE("cuda: tensors copy to the device and back", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const std::vector<float> values = {0.5f, -1.0f, 2.0f, 3.25f, -4.0f, 5.0f};
  heed::Tensor host = heed::from_vector(values, {2, 3});

  heed::Tensor device = host.to(heed::kCUDA);
  CHECK(device.device() == heed::kCUDA);
  CHECK(device.shape() == heed::Shape{2, 3});
  CHECK(device.to(heed::kCPU).to_vector<float>() == values);

  // Device to device, then back.
  heed::Tensor copy = heed::empty({2, 3}, heed::DType::Float32, heed::kCUDA);
  copy.copy_(device);
  CHECK(copy.to(heed::kCPU).to_vector<float>() == values);

  const std::vector<int64_t> ids = {3, 1, 4, 1, 5};
  CHECK(heed::from_vector(ids).to(heed::kCUDA).to(heed::kCPU).to_vector<int64_t>() == ids);
}

TEST_CASE("cuda: fill writes every element on the device", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  heed::Tensor f = heed::empty({1000, 3}, heed::DType::Float32, heed::kCUDA);
  f.fill_(2.5);
  CHECK(f.to(heed::kCPU).to_vector<float>() == std::vector<float>(3000, 2.5f));

  heed::Tensor i = heed::empty({7}, heed::DType::Int64, heed::kCUDA);
  i.fill_(-3);
  CHECK(i.to(heed::kCPU).to_vector<int64_t>() == std::vector<int64_t>(7, -3));
}

TEST_CASE("cuda: matmul runs through cuBLAS", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  heed::Tensor a = heed::ones({2, 2}, heed::DType::Float32, heed::kCUDA);
  CHECK(heed::matmul(a, a).to(heed::kCPU).to_vector<float>() == std::vector<float>(4, 2.0f));
}

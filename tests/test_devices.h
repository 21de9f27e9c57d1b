#pragma once
// The devices a test body runs on, for tests written once for every device
// and tagged [device] (tensor_test, autograd_test, gradcheck_test, the nn_*
// tests and more; docs/testing.md):
//
//   TEST_CASE("...", "[device]") {
//     FOR_EACH_TEST_DEVICE(device) {          // one Catch section per device
//       Tensor x = randn({2, 3}).to(device);  // build on the CPU, then move
//       ...
//     }
//   }
//
// test_devices() is the CPU, plus cuda:0 when heed was built with CUDA and a
// GPU is visible. Without one the body runs on the CPU only and the test
// warns once that CUDA was not tested and why. That warning deliberately
// does not start with "[skip]": ctest's skip pattern would then report the
// whole test as skipped, hiding a failure of the CPU part.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

namespace heed::test {

// Why CUDA cannot be tested in this process; empty when it can.
inline std::string cuda_unavailable_reason() {
  if (!cuda::built_with_cuda()) return "heed was built without CUDA (HEED_CUDA=OFF, or no nvcc was found)";
  if (backend(DeviceType::CUDA).device_count() == 0)
    return "no GPU visible (heed was built with CUDA, but the driver reports no device)";
  return "";
}

inline bool cuda_testable() { return cuda_unavailable_reason().empty(); }

// {cpu} or {cpu, cuda:0}.
inline std::vector<Device> test_devices() {
  std::vector<Device> devices{kCPU};
  if (cuda_testable()) devices.push_back(kCUDA);
  return devices;
}

// For a test that needs a GPU and means nothing without one: where CUDA
// cannot be tested it returns from the test case at once with a warning
// "[skip] <why>", which ctest reports as skipped.
#define HEED_SKIP_WITHOUT_GPU()                                                   \
  do {                                                                            \
    const std::string heed_skip_why_ = ::heed::test::cuda_unavailable_reason(); \
    if (!heed_skip_why_.empty()) {                                                \
      WARN("[skip] " << heed_skip_why_);                                          \
      return;                                                                     \
    }                                                                             \
  } while (0)

// test_devices(), warning once per test case when CUDA is not among them.
// Catch re-runs a test case once per section, so "once" is tracked by the
// test case's name.
inline std::vector<Device> test_devices_noting_cuda() {
  std::vector<Device> devices = test_devices();
  if (devices.size() == 1) {
    static std::set<std::string> warned;
    if (warned.insert(Catch::getResultCapture().getCurrentTestName()).second)
      WARN("CUDA part not run (this test ran on the CPU only): " << cuda_unavailable_reason());
  }
  return devices;
}

}  // namespace heed::test

// Runs the block that follows once per test device, each in a Catch section
// named "on cpu" / "on cuda:0", so a failure names its device and a throw on
// one device does not stop the other.
#define FOR_EACH_TEST_DEVICE(device) \
  for (const ::heed::Device device : ::heed::test::test_devices_noting_cuda()) DYNAMIC_SECTION("on " << device.str())

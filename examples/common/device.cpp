#include "examples/common/device.h"

#include <fmt/format.h>

#include "cuda/memory.h"
#include "cuda/register.h"
#include "tensor/cpu/cpu_memory.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::examples {

Device device_from_flag(const std::string& flag) {
  Device device;
  try {
    device = Device::parse(flag);
  } catch (const Error& e) {
    HEED_FAIL("--device {}: {}", flag, e.what());
  }
  if (device.is_cpu()) return device;
  HEED_CHECK(cuda::built_with_cuda(),
             "--device {}: this heed was built without CUDA; rebuild with -DHEED_CUDA=ON on a machine with the CUDA "
             "toolkit (docs/cuda.md), or use --device cpu",
             flag);
  const int count = device_count(DeviceType::CUDA);
  HEED_CHECK(count > 0,
             "--device {}: heed was built with CUDA but sees no GPU here (no device, no driver, or "
             "CUDA_VISIBLE_DEVICES hides them); use --device cpu",
             flag);
  HEED_CHECK(device.index >= 0 && device.index < count, "--device {}: there is no such GPU; {} CUDA device(s) are visible",
             flag, count);
  return device;
}

std::string device_memory_summary(Device device) {
  if (!device.is_cuda()) {
    const cpu::MemoryStats s = cpu::memory_stats();
    const double mib = 1024.0 * 1024.0;
    return fmt::format("cpu memory: peak {:.1f} MiB in tensors, peak {:.1f} MiB with the allocator's cache (limit "
                       "{:.0f} MiB; {} blocks from malloc{})",
                       static_cast<double>(s.peak_allocated) / mib, static_cast<double>(s.peak_reserved) / mib,
                       static_cast<double>(s.cache_limit) / mib, s.system_allocs,
                       s.malloc_tuned ? ", its mmap threshold raised" : "");
  }
  const cuda::MemoryStats s = cuda::memory_stats(device.index);
  const double mib = 1024.0 * 1024.0;
  const double allocations = static_cast<double>(s.device_mallocs + s.cache_hits);
  return fmt::format("{} memory: peak {:.1f} MiB in tensors, peak {:.1f} MiB reserved ({} cudaMalloc calls, {:.1f}% of "
                     "allocations served from the cache)",
                     device.str(), static_cast<double>(s.peak_allocated) / mib,
                     static_cast<double>(s.peak_reserved) / mib, s.device_mallocs,
                     allocations > 0 ? 100.0 * static_cast<double>(s.cache_hits) / allocations : 0.0);
}

}  // namespace heed::examples

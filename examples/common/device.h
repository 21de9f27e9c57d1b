#pragma once
// The programs' --device flag: "cpu", "cuda" or "cuda:N", checked before any
// work is done, so that asking for a GPU this build or this machine cannot give
// is one clear error at the start, not a failure after minutes of preparation.
#include <string>

#include "tensor/device.h"

namespace heed::examples {

// The device `flag` names. Throws heed::Error starting "--device <flag>:" when
// it is malformed, when heed was built without CUDA, or when no such GPU is
// visible.
Device device_from_flag(const std::string& flag);

// "cuda:0 memory: peak 812.4 MiB in tensors, 1024.0 MiB reserved (23 cudaMalloc
// calls, 99.1% of allocations from the cache)", or the CPU allocator's peaks.
std::string device_memory_summary(Device device);

}  // namespace heed::examples

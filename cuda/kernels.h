#pragma once
// Kernel launchers, declared with plain types so that the .cpp files that
// call them need no CUDA compiler and the .cu files need no heed headers.
// Each launches on the current device's default stream and checks the launch.
#include <cstdint>

namespace heed::cuda {

// out[i] = value for i in [0, n); out is contiguous device memory.
template <class T>
void launch_fill(T* out, int64_t n, T value);

}  // namespace heed::cuda

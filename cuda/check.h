#pragma once
// HEED_CUDA_CHECK(call): every CUDA runtime call goes through it. On failure it
// throws heed::Error naming the call, the file and line, and CUDA's own error
// name and text. After a kernel launch use HEED_CUDA_CHECK(cudaGetLastError()).
#include <cuda_runtime_api.h>

namespace heed::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);

}  // namespace heed::cuda

#define HEED_CUDA_CHECK(call)                                                              \
  do {                                                                                     \
    const cudaError_t heed_cuda_status_ = (call);                                          \
    if (heed_cuda_status_ != cudaSuccess)                                                  \
      ::heed::cuda::throw_cuda_error(heed_cuda_status_, #call, __FILE__, __LINE__);        \
  } while (0)

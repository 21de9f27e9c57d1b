#include "cuda/check.h"

#include "tensor/error.h"

namespace heed::cuda {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  // Reading the error also clears it when it is not sticky, so the next call starts clean.
  cudaGetLastError();
  HEED_FAIL("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status), cudaGetErrorString(status), call, file,
            line);
}

}  // namespace heed::cuda

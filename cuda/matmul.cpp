// The CUDA op table's matmul through cuBLAS.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"

namespace heed::cuda {

void install_matmul_kernel(Backend& row) {
  row.matmul = [](const Tensor&, const Tensor&, const Tensor&) { not_implemented("matmul"); };
}

}  // namespace heed::cuda

// The CUDA op table's the fused Adam step and the counter-based random fill.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"

namespace heed::cuda {

void install_optim_kernels(Backend& row) {
  row.adam_step = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AdamStepArgs&) {
    not_implemented("adam_step");
  };
  row.random = [](RandomDist, double, double, uint64_t, uint64_t, const Tensor&) { not_implemented("random"); };
}

}  // namespace heed::cuda

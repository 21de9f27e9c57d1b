// The CUDA op table's reductions, softmax and layer norm.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"

namespace heed::cuda {

void install_reduction_kernels(Backend& row) {
  row.reduce = [](ReduceOp, const Tensor&, const Tensor&) { not_implemented("reductions"); };
  row.softmax = [](const Tensor&, bool, const Tensor&) { not_implemented("softmax"); };
  row.layer_norm = [](const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&,
                      const Tensor&) { not_implemented("layer_norm"); };
  row.layer_norm_backward = [](const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, const Tensor&, const Tensor&) { not_implemented("layer_norm_backward"); };
}

}  // namespace heed::cuda

// The CUDA op table's index_select, gather, scatter_add and index_add.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"

namespace heed::cuda {

void install_index_kernels(Backend& row) {
  row.index_select = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("index_select"); };
  row.gather = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("gather"); };
  row.scatter_add = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("scatter_add"); };
  row.index_add = [](const Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("index_add"); };
}

}  // namespace heed::cuda

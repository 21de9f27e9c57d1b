#pragma once
// The three layers of a tensor: Storage (bytes on a device) -> TensorImpl
// (shape, strides, offset, dtype) -> optional AutogradMeta.
#include <memory>
#include <vector>

#include "tensor/ops.h"
#include "tensor/storage.h"
#include "tensor/tensor.h"

namespace heed {

class Node;

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;         // which output of grad_fn this tensor is
  // The node that accumulates into a leaf's grad; weak so that dropping the
  // graph frees it, and the same node is reused while a graph holds it.
  std::weak_ptr<Node> grad_accumulator;
  bool retains_grad = false;
  std::vector<GradHook> leaf_hooks;  // hooks of a leaf, run before accumulation
  std::vector<PostAccumulateGradHook> post_accumulate_hooks;  // run after it
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  // True when this impl shares storage with another tensor through a view op;
  // in-place autograd on such views is refused rather than silently wrong.
  bool is_view = false;
  std::unique_ptr<AutogradMeta> autograd;

  Device device() const { return storage->device(); }
  AutogradMeta& meta() {
    if (!autograd) autograd = std::make_unique<AutogradMeta>();
    return *autograd;
  }
};

// A new impl over the same storage with other shape/strides/offset (no autograd).
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);

}  // namespace heed

#pragma once
// The backward engine: an iterative walk over the graph in dependency order
// (no recursion, so a chain of 100,000 ops works), summing the gradients that
// meet at a node before running it.
#include <functional>

#include "tensor/tensor.h"

namespace heed {

// Backward from `roots`, each seeded with the matching entry of `grad_roots`
// (undefined: the root must be a scalar, seeded with 1). Gradients accumulate
// into the .grad of leaves. Frees saved tensors unless retain_graph; records a
// graph of the backward itself when create_graph.
void run_backward(const TensorList& roots, const TensorList& grad_roots, bool retain_graph = false,
                  bool create_graph = false);

// The gradients of `outputs` with respect to `inputs`, returned instead of
// accumulated (no .grad changes), like torch.autograd.grad. An input the
// outputs do not depend on gives an error unless allow_unused, then an
// undefined Tensor. retain_graph defaults to create_graph.
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs = {},
                bool create_graph = false, bool allow_unused = false);
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused);

// Runs `callback` once the backward now running has finished, after every
// gradient has reached its leaf (as PyTorch's Variable._execution_engine.
// queue_callback): a gradient hook uses it to act on the whole backward, as
// data-parallel training waits for its last gradients. Callbacks run in the
// order queued, and may queue more. Throws when no backward is running.
void queue_callback(std::function<void()> callback);

}  // namespace heed

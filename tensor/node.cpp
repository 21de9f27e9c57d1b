#include "tensor/node.h"

#include <atomic>

#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
}

Node::Node() : sequence_nr(next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

namespace detail {
// Deleting a node releases its edges and saved tensors, which may delete the
// nodes before it, and so on down the whole chain. Queue them and delete in a
// loop instead, so the depth of the stack stays constant.
void defer_node_delete(Node* node) {
  thread_local std::vector<Node*> pending;
  thread_local bool draining = false;
  pending.push_back(node);
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    Node* n = pending.back();
    pending.pop_back();
    delete n;
  }
  draining = false;
}
}  // namespace detail

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.impl()->autograd) return {};
  AutogradMeta& meta = *t.impl()->autograd;
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  if (!meta.requires_grad) return {};
  std::shared_ptr<Node> acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = make_node<AccumulateGrad>(t.impl_ptr());
    acc->outputs.push_back({t.shape(), t.dtype(), t.device()});
    meta.grad_accumulator = acc;
  }
  return {acc, 0};
}

namespace {
// Whether g is the only handle on memory that holds exactly g, densely: a
// backward's fresh result, which the leaf may keep instead of a copy (as
// PyTorch's AccumulateGrad does). A view, an expanded or offset tensor, or
// one that the caller, a hook or a saved tensor still holds is copied.
bool owns_its_memory(const Tensor& g) {
  const std::shared_ptr<TensorImpl>& impl = g.impl_ptr();
  return impl.use_count() == 1 && impl->storage.use_count() == 1 && impl->offset == 0 && g.is_contiguous() &&
         impl->storage->nbytes() == static_cast<size_t>(g.numel()) * dtype_size(g.dtype());
}
}  // namespace

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> leaf_impl) : leaf(std::move(leaf_impl)) {}

TensorList AccumulateGrad::apply(TensorList&& grads) {
  Tensor g = std::move(grads[0]);
  AutogradMeta& meta = leaf->meta();
  for (const GradHook& hook : meta.leaf_hooks) {
    Tensor replaced = hook(g);
    if (replaced.defined()) g = replaced;
  }
  // Without create_graph the stored gradient must not drag a graph along,
  // and it gets memory of its own: g may alias another tensor or be an
  // expanded view, and optimizers update .grad in place.
  if (!GradMode::is_enabled()) g = g.detach();
  if (!meta.grad.defined()) {
    meta.grad = GradMode::is_enabled() || owns_its_memory(g) ? g : clone(g);
  } else {
    meta.grad = meta.grad + g;
  }
  if (!meta.post_accumulate_hooks.empty()) {
    const Tensor as_leaf(leaf);
    const std::vector<PostAccumulateGradHook> hooks = meta.post_accumulate_hooks;  // a hook may add hooks
    for (const PostAccumulateGradHook& hook : hooks) hook(as_leaf);
  }
  return {};
}

bool needs_grad(const TensorList& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void collect_next_edges(Node& node, const TensorList& inputs) {
  node.next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node.next_edges.push_back(gradient_edge(t));
}

void set_history(Tensor& t, const std::shared_ptr<Node>& node, uint32_t output_nr) {
  AutogradMeta& meta = t.impl()->meta();
  meta.requires_grad = true;
  meta.grad_fn = node;
  meta.output_nr = output_nr;
}

LambdaNode* record(const char* name, const TensorList& inputs, Tensor& out) {
  if (!needs_grad(inputs)) return nullptr;
  auto node = make_node<LambdaNode>(name);
  collect_next_edges(*node, inputs);
  node->outputs.push_back({out.shape(), out.dtype(), out.device()});
  set_history(out, node, 0);
  return node.get();
}

TensorList LambdaNode::apply(TensorList&& grads) {
  HEED_CHECK(backward != nullptr,
             "{}: trying to backward through the graph a second time (its saved tensors were freed); "
             "pass retain_graph=true to the first backward",
             name_);
  return backward(grads[0]);
}

}  // namespace heed

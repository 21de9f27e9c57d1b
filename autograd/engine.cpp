#include "autograd/engine.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "tensor/grad_mode.h"
#include "tensor/node.h"
#include "tensor/autocast.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {

// The callbacks of the backwards running on this thread, innermost last (a
// hook may run a backward of its own).
thread_local std::vector<std::vector<std::function<void()>>*> t_callbacks;

// Registers a backward's callback list for its duration.
class CallbackScope {
 public:
  explicit CallbackScope(std::vector<std::function<void()>>& list) { t_callbacks.push_back(&list); }
  ~CallbackScope() { t_callbacks.pop_back(); }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
};

struct Capture {
  Node* node;
  uint32_t slot;
  size_t index;  // position in the caller's inputs
};

struct NodeOrder {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr < b->sequence_nr; }
};

void check_gradients(Node& node, const TensorList& grads) {
  HEED_CHECK(grads.size() == node.next_edges.size(),
             "{}: backward returned {} gradients, but the op has {} inputs", node.name(), grads.size(),
             node.next_edges.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    const Edge& e = node.next_edges[i];
    if (!grads[i].defined() || !e.valid()) continue;
    const OutputInfo& want = e.node->outputs[e.input_nr];
    HEED_CHECK(grads[i].shape() == want.shape,
               "{}: backward returned a gradient of shape {} for input {}, which has shape {}", node.name(),
               shape_str(grads[i].shape()), i, shape_str(want.shape));
    HEED_CHECK(grads[i].dtype() == want.dtype,
               "{}: backward returned a {} gradient for input {}, which is {}", node.name(), grads[i].dtype(), i,
               want.dtype);
    if (AnomalyMode::is_enabled() && is_floating(grads[i].dtype())) {
      NoGradGuard no_grad;
      HEED_CHECK(!any_non_finite(grads[i]),
                 "anomaly mode: {} produced NaN or Inf in the gradient of its input {} (shape {})", node.name(), i,
                 shape_str(grads[i].shape()));
    }
  }
}

// The shared walk. With captures, gradients reaching the captured (node, slot)
// pairs are returned and leaves are left alone; only nodes that lead to a
// capture run.
TensorList execute(const TensorList& roots, const TensorList& grad_roots, bool retain_graph, bool create_graph,
                   const std::vector<Capture>* captures, size_t num_captures) {
  HEED_CHECK(grad_roots.empty() || grad_roots.size() == roots.size(),
             "backward: got {} gradients for {} outputs", grad_roots.size(), roots.size());
  // Each backward works in the dtypes its forward chose; autocast's policy
  // would re-cast them (tensor/autocast.h).
  AutocastGuard no_autocast(Autocast::dtype(), false);
  std::vector<Edge> root_edges;
  TensorList root_grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    HEED_CHECK(r.defined(), "backward: output {} is an undefined tensor", i);
    Edge e = gradient_edge(r);
    HEED_CHECK(e.valid(), "backward: output {} (shape {}) does not require grad and has no grad_fn", i,
               shape_str(r.shape()));
    Tensor g = grad_roots.empty() ? Tensor() : grad_roots[i];
    if (!g.defined()) {
      HEED_CHECK(r.numel() == 1,
                 "backward: a gradient can be created implicitly only for a one-element output; output {} has "
                 "shape {}, so pass a gradient of that shape",
                 i, shape_str(r.shape()));
      g = ones_like(r);
    } else {
      HEED_CHECK(g.shape() == r.shape() && g.dtype() == r.dtype() && g.device() == r.device(),
                 "backward: the gradient for output {} must match it: got {} {} on {}, output is {} {} on {}", i,
                 shape_str(g.shape()), g.dtype(), g.device(), shape_str(r.shape()), r.dtype(), r.device());
    }
    root_edges.push_back(e);
    root_grads.push_back(g);
  }

  // 1. Discover the graph (iteratively).
  std::vector<Node*> all;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Edge& e : root_edges)
    if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    all.push_back(n);
    for (const Edge& e : n->next_edges)
      if (e.valid() && seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  }

  // 2. Which nodes must run. Edges point to older nodes (except to
  // accumulators), so ascending creation order visits a node's inputs first.
  std::unordered_map<Node*, std::vector<uint32_t>> capture_slots;
  if (captures)
    for (const Capture& c : *captures) capture_slots[c.node].push_back(c.slot);
  std::unordered_set<Node*> needed;
  if (!captures) {
    needed.insert(all.begin(), all.end());
  } else {
    // Accumulators are sinks and may be younger than the nodes that point to
    // them (they are made lazily), so mark them first.
    for (Node* n : all)
      if (dynamic_cast<AccumulateGrad*>(n) && capture_slots.count(n)) needed.insert(n);
    std::vector<Node*> order = all;
    std::sort(order.begin(), order.end(), NodeOrder());
    for (Node* n : order) {
      if (dynamic_cast<AccumulateGrad*>(n)) continue;
      bool need = capture_slots.count(n) > 0;
      for (const Edge& e : n->next_edges) need = need || (e.valid() && needed.count(e.node.get()));
      if (need) needed.insert(n);
    }
  }

  // 3. Count the edges into each node that will carry a gradient.
  std::unordered_map<Node*, int> dependencies;
  for (Node* n : all) {
    if (!needed.count(n)) continue;
    for (const Edge& e : n->next_edges)
      if (e.valid() && needed.count(e.node.get())) ++dependencies[e.node.get()];
  }

  // 4. Walk: a node runs once every gradient into it has arrived.
  std::unordered_map<Node*, TensorList> buffers;
  EnableGradGuard grad_mode(create_graph);
  auto accumulate = [&](Node* n, uint32_t slot, const Tensor& g) {
    TensorList& buf = buffers[n];
    if (buf.empty()) buf.resize(n->outputs.size());
    if (!g.defined()) return;
    buf[slot] = buf[slot].defined() ? buf[slot] + g : g;
  };
  std::priority_queue<Node*, std::vector<Node*>, NodeOrder> ready;
  for (size_t i = 0; i < root_edges.size(); ++i) accumulate(root_edges[i].node.get(), root_edges[i].input_nr, root_grads[i]);
  for (const Edge& e : root_edges)
    if (needed.count(e.node.get()) && dependencies[e.node.get()] == 0) {
      dependencies[e.node.get()] = -1;  // queued
      ready.push(e.node.get());
    }

  TensorList captured(num_captures);
  std::vector<std::function<void()>> callbacks;
  CallbackScope callback_scope(callbacks);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    TensorList grads = std::move(buffers[n]);
    buffers.erase(n);
    if (grads.empty()) grads.resize(n->outputs.size());
    for (auto& [slot, hook] : n->pre_hooks) {
      if (!grads[slot].defined()) continue;
      Tensor replaced = hook(grads[slot]);
      if (replaced.defined()) grads[slot] = replaced;
    }
    bool any = std::any_of(grads.begin(), grads.end(), [](const Tensor& g) { return g.defined(); });
    if (captures) {
      for (const Capture& c : *captures)
        if (c.node == n) captured[c.index] = grads[c.slot];
    }
    TensorList out;
    bool run = any && !(captures && dynamic_cast<AccumulateGrad*>(n));
    if (run) {
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined()) grads[i] = zeros(n->outputs[i].shape, n->outputs[i].dtype, n->outputs[i].device);
      out = n->apply(std::move(grads));
      check_gradients(*n, out);
      if (!retain_graph) n->release_variables();
    }
    for (size_t i = 0; i < n->next_edges.size(); ++i) {
      const Edge& e = n->next_edges[i];
      if (!e.valid() || !needed.count(e.node.get())) continue;
      accumulate(e.node.get(), e.input_nr, i < out.size() ? out[i] : Tensor());
      if (--dependencies[e.node.get()] == 0) ready.push(e.node.get());
    }
  }
  for (size_t i = 0; i < callbacks.size(); ++i) {
    std::function<void()> callback = std::move(callbacks[i]);  // the list may grow while it runs
    callback();
  }
  return captured;
}

}  // namespace

void run_backward(const TensorList& roots, const TensorList& grad_roots, bool retain_graph, bool create_graph) {
  execute(roots, grad_roots, retain_graph || create_graph, create_graph, nullptr, 0);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused) {
  std::vector<Capture> captures;
  std::vector<std::shared_ptr<Node>> keep_alive;  // lazily made accumulators
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    HEED_CHECK(x.defined() && x.requires_grad(), "grad: input {} does not require grad", i);
    Edge e = gradient_edge(x);
    keep_alive.push_back(e.node);
    captures.push_back({e.node.get(), e.input_nr, i});
  }
  TensorList result = execute(outputs, grad_outputs, retain_graph, create_graph, &captures, inputs.size());
  for (size_t i = 0; i < result.size(); ++i) {
    HEED_CHECK(result[i].defined() || allow_unused,
               "grad: input {} (shape {}) was not used to compute the outputs; pass allow_unused=true", i,
               shape_str(inputs[i].shape()));
    if (result[i].defined() && !create_graph) result[i] = result[i].detach();
  }
  return result;
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool create_graph, bool allow_unused) {
  return grad(outputs, inputs, grad_outputs, create_graph, create_graph, allow_unused);
}

void queue_callback(std::function<void()> callback) {
  HEED_CHECK(!t_callbacks.empty(), "queue_callback: no backward is running on this thread");
  t_callbacks.back()->push_back(std::move(callback));
}

// Declared with the Tensor handle (tensor/tensor.h) and defined here, beside
// the engine it runs: the core records the graph, autograd/ walks it, and
// the core's files never include autograd/ (docs/autograd.md, "Layers").
void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  run_backward({*this}, {gradient}, retain_graph, create_graph);
}

}  // namespace heed

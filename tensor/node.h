#pragma once
// The backward graph. A Node turns the gradients of its outputs into
// gradients of its inputs; its next_edges say where those flow. Nodes are
// made with make_node<T>(), whose deleter frees long chains without
// recursion (a 100,000-op graph must not overflow the stack on release).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace heed {

struct Edge {
  std::shared_ptr<Node> node;  // null: this input needs no gradient
  uint32_t input_nr = 0;       // which of node's outputs the gradient belongs to
  bool valid() const { return node != nullptr; }
};

// What a node remembers about each output, to zero-fill missing gradients and
// check the shape of returned ones.
struct OutputInfo {
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
};

class Node {
 public:
  Node();
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string name() const = 0;
  // grads has one entry per output (zero-filled where nothing flowed); returns
  // one gradient per next edge (undefined where the input needs none).
  virtual TensorList apply(TensorList&& grads) = 0;
  // Drops saved tensors after backward unless retain_graph was asked for.
  virtual void release_variables() {}

  std::vector<Edge> next_edges;
  std::vector<OutputInfo> outputs;
  // Hooks on the gradient of output `output_nr`, run before apply.
  std::vector<std::pair<uint32_t, GradHook>> pre_hooks;
  // Creation order: the engine runs later nodes first, which with the
  // dependency counts gives one fixed order for a given graph.
  const uint64_t sequence_nr;
};

namespace detail {
void defer_node_delete(Node* node);
}

template <class T, class... Args>
std::shared_ptr<T> make_node(Args&&... args) {
  return std::shared_ptr<T>(new T(std::forward<Args>(args)...), [](T* n) { detail::defer_node_delete(n); });
}

// The edge a gradient for `t` should flow along: its grad_fn, or for a leaf
// that requires grad its accumulator node. Invalid edge otherwise.
Edge gradient_edge(const Tensor& t);

// Accumulates into a leaf's .grad (running the leaf's hooks first, and its
// post-accumulate hooks after).
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf);
  std::string name() const override { return "AccumulateGrad"; }
  TensorList apply(TensorList&& grads) override;
  std::shared_ptr<TensorImpl> leaf;
};

}  // namespace heed

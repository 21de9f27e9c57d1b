#pragma once
// How an op joins the graph. An op computes its result without autograd,
// then, if any input requires grad (and grad mode is on), records one node
// whose backward, written with tensor ops, maps the output's gradient to its
// inputs' gradients. Because backward uses tensor ops, it runs on every
// device and can itself be differentiated (create_graph).
//
//   Tensor y = ...forward...;
//   if (auto* node = record("exp", {x}, y))
//     node->backward = [ys = SavedTensor(y)](const Tensor& g) {
//       return TensorList{g * ys.unpack("exp")};
//     };
#include <functional>
#include <string>

#include "tensor/node.h"
#include "tensor/saved_tensor.h"

namespace heed {

using BackwardFn = std::function<TensorList(const Tensor& grad)>;

class LambdaNode : public Node {
 public:
  explicit LambdaNode(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  TensorList apply(TensorList&& grads) override;
  void release_variables() override { backward = nullptr; }
  BackwardFn backward;

 private:
  std::string name_;
};

// True when grad mode is on and some input requires grad.
bool needs_grad(const TensorList& inputs);
// Makes `out` the output of a new node named `name` over `inputs` and returns
// the node so the caller can set its backward; returns null (and records
// nothing) when no gradient is needed.
LambdaNode* record(const char* name, const TensorList& inputs, Tensor& out);
// Sets t's grad_fn (output output_nr of node) and marks it as requiring grad.
void set_history(Tensor& t, const std::shared_ptr<Node>& node, uint32_t output_nr);
// Links node's next_edges to inputs.
void collect_next_edges(Node& node, const TensorList& inputs);

}  // namespace heed

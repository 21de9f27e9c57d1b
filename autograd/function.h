#pragma once
// Custom autograd functions: write a forward and a backward, and heed::
// Function<T>::apply builds the graph node. Forward runs without recording;
// backward receives one gradient per output and returns one per Tensor
// argument of forward (undefined for those that need none).
//
//   struct Cube : heed::Function<Cube> {
//     static heed::Tensor forward(heed::AutogradContext* ctx, const heed::Tensor& x) {
//       ctx->save_for_backward({x});
//       return x * x * x;
//     }
//     static heed::TensorList backward(heed::AutogradContext* ctx, const heed::TensorList& grads) {
//       heed::Tensor x = ctx->saved()[0];
//       return {grads[0] * x * x * 3.0};
//     }
//   };
//   heed::Tensor y = Cube::apply(x);
#include <any>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "tensor/grad_mode.h"
#include "tensor/node.h"
#include "tensor/record.h"
#include "tensor/saved_tensor.h"

namespace heed {

// A readable type name for error messages.
std::string demangle(const char* mangled);

class AutogradContext {
 public:
  // Tensors backward needs; an in-place change to one before backward is an error.
  void save_for_backward(const TensorList& tensors);
  TensorList saved() const;
  // Anything else backward needs (sizes, flags, ...).
  std::unordered_map<std::string, std::any> data;
  void release() { saved_.clear(); }
  std::string name;

 private:
  std::vector<SavedTensor> saved_;
};

template <class T>
class CustomNode : public Node {
 public:
  CustomNode(std::shared_ptr<AutogradContext> ctx, size_t num_inputs) : ctx_(std::move(ctx)), num_inputs_(num_inputs) {}
  std::string name() const override { return ctx_->name; }
  TensorList apply(TensorList&& grads) override {
    TensorList result = T::backward(ctx_.get(), grads);
    HEED_CHECK(result.size() == num_inputs_, "{}: backward returned {} gradients for {} tensor inputs", ctx_->name,
               result.size(), num_inputs_);
    return result;
  }
  void release_variables() override { ctx_->release(); }

 private:
  std::shared_ptr<AutogradContext> ctx_;
  size_t num_inputs_;
};

template <class T>
struct Function {
  template <class... Args>
  static auto apply(Args&&... args) {
    auto ctx = std::make_shared<AutogradContext>();
    ctx->name = demangle(typeid(T).name());
    TensorList inputs;
    auto collect = [&](const auto& a) {
      if constexpr (std::is_same_v<std::decay_t<decltype(a)>, Tensor>) inputs.push_back(a);
    };
    (collect(args), ...);
    using Result = decltype(T::forward(ctx.get(), std::forward<Args>(args)...));
    Result result;
    {
      NoGradGuard no_grad;
      result = T::forward(ctx.get(), std::forward<Args>(args)...);
    }
    TensorList outputs;
    if constexpr (std::is_same_v<Result, Tensor>)
      outputs = {result};
    else
      outputs = result;
    if (needs_grad(inputs)) {
      auto node = make_node<CustomNode<T>>(ctx, inputs.size());
      collect_next_edges(*node, inputs);
      for (size_t i = 0; i < outputs.size(); ++i) {
        // An output must be a tensor of its own to carry its own history.
        outputs[i] = outputs[i].detach();
        node->outputs.push_back({outputs[i].shape(), outputs[i].dtype(), outputs[i].device()});
        if (is_floating(outputs[i].dtype())) set_history(outputs[i], node, static_cast<uint32_t>(i));
      }
    }
    if constexpr (std::is_same_v<Result, Tensor>)
      return outputs[0];
    else
      return outputs;
  }
};

}  // namespace heed

#pragma once
// Tensor: a cheap, shareable handle to a TensorImpl (storage + shape, strides,
// offset, dtype + optional autograd metadata). Copying a Tensor copies the
// handle; views share storage. Free functions in tensor/ops.h do the work;
// the methods here are the same functions spelled the PyTorch way.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace heed {

struct TensorImpl;
class Node;
class Tensor;
using TensorList = std::vector<Tensor>;
// A gradient hook: sees the gradient flowing into a tensor and returns it,
// possibly replaced. Return an undefined Tensor to leave it unchanged.
using GradHook = std::function<Tensor(const Tensor&)>;
// A hook run on a leaf after a backward has added into its .grad: it sees the
// leaf, whose grad() is the total so far (for data-parallel training, which
// starts sending a gradient the moment it is complete).
using PostAccumulateGradHook = std::function<void(const Tensor&)>;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata ----
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  // Address of element 0 (storage start + offset); CPU only for typed access.
  void* raw_data() const;
  template <class T> T* data_ptr() const;
  // The single value of a one-element tensor, copied to the host.
  template <class T> T item() const;
  // All values in row-major order, copied to the host.
  template <class T> std::vector<T> to_vector() const;
  std::string str() const;

  // ---- autograd ----
  bool requires_grad() const;
  // Marks a leaf as needing a gradient; only float tensors may.
  Tensor& requires_grad_(bool on = true);
  Tensor& set_requires_grad(bool on = true) { return requires_grad_(on); }
  const Tensor& grad() const;
  Tensor& mutable_grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const;
  std::shared_ptr<Node> grad_fn() const;
  uint32_t output_nr() const;
  bool is_leaf() const;
  // Backward from this tensor: a scalar needs no gradient; others take one of
  // their own shape. Defined in autograd/engine.cpp, with the engine.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  // A tensor sharing this one's storage, cut off from the graph.
  Tensor detach() const;
  // Keeps the gradient of a non-leaf tensor in grad() after backward.
  void retain_grad() const;
  bool retains_grad() const;
  // Registers a hook that reads or replaces the gradient flowing into this tensor.
  void register_hook(GradHook hook) const;
  // Registers a hook run after each backward's gradient is added to this
  // leaf's .grad (a leaf that requires grad only; as PyTorch's
  // register_post_accumulate_grad_hook). Do not capture the leaf itself in
  // the hook (it would keep itself alive): the hook is given it.
  void register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const;
  uint64_t version() const;

  // ---- views (no copy) ----
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const Shape& dims) const;
  Tensor squeeze(int64_t d) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t d) const;
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  Tensor slice(int64_t d, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t d, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // ---- math, as methods ----
  Tensor sum(const Shape& dims = {}, bool keepdim = false) const;
  Tensor mean(const Shape& dims = {}, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  Tensor argmax(int64_t d, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor pow(double exponent) const;
  Tensor softmax(int64_t d) const;
  Tensor log_softmax(int64_t d) const;
  Tensor masked_fill(const Tensor& mask, double value) const;

  // ---- in place (bump the version counter) ----
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& div_(const Tensor& other);
  Tensor& add_(double value);
  Tensor& mul_(double value);
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);
  Tensor& masked_fill_(const Tensor& mask, double value);
  Tensor& clamp_(double lo, double hi);
  // *this + weight * (end - *this), as heed::lerp.
  Tensor& lerp_(const Tensor& end, double weight);

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
// Comparisons give bool tensors.
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);
Tensor operator&&(const Tensor& a, const Tensor& b);
Tensor operator||(const Tensor& a, const Tensor& b);
Tensor operator!(const Tensor& a);

}  // namespace heed

// fmt::format("{}", t) prints the values, like PyTorch's repr.
template <>
struct fmt::formatter<heed::Tensor> : fmt::formatter<std::string> {
  template <class Ctx>
  auto format(const heed::Tensor& t, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(t.str(), ctx);
  }
};

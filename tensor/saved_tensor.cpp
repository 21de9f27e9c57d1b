#include "tensor/saved_tensor.h"

#include "tensor/node.h"
#include "tensor/tensor_impl.h"

namespace heed {

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  version_ = t.version();
  requires_grad_ = t.requires_grad();
  is_leaf_ = t.is_leaf();
  if (is_leaf_) {
    data_ = t;
    return;
  }
  data_ = t.detach();
  grad_fn_ = t.grad_fn();
  output_nr_ = t.output_nr();
}

Tensor SavedTensor::unpack(const char* op) const {
  if (!data_.defined()) return Tensor();
  HEED_CHECK(data_.version() == version_,
             "{}: a tensor saved for backward (shape {}, {}) was modified by an in-place operation "
             "(its version is {}, backward expected {}); use an out-of-place op or clone() it first",
             op, shape_str(data_.shape()), data_.dtype(), data_.version(), version_);
  if (is_leaf_ || !requires_grad_) return data_;
  std::shared_ptr<Node> fn = grad_fn_.lock();
  if (!fn) return data_;
  // A fresh handle over the same storage, reconnected to the graph.
  Tensor t = make_view(data_, data_.shape(), data_.strides(), data_.offset());
  AutogradMeta& meta = t.impl()->meta();
  meta.requires_grad = true;
  meta.grad_fn = std::move(fn);
  meta.output_nr = output_nr_;
  return t;
}

}  // namespace heed

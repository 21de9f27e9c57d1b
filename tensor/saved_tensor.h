#pragma once
// A tensor kept for backward. It remembers the version of its storage at save
// time, and unpack() refuses a tensor that an in-place op has since modified:
// a clear error instead of a silently wrong gradient. The link to the
// tensor's grad_fn is weak, so a node that saves its own output makes no
// reference cycle; unpack() restores it for double backward.
#include <memory>

#include "tensor/tensor.h"

namespace heed {

class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  // The saved tensor, connected to the graph as it was when saved. `op` names
  // the node for the error message.
  Tensor unpack(const char* op) const;
  bool defined() const { return data_.defined(); }
  void reset() { *this = SavedTensor(); }

 private:
  Tensor data_;  // leaves: the tensor itself; others: an alias without autograd
  std::weak_ptr<Node> grad_fn_;
  uint32_t output_nr_ = 0;
  bool requires_grad_ = false;
  bool is_leaf_ = true;
  uint64_t version_ = 0;
};

}  // namespace heed

#pragma once
// Mixed precision, the way torch.autocast does it: while an AutocastGuard is
// alive in a thread, ops choose their own precision for float32 inputs.
//
//   heed::AutocastGuard autocast(DType::BFloat16);
//   Tensor loss = nn::cross_entropy(model->forward(x), y);  // matmuls in bf16
//   // leave the scope, then loss.backward(): gradients of float32
//   // parameters arrive in float32 (the casts are ordinary autograd ops)
//
// The policy, op by op (float64 is never touched; a tensor already in the
// right dtype is passed through without a copy):
//  - lower precision: matmul, and so Linear, attention's products and the
//    generator: float32 operands are cast to the autocast dtype, and so is a
//    Linear's bias; the result is bfloat16.
//  - float32: softmax, log_softmax, layer_norm, rms_norm, cross_entropy,
//    nll_loss: bfloat16 inputs are cast to float32 (their sums and
//    exponentials need float32's mantissa), and so are their results.
//  - widest: the elementwise ops of two tensors (add, sub, mul, div, pow,
//    maximum, minimum, where) and cat/stack: a bfloat16 operand meeting a
//    float32 one is cast to float32, so a bf16 layer output can join the
//    float32 residual stream. Outside autocast this is still an error.
// Parameters, their gradients and the optimizer's state stay float32 (the
// master weights); only the copies made for an op are bf16. Backward runs
// without the policy: each op's backward works in the dtypes its forward
// chose, and a cast's backward casts the gradient back.
#include "tensor/tensor.h"

namespace heed {

struct Autocast {
  static bool is_enabled();
  // The lower-precision dtype (bfloat16) while enabled.
  static DType dtype();
  static void set(bool enabled, DType dtype);
};

// While alive, the policy above is on (or off, with enabled = false) in this thread.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype = DType::BFloat16, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  DType prev_dtype_;
};

namespace autocast {
// t cast for a lower-precision op: float32 -> the autocast dtype while enabled, else t.
Tensor lower(const Tensor& t);
// t cast for a float32 op: the autocast dtype -> float32 while enabled, else t.
Tensor float32(const Tensor& t);
// t cast to meet `other` in an op of two tensors: to float32 when t is of the
// autocast dtype and other is float32, while enabled; else t.
Tensor widest(const Tensor& t, const Tensor& other);
}  // namespace autocast

}  // namespace heed

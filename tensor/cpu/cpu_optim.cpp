// The fused Adam / AdamW update: one pass over a parameter instead of the
// dozen tensor ops (each a full pass, most with a temporary) that the rule
// takes when composed. The arithmetic is tensor/adam_rule.h's, the GPU's
// too; every element is computed alone, so the result does not depend on the
// thread count. And lerp (tensor/lerp_rule.h), the other update applied to
// whole parameter lists (ExponentialMovingAverage), in one pass likewise.
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/lerp_rule.h"

namespace heed::cpu {
namespace {

// Elements [lo, hi) of a float32 parameter at the CPU's full vector width
// (isa_clones.h). adam_element rounds every operation on its own
// (rounded_math.h: no contraction into FMA), so each clone gives the same bits.
HEED_ISA_CLONES __attribute__((flatten)) void adam_range(const AdamScalars<float>& s, float* p, const float* g,
                                                         float* m, float* v, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) adam_element(s, p, g, m, v, i);
}
template <class T>
void adam_range(const AdamScalars<compute_t<T>>& s, T* p, const T* g, T* m, T* v, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) adam_element(s, p, g, m, v, i);
}

// tensor/adam_rule.h's update, element by element; a bfloat16 parameter
// and its state are updated in float32 and each rounded once on store.
template <class T>
void adam_rows(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& args) {
  const AdamScalars<compute_t<T>> s = make_adam_scalars<compute_t<T>>(args);
  T* p = static_cast<T*>(param.raw_data());
  const T* g = static_cast<const T*>(grad.raw_data());
  T* m = static_cast<T*>(exp_avg.raw_data());
  T* v = static_cast<T*>(exp_avg_sq.raw_data());
  parallel_for(0, param.numel(), kGrainCheap, [&](int64_t lo, int64_t hi) {
    adam_range(s, p, g, m, v, lo, hi);
  });
}

HEED_ISA_CLONES __attribute__((flatten)) void lerp_range(const float* s, const float* e, float w, float* o,
                                                         int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) lerp_element(s, e, w, o, i);
}
template <class T>
void lerp_range(const T* s, const T* e, compute_t<T> w, T* o, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) lerp_element(s, e, w, o, i);
}

template <class T>
void lerp_rows(const Tensor& start, const Tensor& end, double weight, const Tensor& out) {
  const T* s = static_cast<const T*>(start.raw_data());
  const T* e = static_cast<const T*>(end.raw_data());
  T* o = static_cast<T*>(out.raw_data());
  const compute_t<T> w = static_cast<compute_t<T>>(weight);
  parallel_for(0, out.numel(), kGrainCheap, [&](int64_t lo, int64_t hi) { lerp_range(s, e, w, o, lo, hi); });
}

}  // namespace

void lerp(const Tensor& start, const Tensor& end, double weight, const Tensor& out) {
  HEED_CHECK(start.is_contiguous() && end.is_contiguous() && out.is_contiguous(),
             "cpu lerp: start, end and out must be contiguous");
  HEED_CHECK(start.shape() == out.shape() && end.shape() == out.shape() && start.dtype() == out.dtype() &&
                 end.dtype() == out.dtype(),
             "cpu lerp: start {} {}, end {} {} and out {} {} must agree", shape_str(start.shape()),
             dtype_name(start.dtype()), shape_str(end.shape()), dtype_name(end.dtype()), shape_str(out.shape()),
             dtype_name(out.dtype()));
  if (out.dtype() == DType::BFloat16) return lerp_rows<bfloat16>(start, end, weight, out);
  dispatch_floating(out.dtype(), "cpu lerp", [&](auto zero) { lerp_rows<decltype(zero)>(start, end, weight, out); });
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& args) {
  if (param.dtype() == DType::BFloat16) return adam_rows<bfloat16>(param, grad, exp_avg, exp_avg_sq, args);
  dispatch_floating(param.dtype(), "cpu adam_step",
                    [&](auto zero) { adam_rows<decltype(zero)>(param, grad, exp_avg, exp_avg_sq, args); });
}

}  // namespace heed::cpu

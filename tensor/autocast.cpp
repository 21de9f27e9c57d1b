#include "tensor/autocast.h"

#include "tensor/ops.h"

namespace heed {

namespace {
thread_local bool autocast_enabled = false;
thread_local DType autocast_dtype = DType::BFloat16;
}  // namespace

bool Autocast::is_enabled() { return autocast_enabled; }
DType Autocast::dtype() { return autocast_dtype; }
void Autocast::set(bool enabled, DType dtype) {
  HEED_CHECK(dtype == DType::BFloat16, "autocast: the lower-precision dtype must be bfloat16, got {}", dtype);
  autocast_enabled = enabled;
  autocast_dtype = dtype;
}

AutocastGuard::AutocastGuard(DType dtype, bool enabled)
    : prev_enabled_(Autocast::is_enabled()), prev_dtype_(Autocast::dtype()) {
  Autocast::set(enabled, dtype);
}
AutocastGuard::~AutocastGuard() { Autocast::set(prev_enabled_, prev_dtype_); }

namespace autocast {

Tensor lower(const Tensor& t) {
  if (!autocast_enabled || !t.defined() || t.dtype() != DType::Float32) return t;
  return to_dtype(t, autocast_dtype);
}

Tensor float32(const Tensor& t) {
  if (!autocast_enabled || !t.defined() || t.dtype() != autocast_dtype) return t;
  return to_dtype(t, DType::Float32);
}

Tensor widest(const Tensor& t, const Tensor& other) {
  if (!autocast_enabled || !t.defined() || !other.defined()) return t;
  if (t.dtype() != autocast_dtype || other.dtype() != DType::Float32) return t;
  return to_dtype(t, DType::Float32);
}

}  // namespace autocast
}  // namespace heed

// The Tensor handle: metadata access, autograd entry points, and the methods
// that spell the free functions of ops.h the PyTorch way.
#include "tensor/tensor.h"

#include <cstring>

#include "tensor/node.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  HEED_CHECK(impl != nullptr, "operation on an undefined tensor (default-constructed heed::Tensor)");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const { return checked(impl_).shape; }
const Shape& Tensor::strides() const { return checked(impl_).strides; }
int64_t Tensor::offset() const { return checked(impl_).offset; }
int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[normalize_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return numel_of(shape()); }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).device(); }
uint64_t Tensor::version() const { return checked(impl_).storage->version(); }

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked(impl_);
  // No elements: any strides describe the (empty) data as one block.
  if (numel_of(t.shape) == 0) return true;
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] == 1) continue;
    if (t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked(impl_);
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(dtype_size(t.dtype));
}

template <class T>
T* Tensor::data_ptr() const {
  HEED_CHECK(dtype() == dtype_of<T>::value, "data_ptr: tensor is {}, asked for {}", dtype(), dtype_of<T>::value);
  HEED_CHECK(device().is_cpu(), "data_ptr: tensor is on {}; copy it with .to(kCPU) first", device());
  return static_cast<T*>(raw_data());
}

template <class T>
T Tensor::item() const {
  HEED_CHECK(numel() == 1, "item: tensor has {} elements (shape {}), expected exactly one", numel(), shape_str(shape()));
  return to_vector<T>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = heed::to_device(*this, kCPU);
  host = heed::contiguous(heed::to_dtype(host.detach(), dtype_of<T>::value));
  const T* p = host.data_ptr<T>();
  return std::vector<T>(p, p + host.numel());
}

#define HEED_INSTANTIATE(T)                            \
  template T* Tensor::data_ptr<T>() const;             \
  template T Tensor::item<T>() const;                  \
  template std::vector<T> Tensor::to_vector<T>() const;
HEED_INSTANTIATE(float)
HEED_INSTANTIATE(double)
HEED_INSTANTIATE(int64_t)
HEED_INSTANTIATE(bool)
HEED_INSTANTIATE(uint8_t)
HEED_INSTANTIATE(bfloat16)
#undef HEED_INSTANTIATE

// ---- autograd ----
bool Tensor::requires_grad() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd && t.autograd->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  checked(impl_);
  if (on) {
    HEED_CHECK(is_floating(dtype()), "requires_grad: only float tensors can require gradients, got {} {}",
               shape_str(shape()), dtype());
  }
  HEED_CHECK(is_leaf(), "requires_grad: can only be changed on a leaf tensor; use detach() to get one");
  impl_->meta().requires_grad = on;
  return *this;
}

const Tensor& Tensor::grad() const {
  static const Tensor none;
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->grad : none;
}

Tensor& Tensor::mutable_grad() const {
  checked(impl_);
  return impl_->meta().grad;
}

void Tensor::set_grad(const Tensor& g) const {
  checked(impl_);
  if (g.defined()) {
    HEED_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(),
               "set_grad: gradient {} {} on {} does not match tensor {} {} on {}", shape_str(g.shape()), g.dtype(),
               g.device(), shape_str(shape()), dtype(), device());
  }
  impl_->meta().grad = g;
}

void Tensor::zero_grad() const {
  if (impl_ && impl_->autograd) impl_->autograd->grad = Tensor();
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->grad_fn : nullptr;
}

uint32_t Tensor::output_nr() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->output_nr : 0;
}

bool Tensor::is_leaf() const { return grad_fn() == nullptr; }

Tensor Tensor::detach() const { return heed::detach(*this); }

void Tensor::retain_grad() const {
  HEED_CHECK(requires_grad(), "retain_grad: the tensor (shape {}) does not require grad", shape_str(shape()));
  if (is_leaf() || impl_->meta().retains_grad) return;
  impl_->meta().retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  grad_fn()->pre_hooks.emplace_back(output_nr(), [weak](const Tensor& g) {
    if (auto impl = weak.lock()) {
      Tensor& slot = impl->meta().grad;
      Tensor gd = g.detach();
      slot = slot.defined() ? slot + gd : heed::clone(gd);
    }
    return Tensor();
  });
}

bool Tensor::retains_grad() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd && t.autograd->retains_grad;
}

void Tensor::register_hook(GradHook hook) const {
  HEED_CHECK(requires_grad(), "register_hook: the tensor (shape {}) does not require grad", shape_str(shape()));
  if (is_leaf())
    impl_->meta().leaf_hooks.push_back(std::move(hook));
  else
    grad_fn()->pre_hooks.emplace_back(output_nr(), std::move(hook));
}

void Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const {
  HEED_CHECK(requires_grad() && is_leaf(),
             "register_post_accumulate_grad_hook: the tensor (shape {}) is not a leaf that requires grad; only a "
             "leaf's .grad is accumulated",
             shape_str(shape()));
  impl_->meta().post_accumulate_hooks.push_back(std::move(hook));
}

// ---- methods spelled after the free functions ----
Tensor Tensor::view(const Shape& s) const { return heed::view(*this, s); }
Tensor Tensor::reshape(const Shape& s) const { return heed::reshape(*this, s); }
Tensor Tensor::flatten(int64_t a, int64_t b) const { return heed::flatten(*this, a, b); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return heed::transpose(*this, a, b); }
Tensor Tensor::permute(const Shape& d) const { return heed::permute(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return heed::squeeze(*this, d); }
Tensor Tensor::squeeze() const { return heed::squeeze(*this); }
Tensor Tensor::unsqueeze(int64_t d) const { return heed::unsqueeze(*this, d); }
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t l) const { return heed::narrow(*this, d, s, l); }
Tensor Tensor::slice(int64_t d, int64_t s, int64_t e, int64_t st) const { return heed::slice(*this, d, s, e, st); }
Tensor Tensor::select(int64_t d, int64_t i) const { return heed::select(*this, d, i); }
Tensor Tensor::expand(const Shape& s) const { return heed::expand(*this, s); }
Tensor Tensor::contiguous() const { return heed::contiguous(*this); }
Tensor Tensor::clone() const { return heed::clone(*this); }
Tensor Tensor::to(DType d) const { return heed::to_dtype(*this, d); }
Tensor Tensor::to(Device d) const { return heed::to_device(*this, d); }
Tensor Tensor::sum(const Shape& d, bool k) const { return heed::sum(*this, d, k); }
Tensor Tensor::mean(const Shape& d, bool k) const { return heed::mean(*this, d, k); }
Tensor Tensor::max() const { return heed::max(*this); }
Tensor Tensor::min() const { return heed::min(*this); }
Tensor Tensor::argmax(int64_t d, bool k) const { return heed::argmax(*this, d, k); }
Tensor Tensor::matmul(const Tensor& o) const { return heed::matmul(*this, o); }
Tensor Tensor::exp() const { return heed::exp(*this); }
Tensor Tensor::log() const { return heed::log(*this); }
Tensor Tensor::sqrt() const { return heed::sqrt(*this); }
Tensor Tensor::pow(double e) const { return heed::pow(*this, e); }
Tensor Tensor::softmax(int64_t d) const { return heed::softmax(*this, d); }
Tensor Tensor::log_softmax(int64_t d) const { return heed::log_softmax(*this, d); }
Tensor Tensor::masked_fill(const Tensor& m, double v) const { return heed::masked_fill(*this, m, v); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return add(neg(b), a); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) { return mul(reciprocal(b), a); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator<=(const Tensor& a, double b) { return le(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator>(const Tensor& a, double b) { return gt(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator==(const Tensor& a, double b) { return eq(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, scalar_tensor(b, a.dtype(), a.device())); }
Tensor operator&&(const Tensor& a, const Tensor& b) { return logical_and(a, b); }
Tensor operator||(const Tensor& a, const Tensor& b) { return logical_or(a, b); }
Tensor operator!(const Tensor& a) { return logical_not(a); }

}  // namespace heed

#pragma once
// Every tensor op, as free functions. Each is differentiable where that makes
// sense; its forward and backward live together in one .cpp file of tensor/
// (elementwise.cpp, reduce.cpp, views.cpp, ...). Shapes broadcast like NumPy.
// Ops never mix dtypes or devices: a mismatch throws heed::Error.
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/backend.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed {

// device_count, cuda_is_available and synchronize ask the op table:
// tensor/backend.h, included above.

// ---- creation (factory.cpp) ----
// Fresh contiguous, uninitialised tensor.
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = kCPU);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// A 0-dim tensor holding one value.
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = kCPU);
// [start, end) in steps; the dtype defaults to int64.
Tensor arange(int64_t end, DType dtype = DType::Int64, Device device = kCPU);
Tensor arange(double start, double end, double step = 1, DType dtype = DType::Int64, Device device = kCPU);
// A tensor holding a copy of `values`, with `shape` (default: 1-D).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {}, Device device = kCPU);
// float32 from a brace list: heed::tensor({1, 2, 3}, {3}).
Tensor tensor(std::initializer_list<float> values, const Shape& shape = {});
// Random numbers from the counter-based generator (default: the global one).
Tensor rand(const Shape& shape, Generator* gen = nullptr, DType dtype = DType::Float32, Device device = kCPU);
Tensor randn(const Shape& shape, Generator* gen = nullptr, DType dtype = DType::Float32, Device device = kCPU);
Tensor uniform(const Shape& shape, double low, double high, Generator* gen = nullptr, DType dtype = DType::Float32,
               Device device = kCPU);
Tensor normal(const Shape& shape, double mean, double std, Generator* gen = nullptr, DType dtype = DType::Float32,
              Device device = kCPU);
// 1 with probability p, else 0, in `dtype` (bool for masks, float for dropout).
Tensor bernoulli(const Shape& shape, double p, Generator* gen = nullptr, DType dtype = DType::Float32,
                 Device device = kCPU);

// ---- views and copies (views.cpp, join.cpp) ----
Tensor view(const Tensor& t, const Shape& shape);
Tensor reshape(const Tensor& t, const Shape& shape);
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, const Shape& dims);
Tensor squeeze(const Tensor& t, int64_t d);
Tensor squeeze(const Tensor& t);
Tensor unsqueeze(const Tensor& t, int64_t d);
Tensor narrow(const Tensor& t, int64_t d, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t d, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& t, int64_t d, int64_t index);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor broadcast_to(const Tensor& t, const Shape& shape);
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
Tensor to_dtype(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);
Tensor detach(const Tensor& t);
Tensor cat(const TensorList& tensors, int64_t dim = 0);
Tensor stack(const TensorList& tensors, int64_t dim = 0);
TensorList split(const Tensor& t, int64_t split_size, int64_t dim = 0);
TensorList chunk(const Tensor& t, int64_t chunks, int64_t dim = 0);
// Sums `t` over broadcast dims down to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& t, const Shape& shape);

// ---- elementwise (elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a + alpha * b
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor neg(const Tensor& t);
Tensor pow(const Tensor& t, double exponent);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor exp(const Tensor& t);
Tensor log(const Tensor& t);
Tensor sqrt(const Tensor& t);
Tensor rsqrt(const Tensor& t);
Tensor square(const Tensor& t);
Tensor reciprocal(const Tensor& t);
Tensor tanh(const Tensor& t);
Tensor sigmoid(const Tensor& t);
Tensor relu(const Tensor& t);
enum class GeluApprox { None, Tanh };
Tensor gelu(const Tensor& t, GeluApprox approx = GeluApprox::None);
Tensor erf(const Tensor& t);
Tensor sin(const Tensor& t);
Tensor cos(const Tensor& t);
Tensor abs(const Tensor& t);
Tensor sign(const Tensor& t);
Tensor clamp(const Tensor& t, double lo, double hi);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// cond ? a : b, broadcasting all three; cond is bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// start + weight * (end - start), broadcasting both, as torch.lerp with a
// scalar weight (computed from the nearer end: tensor/lerp_rule.h); float dtypes.
Tensor lerp(const Tensor& start, const Tensor& end, double weight);
// t with `value` where mask (bool, broadcastable to t) is true.
Tensor masked_fill(const Tensor& t, const Tensor& mask, double value);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& t);
// Bool tensor: true where t is NaN or +-inf.
Tensor isnonfinite(const Tensor& t);
bool any_non_finite(const Tensor& t);

// ---- reductions (reduce.cpp); empty dims = all dims ----
Tensor sum(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
// Variance with `correction` (1: unbiased, 0: biased, as PyTorch's).
Tensor var(const Tensor& t, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& t, const Shape& dims, bool keepdim = false);
// Max / min over dims (values only; the gradient goes to the first extreme).
Tensor amax(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};
ValuesIndices max(const Tensor& t, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& t);
Tensor min(const Tensor& t);
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& t);  // over the flattened tensor
// Numerically stable; a row that is all -inf gives zeros (softmax) or -inf
// (log_softmax), never NaN, and a zero gradient.
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);

// ---- normalization (norm.cpp) ----
// Layer norm over the last dim: (x - mean) / sqrt(var + eps) * weight + bias,
// var biased, as torch.nn.functional.layer_norm with normalized_shape [D].
// weight and bias are [D] or undefined (then that part is left out). One
// fused kernel each way; differentiable twice (the double backward is
// composed from other ops).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- optimizer updates (inplace.cpp) ----
// The whole Adam / AdamW update of one parameter in place, in one fused
// kernel: param, exp_avg and exp_avg_sq are updated from grad (all contiguous,
// one shape and dtype, one device). Not differentiable: call it under
// NoGradGuard, as optimizers do.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamStepArgs& args);

// ---- linear algebra (linalg.cpp) ----
// Like torch.matmul: 1-D operands are vectors, leading dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- the fused linear layer (linear.cpp) ----
// What linear applies to x W^T + b before returning it.
enum class LinearActivation { None, ReLU, GELU };  // GELU: the exact (erf) one
// y = act(x W^T + b) + residual, as one op: x [..., K], weight [N, K],
// bias [N] or undefined, residual of y's shape [..., N] or undefined (only
// with act None). torch.nn.functional.linear with the epilogue fused: the
// bias and residual are written into y first and the product is added to
// them (the GEMM's beta = 1), the activation runs in place, and backward
// saves x, the weight and one [..., N] tensor (y for ReLU, the pre-activation
// for GELU), never a separate bias-added copy.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {},
              LinearActivation act = LinearActivation::None, const Tensor& residual = {});

// ---- fused dropout (dropout.cpp) ----
// residual + x * mask / (1 - p), mask[i] = 1 with probability 1 - p, in one
// pass (residual undefined: plain dropout). The mask is drawn from gen (the
// default generator when null) exactly as bernoulli(x.shape(), 1 - p, gen)
// would draw it, and the arithmetic is the composed op's, so the result is
// bit for bit that of add(residual, mul(x, mul(bernoulli(...), 1 / (1 - p))));
// backward draws the mask again from the saved counter instead of keeping
// it. p in [0, 1); x a float tensor; residual of x's shape and device.
Tensor fused_dropout(const Tensor& x, double p, Generator* gen = nullptr, const Tensor& residual = {});

// ---- indexing (index.cpp) ----
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
// t with src added at index along dim (out of place).
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
// weight [V, D], ids int64 [...] -> [..., D]; an id outside [0, V) throws.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// ids int64 [...] -> float32 [..., num_classes].
Tensor one_hot(const Tensor& ids, int64_t num_classes, DType dtype = DType::Float32);

}  // namespace heed

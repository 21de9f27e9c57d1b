#pragma once
// Kernel launchers, declared with plain types so that the .cpp files that
// call them need no CUDA compiler and the .cu files need no heed headers.
// Each launches on the current device's default stream and checks the launch.
#include <cstdint>

#include "tensor/bfloat16.h"  // standalone: the one heed type the launchers name

namespace heed::cuda {

// out[i] = value for i in [0, n); out is contiguous device memory.
template <class T>
void launch_fill(T* out, int64_t n, T value);

// ---- reductions, softmax, layer norm (reduce helper) -------------------------
// Plans and their index math: cuda/reduce_plan.h.

struct ReducePlan;
enum class ReduceKind : int;

// Reduces x as `plan` says (cuda/reduce_plan.h) into out (T for sum, prod,
// max, min; int64 for argmax, argmin). When plan.splits > 1, `workspace`
// holds plan.splits * plan.n_out * kReducePartialBytes bytes of device memory.
template <class T>
void launch_reduce(ReduceKind kind, const T* x, void* out, const ReducePlan& plan, void* workspace);

// Softmax (log = false) or log-softmax over the last dim of contiguous x [rows, n] into out [rows, n].
template <class T>
void launch_softmax(const T* x, T* out, int64_t rows, int64_t n, bool log);
// Its backward from grad and the output y, all contiguous [rows, n] (tensor/backend.h has the rule).
template <class T>
void launch_softmax_backward(const T* grad, const T* y, T* grad_x, int64_t rows, int64_t n, bool log);

// Fused cross-entropy of contiguous logits x [rows, n] against target [rows]
// (cuda/cross_entropy.cu; tensor/backend.h has the rule): loss [rows], lse [rows].
template <class T>
void launch_cross_entropy(const T* x, const int64_t* target, int64_t ignore_index, double smoothing, T* loss,
                          compute_t<T>* lse, int64_t rows, int64_t n);
// Its backward from grad [rows] into grad_x [rows, n].
template <class T>
void launch_cross_entropy_backward(const T* grad, const T* x, const int64_t* target, const compute_t<T>* lse,
                                   int64_t ignore_index, double smoothing, T* grad_x, int64_t rows, int64_t n);

// Layer norm of contiguous x [rows, d]; weight, bias [d] may be null. Writes
// out [rows, d], mean [rows], rstd [rows] (mean and rstd in compute_t<T>:
// float for bfloat16). T is float, double or bfloat16, for softmax too.
template <class T>
void launch_layer_norm(const T* x, const T* weight, const T* bias, double eps, T* out, compute_t<T>* mean,
                       compute_t<T>* rstd, int64_t rows, int64_t d);

// Its backward; weight may be null, and so may each of grad_x [rows, d],
// grad_weight [d], grad_bias [d] (not wanted). When grad_weight or grad_bias
// is wanted, `workspace` holds layer_norm_backward_workspace(rows, d) doubles.
template <class T>
void launch_layer_norm_backward(const T* grad, const T* x, const T* weight, const compute_t<T>* mean,
                                const compute_t<T>* rstd, T* grad_x, T* grad_weight, T* grad_bias, int64_t rows,
                                int64_t d, double* workspace);
int64_t layer_norm_backward_workspace(int64_t rows, int64_t d);

}  // namespace heed::cuda

// ---- matmul / index / optim helper: cuda/index.cu, cuda/optim.cu, cuda/random.cu ----
// The argument structs are in cuda/index_math.h and tensor/adam_rule.h.
#include <cstddef>

#include "tensor/adam_rule.h"  // AdamScalars (standalone)

namespace heed::cuda {

struct IndexCheckArgs;
struct IndexSelectArgs;
struct GatherArgs;
struct ScatterAddArgs;
struct IndexAddArgs;

// Checks every entry of an index tensor of `numel` entries (a.walk over its
// shape): *first_bad becomes the smallest row-major position of an entry
// outside [0, a.size) when that is below its current value. When keys is not
// null, also writes keys[p] = entry p and order[p] = p (index_add's sort input).
void launch_check_index(const IndexCheckArgs& a, const int64_t* index, int64_t numel, int64_t* first_bad,
                        uint64_t* keys, int64_t* order);
// out [numel] contiguous; T is uint8_t, uint32_t or uint64_t: elements are moved
// as bytes. A bad entry is recorded in *first_bad as above and leaves its out
// elements unwritten.
template <class T>
void launch_index_select(const IndexSelectArgs& a, const T* x, const int64_t* index, T* out, int64_t numel,
                         int64_t* first_bad);
template <class T>
void launch_gather(const GatherArgs& a, const T* x, const int64_t* index, T* out, int64_t numel,
                   int64_t* first_bad);
// T is float, double, int64_t or uint8_t; the index entries have been checked.
template <class T>
void launch_scatter_add(const ScatterAddArgs& a, T* dst, const T* src, const int64_t* index, int64_t lines);
// *dst += *src (0-d scatter_add / index_add).
template <class T>
void launch_add_one(T* dst, const T* src);
// Stable radix sort of n (key, position) pairs on the low `bits` bits of the
// keys: first ask for the temporary bytes, then sort with that much.
size_t index_sort_temp_bytes(int64_t n, int bits);
void launch_index_sort(void* temp, size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                       const int64_t* order_in, int64_t* order_out, int64_t n, int bits);
template <class T>
void launch_index_add(const IndexAddArgs& a, T* dst, const T* src, const uint64_t* keys, const int64_t* order,
                      int64_t work);

// All [n], contiguous; T is float, double or bfloat16 (updated in float).
template <class T>
void launch_adam_step(const AdamScalars<compute_t<T>>& s, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                      int64_t n);
// out[i] = lerp(start[i], end[i], weight) (tensor/lerp_rule.h), all [n]
// contiguous; out may be start or end.
template <class T>
void launch_lerp(const T* start, const T* end, compute_t<T> weight, T* out, int64_t n);

// out [n] contiguous from tensor/philox.h's mapping (T float, double or
// bfloat16, which takes float32's sample rounded; any dtype's storage type
// for Bernoulli).
template <class T>
void launch_random_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, compute_t<T> a, compute_t<T> b);
template <class T>
void launch_random_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, compute_t<T> mean, compute_t<T> std);
template <class T>
void launch_random_bernoulli(T* out, int64_t n, uint64_t seed, uint64_t offset, double p);
// Fused dropout (tensor/dropout_rule.h): out = [residual +] x * (keep ? scale
// : 0) over [n] contiguous, sample i the Bernoulli word i of the stream;
// residual may be null. T float, double or bfloat16.
template <class T>
void launch_dropout(const T* x, const T* residual, T* out, int64_t n, uint64_t seed, uint64_t offset, double p);

}  // namespace heed::cuda

// ---- elementwise (cuda/elementwise.cu; the elementwise helper) ---------------
#include "cuda/strided.h"
#include "tensor/elementwise_formulas.h"  // UnaryOp, BinaryOp (standalone too)

namespace heed::cuda {

// Each runs one elementwise kernel over an indexer whose operand 0 is the
// output; pointers are the operands' first elements (offset applied). The op
// must be defined for the dtype (unary_defined / binary_defined), else
// std::logic_error. Out is bool where the op writes bool, else T.

// Strided fill: every element of dst = value.
template <class T>
void launch_fill_strided(const StridedIndexer<1>& index, T* dst, T value);

// dst = cast_value<D>(src) element by element; dst and src on the current device.
template <class D, class S>
void launch_copy(const StridedIndexer<2>& index, D* dst, const S* src);

// out = op(x) with the op's scalars a, b (converted as make_unary_fn does).
template <class T>
void launch_unary(UnaryOp op, const StridedIndexer<2>& index, void* out, const T* x, double a, double b);

// out = op(x, y). `error` is device memory of two int64 holding zeros, read
// back by the caller after integer Div and Pow (binary_may_fail); may be null
// for every other op.
template <class T>
void launch_binary(BinaryOp op, const StridedIndexer<3>& index, void* out, const T* x, const T* y,
                   int64_t* error);

// out = cond != 0 ? x : y; cond is bool or uint8, read as bytes.
template <class T>
void launch_where(const StridedIndexer<4>& index, T* out, const uint8_t* cond, const T* x, const T* y);

}  // namespace heed::cuda

#pragma once
// Kernel launchers, declared with plain types so that the .cpp files that
// call them need no CUDA compiler and the .cu files need no heed headers.
// Each launches on the current device's default stream and checks the launch.
#include <cstdint>

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

// Layer norm of contiguous x [rows, d]; weight, bias [d] may be null. Writes
// out [rows, d], mean [rows], rstd [rows].
template <class T>
void launch_layer_norm(const T* x, const T* weight, const T* bias, double eps, T* out, T* mean, T* rstd, int64_t rows,
                       int64_t d);

// Its backward; weight may be null, and so may each of grad_x [rows, d],
// grad_weight [d], grad_bias [d] (not wanted). When grad_weight or grad_bias
// is wanted, `workspace` holds layer_norm_backward_workspace(rows, d) doubles.
template <class T>
void launch_layer_norm_backward(const T* grad, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                                T* grad_weight, T* grad_bias, int64_t rows, int64_t d, double* workspace);
int64_t layer_norm_backward_workspace(int64_t rows, int64_t d);

}  // namespace heed::cuda

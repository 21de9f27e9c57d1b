#pragma once
// Kernel launchers, declared with plain types so that the .cpp files that
// call them need no CUDA compiler and the .cu files need no heed headers.
// Each launches on the current device's default stream and checks the launch.
#include <cstdint>

namespace heed::cuda {

// out[i] = value for i in [0, n); out is contiguous device memory.
template <class T>
void launch_fill(T* out, int64_t n, T value);

}  // namespace heed::cuda

// ---- elementwise (cuda/elementwise.cu; the elementwise helper) ---------------
#include "cuda/strided.h"

namespace heed::cuda {

enum class UnaryKind;   // the ops, in cuda/elementwise_ops.h
enum class BinaryKind;

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
void launch_unary(UnaryKind op, const StridedIndexer<2>& index, void* out, const T* x, double a, double b);

// out = op(x, y). `error` is device memory of two int64 holding zeros, read
// back by the caller after integer Div and Pow (binary_may_fail); may be null
// for every other op.
template <class T>
void launch_binary(BinaryKind op, const StridedIndexer<3>& index, void* out, const T* x, const T* y,
                   int64_t* error);

// out = cond != 0 ? x : y; cond is bool or uint8, read as bytes.
template <class T>
void launch_where(const StridedIndexer<4>& index, T* out, const uint8_t* cond, const T* x, const T* y);

}  // namespace heed::cuda

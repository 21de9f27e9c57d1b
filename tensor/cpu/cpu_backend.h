#pragma once
// The CPU backend: one Backend row ("cpu") whose kernels live in cpu_*.cpp.
// The kernels are declared here too so that tests and benchmarks can name
// them; everything else reaches them through heed::backend(DeviceType::CPU).
// Each one follows the conventions in tensor/backend.h.
#include <cstddef>
#include <cstdint>

#include "tensor/backend.h"
#include "tensor/cpu/cpu_memory.h"

namespace heed::cpu {

// Registers the "cpu" row with heed::register_backend; called once by tensor/backend.cpp.
void register_cpu_backend();

// cpu_allocator.cpp: 64-byte aligned memory, large blocks kept for reuse
// (tensor/cpu/cpu_memory.h has the stats, the cache limit and empty_cache).
void* allocate(size_t nbytes, int device_index);
void deallocate(void* ptr, size_t nbytes, int device_index);

// cpu_elementwise.cpp
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void unary(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out);
void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out);
void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out);

// cpu_reduce.cpp
void reduce(ReduceOp op, const Tensor& x, const Tensor& out);

// cpu_softmax.cpp
void softmax(const Tensor& x, bool log, const Tensor& out);
void softmax_backward(const Tensor& grad, const Tensor& y, bool log, const Tensor& grad_x);
void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                   const Tensor& loss, const Tensor& lse);
void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, double smoothing, const Tensor& grad_logits);

// cpu_norm.cpp
// Fused attention (cpu_attention.cpp).
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args, const Tensor& out,
                       const Tensor& lse);
void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const AttentionArgs& args, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v);
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                const Tensor& mean, const Tensor& rstd);
void layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias);

// cpu_matmul.cpp
void matmul(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend);

// cpu_index.cpp
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);
void index_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

// cpu_optim.cpp
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& args);
void lerp(const Tensor& start, const Tensor& end, double weight, const Tensor& out);

// cpu_random.cpp
void random(RandomDist dist, double a, double b, uint64_t seed, uint64_t offset, const Tensor& out);
void dropout(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t offset, const Tensor& out);

}  // namespace heed::cpu

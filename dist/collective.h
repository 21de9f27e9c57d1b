#pragma once
// What every backend does around moving the bytes: the checks of a call's
// tensor, the header the ranks compare before a collective, and the staging of
// a CUDA tensor through host memory. Internal to dist/.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "tensor/tensor.h"

namespace heed::dist::detail {

enum class Call : int64_t { Barrier = 1, Broadcast = 2, AllReduce = 3 };

// What one rank passes to a collective, as numbers every rank can compare:
// the call, its root or reduce op, whether the rank's own checks passed, the
// dtype, and the shape (the first kMaxDims sizes, the rest folded into one
// number). A rank whose tensor is refused still sends its header, so the
// other ranks fail with it instead of waiting for it.
constexpr int kMaxDims = 8;
constexpr int kHeaderLength = 6 + kMaxDims;
using Header = std::array<int64_t, kHeaderLength>;

Header make_header(Call call, const Tensor* t, int64_t root_or_op, bool valid);

// Throws heed::Error when the ranks' headers (`all`: world headers, rank after
// rank, as an all-gather leaves them) differ, naming what each rank passed.
// Every rank sees the same `all`, so every rank throws the same error.
void check_headers_agree(const std::vector<int64_t>& all, int world, int my_rank, const char* call);

// What is wrong with a call's arguments on this rank, or "" when nothing is:
// `t` must be defined and contiguous and, for an all-reduce, float32, float64
// or int64 (Mean: float32 or float64); a root must be a rank of the world.
std::string broadcast_problem(const Tensor& t, int root, int world);
std::string all_reduce_problem(const Tensor& t, ReduceOp op);

// Runs `f` on a contiguous CPU tensor holding `t`'s values, then makes them
// `t`'s: `t` itself when it is on the CPU, else a host copy copied back after.
// Bumps `t`'s version counter (its values changed in place).
void on_host(Tensor& t, const std::function<void(Tensor& host)>& f);

}  // namespace heed::dist::detail

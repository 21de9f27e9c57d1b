#pragma once
// A process group: the processes of one training run that talk to each other,
// and the collectives they run together. MPI is the first backend
// (dist/mpi_process_group.cpp); a build without MPI has a world of one process
// (dist/no_mpi.cpp). A later backend (NCCL for GPUs) implements this same
// interface, so code written against heed::dist does not change.
//
// Every collective is called by every process of the group, in the same order,
// with tensors of the same shape and dtype. heed checks that before moving any
// data: a mismatch throws heed::Error on every rank, naming each rank's tensor,
// instead of hanging or mixing unrelated bytes.
#include <string>

#include "tensor/tensor.h"

namespace heed::dist {

enum class ReduceOp { Sum, Mean };

inline constexpr const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : "mean"; }

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;        // this process, 0 .. size() - 1
  virtual int size() const = 0;        // the number of processes
  virtual std::string backend() const = 0;  // "mpi", or "single" for the world of one

  // Returns once every process of the group has called it.
  virtual void barrier() = 0;
  // Overwrites `t` on every rank with root's `t`. Any dtype; contiguous.
  virtual void broadcast(Tensor& t, int root) = 0;
  // Replaces `t` on every rank, in place, by the sum (or mean) over the ranks.
  // float32, float64 or int64 (Mean: float32 or float64 only); contiguous.
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
};

}  // namespace heed::dist

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
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace heed::dist {

enum class ReduceOp { Sum, Mean };

inline constexpr const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : "mean"; }

// A collective that was started without waiting for it (all_reduce_async).
class Work {
 public:
  virtual ~Work() = default;
  // Returns once the collective is done, throwing its error if it failed. A
  // wait longer than dist::timeout() ends every rank (a rank that died or
  // stopped calling collectives must not leave the others waiting forever).
  virtual void wait() = 0;
  // Whether it is done (wait() would return at once).
  virtual bool is_completed() const = 0;
  // Seconds it took once started, waiting for the other ranks included
  // (0 until done): the communication a program overlaps or waits for.
  virtual double seconds() const = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;        // this process, 0 .. size() - 1
  virtual int size() const = 0;        // the number of processes
  // This process among those of the group on the same machine, and their
  // number: for sharing out the machine's cores and GPUs.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", or "single" for the world of one

  // Returns once every process of the group has called it.
  virtual void barrier() = 0;
  // Overwrites `t` on every rank with root's `t`. Any dtype; contiguous.
  virtual void broadcast(Tensor& t, int root) = 0;
  // Replaces `t` on every rank, in place, by the sum (or mean) over the ranks.
  // float32, float64 or int64 (Mean: float32 or float64 only); contiguous.
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  // all_reduce, started in the background: returns at once, and `t` holds the
  // result once the Work's wait() has returned. Until then the program must
  // neither read nor write `t`. Collectives run in the order they were called,
  // waited for or not, on every rank.
  virtual std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) = 0;
  // Ends every process of the group at once with exit status `code`, after
  // printing `message` (MPI_Abort): for an error that one rank cannot recover
  // from while the others may be waiting for it.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;
};

}  // namespace heed::dist

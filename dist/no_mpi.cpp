// Compiled instead of dist/mpi_*.cpp when heed is built without MPI: the world
// is this one process (rank 0 of 1). The collectives check their tensors as
// the MPI backend does and then leave them as they are: the sum or mean over
// one rank, and a broadcast from rank 0 to itself, are the tensor itself.
#include <memory>

#include "dist/backend.h"
#include "dist/collective.h"
#include "dist/dist.h"
#include "tensor/error.h"
#include "tensor/tensor_impl.h"

namespace heed::dist {

bool built_with_mpi() { return false; }

namespace {

class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void barrier() override {}
  void broadcast(Tensor& t, int root) override { written(t, detail::broadcast_problem(t, root, 1)); }
  void all_reduce(Tensor& t, ReduceOp op) override { written(t, detail::all_reduce_problem(t, op)); }

 private:
  // Throws `problem` when there is one; else counts `t` as written in place
  // (its version goes up, as it does under MPI), though its values stay.
  static void written(Tensor& t, const std::string& problem) {
    if (!problem.empty()) throw Error(problem);
    if (t.numel() > 0) t.impl()->storage->bump_version();
  }
};

}  // namespace

namespace detail {
std::unique_ptr<ProcessGroup> start_world() { return std::make_unique<SingleProcessGroup>(); }
void stop_world() {}
}  // namespace detail

}  // namespace heed::dist

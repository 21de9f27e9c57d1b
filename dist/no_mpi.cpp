// Compiled instead of dist/mpi_*.cpp when heed is built without MPI: the world
// is this one process (rank 0 of 1). The collectives check their tensors as
// the MPI backend does and then leave them as they are: the sum or mean over
// one rank, and a broadcast from rank 0 to itself, are the tensor itself.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include "dist/backend.h"
#include "dist/collective.h"
#include "dist/dist.h"
#include "dist/work_queue.h"
#include "tensor/error.h"
#include "tensor/tensor_impl.h"

namespace heed::dist {

bool built_with_mpi() { return false; }

namespace {

class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void barrier() override {}
  void broadcast(Tensor& t, int root) override { written(t, detail::broadcast_problem(t, root, 1)); }
  void all_reduce(Tensor& t, ReduceOp op) override { written(t, detail::all_reduce_problem(t, op)); }
  std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    try {
      Tensor target = t;
      all_reduce(target, op);
    } catch (...) {
      return detail::completed_work(std::current_exception());
    }
    return detail::completed_work();
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "heed dist: rank 0 of 1: %s\n", message.c_str());
    std::fflush(nullptr);
    std::_Exit(code);
  }

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
std::unique_ptr<ProcessGroup> start_world() {
  // mpirun started several copies of a program whose heed cannot talk to the
  // others: each would train alone and all would write the same files.
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {  // OpenMPI's, MPICH's
    const char* value = std::getenv(variable);
    HEED_CHECK(!value || std::atoi(value) <= 1,
               "dist::init: started as one of {} processes ({}={}), but this heed was built without MPI "
               "(HEED_MPI=OFF or no MPI found): build it with MPI, or run one process",
               value ? value : "", variable, value ? value : "");
  }
  return std::make_unique<SingleProcessGroup>();
}
void stop_world() {}
}  // namespace detail

}  // namespace heed::dist

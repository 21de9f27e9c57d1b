#pragma once
// heed::dist: several processes training one model (docs/distributed.md).
//
//   heed::dist::InitGuard dist;             // dist::init() .. dist::finalize()
//   int rank = heed::dist::rank();          // 0 .. world_size() - 1
//   heed::dist::broadcast(weights, 0);      // everyone gets rank 0's values
//   heed::dist::all_reduce(grad, heed::dist::ReduceOp::Mean);
//
// Started from the MPI environment: `mpirun -np 4 program ...` gives 4 ranks;
// the program run by itself is a world of one. A build without MPI
// (HEED_MPI=OFF, or no MPI found) is always a world of one, with the same API.
// Tensors on a CUDA device are staged through a copy in host memory.
#include "dist/process_group.h"
#include "tensor/tensor.h"

namespace heed::dist {

// Whether heed was built with MPI (the option HEED_MPI).
bool built_with_mpi();

// Joins the world of processes: MPI_Init (unless the program already
// initialised MPI itself) and a communicator of heed's own. Calling it again
// does nothing; calling it after finalize() throws (MPI cannot start twice).
void init();
// Leaves the world: frees heed's communicator and, when init() started MPI,
// MPI_Finalize. Does nothing when not initialised. Collective: every rank calls it.
void finalize();
bool is_initialized();

// init() on construction, finalize() on destruction. Left by an exception
// in a world of more than one, it ends every rank (abort) instead: finalize()
// would wait for ranks that may be waiting for this one.
class InitGuard {
 public:
  InitGuard() { init(); }
  ~InitGuard();
  InitGuard(const InitGuard&) = delete;
  InitGuard& operator=(const InitGuard&) = delete;
};

// The group of every process; throws heed::Error before init().
ProcessGroup& world();

// The same calls on world(); each throws heed::Error before init().
int rank();
int world_size();
// This rank among the ranks on its machine (0 .. local_world_size() - 1).
int local_rank();
int local_world_size();
void barrier();
void broadcast(Tensor& t, int root = 0);
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum);
std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::Sum);
// Ends every rank now: prints "heed dist: rank R of N: <message>" and exits
// with `code` on every process. A program calls it when an error on one rank
// would otherwise leave the others waiting in a collective.
[[noreturn]] void abort(const std::string& message, int code = 1);

// How long a collective may wait for the other ranks before it ends the job
// (every rank, naming the one that timed out and its call): 30 minutes
// unless set here or by the environment variable HEED_DIST_TIMEOUT (seconds).
void set_timeout(double seconds);
double timeout();

}  // namespace heed::dist

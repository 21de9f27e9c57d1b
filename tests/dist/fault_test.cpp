// Faults under `mpirun -np 2`: one rank dies, hangs or throws while the other
// waits in an all_reduce, and the job must still end, with an error naming
// the rank, instead of waiting forever. tests/dist/fault_test.sh runs each
// mode and checks mpirun's exit status, its time and its output; this program
// only makes the fault happen. ctest runs the script as `dist_faults`.
//
//   dist_fault_test MODE            MODE: ok, kill, hang, throw, uncaught or pending
//   dist_fault_test --require-mpi   exits 77 (ctest: skipped) without MPI, else 0
//
// In every mode both ranks first complete one all_reduce together, so the
// fault comes once the world is up and talking, as it would in training.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "tests/dist/rank_check.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace dist = heed::dist;

namespace {

// One all_reduce of [1, 1] that must give [world, world].
void reduce_once() {
  heed::Tensor t = heed::ones({2});
  dist::all_reduce(t);
  const float world = static_cast<float>(dist::world_size());
  if (t.to_vector<float>() != std::vector<float>{world, world})
    throw heed::Error("dist_fault_test: all_reduce gave " + t.str());
}

// The fault itself, on rank 1; rank 0 meanwhile waits in an all_reduce that
// rank 1 never joins (pending: leaves one behind, unwaited, for the guard's
// finalize()). Returns only in mode ok, or when the job failed to end.
int run(const std::string& mode) {
  dist::InitGuard guard;
  const int rank = dist::rank();
  if (dist::world_size() != 2) {
    std::fprintf(stderr, "dist_fault_test: needs mpirun -np 2, got a world of %d\n", dist::world_size());
    return 2;
  }
  reduce_once();
  std::printf("dist_fault_test rank %d: first all_reduce done\n", rank);
  std::fflush(stdout);

  if (mode == "ok") {
    for (int i = 0; i < 3; ++i) reduce_once();
    dist::barrier();
    std::printf("dist_fault_test rank %d: ok\n", rank);
    return 0;
  }
  if (rank == 1) {
    if (mode == "kill") std::raise(SIGKILL);  // no handler, no clean-up: as the OOM killer would
    if (mode == "hang" || mode == "pending") sleep(300);  // alive, but never calls the next collective
    if (mode == "throw" || mode == "uncaught") throw heed::Error("rank 1 failed on purpose");
  } else if (mode == "pending") {
    // Started, never waited for: the guard's finalize() must not wait for it forever.
    heed::Tensor t = heed::ones({2});
    dist::all_reduce_async(t);
    std::printf("dist_fault_test rank 0: leaving with an all_reduce_async pending\n");
    return 0;
  } else {
    reduce_once();  // cannot complete: rank 1 never joins it
  }
  std::fprintf(stderr, "dist_fault_test rank %d: mode %s: still running; the job should have ended\n", rank,
               mode.c_str());
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (rank_check::no_mpi_to_test()) return rank_check::kSkip;
  if (mode == "--require-mpi") return 0;
  if (mode != "ok" && mode != "kill" && mode != "hang" && mode != "throw" && mode != "uncaught" &&
      mode != "pending") {
    std::fprintf(stderr, "usage: dist_fault_test ok|kill|hang|throw|uncaught|pending (under mpirun -np 2)\n");
    return 2;
  }
  // uncaught: the exception leaves main, so std::terminate ends the process
  // (SIGABRT) without unwinding; InitGuard's destructor never runs.
  if (mode == "uncaught") return run(mode);
  // throw: the exception leaves the guard's scope (its destructor ends every
  // rank) before reaching this handler, which then never runs.
  try {
    return run(mode);
  } catch (const heed::Error& e) {
    std::fprintf(stderr, "dist_fault_test: caught after the guard: %s\n", e.what());
    return 4;
  }
}

#pragma once
// The checks of the programs ctest runs under mpirun: each rank counts its
// failures and prints them with its rank, and main ends with report().
// (Catch2 does not fit: every rank must run every case, in the same order,
// or the collectives inside them do not pair up.)
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace rank_check {

// ctest's status for a skipped test (SKIP_RETURN_CODE).
inline constexpr int kSkip = 77;

// Whether ctest passed --require-mpi: the run under mpirun, which must have MPI.
inline bool mpi_required(int argc, char** argv) { return argc > 1 && std::strcmp(argv[1], "--require-mpi") == 0; }

// Whether heed was built without MPI, said on a [skip] line: a test meant for
// mpirun then returns kSkip.
inline bool no_mpi_to_test() {
  if (heed::dist::built_with_mpi()) return false;
  std::printf("[skip] heed was built without MPI (HEED_MPI=OFF or no MPI found)\n");
  return true;
}

inline int g_failures = 0;
inline int g_checks = 0;
inline int g_rank = 0;
inline const char* g_program = "test";

inline void check(bool ok, const std::string& what) {
  ++g_checks;
  if (ok) return;
  ++g_failures;
  std::fprintf(stderr, "%s rank %d: FAILED: %s\n", g_program, g_rank, what.c_str());
}

// Runs f, which must throw heed::Error with a message containing `needle`.
template <class F>
void check_throws(F&& f, const std::string& needle, const std::string& what) {
  try {
    f();
  } catch (const heed::Error& e) {
    check(std::string(e.what()).find(needle) != std::string::npos,
          what + ": the message does not contain \"" + needle + "\": " + e.what());
    return;
  }
  check(false, what + ": no heed::Error");
}

template <class T>
bool equal(const heed::Tensor& t, const std::vector<T>& expected) {
  return t.to_vector<T>() == expected;
}

// The exit status: 0 when every check passed.
inline int report(int world) {
  if (g_failures) {
    std::fprintf(stderr, "%s rank %d of %d: %d of %d checks failed\n", g_program, g_rank, world, g_failures, g_checks);
    return 1;
  }
  std::printf("%s rank %d of %d: all %d checks passed\n", g_program, g_rank, world, g_checks);
  return 0;
}

}  // namespace rank_check

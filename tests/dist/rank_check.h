#pragma once
// The checks of the programs ctest runs under mpirun: each rank counts its
// failures and prints them with its rank, and main ends with report().
// (Catch2 does not fit: every rank must run every case, in the same order,
// or the collectives inside them do not pair up.)
#include <cstdio>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace rank_check {

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

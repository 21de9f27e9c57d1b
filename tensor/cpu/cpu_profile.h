#pragma once
// Time spent in each CPU kernel, for finding where a training step goes.
//
// With HEED_PROFILE=1 in the environment when the CPU backend registers (the
// first tensor op), every slot of the "cpu" row is wrapped in a timer that
// adds the call's wall time to a bucket named after the kernel and its op
// ("unary.Exp", "binary.Mul", "reduce.Sum", "matmul", "softmax", ...).
// HEED_PROFILE=2 also splits matmul by shape and strides.
// Without it the row holds the kernels themselves and nothing is timed.
//
// Buckets are plain counters: kernels are called from the thread that runs
// the op layer (the kernels' own worker threads are inside the timed call),
// so profile a program that issues ops from one thread.
#include <string>

#include "tensor/backend.h"

namespace heed::cpu {

// True when the row was registered with the timers (HEED_PROFILE=1).
bool profiling_enabled();
// Clears every bucket (e.g. after warm-up).
void profile_reset();
// One line per bucket, most time first: name, calls, total ms, share of the
// kernel total; then the kernel total.
std::string profile_report();

// Swaps the timed wrappers into `row` when HEED_PROFILE=1; called by
// register_cpu_backend.
void maybe_profile(Backend& row);

}  // namespace heed::cpu

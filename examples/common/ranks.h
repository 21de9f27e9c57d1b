#pragma once
// The ranks of a training run: `mpirun -np N lm train ...` starts N copies of
// the program, which train one model together (dist::DistributedDataParallel
// in Optimization). Every rank reads the same data and builds the same global
// batch each step, trains on its part of it, and takes the same optimizer
// step; rank 0 alone writes: checkpoints, the log, the plots, the progress
// line and the messages (say(), Progress and TrainLog keep quiet elsewhere).
// A program run by itself is a world of one, exactly as before.
#include <functional>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "tensor/device.h"

namespace heed::examples {

// Runs a training command in the world of ranks: joins it (dist::init),
// shares the machine's cores among its ranks unless --threads or
// HEED_NUM_THREADS says otherwise (`threads`: the flag's value), and leaves
// it at the end. An error on one rank of several is printed with its rank
// and ends every rank (dist::abort), rather than leaving them waiting.
int run_ranks(const std::string& program, int64_t threads, const std::function<int()>& command);

// Whether this process writes: rank 0, or the only process.
bool writes();
int rank();
int world_size();

// fmt::print to stderr on rank 0 only.
template <class... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  if (writes()) fmt::print(stderr, format, std::forward<Args>(args)...);
}

// Every rank's `values` summed, element by element (one all-reduce in
// float64; no communication in a world of one). For what the ranks must
// agree on each step: the global batch's loss, the step's time, a stop.
std::vector<double> sum_over_ranks(std::vector<double> values);

// What the ranks agree on after each training step, from each rank's own
// numbers: the global batch's loss (the sum of the ranks' shares), the
// step's time (their mean, so that a time budget is fitted the same on every
// rank) and whether the time limit is reached (on any rank).
struct AgreedStep {
  double loss = 0, seconds = 0;
  bool out_of_time = false;
};
AgreedStep agree_on_step(double own_loss, double own_seconds, bool own_out_of_time);

// The device of this rank: `device` itself, except that a CUDA device
// without an index ("cuda") becomes one GPU per rank of the machine
// (cuda:local_rank, wrapping around when there are more ranks than GPUs).
Device rank_device(Device device, bool index_given);

}  // namespace heed::examples

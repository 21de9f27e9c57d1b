#pragma once
// The CPU thread pool: one persistent set of workers shared by every CPU kernel.
//
// Determinism is the point of the interface: parallel_for cuts the range into
// chunks from (begin, end, grain) alone, so a kernel that does the same work per
// chunk and combines chunks in chunk order gives bit-identical results whatever
// the number of threads or the timing of the run.
#include <cstdint>
#include <functional>

namespace heed::cpu {

// Runs fn(chunk_begin, chunk_end) over [begin, end) cut into chunks of `grain`
// items (the last may be shorter). The cut depends only on (begin, end, grain),
// never on the number of threads, so any per-chunk work combined in chunk order
// is bit-identical for every thread count.
//
// The calling thread takes chunks too. A call made from inside a chunk (or while
// another thread is using the pool) runs its chunks serially, in order, on the
// calling thread: nesting never deadlocks. If fn throws, no new chunk starts and
// the first exception is rethrown here once every started chunk has returned.
// grain must be >= 1 (std::invalid_argument otherwise); an empty range does nothing.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// Threads parallel_for uses, the caller included. Default: the environment
// variable HEED_NUM_THREADS when it holds an integer > 0, else
// std::thread::hardware_concurrency() (1 if that is unknown).
int num_threads();

// Sets the thread count (n >= 1, else std::invalid_argument). Workers are started
// or stopped at the next parallel_for, so this is safe to call from anywhere,
// even from inside a chunk.
void set_num_threads(int n);

}  // namespace heed::cpu

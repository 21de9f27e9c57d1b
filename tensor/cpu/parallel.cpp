#include "tensor/cpu/parallel.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace heed::cpu {
namespace {

int default_num_threads() {
  // A malformed HEED_NUM_THREADS is ignored rather than thrown: num_threads()
  // is called from every kernel and must not fail.
  if (const char* text = std::getenv("HEED_NUM_THREADS")) {
    char* rest = nullptr;
    long n = std::strtol(text, &rest, 10);
    if (rest != text && *rest == '\0' && n > 0 && n <= 4096) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

std::atomic<int>& requested_threads() {
  static std::atomic<int> n{default_num_threads()};
  return n;
}

// True while this thread runs a chunk (and always on pool workers): a
// parallel_for called from here runs inline instead of waiting for the pool,
// which is busy with the caller's own job.
thread_local bool t_in_chunk = false;

int64_t count_chunks(int64_t size, int64_t grain) {
  return size / grain + (size % grain != 0 ? 1 : 0);
}

// Chunk c covers [begin + c*grain, min(end, begin + (c+1)*grain)); written so
// that no intermediate overflows even for a huge grain.
int64_t chunk_end(int64_t chunk_begin, int64_t end, int64_t grain) {
  return end - chunk_begin > grain ? chunk_begin + grain : end;
}

void run_serially(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  for (int64_t b = begin; b < end;) {
    int64_t e = chunk_end(b, end, grain);
    fn(b, e);
    b = e;
  }
}

// Back-to-back parallel_for calls are common (the phases of one GEMM, a chain of
// elementwise ops), so a thread that waits first watches for a while before it
// sleeps: that saves a futex sleep and wake-up (~10 us, far more on a busy
// machine) per call, and is short enough not to matter when the cores are
// wanted elsewhere. The watching is only a hint; every decision is made again
// under the mutex.
constexpr std::chrono::microseconds kSpinTime{50};

template <typename Done>
void spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (done()) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() > deadline) return;
  }
}

// One parallel_for call as seen by every thread that works on it.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t begin = 0, end = 0, grain = 1, num_chunks = 0;
  std::atomic<int64_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;

  // Takes chunks until none is left or one has thrown.
  void run_chunks() {
    while (!failed.load(std::memory_order_relaxed)) {
      int64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (c >= num_chunks) return;
      int64_t b = begin + c * grain;
      try {
        (*fn)(b, chunk_end(b, end, grain));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
  }
};

class Pool {
 public:

  // The single user of the pool at a time; others run their loops inline.
  std::mutex& user_mutex() { return user_mutex_; }

  // Runs job on the calling thread plus (threads - 1) workers; returns when
  // every worker has left the job. Call with user_mutex() held.
  void run(Job& job, int threads) {
    if (static_cast<int>(workers_.size()) != threads - 1) {
      stop_workers();
      start_workers(threads - 1);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      busy_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    t_in_chunk = true;
    job.run_chunks();
    t_in_chunk = false;
    spin_until([&] { return busy_.load(std::memory_order_relaxed) == 0; });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    job_ = nullptr;
  }

 private:
  void start_workers(int count) {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = false;
    // A new worker must not mistake the last finished job for a new one, nor
    // miss a job posted before it first takes the lock: it starts from the
    // generation current now.
    for (int i = 0; i < count; ++i)
      workers_.emplace_back([this, seen = generation_.load()] { worker_loop(seen); });
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void worker_loop(uint64_t seen) {
    t_in_chunk = true;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_relaxed) != seen; });
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      Job* job = job_;
      lock.unlock();
      job->run_chunks();
      lock.lock();
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::mutex user_mutex_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  // Atomic only so that spin_until may peek at them without the mutex.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> busy_{0};
  bool stopping_ = false;
};

// The pool is created on first use and never destroyed: at exit its idle
// workers simply end with the process, and a static object's destructor may
// still call parallel_for. A child made by fork() has none of the parent's
// threads, so it abandons the parent's pool (whose mutexes may even be held)
// and builds its own on first use.
std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  static std::mutex create_mutex;
  std::lock_guard<std::mutex> lock(create_mutex);
  p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
#if defined(__unix__) || defined(__APPLE__)
    static const bool registered = [] {
      return pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr); }) == 0;
    }();
    (void)registered;
#endif
    p = new Pool;
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

int num_threads() { return requested_threads().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("heed::cpu::set_num_threads: the thread count must be >= 1, got " +
                                std::to_string(n));
  requested_threads().store(n, std::memory_order_relaxed);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (grain < 1)
    throw std::invalid_argument("heed::cpu::parallel_for: grain must be >= 1, got " +
                                std::to_string(grain));
  if (begin >= end) return;
  int64_t num_chunks = count_chunks(end - begin, grain);
  int threads = num_threads();
  if (num_chunks <= 1 || threads <= 1 || t_in_chunk) return run_serially(begin, end, grain, fn);

  Pool& p = pool();
  std::unique_lock<std::mutex> user(p.user_mutex(), std::try_to_lock);
  if (!user.owns_lock()) return run_serially(begin, end, grain, fn);  // another thread's job

  Job job;
  job.fn = &fn;
  job.begin = begin;
  job.end = end;
  job.grain = grain;
  job.num_chunks = num_chunks;
  // The pool keeps num_threads() - 1 workers even when there are fewer chunks:
  // idle ones find no chunk and go back to sleep, which is cheaper than restarting threads.
  p.run(job, threads);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace heed::cpu

#include "dist/work_queue.h"

#include <atomic>
#include <chrono>
#include <cstdlib>

#include <fmt/core.h>

#include "tensor/error.h"

namespace heed::dist {

namespace {

// HEED_DIST_TIMEOUT (seconds) when set, else 30 minutes, PyTorch's default:
// long enough for rank 0 to evaluate and save while the others wait.
double initial_timeout() {
  const char* text = std::getenv("HEED_DIST_TIMEOUT");
  if (!text || !*text) return 1800;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  HEED_CHECK(end && *end == '\0' && seconds > 0, "HEED_DIST_TIMEOUT={} is not a positive number of seconds", text);
  return seconds;
}

std::atomic<double>& timeout_setting() {
  static std::atomic<double> seconds{initial_timeout()};
  return seconds;
}

}  // namespace

void set_timeout(double seconds) {
  HEED_CHECK(seconds > 0, "dist::set_timeout: the timeout must be a positive number of seconds, got {}", seconds);
  timeout_setting() = seconds;
}

double timeout() { return timeout_setting(); }

namespace detail {

double timeout_s() { return timeout(); }

class WorkQueue::Job : public Work {
 public:
  Job(std::string what, std::function<void()> run, const WorkQueue& queue)
      : what_(std::move(what)), run_(std::move(run)), queue_(queue) {}

  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    const double limit = timeout_s();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit);
    if (!done_changed_.wait_until(lock, deadline, [&] { return done_; })) {
      const std::string message =
          fmt::format("dist: {} has waited {} s for {} to finish: another rank has stopped, died or called other "
                      "collectives (the limit: dist::set_timeout or HEED_DIST_TIMEOUT); ending every rank",
                      queue_.who_, limit, what_);
      lock.unlock();
      queue_.abort_(message);
      throw Error(message);  // when the abort returns (a world of one has nobody else to end)
    }
    if (error_) std::rethrow_exception(error_);
  }

  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

  double seconds() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return seconds_;
  }

  void execute() {
    std::exception_ptr error;
    const auto start = std::chrono::steady_clock::now();
    try {
      run_();
    } catch (...) {
      error = std::current_exception();
    }
    run_ = nullptr;  // free what the job held (its tensors) before anyone waits on it
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = error;
    seconds_ = took;
    done_ = true;
    done_changed_.notify_all();
  }

 private:
  std::string what_;
  std::function<void()> run_;
  const WorkQueue& queue_;
  mutable std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  double seconds_ = 0;
  std::exception_ptr error_;
};

WorkQueue::WorkQueue(std::string who, Abort abort)
    : who_(std::move(who)), abort_(std::move(abort)), thread_([this] { loop(); }) {}

WorkQueue::~WorkQueue() {
  std::shared_ptr<Job> last;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    last = last_;
  }
  wake_.notify_all();
  // Jobs run in order, so the last one done means all are. Its wait() has the
  // timeout: a collective started and never waited for, that another rank
  // never joins, must not hold finalize() (and the process) forever.
  if (last) {
    try {
      last->wait();
    } catch (...) {
      // Its error was the program's to see through its Work; this only ends the thread.
    }
  }
  thread_.join();
}

std::shared_ptr<Work> WorkQueue::submit(std::string what, std::function<void()> job) {
  auto work = std::make_shared<Job>(std::move(what), std::move(job), *this);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    HEED_CHECK(!stopping_, "dist: {} is shutting down; no collective can start", who_);
    queue_.push_back(work);
    last_ = work;
  }
  wake_.notify_one();
  return work;
}

void WorkQueue::loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and all done
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job->execute();
  }
}

namespace {
class CompletedWork : public Work {
 public:
  explicit CompletedWork(std::exception_ptr error) : error_(std::move(error)) {}
  void wait() override {
    if (error_) std::rethrow_exception(error_);
  }
  bool is_completed() const override { return true; }
  double seconds() const override { return 0; }

 private:
  std::exception_ptr error_;
};
}  // namespace

std::shared_ptr<Work> completed_work(std::exception_ptr error) { return std::make_shared<CompletedWork>(std::move(error)); }

}  // namespace detail

}  // namespace heed::dist

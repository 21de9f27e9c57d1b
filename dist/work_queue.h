#pragma once
// The thread that talks to the transport. Every collective of a process
// group, waited for or not, runs on one thread of its own, in the order the
// program called them (as PyTorch's MPI backend does): the order is then the
// same on every rank, MPI is called from one thread at a time, and a
// collective started during backward moves its bytes while the program goes
// on computing. Internal to dist/.
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/process_group.h"

namespace heed::dist::detail {

// Seconds a wait lasts before the job is ended (dist::set_timeout).
double timeout_s();

class WorkQueue {
 public:
  // `who` names this process in messages ("rank 1 of 2"); `abort` ends the
  // whole job (every rank) after a wait ran out of time, given the message.
  using Abort = std::function<void(const std::string& message)>;
  WorkQueue(std::string who, Abort abort);
  // Runs what is queued, then stops the thread. Waits for it as Work::wait()
  // does: past dist::timeout() it ends the job.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `job` and returns at once; `what` names it in a timeout's message.
  std::shared_ptr<Work> submit(std::string what, std::function<void()> job);
  // Queues `job` and waits for it; rethrows its error.
  void run(std::string what, std::function<void()> job) { submit(std::move(what), std::move(job))->wait(); }

 private:
  class Job;
  void loop();

  std::string who_;
  Abort abort_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> last_;  // the job submitted last, which the destructor waits for
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest is ready
};

// A Work that is done already, with `error` (null: none) to rethrow from wait().
std::shared_ptr<Work> completed_work(std::exception_ptr error = nullptr);

}  // namespace heed::dist::detail

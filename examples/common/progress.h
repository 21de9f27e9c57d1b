#pragma once
// A one-line training progress display: step, loss, learning rate, tokens
// per second and the time left. On a terminal it redraws one line; in a log
// (not a tty) it prints a line every `every` steps instead. On a rank other
// than 0 of a run of several (ranks.h) it prints nothing.
#include <chrono>
#include <cstdint>
#include <string>

namespace heed::examples {

class Progress {
 public:
  // total_steps or time_limit_s (either may be 0 = unknown) drive the ETA.
  Progress(int64_t total_steps, double time_limit_s, int64_t every = 50);
  // Call once per optimizer step.
  void update(int64_t step, double loss, double lr, int64_t tokens);
  // The run's length once it is known (a time-budgeted run learns it after its warmup).
  void set_total_steps(int64_t total_steps) { total_steps_ = total_steps; }
  // Prints a message on its own line (the bar is redrawn after it).
  void message(const std::string& text);
  void finish();
  double elapsed_s() const;
  double tokens_per_s() const;

 private:
  using Clock = std::chrono::steady_clock;
  int64_t total_steps_;
  double time_limit_s_;
  int64_t every_;
  bool tty_;
  bool quiet_;
  Clock::time_point start_;
  int64_t tokens_ = 0;
  double smoothed_loss_ = 0;
  int64_t last_step_ = 0;
  bool open_line_ = false;
};

// "1h02m", "4m05s", "12s".
std::string format_duration(double seconds);

}  // namespace heed::examples

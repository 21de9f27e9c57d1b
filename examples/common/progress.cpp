#include "examples/common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/core.h>

#include "examples/common/ranks.h"

namespace heed::examples {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(int64_t total_steps, double time_limit_s, int64_t every)
    : total_steps_(total_steps),
      time_limit_s_(time_limit_s),
      every_(std::max<int64_t>(1, every)),
      tty_(isatty(fileno(stderr)) != 0),
      quiet_(!writes()),
      start_(Clock::now()) {}

double Progress::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

double Progress::tokens_per_s() const {
  const double e = elapsed_s();
  return e > 0 ? static_cast<double>(tokens_) / e : 0;
}

void Progress::update(int64_t step, double loss, double lr, int64_t tokens) {
  tokens_ += tokens;
  smoothed_loss_ = last_step_ == 0 ? loss : 0.95 * smoothed_loss_ + 0.05 * loss;
  last_step_ = step;
  if (quiet_ || (!tty_ && step % every_ != 0)) return;
  const double e = elapsed_s();
  double eta = NAN;
  if (total_steps_ > 0 && step > 0) eta = e / static_cast<double>(step) * static_cast<double>(total_steps_ - step);
  if (time_limit_s_ > 0) eta = std::isfinite(eta) ? std::min(eta, time_limit_s_ - e) : time_limit_s_ - e;
  std::string steps = total_steps_ > 0 ? fmt::format("{}/{}", step, total_steps_) : fmt::format("{}", step);
  std::string bar;
  if (total_steps_ > 0) {
    const int width = 20, filled = static_cast<int>(width * std::min<double>(1.0, double(step) / total_steps_));
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  std::string line = fmt::format("{}step {} loss {:.3f} lr {:.2e} {:.0f} tok/s elapsed {} eta {}", bar, steps,
                                 smoothed_loss_, lr, tokens_per_s(), format_duration(e), format_duration(eta));
  if (tty_) {
    fmt::print(stderr, "\r{:<110}", line);
    open_line_ = true;
  } else {
    fmt::print(stderr, "{}\n", line);
  }
  std::fflush(stderr);
}

void Progress::message(const std::string& text) {
  if (quiet_) return;
  if (open_line_) fmt::print(stderr, "\n");
  open_line_ = false;
  fmt::print(stderr, "{}\n", text);
  std::fflush(stderr);
}

void Progress::finish() {
  if (quiet_) return;
  if (open_line_) fmt::print(stderr, "\n");
  open_line_ = false;
}

}  // namespace heed::examples

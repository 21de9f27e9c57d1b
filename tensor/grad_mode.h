#pragma once
// Switches that change what autograd records. Grad mode is per thread, as in
// PyTorch: a NoGradGuard in one thread does not stop recording in another.

namespace heed {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

// While alive, ops record no graph (optimizer steps, evaluation).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool on = true) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(on); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// Anomaly mode: backward checks every gradient a node produces and throws,
// naming the node, at the first NaN or Inf. Off by default (it costs a pass
// over every gradient).
struct AnomalyMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : prev_(AnomalyMode::is_enabled()) { AnomalyMode::set_enabled(true); }
  ~DetectAnomalyGuard() { AnomalyMode::set_enabled(prev_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace heed

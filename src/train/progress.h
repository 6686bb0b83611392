// Progress of a training run: one JSON line per optimiser step in metrics.jsonl, and a progress
// line on stderr (rewritten in place with \r on a terminal, one line per step otherwise).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace linearard::train {

struct StepMetrics {
  int64_t step = 0;  // 1-based: optimiser steps done
  double lr = 0, loss = 0, grad_norm = 0;
  double q = NAN, k = NAN, v = NAN, logits = NAN, lm = NAN, hidden = NAN;  // NaN = not part of the objective
  std::string nonfinite;      // the term that was not finite (nonfinite.h); "" = step taken
  int64_t skipped_steps = 0;  // non-finite steps skipped so far in the run
  int64_t tokens = 0;         // tokens in this step
  double step_seconds = 0;
};

class ProgressLog {
 public:
  // Appends to `metrics_path`. A resumed run continues the file: lines of steps after
  // `first_step` (written after the checkpoint it resumes from) and torn lines are dropped.
  ProgressLog(const std::string& metrics_path, int64_t total_steps, int64_t first_step);
  ~ProgressLog();
  ProgressLog(const ProgressLog&) = delete;
  ProgressLog& operator=(const ProgressLog&) = delete;
  void log(const StepMetrics& m);
  void message(const std::string& line);  // a full line that does not clobber the progress line
  void finish();

 private:
  std::FILE* metrics_ = nullptr;
  int64_t total_steps_, first_step_;
  bool tty_;
  bool line_open_ = false;
  double seconds_ = 0;     // this process's optimiser-step time
  int64_t tokens_ = 0;
};

}  // namespace linearard::train

// SIGINT / SIGTERM during training (docs/training-faults.md). The first signal only sets a flag:
// the trainer finishes the step it is in, all ranks agree to stop (the flag rides on the step's
// loss all-reduce), rank 0 writes a checkpoint, prints one line naming the step and how to
// resume, and the process exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM:
// the shell's convention, so scripts see "interrupted", not "succeeded"). A second signal kills
// the process at once (the default action).
#pragma once
#include <exception>
#include <string>

namespace linearard::train {

class StopSignals {
 public:
  StopSignals();   // installs the handlers of SIGINT and SIGTERM
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first signal received since construction, 0 when none.
  static int pending();
};

// "SIGINT", "SIGTERM", else "signal N".
std::string signal_name(int signo);

// Flushes stdio and ends the process with exit code 128 + signo, without running destructors
// (the checkpoint is already on disk; a process group may be mid-teardown).
[[noreturn]] void exit_interrupted(int signo);

// What a single-process run throws once its checkpoint is written after a signal: the command line
// ends with exit_interrupted(signo) (src/cli/main.cpp), the Python binding raises KeyboardInterrupt
// for SIGINT, as Python does. A run in a process group still calls exit_interrupted itself.
class Interrupted : public std::exception {
 public:
  explicit Interrupted(int signo) : signo_(signo) {}
  int signo() const { return signo_; }
  const char* what() const noexcept override { return "interrupted"; }

 private:
  int signo_;
};

}  // namespace linearard::train

// SIGINT / SIGTERM during training (docs/training-faults.md). The first signal only sets a flag:
// the trainer finishes the step it is in, all ranks agree to stop (the flag rides on the step's
// loss all-reduce), rank 0 writes a checkpoint, prints one line naming the step and how to
// resume, and the process exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM:
// the shell's convention, so scripts see "interrupted", not "succeeded"). A second signal kills
// the process at once (the default action).
#pragma once
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

}  // namespace linearard::train

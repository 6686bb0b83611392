#include "train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace linearard::train {
namespace {

volatile sig_atomic_t g_pending = 0;
struct sigaction g_previous_int, g_previous_term;

void on_signal(int signo) {
  if (g_pending != 0) {  // the second one: the default action (terminate) right away
    ::signal(signo, SIG_DFL);
    ::raise(signo);  // blocked inside this handler; delivered when it returns
    return;
  }
  g_pending = signo;
}

}  // namespace

StopSignals::StopSignals() {
  g_pending = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls (file writes, collectives) carry on
  ::sigaction(SIGINT, &action, &g_previous_int);
  ::sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
}

int StopSignals::pending() { return g_pending; }

std::string signal_name(int signo) {
  if (signo == SIGINT) return "SIGINT";
  if (signo == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(signo);
}

void exit_interrupted(int signo) {
  std::fflush(nullptr);
  std::_Exit(128 + signo);
}

}  // namespace linearard::train

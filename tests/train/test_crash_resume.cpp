// Crash safety of `linearard distill` on CPU (docs/training-faults.md). The reference is an
// uninterrupted run; its final adapter (final/trainable.safetensors, final/adapter.json) and its
// per-step losses are what every interrupted run must reproduce bit for bit:
//  - SIGKILL at random points, 20 rounds with different kill points: a random delay, the moment a
//    checkpoint's temporary directory appears (LINEARARD_TEST_CHECKPOINT_PAUSE_MS slows each
//    checkpoint write so that kills land inside it), or after a random number of logged steps;
//    then `--resume auto` until the run completes.
//  - SIGTERM / SIGINT: the run stops after its step with a checkpoint, one line naming the step
//    and how to resume, exit code 143 / 130; a second signal kills it at once.
//  - the same SIGTERM with --nproc 2 (Gloo): every rank stops at the same step, rank 0's
//    checkpoint resumes to the uninterrupted two-process result.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "train_test_util.h"

extern char** environ;

namespace {

using namespace linearard;
using train_test::fixture;
namespace fs = std::filesystem;

constexpr int kSteps = 16;

std::vector<std::string> distill_args(const std::string& out, int nproc = 1) {
  std::vector<std::string> a = {
      "distill", "--model", fixture("llama_mha"), "--data", fixture("corpus.bin"), "--out", out,
      "--rope-scaling", R"({"rope_type":"linear","factor":4.0})", "--device", "cpu", "--dtype", "fp32",
      "--context", "24", "--batch-size", "1", "--grad-accum", "1", "--steps", std::to_string(kSteps),
      "--lr", "1e-3", "--warmup-steps", "2", "--lora-rank", "4", "--lora-alpha", "8",
      // dropout exercises the saved RNG state
      "--lora-dropout", nproc > 1 ? "0" : "0.1", "--seed", "5", "--checkpoint-every", "2",
      "--keep-checkpoints", "2", "--resume", "auto"};
  if (nproc > 1) {
    a.push_back("--nproc");
    a.push_back(std::to_string(nproc));
  }
  return a;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A linearard process with its output in <out>.log<n> (not a shell: signals reach it directly).
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& log) : log_(log) {
    std::vector<std::string> all = {test_env::linearard_bin()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : all) argv.push_back(s.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {  // reads as "did not exit 0"
      ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
      status_ = -1;
      done_ = true;
    }
  }
  ~Child() {
    if (!done_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  bool poll() {  // true once it has exited
    if (done_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
    return done_;
  }
  int wait() {
    if (!done_ && ::waitpid(pid_, &status_, 0) == pid_) done_ = true;
    return status_;
  }
  void signal(int signo) { ::kill(pid_, signo); }
  std::string output() const { return read_file(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

std::vector<nlohmann::json> metrics(const std::string& out) { return train_test::read_metrics(out); }

size_t metric_lines(const std::string& out) {
  std::ifstream in(out + "/metrics.jsonl");
  return size_t(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

// A checkpoint or final/ write in progress: one of write_directory_atomic's side directories.
bool side_directory_exists(const std::string& out) {
  std::error_code ec;
  for (const std::string dir : {out, out + "/checkpoints"}) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name[0] == '.' && (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos ||
                             name.find(".del.") != std::string::npos))
        return true;
    }
  }
  return false;
}

// The final adapter and the per-step loss and gradient norm must equal the reference's bit for bit
// (step_seconds and the out dir naturally differ).
void expect_same_result(const std::string& out, const std::string& reference, const std::string& what) {
  for (const char* file : {"final/trainable.safetensors", "final/adapter.json"}) {
    const std::string a = read_file(out + "/" + file), b = read_file(reference + "/" + file);
    EXPECT_FALSE(b.empty()) << reference << "/" << file;
    EXPECT_TRUE(a == b) << what << ": " << file << " differs from the uninterrupted run's";
  }
  const auto m = metrics(out), r = metrics(reference);
  ASSERT_EQ(m.size(), r.size()) << what << ": metrics.jsonl lines";
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i]["step"], r[i]["step"]) << what;
    EXPECT_EQ(m[i]["loss"].get<double>(), r[i]["loss"].get<double>()) << what << ", step " << i + 1;
    EXPECT_EQ(m[i]["grad_norm"].get<double>(), r[i]["grad_norm"].get<double>()) << what << ", step " << i + 1;
  }
}

class CrashResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("OMP_NUM_THREADS", "1", 1);  // also deterministic reductions
    // CTest runs each test of this suite in its own process, possibly at the same time: every
    // process makes its own reference run.
    reference_ = train_test::fresh_dir("crash_reference_" + std::to_string(::getpid()));
    Child run(distill_args(reference_), reference_ + ".log");
    ASSERT_EQ(exit_code(run.wait()), 0) << run.output();
    ASSERT_EQ(metric_lines(reference_), size_t(kSteps));
  }
  static std::string reference_;
};
std::string CrashResume::reference_;

TEST_F(CrashResume, SigkillAtRandomPointsThenResumeIsBitwiseExact) {
  // Slow checkpoint writes (four pauses each, see train_checkpoint.cpp) make kills inside them likely.
  setenv("LINEARARD_TEST_CHECKPOINT_PAUSE_MS", "15", 1);
  const auto started = std::chrono::steady_clock::now();
  int kills = 0, kills_inside_a_write = 0, launches = 0;
  for (int round = 0; round < 20; ++round) {
    std::mt19937 rng(1000 + round);
    const std::string out = train_test::fresh_dir("crash_round" + std::to_string(round));
    const int planned = 1 + int(rng() % 3);  // SIGKILLs in this round
    bool finished = false;
    for (int attempt = 0; attempt < planned + 3 && !finished; ++attempt) {
      Child run(distill_args(out), out + ".log" + std::to_string(attempt));
      ++launches;
      if (attempt >= planned) {  // no more kills: it must complete
        const int status = run.wait();
        ASSERT_EQ(exit_code(status), 0) << "round " << round << "\n" << run.output();
        finished = true;
        break;
      }
      // Kill points: 0 = a random delay, 1 = as soon as a checkpoint write is under way,
      // 2 = after a random number of newly logged steps.
      const int mode = int(rng() % 3);
      const auto t0 = std::chrono::steady_clock::now();
      const auto delay = std::chrono::milliseconds(50 + rng() % 1200);  // a run takes ~1.5 s
      const size_t lines_at_start = metric_lines(out), extra_lines = 1 + rng() % 6;
      const auto slack = std::chrono::microseconds(rng() % 20000);
      bool killed = false;
      while (!run.poll()) {
        bool now = false;
        if (mode == 0) now = std::chrono::steady_clock::now() - t0 >= delay;
        if (mode == 1) now = side_directory_exists(out);
        if (mode == 2) now = metric_lines(out) >= lines_at_start + extra_lines;
        if (now) {
          if (mode == 1) std::this_thread::sleep_for(slack);
          run.signal(SIGKILL);
          run.wait();
          killed = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
      if (killed) {
        ++kills;
        if (side_directory_exists(out)) ++kills_inside_a_write;
      } else {
        ASSERT_EQ(exit_code(run.wait()), 0) << "round " << round << "\n" << run.output();
        finished = true;  // it completed before the kill point
      }
    }
    ASSERT_TRUE(finished) << "round " << round;
    expect_same_result(out, reference_, "round " + std::to_string(round));
    if (HasFailure()) break;
  }
  unsetenv("LINEARARD_TEST_CHECKPOINT_PAUSE_MS");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("20 rounds: %d launches, %d SIGKILLs, %d of them inside a checkpoint write, %.1f s\n", launches, kills,
              kills_inside_a_write, seconds);
  EXPECT_GE(kills, 20);
  EXPECT_GE(kills_inside_a_write, 5) << "the kill points should often hit a checkpoint write";
}

// Sends `signo` once `steps` steps are logged; returns the step the run says it stopped after.
int64_t interrupt_after(const std::string& out, int signo, size_t steps, std::vector<std::string> args) {
  Child run(args, out + ".log_signal");
  while (!run.poll() && metric_lines(out) < steps) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  run.signal(signo);
  const int status = run.wait();
  const std::string output = run.output();
  EXPECT_EQ(exit_code(status), 128 + signo) << output;
  const std::string name = signo == SIGINT ? "SIGINT" : "SIGTERM";
  std::smatch m;
  const std::regex line("interrupted by " + name + " after step ([0-9]+) of " + std::to_string(kSteps) +
                        ": checkpoint in (\\S+); to continue, run the same command with --resume auto");
  if (!std::regex_search(output, m, line)) {
    ADD_FAILURE() << "no interrupt message in:\n" << output;
    return -1;
  }
  const int64_t step = std::stoll(m[1]);
  EXPECT_GE(step, int64_t(steps));
  EXPECT_LT(step, kSteps);
  EXPECT_TRUE(fs::exists(std::string(m[2]) + "/train_state.json")) << m[2];
  EXPECT_EQ(metric_lines(out), size_t(step)) << "metrics stop at the checkpointed step";
  EXPECT_FALSE(fs::exists(out + "/final"));
  return step;
}

TEST_F(CrashResume, SigtermAndSigintStopWithACheckpointThenResumeIsBitwiseExact) {
  for (int signo : {SIGTERM, SIGINT}) {
    const std::string out = train_test::fresh_dir(std::string("signal_") + (signo == SIGINT ? "int" : "term"));
    const int64_t step = interrupt_after(out, signo, signo == SIGINT ? 3 : 6, distill_args(out));
    if (step < 0) return;
    Child resumed(distill_args(out), out + ".log_resumed");
    const int status = resumed.wait();
    ASSERT_EQ(exit_code(status), 0) << resumed.output();
    EXPECT_NE(resumed.output().find("resumed from " + out + "/checkpoints/step-"), std::string::npos)
        << resumed.output();
    expect_same_result(out, reference_, signo == SIGINT ? "SIGINT" : "SIGTERM");
  }
}

TEST_F(CrashResume, SecondSignalKillsAtOnce) {
  const std::string out = train_test::fresh_dir("signal_twice");
  // Slow checkpoint writes keep the process busy between the two signals (two signals sent back
  // to back would merge into one pending signal).
  setenv("LINEARARD_TEST_CHECKPOINT_PAUSE_MS", "300", 1);
  Child run(distill_args(out), out + ".log");
  unsetenv("LINEARARD_TEST_CHECKPOINT_PAUSE_MS");
  while (!run.poll() && metric_lines(out) < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  run.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  run.signal(SIGTERM);
  const int status = run.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status << "\n" << run.output();
}

TEST_F(CrashResume, SigtermStopsEveryRankOfATwoProcessRun) {
  const std::string reference = train_test::fresh_dir("signal_nproc_reference");
  Child straight(distill_args(reference, 2), reference + ".log");
  ASSERT_EQ(exit_code(straight.wait()), 0) << straight.output();
  const std::string out = train_test::fresh_dir("signal_nproc");
  const int64_t step = interrupt_after(out, SIGTERM, 5, distill_args(out, 2));
  if (step < 0) return;
  Child resumed(distill_args(out, 2), out + ".log_resumed");
  ASSERT_EQ(exit_code(resumed.wait()), 0) << resumed.output();
  expect_same_result(out, reference, "--nproc 2 after SIGTERM");
}

}  // namespace

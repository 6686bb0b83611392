#include "train/progress.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "common/error.h"
#include "io/atomic_file.h"

namespace linearard::train {
namespace {

std::string duration(double s) {
  char buf[32];
  const long long t = static_cast<long long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  return buf;
}

// Rewrites `path` (atomically) without the lines of steps after `last_step` and without lines
// that do not parse (a process killed mid-write leaves a torn last line).
void keep_steps_up_to(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  bool changed = false;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("step", int64_t(-1)) >= 1 && j.value("step", int64_t(-1)) <= last_step) {
      kept += line + "\n";
    } else {
      changed = true;
    }
  }
  if (changed) io::write_file_atomic(path, kept);
}

}  // namespace

ProgressLog::ProgressLog(const std::string& metrics_path, int64_t total_steps, int64_t first_step)
    : total_steps_(total_steps), first_step_(first_step), tty_(::isatty(STDERR_FILENO) != 0) {
  keep_steps_up_to(metrics_path, first_step);
  metrics_ = std::fopen(metrics_path.c_str(), "a");
  if (!metrics_) fail(metrics_path, "cannot open for appending");
}

ProgressLog::~ProgressLog() {
  if (metrics_) std::fclose(metrics_);
}

void ProgressLog::log(const StepMetrics& m) {
  seconds_ += m.step_seconds;
  tokens_ += m.tokens;
  nlohmann::json j;
  j["step"] = m.step;
  j["lr"] = m.lr;
  j["loss"] = m.loss;
  for (auto [name, v] : {std::pair{"q", m.q}, {"k", m.k}, {"v", m.v}, {"logits", m.logits}, {"lm", m.lm},
                           {"hidden", m.hidden}})
    if (!std::isnan(v)) j[name] = v;
  j["grad_norm"] = m.grad_norm;
  if (!m.nonfinite.empty()) j["nonfinite"] = m.nonfinite;  // the optimiser step was skipped
  if (m.skipped_steps > 0) j["skipped_steps"] = m.skipped_steps;
  j["tokens"] = m.tokens;
  j["step_seconds"] = m.step_seconds;
  j["tokens_per_s"] = m.step_seconds > 0 ? m.tokens / m.step_seconds : 0.0;
  std::fprintf(metrics_, "%s\n", j.dump().c_str());
  std::fflush(metrics_);

  const double mean = seconds_ / double(m.step - first_step_);
  std::string parts;
  char buf[64];
  for (auto [name, v] : {std::pair{"q", m.q}, {"k", m.k}, {"v", m.v}, {"logits", m.logits}, {"lm", m.lm},
                           {"hidden", m.hidden}}) {
    if (std::isnan(v)) continue;
    std::snprintf(buf, sizeof buf, " %s %.4g", name, v);
    parts += buf;
  }
  char line[256];
  std::snprintf(line, sizeof line, "step %lld/%lld  loss %.5g (%s)  lr %.3g  |g| %.3g  %.0f tok/s  ETA %s",
                static_cast<long long>(m.step), static_cast<long long>(total_steps_), m.loss,
                parts.empty() ? "" : parts.c_str() + 1, m.lr, m.grad_norm, seconds_ > 0 ? tokens_ / seconds_ : 0.0,
                duration(mean * double(total_steps_ - m.step)).c_str());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line);
    line_open_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void ProgressLog::message(const std::string& line) {
  if (line_open_) std::fprintf(stderr, "\n");
  line_open_ = false;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void ProgressLog::finish() {
  if (line_open_) std::fprintf(stderr, "\n");
  line_open_ = false;
}

}  // namespace linearard::train

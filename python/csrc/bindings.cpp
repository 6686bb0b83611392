// linearard._C: the relation-KL op (src/ops/relation_kl/relation_kl.h) for Python, and the run
// API of the commands (distill, cpt, pretrain, export, report; python/linearard/run.py).
// Op: tensors cross as torch.Tensor with their autograd history, so the op's own autograd Functions
// (relation_kl.cpp) record the backward: Python reuses the C++ gradients, the fused self-relation
// one included. Arguments are checked in python/linearard/relation_kl.py before they get here.
// Runs: options cross as one JSON object (option name -> value, the names of the command's flags)
// and go through the commands' option tables (train/train_flags.h, export/export_flags.h,
// eval/eval_flags.h), as the command line's do; results come back as JSON text.
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/eval_flags.h"
#include "eval/run_report.h"
#include "export/export_flags.h"
#include "export/run_export.h"
#include "ops/relation_kl/relation_kl.h"
#include "train/run.h"
#include "train/stop_signals.h"
#include "train/train_flags.h"

namespace py = pybind11;

namespace {

using linearard::ops::RelationKLOptions;

RelationKLOptions options(double scale_s, double scale_t, bool causal) {
  RelationKLOptions o;
  o.scale_s = scale_s;
  o.scale_t = scale_t;
  o.causal = causal;
  return o;
}

at::Tensor relation_kl(const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& xt,
                       const at::Tensor& yt, const std::optional<at::Tensor>& key_mask,
                       double scale_s, double scale_t, bool causal) {
  return linearard::ops::relation_kl(xs, ys, xt, yt, key_mask, options(scale_s, scale_t, causal));
}

at::Tensor relation_kl_self(const at::Tensor& xs, const at::Tensor& xt,
                            const std::optional<at::Tensor>& key_mask, double scale_s,
                            double scale_t, bool causal) {
  return linearard::ops::relation_kl_self(xs, xt, key_mask, options(scale_s, scale_t, causal));
}

at::Tensor relation_kl_sum(const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& xt,
                           const at::Tensor& yt, const std::optional<at::Tensor>& key_mask,
                           double scale_s, double scale_t, bool causal, double weight) {
  return linearard::ops::relation_kl_sum(xs, ys, xt, yt, key_mask, options(scale_s, scale_t, causal),
                                         weight);
}

at::Tensor relation_kl_self_sum(const at::Tensor& xs, const at::Tensor& xt,
                                const std::optional<at::Tensor>& key_mask, double scale_s,
                                double scale_t, bool causal, double weight) {
  return linearard::ops::relation_kl_self_sum(xs, xt, key_mask, options(scale_s, scale_t, causal),
                                              weight);
}

// An option as a Python keyword: lora-rank -> lora_rank.
std::string keyword(std::string option) {
  for (char& c : option)
    if (c == '-') c = '_';
  return option;
}

// Runs `job` without the GIL (a run takes minutes; other Python threads go on) and turns
// linearard's one-line errors into ValueError, an option's error naming the option as the
// keyword argument. Other errors (c10::Error, out of memory) keep pybind11's RuntimeError.
template <class Job>
std::string run_released(Job&& job) {
  std::string message;
  try {
    py::gil_scoped_release release;
    std::string result = job();
    std::fflush(stdout);  // the C++ progress and summary lines before Python prints anything more
    return result;
  } catch (const linearard::OptionError& e) {
    message = e.message_as(keyword(e.option()));
  } catch (const linearard::Error& e) {
    message = e.what();
  } catch (const CLI::Error& e) {  // a --config file's value that CLI11 cannot convert
    message = e.what();
  } catch (const linearard::train::Interrupted& e) {
    // Ctrl-C: the step finished and its checkpoint is written (the run printed where); Python's
    // KeyboardInterrupt. SIGTERM ends the process as on the command line (exit code 143).
    if (e.signo() != SIGINT) linearard::train::exit_interrupted(e.signo());
    std::fflush(stdout);
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
  std::fflush(stdout);
  throw py::value_error(message);
}

nlohmann::json parse_options(const std::string& options_json) { return nlohmann::json::parse(options_json); }

std::string run_train(const std::string& command, const std::string& options_json) {
  return run_released([&] {
    using namespace linearard::train;
    const RunResult r = run(train_options(command, parse_options(options_json)));
    return nlohmann::json{{"out", r.out_dir},
                          {"ran_workers", r.ran_workers},
                          {"steps", r.training.steps_done},
                          {"first_loss", r.training.first_loss},
                          {"last_loss", r.training.last_loss},
                          {"final", r.training.final_dir}}
        .dump();
  });
}

std::string run_export(const std::string& options_json) {
  return run_released([&] {
    const auto r = linearard::exporter::run_export(linearard::exporter::export_options(parse_options(options_json)));
    return nlohmann::json{{"outputs", r.outputs}}.dump();
  });
}

std::string run_report(const std::string& options_json) {
  return run_released([&] {
    return linearard::eval::run_report(linearard::eval::report_options(parse_options(options_json))).dump();
  });
}

// The option table of `command` as JSON text (common/option_layers.h describe_options).
std::string describe_options(const std::string& command) {
  if (command == "export") return linearard::exporter::describe_export_options().dump();
  if (command == "report") return linearard::eval::describe_report_options().dump();
  return linearard::train::describe_train_options(command).dump();
}

bool has_cuda() {
#ifdef LINEARARD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "linearard's C++ ops; use linearard.relation_kl / relation_kl_self";
  // The GIL is released while the op runs: the tensors are converted before, the result after.
  m.def("relation_kl", &relation_kl, py::arg("xs"), py::arg("ys"), py::arg("xt"), py::arg("yt"),
        py::arg("key_mask"), py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"),
        py::call_guard<py::gil_scoped_release>(),
        "Per-row KL(teacher || student), (B, H, T); differentiable w.r.t. xs and ys");
  m.def("relation_kl_self", &relation_kl_self, py::arg("xs"), py::arg("xt"), py::arg("key_mask"),
        py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"),
        py::call_guard<py::gil_scoped_release>(),
        "Per-row self-relation KL(teacher || student), (B, H, T); differentiable w.r.t. xs");
  m.def("relation_kl_sum", &relation_kl_sum, py::arg("xs"), py::arg("ys"), py::arg("xt"), py::arg("yt"),
        py::arg("key_mask"), py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"), py::arg("weight"),
        py::call_guard<py::gil_scoped_release>(),
        "weight * the sum of the per-row KL, 0-dim, one autograd node; differentiable w.r.t. xs and ys");
  m.def("relation_kl_self_sum", &relation_kl_self_sum, py::arg("xs"), py::arg("xt"), py::arg("key_mask"),
        py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"), py::arg("weight"),
        py::call_guard<py::gil_scoped_release>(),
        "weight * the sum of the per-row self-relation KL, 0-dim, one autograd node");
  m.def("has_cuda", &has_cuda, "Whether this build has the CUDA kernels");
  // The runs convert their arguments (str) before releasing the GIL in run_released.
  m.def("run_train", &run_train, py::arg("command"), py::arg("options_json"),
        "distill / cpt / pretrain with these options (JSON object); the run's result as JSON");
  m.def("run_export", &run_export, py::arg("options_json"), "export; the paths written as JSON");
  m.def("run_report", &run_report, py::arg("options_json"), "report; report.json's content as JSON");
  m.def("describe_options", &describe_options, py::arg("command"), "the command's option table as JSON");
}

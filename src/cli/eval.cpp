// `linearard eval --model DIR [--rope-scaling JSON] --tasks ppl,fidelity,passkey,mc,bbh,ruler,humaneval ...` (--task
// is an alias): one model's
// perplexity by context length, next-token fidelity to a teacher (--teacher DIR: KL and top-1
// agreement over the perplexity windows), passkey retrieval and multiple-choice accuracy; prints a
// summary and writes the results as JSON (--json), the per-model format of report.json. The run
// itself is eval::run_eval (eval/run_eval.h).
#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "eval/eval_flags.h"
#include "eval/run_eval.h"

namespace linearard::cli {
namespace {

CommandRegistration eval_command(
    "eval", "evaluate one model: perplexity by context length, fidelity to a teacher, passkey retrieval, multiple choice",
    [](CLI::App& sub) {
      auto o = std::make_shared<eval::EvalOptions>();
      sub.add_option("--model", o->model, "HF model directory or .gguf file")->required();
      sub.add_option("--rope-scaling", o->rope_scaling,
                     "run with this RoPE scaling instead of the checkpoint's (inline JSON or a file)");
      sub.add_option("--teacher", o->teacher,
                     "fidelity: the reference model (the original weights, native RoPE); may be --model itself");
      sub.add_option("--teacher-rope-scaling", o->teacher_rope_scaling,
                     "fidelity: run the teacher with this RoPE scaling instead of its checkpoint's");
      sub.add_option("--json", o->json, "write the results here");
      add_overwrite_flag(sub, o->overwrite, "replace an existing --json file that is not an earlier eval result");
      eval::add_eval_flags(sub, o->tasks, "--tasks,--task");
      sub.callback([o] { eval::run_eval(*o); });
    });

}  // namespace
}  // namespace linearard::cli

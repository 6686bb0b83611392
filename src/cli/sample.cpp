// `linearard sample --model DIR --out DIR --tokens N`: text the model writes itself, as token
// shards that `distill` and `cpt` read like `linearard tokenize` output. Each sample starts from a
// prompt (the first --prompt-tokens tokens of the --prompts documents, or only the document start
// when none are given) and is continued by ancestral sampling at --temperature (eval/sampling.h);
// each sample is one document (EOS tokens it wrote stay inside). Writes
// manifest.json, the shards and sample.json (options, tokens, tokens/s).
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "common/error.h"
#include "data/shard_writer.h"
#include "eval/sampling.h"
#include "io/output_guard.h"
#include "io/atomic_file.h"
#include "io/model_path.h"

#ifdef LINEARARD_WITH_TOKENIZER
#include "data/corpus_reader.h"
#include "tokenizer/tokenizer.h"
#endif

namespace linearard::cli {
namespace {

struct SampleOptions {
  std::string model_dir, rope_scaling, out_dir, device = "cpu", dtype = "auto";
  std::vector<std::string> prompts;
  int64_t tokens = 0, sample_tokens = 2048, prompt_tokens = 32, batch_size = 0;
  double temperature = 1.0;
  uint64_t seed = 0;
  bool quiet = false, overwrite = false;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void check_options(const SampleOptions& o) {
  if (o.tokens < 1) fail("--tokens", "must be positive (the number of tokens to write)");
  if (o.sample_tokens < 2) fail("--sample-tokens", "must be at least 2 (a prompt and one sampled token)");
  if (!o.prompts.empty() && (o.prompt_tokens < 1 || o.prompt_tokens >= o.sample_tokens))
    fail("--prompt-tokens", "must be at least 1 and below --sample-tokens (" + std::to_string(o.sample_tokens) + ")");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    fail("--temperature", "must be a finite number >= 0 (0 is greedy)");
  if (o.batch_size < 0) fail("--batch-size", "must be positive (0: chosen from the device)");
}

#ifdef LINEARARD_WITH_TOKENIZER

// The prompts: windows of `length` tokens over the --prompts documents (each document's first
// window keeps its BOS), in a seeded order; or, without --prompts, the document start alone (the
// tokenizer's BOS, else EOS: the boundary a packed block shows before a document).
std::vector<std::vector<int64_t>> make_prompts(const SampleOptions& o, const tok::Tokenizer& tok, bool& drop_first) {
  std::vector<std::vector<int64_t>> prompts;
  drop_first = false;
  if (o.prompts.empty()) {
    const std::vector<int32_t> start = tok.encode("", true);
    if (!start.empty() && start.front() == tok.bos_id()) {
      prompts.push_back({start.front()});
    } else if (tok.eos_id() >= 0) {
      prompts.push_back({tok.eos_id()});
      drop_first = true;  // the separator the shard writer puts between documents anyway
    } else {
      fail(o.model_dir, "the tokenizer has neither BOS nor EOS to start a sample from: give --prompts");
    }
    return prompts;
  }
  data::CorpusReader reader(o.prompts, {});
  data::Document doc;
  while (reader.next(doc)) {
    const std::vector<int32_t> ids = tok.encode(doc.text, true);
    for (size_t at = 0; at + size_t(o.prompt_tokens) <= ids.size(); at += size_t(o.prompt_tokens))
      prompts.emplace_back(ids.begin() + at, ids.begin() + at + o.prompt_tokens);
  }
  if (prompts.empty())
    fail("--prompts", "no document has " + std::to_string(o.prompt_tokens) + " tokens (lower --prompt-tokens)");
  // A fixed shuffle (splitmix-keyed Fisher-Yates) so that consecutive samples do not continue
  // neighbouring windows of one document.
  for (size_t i = prompts.size(); i > 1; --i) {
    const size_t j = size_t(eval::sampling_uniform(o.seed, -1, int64_t(i)) * float(i)) % i;
    std::swap(prompts[i - 1], prompts[j]);
  }
  return prompts;
}

// Sequences per KV-cache batch on a GPU: the cache (2 x layers x B x Hk x S x D in the model
// dtype), one layer's gathered keys and values, and the float32 logits, probabilities and CDF
// within 16 GiB (what a 24 GB GPU has left beside a 7B model in bf16), at most 512; CPUs take 8.
int64_t default_batch(const model::ModelConfig& c, at::ScalarType dtype, at::Device device, int64_t S) {
  if (!device.is_cuda()) return 8;
  const double layer = 2.0 * c.num_key_value_heads * S * c.head_dim * at::elementSize(dtype);
  const double per_sequence = layer * (c.num_hidden_layers + 1) + 3.0 * c.vocab_size * 4.0;
  const double budget = double(int64_t{16} << 30);
  return std::max<int64_t>(1, std::min<int64_t>(512, int64_t(budget / per_sequence)));
}

void run(SampleOptions o) {
  check_options(o);
  io::check_output_dir({"out", o.out_dir, o.overwrite, {{"--model", o.model_dir}, {"--prompts", o.prompts.empty() ? "" : o.prompts[0]}}});
  o.model_dir = io::resolve_model_path(o.model_dir);
  const at::Device device = eval::parse_device(o.device, "--device");
  const at::ScalarType dtype = o.dtype == "auto" ? (device.is_cuda() ? at::kBFloat16 : at::kFloat)
                                                 : eval::parse_dtype(o.dtype, "--dtype");
  const auto tok = tok::load_tokenizer(o.model_dir);
  bool drop_first = false;
  const std::vector<std::vector<int64_t>> prompts = make_prompts(o, *tok, drop_first);
  const int64_t P = int64_t(prompts.front().size());
  const auto model = model::DecoderModel::load(o.model_dir, dtype, device);
  eval::EvalModel m;
  m.model = &model;
  m.rope = eval::resolve_rope(model.config(), o.rope_scaling, "--rope-scaling");
  m.name = o.model_dir;
  m.dir = o.model_dir;
  const int64_t B = o.batch_size > 0 ? o.batch_size : default_batch(model.config(), dtype, device, o.sample_tokens);
  const int64_t samples = (o.tokens + o.sample_tokens - 1) / o.sample_tokens;

  std::filesystem::create_directories(o.out_dir);
  if (o.overwrite) io::remove_earlier_outputs(o.out_dir, R"(shard-\d{5}\.bin|manifest\.json|sample\.json)");
  data::ShardWriterParams wp;
  wp.out_dir = o.out_dir;
  wp.vocab_size = uint64_t(std::max<int64_t>(model.config().vocab_size, tok->vocab_size()));
  wp.eos_id = tok->eos_id() >= 0 ? tok->eos_id() : model.config().eos_token_id.value_or(-1);
  data::ShardWriter writer(wp);

  eval::SamplingParams sp;
  // A sample started from the EOS separator decodes one token more, so that every written document
  // has --sample-tokens tokens (the separator is not written).
  const int64_t S = o.sample_tokens + (drop_first ? 1 : 0);
  sp.sample_tokens = S;
  sp.temperature = o.temperature;
  sp.seed = o.seed;
  const auto start = Clock::now();
  auto last_report = Clock::now() - std::chrono::seconds(10);
  int64_t done = 0;  // tokens sampled by finished batches
  for (int64_t first = 0; first < samples; first += B) {
    const int64_t b = std::min(B, samples - first);
    std::vector<std::vector<int64_t>> batch;
    for (int64_t i = 0; i < b; ++i) batch.push_back(prompts[size_t((first + i) % int64_t(prompts.size()))]);
    sp.first_index = first;
    const auto progress = [&](int64_t position) {
      if (o.quiet || seconds_since(last_report) < 1.0) return;
      last_report = Clock::now();
      const double now = double(done + b * position), s = seconds_since(start), rate = now / std::max(s, 1e-9);
      std::fprintf(stderr, "\rsample: batch %lld/%lld position %lld/%lld, %.2f M tokens, %.0f tokens/s, ETA %.0f s   ",
                   (long long)(first / B + 1), (long long)((samples + B - 1) / B), (long long)position,
                   (long long)S, now / 1e6, rate, (double(samples * S) - now) / rate);
    };
    const at::Tensor tokens = eval::sample_batch(m, batch, sp, progress);  // (b, S) int64, CPU
    const int64_t* t = tokens.data_ptr<int64_t>();
    // One document per sample, its EOS tokens kept: the teacher wrote across them as a packed block
    // continues across documents, and training takes blocks of --context tokens from one document.
    for (int64_t i = 0; i < b; ++i) {
      const int64_t* row = t + i * S + (drop_first ? 1 : 0);
      writer.add_document(std::vector<int32_t>(row, t + (i + 1) * S), true);
    }
    done += b * S;
  }
  const auto& shards = writer.finish();
  const double seconds = seconds_since(start);
  data::ShardManifest manifest;
  manifest.tokenizer = std::filesystem::absolute(o.model_dir).string();
  manifest.vocab_size = wp.vocab_size;
  manifest.bos_id = tok->bos_id();
  manifest.eos_id = tok->eos_id();
  manifest.total_tokens = writer.total_tokens();
  manifest.total_documents = writer.total_documents();
  manifest.inputs = {"sampled from " + o.model_dir};
  manifest.shards = shards;
  data::write_manifest(o.out_dir + "/manifest.json", manifest);
  const nlohmann::json info = {
      {"model", o.model_dir}, {"rope", eval::describe_model(m)}, {"prompts", o.prompts},
      {"prompt_tokens", P}, {"sample_tokens", o.sample_tokens}, {"samples", samples}, {"batch_size", B},
      {"temperature", o.temperature}, {"seed", o.seed}, {"sampled_tokens", done},
      {"written_tokens", writer.total_tokens()}, {"documents", writer.total_documents()},
      {"seconds", seconds}, {"tokens_per_second", double(done) / seconds}};
  io::write_file_atomic(o.out_dir + "/sample.json", info.dump(1) + "\n");
  if (!o.quiet) std::fprintf(stderr, "\n");
  std::printf("sample: %lld samples of %lld tokens (prompt %lld) -> %llu tokens, %llu documents in %s; %.1f s, "
              "%.0f tokens/s, batch %lld\n",
              (long long)samples, (long long)o.sample_tokens, (long long)P, (unsigned long long)writer.total_tokens(),
              (unsigned long long)writer.total_documents(), o.out_dir.c_str(), seconds, double(done) / seconds,
              (long long)B);
}

#else

void run(const SampleOptions& o) {
  check_options(o);
  fail("sample", "this build has no tokenizer (PCRE2 or SentencePiece were not found at configure time)");
}

#endif

CommandRegistration sample_command(
    "sample", "write text sampled from a model (its own distribution) as token shards for distill / cpt",
    [](CLI::App& sub) {
      auto o = std::make_shared<SampleOptions>();
      sub.add_option("--model", o->model_dir, "HF model directory or .gguf file (the teacher)")->required();
      sub.add_option("--rope-scaling", o->rope_scaling, "sample with this RoPE scaling instead of the checkpoint's");
      sub.add_option("--out", o->out_dir, "output folder for the shards, manifest.json and sample.json")->required();
      sub.add_option("--tokens", o->tokens, "tokens to write (whole samples: rounded up to --sample-tokens)")->required();
      sub.add_option("--sample-tokens", o->sample_tokens, "tokens written per sample, prompt included (a document-start EOS is not counted)");
      sub.add_option("--prompts", o->prompts, "text files or folders whose token windows start the samples "
                                              "(default: each sample starts at a document start)")->expected(1, -1);
      sub.add_option("--prompt-tokens", o->prompt_tokens, "tokens of each prompt window");
      sub.add_option("--temperature", o->temperature, "softmax temperature (1: the model's distribution; 0: greedy)");
      sub.add_option("--seed", o->seed, "seed of the sampling (same seed: same tokens on any device and batch size)");
      sub.add_option("--batch-size", o->batch_size, "sequences decoded together (default: 8 on CPU, from memory on GPU)");
      sub.add_option("--device", o->device, "cpu | cuda | cuda:N");
      sub.add_option("--dtype", o->dtype, "auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32");
      sub.add_flag("--quiet", o->quiet, "no progress line");
      add_overwrite_flag(sub, o->overwrite, "write into a non-empty --out (its earlier shards, manifest and sample.json are deleted)");
      sub.callback([o] { run(*o); });
    });

}  // namespace
}  // namespace linearard::cli

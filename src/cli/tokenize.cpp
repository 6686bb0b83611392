// `linearard tokenize`: raw text (.txt, .jsonl, folders, stdin) -> token shards + manifest.json.
// Documents are encoded in parallel and written in input order, so the output is the same for
// any thread count. Each document gets the tokenizer's BOS/EOS rule; EOS is appended after each
// document when the tokenizer does not add one itself.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "io/output_guard.h"
#include "io/model_path.h"
#include "common/error.h"

#ifdef LINEARARD_WITH_TOKENIZER
#include "data/corpus_reader.h"
#include "data/shard_writer.h"
#include "tokenizer/tokenizer.h"
#endif

namespace {

using namespace linearard;

struct TokenizeOptions {
  std::string tokenizer_dir, out_dir, jsonl_field = "text";
  std::vector<std::string> inputs;
  int threads = 0;
  uint64_t shard_tokens = uint64_t{1} << 26;
  bool replace_invalid_utf8 = false, quiet = false, overwrite = false;
};

#ifdef LINEARARD_WITH_TOKENIZER

// Documents read per batch: large enough to keep every thread busy, small enough to bound memory.
constexpr size_t kBatchBytes = size_t{32} << 20;
constexpr size_t kBatchDocs = 8192;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void read_batch(data::CorpusReader& reader, std::vector<data::Document>& batch) {
  batch.clear();
  size_t bytes = 0;
  data::Document doc;
  while (bytes < kBatchBytes && batch.size() < kBatchDocs && reader.next(doc)) {
    bytes += doc.text.size();
    batch.push_back(std::move(doc));
  }
}

// Encodes batch[i] into ids[i] on `threads` threads; the first error is rethrown with its source.
void encode_batch(const tok::Tokenizer& tok, const std::vector<data::Document>& batch,
                  std::vector<std::vector<int32_t>>& ids, int threads) {
  ids.assign(batch.size(), {});
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::string error_source;
  std::mutex error_mutex;
  const auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < batch.size();) {
      try {
        ids[i] = tok.encode(batch[i].text, true);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception(), error_source = batch[i].source;
        next = batch.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      fail(error_source, e.what());
    }
  }
}

void run_tokenize(TokenizeOptions o) {
  const auto start = Clock::now();
  io::check_output_dir({"out", o.out_dir, o.overwrite, {{"--tokenizer", o.tokenizer_dir}}});
  if (o.overwrite) io::remove_earlier_outputs(o.out_dir, R"(shard-\d{5}\.bin|manifest\.json)");
  o.tokenizer_dir = io::resolve_model_path(o.tokenizer_dir);  // a .gguf file -> its imported directory
  const auto tok = tok::load_tokenizer(o.tokenizer_dir);
  if (!tok->adds_eos() && tok->eos_id() < 0)
    fail(o.tokenizer_dir, "the tokenizer has no EOS token to separate documents (eos_token in tokenizer_config.json)");
  struct stat st;
  if (::stat(o.out_dir.c_str(), &st) != 0 && ::mkdir(o.out_dir.c_str(), 0755) != 0)
    fail(o.out_dir, "cannot create output folder");
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());

  data::CorpusOptions copts;
  copts.jsonl_field = o.jsonl_field;
  copts.replace_invalid_utf8 = o.replace_invalid_utf8;
  data::CorpusReader reader(o.inputs, copts);
  data::ShardWriterParams wp;
  wp.out_dir = o.out_dir;
  wp.shard_tokens = o.shard_tokens;
  wp.vocab_size = static_cast<uint64_t>(tok->vocab_size());
  wp.eos_id = tok->eos_id();
  data::ShardWriter writer(wp);
  const bool separate = !tok->adds_eos();

  std::vector<data::Document> batch, next_batch;
  std::vector<std::vector<int32_t>> ids;
  read_batch(reader, batch);
  if (batch.empty()) fail(o.inputs.front(), "empty input: no documents with text");
  const auto encode_start = Clock::now();
  auto last_report = Clock::now();
  while (!batch.empty()) {
    // Reading the next batch overlaps with encoding this one.
    std::exception_ptr read_error;
    std::thread reader_thread([&] {
      try {
        read_batch(reader, next_batch);
      } catch (...) {
        read_error = std::current_exception();
      }
    });
    try {
      encode_batch(*tok, batch, ids, threads);
    } catch (...) {
      reader_thread.join();
      throw;
    }
    reader_thread.join();
    for (const auto& d : ids) writer.add_document(d, separate);
    if (read_error) std::rethrow_exception(read_error);
    batch.swap(next_batch);
    if (!o.quiet && seconds_since(last_report) > 1.0) {
      const double s = seconds_since(encode_start);
      std::fprintf(stderr, "\rtokenize: %.1f MB, %.1f MB/s, %.2f M tokens, %.2f M tokens/s   ",
                   reader.bytes_read() / 1e6, reader.bytes_read() / 1e6 / s, writer.total_tokens() / 1e6,
                   writer.total_tokens() / 1e6 / s);
      last_report = Clock::now();
    }
  }
  const auto& shards = writer.finish();
  const double encode_s = seconds_since(encode_start);

  data::ShardManifest m;
  char resolved[4096];
  m.tokenizer = ::realpath(o.tokenizer_dir.c_str(), resolved) ? resolved : o.tokenizer_dir;
  m.vocab_size = wp.vocab_size;
  m.bos_id = tok->bos_id();
  m.eos_id = tok->eos_id();
  m.total_tokens = writer.total_tokens();
  m.total_documents = writer.total_documents();
  m.inputs = o.inputs;
  m.shards = shards;
  data::write_manifest(o.out_dir + "/manifest.json", m);
  if (!o.quiet) std::fprintf(stderr, "\n");
  std::printf("tokenize: %llu tokens, %llu documents, %zu shards in %s (%s); %.1f MB in %.2f s: %.1f MB/s, "
              "%.0f tokens/s on %d threads (total %.2f s)\n",
              (unsigned long long)m.total_tokens, (unsigned long long)m.total_documents, shards.size(),
              o.out_dir.c_str(), tok->describe().c_str(), reader.bytes_read() / 1e6, encode_s,
              reader.bytes_read() / 1e6 / encode_s, m.total_tokens / encode_s, threads, seconds_since(start));
}

#else

void run_tokenize(const TokenizeOptions&) {
  fail("tokenize", "this build has no tokenizer (PCRE2 or SentencePiece were not found at configure time)");
}

#endif

linearard::cli::CommandRegistration tokenize_command(
    "tokenize", "tokenize text (.txt, .jsonl, folders, - for stdin) into token shards", [](CLI::App& sub) {
      auto o = std::make_shared<TokenizeOptions>();
      sub.add_option("--tokenizer", o->tokenizer_dir, "model directory with tokenizer.json or tokenizer.model")
          ->required();
      sub.add_option("--input", o->inputs, "input files or folders (- for stdin)")->required()->expected(1, -1);
      sub.add_option("--out", o->out_dir, "output folder for shards and manifest.json")->required();
      sub.add_option("--jsonl-field", o->jsonl_field, "JSON field holding the text in .jsonl files");
      sub.add_option("--threads", o->threads, "encoding threads (default: all cores)");
      sub.add_option("--shard-tokens", o->shard_tokens, "tokens per shard (shards end at document boundaries)");
      sub.add_flag("--replace-invalid-utf8", o->replace_invalid_utf8, "replace invalid UTF-8 with U+FFFD instead of failing");
      sub.add_flag("--quiet", o->quiet, "no progress line");
      linearard::cli::add_overwrite_flag(sub, o->overwrite,
                                         "write into a non-empty --out (its earlier shards and manifest are deleted)");
      sub.callback([o] { run_tokenize(*o); });
    });

}  // namespace

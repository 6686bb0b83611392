// The cases the benchmarks iterate, in one place: the relation-KL op grid (B, H, T, D, dtype,
// causal), the model shapes of the training-step and evaluation benches and each bench's default
// case. docs/perf.md's numbers were taken with exactly these defaults; the flags of each
// `linearard bench ...` subcommand start from them, so a changed default here changes the numbers'
// meaning (say so in docs/perf.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/model_config.h"
#include "train/random_model.h"

namespace linearard::bench {

// `bench relation-kl`: the self relation (x (B, H, T, D) against y (B, H, T, D), student head dim =
// teacher head dim), one case per (D, T), D outer. The training case: B = 1, H = 32 heads (LLaMA-2-7B
// and LLaMA-3-8B query heads), bf16, causal; T from 1K to the 32K of the paper's extended window.
struct RelationKLGrid {
  std::vector<int64_t> T{1024, 2048, 4096, 8192, 16384, 32768};
  std::vector<int64_t> D{128, 64};
  int64_t B = 1, H = 32;
  std::string dtype = "bf16";
  bool causal = true;
  int warmup = 3, repeats = 10;  // untimed calls, then timed calls (median, p20, p80)
  // Packed documents (issue 18, RelationKLOptions::doc_ids): documents of equal length (the first
  // T % docs one token longer) per block of T. 1 = the plain op; N > 1 times the packed op and the
  // single-document op side by side (`--docs N`; the target: T = 4096).
  int64_t docs = 1;
};

// A model shape with random weights and the paper's student RoPE: linear position interpolation by
// `pi_factor` (LinearARD, arXiv 2604.00004: LLaMA-2 4K -> 32K is x8, LLaMA-3 8K -> 32K is x4).
struct ModelShape {
  std::string name;
  model::ModelConfig config;
  double pi_factor = 8;
};

// "7b": LLaMA-2-7B (32 layers, C 4096, 32 heads, FFN 11008, vocab 32000, 4K window, theta 1e4);
// "8b": LLaMA-3-8B (8 KV heads, FFN 14336, vocab 128256, theta 5e5, 8K window);
// "tiny": 2 layers, C 256, 4 heads (lets eval-ppl run on a CPU).
// `allowed` lists the names the calling bench takes (its --shape error names them).
inline ModelShape model_shape(const std::string& name, const std::vector<std::string>& allowed) {
  bool ok = false;
  for (const std::string& a : allowed) ok = ok || a == name;
  nlohmann::json j;
  double factor = 8;
  if (ok && name == "7b") {
    j = train::llama_config_json(4096, 11008, 32, 32, 32, 32000, 4096, 10000.0);
  } else if (ok && name == "8b") {
    j = train::llama_config_json(4096, 14336, 32, 32, 8, 128256, 8192, 500000.0);
    factor = 4;
  } else if (ok && name == "tiny") {
    j = train::llama_config_json(256, 512, 2, 4, 4, 32000, 4096, 10000.0);
  } else {
    std::string names;
    for (size_t i = 0; i < allowed.size(); ++i)
      names += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i];
    fail("--shape", "expected " + names + ", got '" + name + "'");
  }
  return {name, model::parse_model_config(j.dump(), "bench shape " + name), factor};
}

// `bench distill`: one ARD step at the paper's setting, both model shapes.
struct DistillCase {
  std::vector<std::string> shapes{"7b", "8b"};
  int64_t context = 4096, batch = 1, lora_rank = 1024;  // LoRA on q/k/v, alpha = 2 r
  int64_t steps = 3, warmup = 1;
};
// `bench cpt`: one continued-pretraining step at the extended window (issue 4: 32K on one H100).
struct CptCase {
  std::string shape = "7b";
  int64_t context = 32768, batch = 1, lora_rank = 1024;
  int64_t steps = 2, warmup = 1;
};
// `bench eval-ppl`: perplexity windows at the extended window.
struct EvalPplCase {
  std::string shape = "7b";
  int64_t context = 32768, windows = 2, batch = 1, warmup_context = 2048;
};

}  // namespace linearard::bench

// `linearard inspect DIR`: architecture, parameter count, RoPE configuration and dtypes of a HF
// checkpoint directory; optionally one forward pass to show the model runs.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "cli/command.h"
#include "common/error.h"
#include "io/checkpoint.h"
#include "io/gguf.h"
#include "io/gguf_dequant.h"
#include "io/model_path.h"
#include "model/llama.h"

namespace {

using namespace linearard;

struct InspectOptions {
  std::string model_dir;
  std::string rope_scaling;
  int64_t forward_tokens = 0;
};

// The checkpoint's own dtype, so loading it for validation maps the file without copying.
at::ScalarType stored_dtype(const io::CheckpointWeights& ckpt) {
  return io::to_scalar_type(ckpt.info("model.embed_tokens.weight").dtype);
}

// A .gguf file's own view: version, tensor count, its general.architecture and the tensor types as
// stored (before the import dequantizes them), e.g. "Q4_1 x 211, F32 x 61".
std::string describe_gguf(const std::string& path) {
  const io::GgufFile f = io::GgufFile::open(path);
  std::map<std::string, int64_t> by_type;
  for (const auto& t : f.header().tensors) ++by_type[io::ggml_type_name(t.type)];
  std::string types;
  for (const auto& [type, n] : by_type) types += (types.empty() ? "" : ", ") + type + " x " + std::to_string(n);
  const io::GgufValue* arch = f.find("general.architecture");
  return "v" + std::to_string(f.header().version) + ", " + std::to_string(f.header().tensors.size()) +
         " tensors, architecture " + (arch ? arch->as_string("general.architecture") : std::string("(none)")) +
         "; tensor types: " + types;
}

bool is_gguf_path(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

void run_inspect(InspectOptions o) {
  const std::string gguf = is_gguf_path(o.model_dir) ? describe_gguf(o.model_dir) : "";
  o.model_dir = io::resolve_model_path(o.model_dir);  // a .gguf file -> its imported directory
  // Everything is validated before anything is printed, so a bad input gives one line.
  const model::ModelConfig c = model::load_model_config(o.model_dir);
  io::CheckpointWeights ckpt(o.model_dir);
  model::RopeParams rope = c.rope;
  if (!o.rope_scaling.empty()) rope = model::parse_rope_override(o.rope_scaling, c, "--rope-scaling");
  if (!ckpt.has("model.embed_tokens.weight"))
    fail(o.model_dir, "tensor 'model.embed_tokens.weight' not found (" + ckpt.source() + ")");
  // Checks every tensor the config implies (names and shapes) without reading the weights.
  model::DecoderModel::load(o.model_dir, stored_dtype(ckpt), at::kCPU);
  std::map<std::string, int64_t> params_by_dtype;
  int64_t params = 0;
  for (const auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    int64_t n = 1;
    for (int64_t s : info.shape) n *= s;
    params += n;
    params_by_dtype[io::dtype_name(info.dtype)] += n;
  }
  std::printf("model        %s\n", o.model_dir.c_str());
  if (!gguf.empty()) std::printf("gguf         %s\n", gguf.c_str());
  std::printf("architecture %s: %lld layers, hidden %lld, FFN %lld, %lld heads, %lld KV heads, head_dim %lld, vocab %lld\n",
              c.model_type.c_str(), (long long)c.num_hidden_layers, (long long)c.hidden_size,
              (long long)c.intermediate_size, (long long)c.num_attention_heads,
              (long long)c.num_key_value_heads, (long long)c.head_dim, (long long)c.vocab_size);
  std::printf("options      rms_norm_eps %g, tied embeddings %s, q/k/v bias %s, sliding_window %s\n",
              c.rms_norm_eps, c.tie_word_embeddings ? "yes" : "no",
              (c.attention_bias || c.qkv_bias) ? "yes" : "no",
              c.sliding_window ? std::to_string(*c.sliding_window).c_str() : "none");
  std::printf("context      max_position_embeddings %lld\n", (long long)c.max_position_embeddings);
  std::printf("rope         %s\n", model::describe_rope(c.rope).c_str());
  if (!o.rope_scaling.empty()) {
    std::printf("rope (given) %s\n", model::describe_rope(rope).c_str());
  }
  std::printf("parameters   %lld (%.2f M) in %s\n", (long long)params, params / 1e6, ckpt.source().c_str());
  for (const auto& [dtype, n] : params_by_dtype)
    std::printf("  dtype %-5s %lld\n", dtype.c_str(), (long long)n);
  std::printf("declared     torch_dtype %s\n", c.torch_dtype.empty() ? "(none)" : c.torch_dtype.c_str());

  if (o.forward_tokens > 0) {
    auto model = model::DecoderModel::load(o.model_dir, at::kFloat, at::kCPU);
    const int64_t T = o.forward_tokens;
    // A fixed token sequence so the printed loss is reproducible.
    auto tokens = (at::arange(T, at::kLong) * 7919 + 13).remainder(c.vocab_size).unsqueeze(0);  // (1, T)
    const auto tables = model.rope_tables_for(rope, T);
    model::ForwardRequest request;
    request.rope = &tables;
    const auto start = std::chrono::steady_clock::now();
    auto out = model.forward(tokens, request);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto logp = at::log_softmax(out.logits.to(at::kFloat), -1);  // (1, T, V)
    auto nll = -logp.narrow(1, 0, T - 1).gather(-1, tokens.narrow(1, 1, T - 1).unsqueeze(-1)).mean();
    std::printf("forward      %lld tokens on CPU float32 in %.3f s (%.0f tokens/s): logits (1, %lld, %lld), "
                "mean NLL of the fixed sequence %.4f\n",
                (long long)T, seconds, T / seconds, (long long)T, (long long)c.vocab_size, nll.item<double>());
  }
}

cli::CommandRegistration inspect_command(
    "inspect", "print architecture, parameters, RoPE and dtypes of a HF checkpoint directory or a .gguf file (with its tensor types)",
    [](CLI::App& sub) {
      auto o = std::make_shared<InspectOptions>();
      sub.add_option("model_dir", o->model_dir, "HF model directory or .gguf file")->required();
      sub.add_option("--rope-scaling", o->rope_scaling, "RoPE scaling to apply (JSON or file)");
      sub.add_option("--forward-tokens", o->forward_tokens, "run one forward pass over N tokens");
      sub.callback([o] { run_inspect(*o); });
    });

}  // namespace

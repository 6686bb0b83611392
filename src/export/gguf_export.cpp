// See gguf_export.h.
#include "export/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>

#include "common/error.h"
#include "common/option_error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/gguf_llama.h"
#include "io/gguf_quantize.h"
#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"

namespace linearard::exporter {
// The GGUF container, writer, quantizer and vocabulary are io/'s torch-free pieces.
using namespace io;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kArch = "llama";
std::string k(const std::string& suffix) { return kArch + "." + suffix; }

GgufFileType file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return GgufFileType::kAllF32;
    case GgmlType::BF16: return GgufFileType::kMostlyBF16;
    case GgmlType::Q8_0: return GgufFileType::kMostlyQ8_0;
    default: return GgufFileType::kMostlyF16;
  }
}

double yarn_mscale(double factor) { return factor <= 1 ? 1.0 : 0.1 * std::log(factor) + 1.0; }

// The architecture checks: what llama.cpp's llama graph cannot run is refused here.
void check_architecture(const model::ModelConfig& c, const std::string& where) {
  if (c.model_type != "llama" && c.model_type != "mistral")
    fail(where, "model_type '" + c.model_type + "' cannot be written as GGUF (supported: llama, mistral)");
  if (c.sliding_window)
    fail(where, "sliding_window " + std::to_string(*c.sliding_window) +
                    ": llama.cpp's llama architecture has no sliding-window attention");
  if (c.mlp_bias) fail(where, "mlp_bias: llama.cpp's llama architecture has no MLP biases");
  if (c.hidden_act != "silu") fail(where, "hidden_act '" + c.hidden_act + "': llama.cpp's llama architecture uses silu");
}

// llama.cpp's convert_hf_to_gguf.py LlamaModel.generate_extra_tensors: 1 for short wavelengths,
// `factor` for long ones, the smooth blend between.
std::vector<float> llama3_rope_freqs(const model::ModelConfig& c, const model::RopeParams& r) {
  const double factor = *r.factor, lo = *r.low_freq_factor, hi = *r.high_freq_factor;
  const double l0 = static_cast<double>(*r.original_max_position_embeddings);
  const double low_wavelen = l0 / lo, high_wavelen = l0 / hi;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const float freq = 1.0f / std::pow(static_cast<float>(r.theta), static_cast<float>(i) / static_cast<float>(c.head_dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (l0 / wavelen - lo) / (hi - lo);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

void add_rope(GgufWriter& w, const model::ModelConfig& c, const std::string& where) {
  const model::RopeParams& r = c.rope;
  w.add_f32(k("rope.freq_base"), static_cast<float>(r.theta));
  if (r.type == "default" || r.type == "llama3") return;  // llama3: the rope_freqs tensor
  if (r.type == "dynamic")
    fail(where, "RoPE scaling 'dynamic' (dynamic NTK) cannot be written to GGUF: llama.cpp has no dynamic NTK scaling");
  if (r.type == "longrope")
    fail(where, "RoPE scaling 'longrope' cannot be written to GGUF: llama.cpp's llama architecture reads no "
                "per-dimension short/long factors");
  if (r.type != "linear" && r.type != "yarn") fail(where, "RoPE scaling '" + r.type + "' cannot be written to GGUF");
  const double factor = *r.factor;
  w.add_string(k("rope.scaling.type"), r.type);
  w.add_f32(k("rope.scaling.factor"), static_cast<float>(factor));
  if (r.type == "linear") return;
  const double beta_fast = r.beta_fast.value_or(0) != 0 ? *r.beta_fast : 32.0;
  const double beta_slow = r.beta_slow.value_or(0) != 0 ? *r.beta_slow : 1.0;
  if (beta_fast != 32.0 || beta_slow != 1.0 || !r.truncate)
    fail(where, "RoPE scaling 'yarn' with beta_fast " + std::to_string(beta_fast) + ", beta_slow " +
                    std::to_string(beta_slow) + (r.truncate ? "" : ", truncate false") +
                    " cannot be written to GGUF: llama.cpp's llama architecture uses beta_fast 32, beta_slow 1 "
                    "and truncated correction dims");
  w.add_u32(k("rope.scaling.original_context_length"), static_cast<uint32_t>(*r.original_max_position_embeddings));
  // transformers' yarn attention factor (model/rope.cpp) over the one llama.cpp applies itself.
  double attention = yarn_mscale(factor);
  if (r.attention_factor) attention = *r.attention_factor;
  else if (r.mscale.value_or(0) != 0 && r.mscale_all_dim.value_or(0) != 0)
    attention = (0.1 * *r.mscale * std::log(factor) + 1) / (0.1 * *r.mscale_all_dim * std::log(factor) + 1);
  const double extra = attention / yarn_mscale(factor);
  if (std::fabs(extra - 1.0) > 1e-7) w.add_f32(k("rope.scaling.attn_factor"), static_cast<float>(extra));
}

// The GGUF name of a transformers tensor, or "" for one llama.cpp does not use (rotary inv_freq).
std::string gguf_name(const std::string& hf, const model::ModelConfig& c, const std::string& where) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return c.tie_word_embeddings ? "" : "output.weight";
  static const std::regex layer(R"(model\.layers\.(\d{1,9})\.(.+)\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(hf, m, layer)) {
    for (const auto& [g, path] : gguf_llama_layer_names())
      if (path == std::string(m[2])) return "blk." + std::string(m[1]) + "." + g + "." + std::string(m[3]);
  }
  if (hf.find("rotary_emb.inv_freq") != std::string::npos) return "";
  fail(where, "tensor '" + hf + "' has no llama.cpp counterpart");
}

struct Encoded {
  std::string name;
  std::vector<int64_t> shape;
  GgmlType type;
  std::vector<uint8_t> bytes;
};

Encoded encode_tensor(const std::string& name, const at::Tensor& t, const model::ModelConfig& c, GgmlType want) {
  at::Tensor f = t.to(at::kFloat).contiguous();
  std::vector<float> v(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  std::vector<int64_t> shape = f.sizes().vec();
  const bool q = name.find(".attn_q.") != std::string::npos, kk = name.find(".attn_k.") != std::string::npos;
  if (q || kk) {
    const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
    v = permute_qk_rows(v, q ? c.num_attention_heads : c.num_key_value_heads, rows, cols);
  }
  GgmlType type = shape.size() <= 1 ? GgmlType::F32 : want;
  if (type == GgmlType::Q8_0 && shape.back() % 32 != 0) type = GgmlType::F16;
  return {name, shape, type, quantize_ggml(type, v.data(), v.size())};
}

std::string model_name(const model::ModelConfig& c, const std::string& dir) {
  if (c.raw.contains("_name_or_path") && c.raw["_name_or_path"].is_string()) {
    const std::string n = c.raw["_name_or_path"];
    if (!n.empty()) return fs::path(n).filename().string();
  }
  return fs::path(normalized_path(dir)).filename().string();
}

void check_output(const GgufExportRequest& r) {
  if (r.out_path.empty()) fail_option("out", "no output file given");
  if (fs::is_directory(r.out_path)) fail_option_value("out", r.out_path, "is a directory (--format gguf writes one .gguf file)");
  for (const auto& in : r.inputs)
    if (!in.empty() && path_within(r.out_path, in)) fail_option_value("out", r.out_path, "is an input of this export or inside one (" + in + ")");
  if (fs::exists(r.out_path) && !r.overwrite) fail_option_value("out", r.out_path, "exists (pass --overwrite to replace it)");
}

}  // namespace

GgmlType parse_gguf_type(const std::string& s, const std::string& flag) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "bf16") return GgmlType::BF16;
  if (s == "q8_0") return GgmlType::Q8_0;
  fail(flag, "unknown GGUF type '" + s + "' (f32, f16, bf16 or q8_0)");
}

void write_gguf_model(const GgufExportRequest& r, const model::ModelConfig& c,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& tokenizer_dir) {
  const std::string where = "--format gguf";
  check_output(r);
  check_architecture(c, where);
  model::validate_rope(c.rope, c, where);
  GgufWriter w;
  w.add_string("general.architecture", kArch);
  w.add_string("general.type", "model");
  w.add_string("general.name", model_name(c, tokenizer_dir));
  w.add_u32("general.file_type", static_cast<uint32_t>(file_type(r.type)));
  w.add_u32("general.quantization_version", kGgmlQuantVersion);
  w.add_u32(k("vocab_size"), static_cast<uint32_t>(c.vocab_size));
  w.add_u32(k("context_length"), static_cast<uint32_t>(c.max_position_embeddings));
  w.add_u32(k("embedding_length"), static_cast<uint32_t>(c.hidden_size));
  w.add_u32(k("block_count"), static_cast<uint32_t>(c.num_hidden_layers));
  w.add_u32(k("feed_forward_length"), static_cast<uint32_t>(c.intermediate_size));
  w.add_u32(k("attention.head_count"), static_cast<uint32_t>(c.num_attention_heads));
  w.add_u32(k("attention.head_count_kv"), static_cast<uint32_t>(c.num_key_value_heads));
  w.add_f32(k("attention.layer_norm_rms_epsilon"), static_cast<float>(c.rms_norm_eps));
  w.add_u32(k("attention.key_length"), static_cast<uint32_t>(c.head_dim));
  w.add_u32(k("attention.value_length"), static_cast<uint32_t>(c.head_dim));
  w.add_u32(k("rope.dimension_count"), static_cast<uint32_t>(c.head_dim));
  add_rope(w, c, where);
  json config = c.raw;
  config["vocab_size"] = c.vocab_size;
  add_gguf_vocab(w, tokenizer_dir, config);

  // Tensors: every transformers tensor mapped, none missing, nothing left over.
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [hf, t] : tensors) {
    const std::string g = gguf_name(hf, c, where);
    if (!g.empty()) by_name[g] = &t;
  }
  std::vector<std::string> order = {"token_embd.weight"};
  if (c.rope.type == "llama3") order.push_back("rope_freqs.weight");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    for (const char* n : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"})
      order.push_back("blk." + std::to_string(i) + "." + n + ".weight");
    if (c.attention_bias)
      for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"})
        order.push_back("blk." + std::to_string(i) + "." + n + ".bias");
  }
  order.push_back("output_norm.weight");
  if (!c.tie_word_embeddings) order.push_back("output.weight");
  size_t used = 0;
  for (const auto& name : order) {
    if (name == "rope_freqs.weight") {
      const auto f = llama3_rope_freqs(c, c.rope);
      w.add_tensor(name, {static_cast<int64_t>(f.size())}, GgmlType::F32, quantize_ggml(GgmlType::F32, f.data(), f.size()));
      continue;
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) fail(where, "tensor '" + name + "' (llama.cpp name): missing from the model");
    ++used;
    Encoded e = encode_tensor(name, *it->second, c, r.type);
    w.add_tensor(e.name, e.shape, e.type, std::move(e.bytes));
  }
  if (used != by_name.size())
    for (const auto& [name, t] : by_name)
      if (std::find(order.begin(), order.end(), name) == order.end())
        fail(where, "tensor '" + name + "' is not part of a " + std::to_string(c.num_hidden_layers) + "-layer llama model");
  std::error_code ec;
  if (const fs::path parent = fs::path(r.out_path).parent_path(); !parent.empty()) fs::create_directories(parent, ec);
  w.write(r.out_path);
}

void export_model_dir_gguf(const GgufExportRequest& r, const std::string& model_dir) {
  const model::ModelConfig c = model::load_model_config(model_dir);
  CheckpointWeights weights(model_dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& n : weights.names()) tensors.emplace_back(n, weights.get(n));
  write_gguf_model(r, c, tensors, model_dir);
}

}  // namespace linearard::exporter

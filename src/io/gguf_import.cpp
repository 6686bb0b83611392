// GGUF -> HF directory (see gguf_import.h): tensor names and the Q/K un-permutation.
#include "io/gguf_import.h"

#include <filesystem>
#include <regex>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/gguf_llama.h"
#include "io/gguf_tokenizer.h"
#include "io/safetensors.h"

namespace linearard::io {
namespace {

using json = nlohmann::json;

const std::map<std::string, std::string>& layer_names() { return gguf_llama_layer_names(); }

struct Shapes {
  int64_t hidden, layers, ffn, heads, kv_heads, head_dim, vocab;
};

Shapes shapes_of(const json& c) {
  Shapes s;
  s.hidden = c["hidden_size"];
  s.layers = c["num_hidden_layers"];
  s.ffn = c["intermediate_size"];
  s.heads = c["num_attention_heads"];
  s.kv_heads = c["num_key_value_heads"];
  s.head_dim = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : s.hidden / s.heads;
  s.vocab = c["vocab_size"];
  return s;
}

// The HF name and expected C-order shape of a GGUF tensor; fails for names we do not know.
std::pair<std::string, std::vector<int64_t>> hf_tensor(const std::string& path, const std::string& name, const Shapes& s) {
  if (name == "token_embd.weight") return {"model.embed_tokens.weight", {s.vocab, s.hidden}};
  if (name == "output_norm.weight") return {"model.norm.weight", {s.hidden}};
  if (name == "output.weight") return {"lm_head.weight", {s.vocab, s.hidden}};
  if (name == "rope_freqs.weight")
    fail(path, "tensor 'rope_freqs.weight': llama3-style RoPE frequency factors are not supported (transformers' "
               "llama3 rope parameters are not stored in GGUF, and dropping the tensor would change the model)");
  static const std::regex layer(R"(blk\.(\d{1,9})\.([a-z_]+)\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(name, m, layer)) {
    const int64_t i = std::stoll(m[1]);
    auto it = layer_names().find(m[2]);
    if (i < s.layers && it != layer_names().end()) {
      const std::string hf = "model.layers." + std::to_string(i) + "." + it->second + "." + std::string(m[3]);
      const std::string kind = m[2];
      const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
      std::vector<int64_t> shape;
      if (kind == "attn_norm" || kind == "ffn_norm") shape = {s.hidden};
      else if (kind == "attn_q") shape = {q, s.hidden};
      else if (kind == "attn_k" || kind == "attn_v") shape = {kv, s.hidden};
      else if (kind == "attn_output") shape = {s.hidden, q};
      else if (kind == "ffn_gate" || kind == "ffn_up") shape = {s.ffn, s.hidden};
      else shape = {s.hidden, s.ffn};  // ffn_down
      if (m[3] == "bias") {
        if (kind != "attn_q" && kind != "attn_k" && kind != "attn_v") fail(path, "tensor '" + name + "': unexpected bias");
        shape = {shape[0]};
      }
      return {hf, shape};
    }
  }
  fail(path, "tensor '" + name + "': not a tensor of a " + std::to_string(s.layers) +
                 "-layer LLaMA-family model (unknown name)");
}

struct OutTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> encode(const std::vector<float>& v, ImportDType dtype) {
  std::vector<uint8_t> b;
  if (dtype == ImportDType::kF32) {
    b.resize(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  }
  b.resize(v.size() * 2);
  for (size_t k = 0; k < v.size(); ++k) {
    const uint16_t h = dtype == ImportDType::kBF16 ? float_to_bf16(v[k]) : float_to_half(v[k]);
    b[2 * k] = static_cast<uint8_t>(h & 0xFF);
    b[2 * k + 1] = static_cast<uint8_t>(h >> 8);
  }
  return b;
}

const char* hf_dtype_name(ImportDType d) {
  return d == ImportDType::kBF16 ? "bfloat16" : d == ImportDType::kF16 ? "float16" : "float32";
}

DType st_dtype(ImportDType d) { return d == ImportDType::kBF16 ? DType::BF16 : d == ImportDType::kF16 ? DType::F16 : DType::F32; }

}  // namespace

ImportDType parse_import_dtype(const std::string& s, const std::string& where) {
  if (s == "bf16" || s == "bfloat16") return ImportDType::kBF16;
  if (s == "f16" || s == "fp16" || s == "float16") return ImportDType::kF16;
  if (s == "f32" || s == "fp32" || s == "float32") return ImportDType::kF32;
  fail(where, "unknown dtype '" + s + "' (bf16, f16 or f32)");
}

void import_gguf(const std::string& gguf_path, const std::string& out_dir, ImportDType dtype) {
  const GgufFile file = GgufFile::open(gguf_path);
  const GgufArchitecture arch = gguf_architecture(file);
  const json config = gguf_config_json(file, arch, hf_dtype_name(dtype));
  const GgufTokenizerFiles tok = gguf_tokenizer_files(file, arch.model_type);
  const Shapes s = shapes_of(config);
  if (tok.tokenizer["model"]["vocab"].size() > static_cast<size_t>(s.vocab))
    fail(gguf_path, "tokenizer.ggml.tokens: " + std::to_string(tok.tokenizer["model"]["vocab"].size()) +
                        " tokens for a vocab_size of " + std::to_string(s.vocab));

  // Names and shapes first: nothing is written for a file that does not describe a whole model.
  std::map<std::string, const GgufTensorInfo*> by_hf;
  for (const auto& t : file.header().tensors) {
    auto [hf, shape] = hf_tensor(gguf_path, t.name, s);
    if (t.shape() != shape)
      fail(gguf_path, "tensor '" + t.name + "': shape " + format_shape(t.shape()) + " does not match the metadata (" +
                          format_shape(shape) + " from " + arch.gguf_arch + ".* keys)");
    by_hf[hf] = &t;
  }
  std::vector<std::string> required = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t i = 0; i < s.layers; ++i)
    for (const auto& [g, h] : layer_names())
      required.push_back("model.layers." + std::to_string(i) + "." + h + ".weight");
  for (const auto& name : required)
    if (!by_hf.count(name)) fail(gguf_path, "tensor '" + name + "' (HF name): missing from the file");
  if (arch.model_type == "qwen2")
    for (int64_t i = 0; i < s.layers; ++i)
      for (const char* p : {"q_proj", "k_proj", "v_proj"})
        if (!by_hf.count("model.layers." + std::to_string(i) + ".self_attn." + p + ".bias"))
          fail(gguf_path, "tensor 'blk." + std::to_string(i) + ".attn_" + std::string(p).substr(0, 1) +
                              ".bias': missing (qwen2 has q/k/v biases)");

  std::vector<OutTensor> out;
  uint64_t total = 0;
  for (const auto& [hf, t] : by_hf) {
    std::vector<float> v = file.dequantize(*t);
    const std::vector<int64_t> shape = t->shape();
    if (arch.permuted_qk) {
      const bool q = t->name.find(".attn_q.") != std::string::npos, k = t->name.find(".attn_k.") != std::string::npos;
      if (q || k) {
        const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
        v = unpermute_qk_rows(v, q ? s.heads : s.kv_heads, rows, cols);
      }
    }
    OutTensor o{hf, shape, encode(v, dtype)};
    total += o.bytes.size();
    out.push_back(std::move(o));
  }

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail(out_dir, "cannot create the directory: " + ec.message());
  check_free_space(out_dir, total);
  std::vector<TensorBytes> views;
  for (const auto& o : out) views.push_back({o.name, st_dtype(dtype), o.shape, o.bytes.data(), o.bytes.size()});
  write_sharded_safetensors(out_dir, views, {{"format", "pt"}}, 5'000'000'000);  // huggingface_hub's default shard size, "5GB"
  write_file_atomic(out_dir + "/tokenizer.json", tok.tokenizer.dump() + "\n");
  write_file_atomic(out_dir + "/tokenizer_config.json", tok.tokenizer_config.dump(2) + "\n");
  write_file_atomic(out_dir + "/config.json", config.dump(2) + "\n");
}

}  // namespace linearard::io

// Exports of a trained student: a PEFT LoRA adapter directory (loads with PeftModel.from_pretrained)
// and a merged HF checkpoint (loads with AutoModelForCausalLM.from_pretrained), plus the
// "training checkpoint adapter" files through which the trainer hands its result to the exporter.
// Formats: shared/reference/anchors.md §3.2 (PEFT) and §3.3 (safetensors, HF layout).
//
// Training checkpoint adapter (written by the trainer with save_adapter_checkpoint, read by
// `linearard export --checkpoint DIR`): two files in DIR, anything else there is ignored.
//   DIR/adapter.safetensors  the tensors of TrainedAdapter::tensors under their key names, any float
//                            dtype (float32 recommended), metadata {"format": "pt"}. Other tensors
//                            in the file are ignored, so it may be the trainer's trainable.safetensors:
//                            adapter.json's optional "tensors" names the file (default adapter.safetensors).
//   DIR/adapter.json         {"format": "linearard.trained_adapter", "version": 1,
//                             "kind": "lora" | "qkv_delta",
//                             "rank": r, "alpha": a, "dropout": p,      (lora; 0 for qkv_delta)
//                             "target_modules": ["q_proj", "k_proj", "v_proj"],  (lora: any of
//                                 q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)
//                             "base_model": "<base model dir>",
//                             "student_rope": {<rope_parameters dict, transformers v5 form>},
//                             "tensors": "adapter.safetensors"}  (optional)
//   adapter.json is written last, so its presence means the pair is complete.
// Tensor keys and shapes (C = hidden_size, F = intermediate_size, H/Hk = query/key-value heads,
// D = head_dim; {path} = self_attn.{q,k,v,o}_proj or mlp.{gate,up,down}_proj):
//   lora       base_model.model.model.layers.{i}.{path}.lora_A.weight  (r, in)
//              base_model.model.model.layers.{i}.{path}.lora_B.weight  (out, r)
//              (out, in) of the weight: q (H*D, C), k/v (Hk*D, C), o (C, H*D), gate/up (F, C),
//              down (C, F); delta W = (B @ A) * alpha / r
//   qkv_delta  model.layers.{i}.self_attn.{q,k,v}_proj.weight_delta                    (out, C)
// Every layer must have every target module (both A and B for LoRA).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "model/model_config.h"

namespace linearard::io {

// What a training run produced.
struct TrainedAdapter {
  std::string kind;  // "lora" or "qkv_delta"
  int64_t rank = 0;  // lora only
  double alpha = 0, dropout = 0;  // lora only; scaling = alpha / rank (no rsLoRA)
  std::map<std::string, at::Tensor> tensors;  // key names above
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj"};
};

// Key names, e.g. lora_key(3, "k_proj", 'B') = "base_model.model.model.layers.3.self_attn.k_proj.lora_B.weight",
// lora_key(0, "up_proj", 'A') = "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight".
std::string lora_key(int64_t layer, const std::string& module, char which);
std::string qkv_delta_key(int64_t layer, const std::string& module);

// Checks kind, rank, target modules, and that the tensors are exactly the keys the config implies
// with the shapes above. Errors: "<where>: ..." one line.
void validate_adapter(const TrainedAdapter& adapter, const model::ModelConfig& config, const std::string& where);

// delta W (out, C) float32 of one layer's projection: (B @ A) * alpha / r, or the stored delta.
at::Tensor weight_delta(const TrainedAdapter& adapter, int64_t layer, const std::string& module);

// Every base tensor (natural name order), the targeted ones as W + delta W computed in float32 and
// cast back to the stored dtype: what the merged export writes (and the GGUF export encodes).
std::vector<std::pair<std::string, at::Tensor>> merged_weights(const std::string& base_model_dir,
                                                               const TrainedAdapter& adapter,
                                                               const model::ModelConfig& base);

struct AdapterCheckpoint {
  TrainedAdapter adapter;       // tensors converted to float32, owned (writable)
  std::string base_model_dir;   // as recorded by the trainer
  nlohmann::json student_rope;  // rope_parameters dict; parse with model::parse_rope_override
};

// adapter.json's content; a trainer that already writes the tensors into its own checkpoint file
// writes this with tensors_file = that file's name instead of calling save_adapter_checkpoint.
nlohmann::json adapter_checkpoint_json(const TrainedAdapter& adapter, const std::string& base_model_dir,
                                       const model::RopeParams& student_rope,
                                       const std::string& tensors_file = "adapter.safetensors");
// Writes DIR/adapter.safetensors (the tensors) then DIR/adapter.json, each atomically.
void save_adapter_checkpoint(const std::string& dir, const TrainedAdapter& adapter,
                             const std::string& base_model_dir, const model::RopeParams& student_rope);
// Reads DIR/adapter.json and the tensors it names: the LoRA A/B or weight_delta keys, other tensors
// of the file are skipped. Structural checks only (validate_adapter needs the base config).
AdapterCheckpoint load_adapter_checkpoint(const std::string& dir);

// The base config.json with the student's RoPE: rope_parameters (v5 form), a v4 mirror
// (top-level rope_theta + rope_scaling without rope_theta, null for default; transformers 5.x reads
// rope_scaling first when present, so the mirror must and does say the same thing), and
// max_position_embeddings = native length x factor for linear, yarn, llama3 and longrope with a
// factor (native = original_max_position_embeddings, else the base's max_position_embeddings).
// dynamic keeps max_position_embeddings: transformers' dynamic NTK measures lengths against it.
// Every other field is kept.
nlohmann::json student_config_json(const model::ModelConfig& base, const model::RopeParams& student_rope);

enum class ExportFormat { kPeft, kMerged, kBoth };
ExportFormat parse_export_format(const std::string& text, const std::string& flag);

// "5GB", "500MB", "30KB", "1GiB", "123": decimal units as huggingface_hub's parse_size_to_int,
// binary ones for KiB/MiB/GiB.
uint64_t parse_size_bytes(const std::string& text, const std::string& flag);

struct ExportRequest {
  std::string out_dir;
  std::string base_model_dir;
  ExportFormat format = ExportFormat::kBoth;  // kBoth: OUT/peft and OUT/merged
  bool overwrite = false;                     // replace a non-empty OUT
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;  // merged weights
  std::vector<std::string> protected_dirs;    // inputs (the training checkpoint): OUT neither inside nor around
};

// Writes the export. Refuses (before writing anything) an OUT equal to, inside or containing the
// base model directory or a protected directory, a non-empty OUT without overwrite, and a
// qkv_delta adapter as PEFT. Writes into "<parent>/.<name>.tmp.<pid>" next to OUT,
// then renames it into place (an old OUT is moved aside first and deleted after).
void export_student(const ExportRequest& request, const TrainedAdapter& adapter,
                    const model::RopeParams& student_rope);

// The two halves on their own (request.format is ignored).
// PEFT: adapter_config.json, adapter_model.safetensors (float32: PEFT keeps adapter weights in
// float32 by default, autocast_adapter_dtype), student_config.json (student_config_json), README.md.
void write_peft_adapter(const ExportRequest& request, const TrainedAdapter& adapter,
                        const model::RopeParams& student_rope);
// Merged: every base tensor, the targeted ones as W + delta W computed in float32 and cast back to the stored
// dtype; config.json = student_config_json; the base's other files (tokenizer, generation config,
// license) copied; README.md.
void write_merged_checkpoint(const ExportRequest& request, const TrainedAdapter& adapter,
                             const model::RopeParams& student_rope);

}  // namespace linearard::io

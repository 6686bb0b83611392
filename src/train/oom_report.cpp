#include "train/oom_report.h"

#include <cstdio>
#include <cstdlib>
#include <regex>

// The caching allocator's API is there when LibTorch's CUDA headers are (the GPU machines build
// with LINEARARD_CUDA=OFF, so LINEARARD_WITH_CUDA cannot be the test; see bench/eval.cpp).
#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define LINEARARD_OOM_ALLOCATOR 1
#endif

namespace linearard::train {
namespace {

constexpr double kGiB = double(int64_t{1} << 30);

// "2.00 GiB" -> bytes; the allocator's format_size writes bytes, KiB, MiB or GiB.
double size_of(const std::string& number, const std::string& unit) {
  double v = std::atof(number.c_str());
  if (unit == "KiB") v *= 1024.0;
  else if (unit == "MiB") v *= 1024.0 * 1024.0;
  else if (unit == "GiB") v *= kGiB;
  else if (unit == "TiB") v *= kGiB * 1024.0;
  return v;
}

double find_size(const std::string& text, const std::string& before, const std::string& after) {
  static const std::string kSize = R"(([0-9]+(?:\.[0-9]+)?) (bytes|B|KiB|MiB|GiB|TiB))";
  const std::regex re(before + kSize + after);
  std::smatch m;
  return std::regex_search(text, m, re) ? size_of(m[1], m[2]) : -1;
}

int64_t element_size(at::ScalarType dtype) { return int64_t(c10::elementSize(dtype)); }

}  // namespace

std::string format_bytes(double bytes) {
  char buf[32];
  if (bytes >= kGiB) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / kGiB);
  else if (bytes >= 1024.0 * 1024.0) std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  else if (bytes >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  return buf;
}

OomFacts parse_oom_text(const std::string& what) {
  OomFacts f;
  f.requested = find_size(what, "Tried to allocate ", "");
  f.total = find_size(what, "total capacity of ", "");
  if (f.total < 0) f.total = find_size(what, "", " total capacity");
  f.free = find_size(what, "of which ", " is free");
  if (f.free < 0) f.free = find_size(what, "; ", " free");
  f.in_use = find_size(what, "this process has ", " memory in use");
  f.allocated = find_size(what, "Of the allocated memory ", " is allocated by PyTorch");
  if (f.allocated < 0) f.allocated = find_size(what, "", " already allocated");
  f.allowed = find_size(what, "", " allowed");
  return f;
}

// B = batch size, T = context, C = hidden, I = intermediate, H / Hk = query / key-value heads,
// D = head dim, L = layers, s = bytes per element of the compute dtype.
//   weights      parameter count (embeddings, lm_head unless tied, q/k/v/o, gate/up/down, norms) x s
//   trainable    n x 16 bytes: float32 value, gradient and the two AdamW moments
//   activations  per layer, a full layer's tensors (norms, q/k/v before and after RoPE, attention
//                output, o_proj, gate/up/act/down) ~ B T (6C + 3(H + 2Hk)D + 4I) s; with activation
//                checkpointing every layer keeps only its input B T C s and one layer is
//                recomputed at a time; distill also holds the teacher's and the student's
//                captured q/k/v of each aligned layer, 2 B T (H + 2Hk) D s per layer; an LM or
//                logits term holds about three float32 logit chunks (256 MiB each by default)
//                or B T V when smaller.
MemoryEstimate estimate_training_memory(const model::ModelConfig& c, const TrainOptions& o, at::ScalarType dtype,
                                        int64_t trainable_params) {
  const double s = double(element_size(dtype));
  const double C = double(c.hidden_size), I = double(c.intermediate_size), L = double(c.num_hidden_layers);
  const double H = double(c.num_attention_heads), Hk = double(c.num_key_value_heads);
  const double D = double(c.head_dim > 0 ? c.head_dim : c.hidden_size / std::max<int64_t>(c.num_attention_heads, 1));
  const double V = double(c.vocab_size);
  const double per_layer = C * H * D + 2 * C * Hk * D + H * D * C + 3 * C * I + 2 * C;
  const double params = V * C * (c.tie_word_embeddings ? 1 : 2) + L * per_layer + C;
  MemoryEstimate e;
  e.weights = params * s;
  e.trainable = double(trainable_params) * 16.0;
  const double BT = double(o.run.batch_size) * double(o.run.context);
  const double layer_full = BT * (6 * C + 3 * (H + 2 * Hk) * D + 4 * I) * s;
  e.activations = o.run.activation_checkpointing ? L * BT * C * s + layer_full : L * layer_full;
  if (o.command == "distill") {
    const bool relations = o.objective.relation_q || o.objective.relation_k || o.objective.relation_v;
    const double aligned = relations ? (o.objective.layers.empty() ? L : double(o.objective.layers.size())) : 0;
    e.activations += aligned * 2 * BT * (H + 2 * Hk) * D * s;
  }
  const bool logits = o.command != "distill" || o.objective.logits_kl_weight != 0 || o.objective.lm_weight != 0;
  if (logits) {
    const double chunk = o.run.lm_chunk_tokens > 0 ? double(o.run.lm_chunk_tokens) * V * 4 : 256.0 * (1 << 20);
    e.activations += 3 * std::min(chunk, BT * V * 4);
  }
  return e;
}

std::string describe_oom_facts(const OomFacts& f) {
  std::string text;
  if (f.requested >= 0) text += ": tried to allocate " + format_bytes(f.requested);
  const double used = f.in_use >= 0 ? f.in_use : f.allocated;
  if (used >= 0 && f.total >= 0) text += " with " + format_bytes(used) + " of " + format_bytes(f.total) + " in use";
  else if (f.total >= 0) text += " on a device of " + format_bytes(f.total);
  if (f.allowed >= 0) text += " (" + format_bytes(f.allowed) + " allowed to this process)";
  return text;
}

std::string oom_message(const OomFacts& f, const MemoryEstimate& e, const TrainOptions& o, int64_t num_layers,
                        int64_t step) {
  std::string line = "out of memory";
  if (step > 0) line += " at step " + std::to_string(step);
  line += describe_oom_facts(f);
  char buf[200];
  std::snprintf(buf, sizeof buf, "; this run needs roughly %.1f GiB (weights %.1f, trainable + AdamW %.1f, activations %.1f)",
                e.total() / kGiB, e.weights / kGiB, e.trainable / kGiB, e.activations / kGiB);
  line += buf;
  std::string how;
  auto add = [&how](const std::string& item) { how += (how.empty() ? "" : ", ") + item; };
  if (!o.run.activation_checkpointing) add("--activation-checkpointing");
  add("a shorter --context (now " + std::to_string(o.run.context) + ")");
  if (o.command == "distill") {
    const int64_t aligned = o.objective.layers.empty() ? num_layers : int64_t(o.objective.layers.size());
    add("fewer --layers (now " + std::to_string(aligned) + " aligned)");
  }
  if (o.command != "pretrain") {
    if (o.adapter.kind == "lora") add("a smaller --lora-rank (now " + std::to_string(o.adapter.rank) + ")");
    else add("--train-qkv lora instead of full");
  }
  if (o.run.batch_size > 1)
    add("a smaller --batch-size (now " + std::to_string(o.run.batch_size) + ") with a larger --grad-accum");
  if (o.run.dtype == "fp32") add("--dtype bf16");
  return line + "; reduce it with " + how;
}

void add_allocator_facts(OomFacts& f, at::Device device) {
#ifdef LINEARARD_OOM_ALLOCATOR
  if (!device.is_cuda()) return;
  const int index = device.index() < 0 ? 0 : device.index();
  try {
    if (f.allocated < 0 && f.in_use < 0) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
      f.allocated = double(stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)].current);
    }
  } catch (const std::exception&) {  // the counters are a nicety; the message goes out anyway
  }
#else
  (void)f;
  (void)device;
#endif
}

void apply_test_memory_limit(at::Device device) {
  const char* v = std::getenv("LINEARARD_TEST_CUDA_MEMORY_FRACTION");
  if (!v || !device.is_cuda()) return;
#ifdef LINEARARD_OOM_ALLOCATOR
  c10::cuda::CUDACachingAllocator::setMemoryFraction(std::atof(v), device.index() < 0 ? 0 : device.index());
#endif
}

}  // namespace linearard::train

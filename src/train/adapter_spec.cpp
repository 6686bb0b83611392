#include "train/adapter_spec.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/option_error.h"

namespace linearard::train {
namespace {

using nlohmann::json;

constexpr const char* kLoraTargetsHelp =
    "expected a comma list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj "
    "(or q, k, v, o, gate, up, down), or all";

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// The value of `key`, else of its older spelling `old_key` (train_state.json before AdapterSpec);
// nullptr when neither is there.
const json* field(const json& j, const char* key, const char* old_key) {
  auto it = j.find(key);
  if (it == j.end()) it = j.find(old_key);
  return it == j.end() ? nullptr : &*it;
}

std::vector<std::string> read_targets(const json& j, const std::string& where, bool lora) {
  const auto it = j.find("target_modules");
  if (it == j.end() || !it->is_array() || it->empty())
    fail(where, "target_modules must be a non-empty list of module names");
  std::vector<std::string> out;
  for (const auto& m : *it) {
    if (!m.is_string()) fail(where, "target_modules must be a list of strings, got " + m.dump());
    const std::string name = m.get<std::string>();
    if (!contains(adapter_modules(), name))
      fail(where, "target_modules: '" + name +
                      "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    if (!lora && !contains(default_adapter_targets(), name))
      fail(where, "target_modules: '" + name + "' of a qkv_delta adapter is not one of q_proj, k_proj, v_proj");
    if (contains(out, name)) fail(where, "target_modules: '" + name + "' listed twice");
    out.push_back(name);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& adapter_modules() {
  static const std::vector<std::string> all = {"q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"};
  return all;
}

const std::vector<std::string>& default_adapter_targets() {
  static const std::vector<std::string> qkv = {"q_proj", "k_proj", "v_proj"};
  return qkv;
}

std::vector<std::string> parse_lora_targets(const std::vector<std::string>& items) {
  const auto& modules = adapter_modules();
  std::vector<bool> on(modules.size(), false);
  std::vector<std::string> words;
  for (const auto& item : items) {  // each item may itself be a comma list
    size_t start = 0;
    while (true) {
      const size_t comma = item.find(',', start);
      std::string w = item.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      w.erase(0, w.find_first_not_of(" \t"));
      w.erase(w.find_last_not_of(" \t") + 1);
      words.push_back(w);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  for (const auto& w : words) {
    if (w == "all") {
      on.assign(on.size(), true);
      continue;
    }
    size_t i = 0;
    while (i < modules.size() && w != modules[i] && w + "_proj" != modules[i]) ++i;
    if (w.empty() || i == modules.size())
      fail_option("lora-targets", "unknown module '" + w + "' in '" + joined(items) + "'; " + kLoraTargetsHelp);
    on[i] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < on.size(); ++i)
    if (on[i]) out.push_back(modules[i]);
  if (out.empty()) fail_option("lora-targets", std::string("no modules given; ") + kLoraTargetsHelp);
  return out;
}

json to_json(const AdapterSpec& s) {
  const bool lora = s.is_lora();
  // alpha and dropout stay doubles (2048.0, 0.0) whatever their value: the bytes of adapter.json.
  return {{"kind", s.json_kind()},
          {"rank", lora ? s.rank : int64_t(0)},
          {"alpha", lora ? s.alpha : 0.0},
          {"dropout", lora ? s.dropout : 0.0},
          {"target_modules", s.targets}};
}

AdapterSpec adapter_spec_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "the adapter must be a JSON object, got " + j.dump());
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) fail(where, "kind must be \"lora\" or \"qkv_delta\"");
  AdapterSpec s;
  const std::string k = kind->get<std::string>();
  if (k == "lora") {
    s.kind = "lora";
  } else if (k == "qkv_delta" || k == "full") {  // "full": the older train_state.json spelling
    s.kind = "full";
  } else {
    fail(where, "kind must be \"lora\" or \"qkv_delta\", got '" + k + "'");
  }
  s.targets = read_targets(j, where, s.is_lora());
  if (!s.is_lora()) {
    s.rank = 0, s.alpha = 0, s.dropout = 0;
    return s;
  }
  const json* rank = field(j, "rank", "r");
  if (!rank || !rank->is_number_integer() || (rank->is_number_unsigned() && rank->get<uint64_t>() > (1ULL << 40)) ||
      rank->get<int64_t>() <= 0 || rank->get<int64_t>() > (int64_t(1) << 40))
    fail(where, "rank must be an integer > 0" + (rank ? ", got " + rank->dump() : std::string(" (missing)")));
  s.rank = rank->get<int64_t>();
  const json* alpha = field(j, "alpha", "lora_alpha");
  if (!alpha || !alpha->is_number() || !std::isfinite(alpha->get<double>()) || alpha->get<double>() == 0)
    fail(where, "alpha must be a non-zero number" + (alpha ? ", got " + alpha->dump() : std::string(" (missing)")));
  s.alpha = alpha->get<double>();
  const json* dropout = field(j, "dropout", "lora_dropout");
  s.dropout = 0;
  if (dropout) {
    if (!dropout->is_number() || !(dropout->get<double>() >= 0 && dropout->get<double>() < 1))
      fail(where, "dropout must be a number in [0, 1), got " + dropout->dump());
    s.dropout = dropout->get<double>();
  }
  return s;
}

bool operator==(const AdapterSpec& a, const AdapterSpec& b) { return to_json(a) == to_json(b); }

}  // namespace linearard::train

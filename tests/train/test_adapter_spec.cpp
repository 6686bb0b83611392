// AdapterSpec's one JSON form (train/adapter_spec.h): the exact bytes adapter.json has always held
// for these fields, the older train_state.json spelling read as the same spec, and the one-line
// errors of the validating reader.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "train/adapter_spec.h"

namespace {

using namespace linearard;
using nlohmann::json;

std::string error_of(const std::string& text) {
  try {
    train::adapter_spec_from_json(json::parse(text), "ckpt/adapter.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

train::AdapterSpec lora_spec() {
  train::AdapterSpec s;
  s.rank = 4, s.alpha = 8, s.dropout = 0.05;
  s.targets = {"q_proj", "v_proj", "down_proj"};
  return s;
}

TEST(AdapterSpec, JsonFormIsTheBytesAdapterJsonHolds) {
  EXPECT_EQ(train::to_json(lora_spec()).dump(),
            R"({"alpha":8.0,"dropout":0.05,"kind":"lora","rank":4,"target_modules":["q_proj","v_proj","down_proj"]})");
  train::AdapterSpec full;  // --train-qkv full: the LoRA fields keep their flag defaults but are not written
  full.kind = "full";
  EXPECT_EQ(train::to_json(full).dump(),
            R"({"alpha":0.0,"dropout":0.0,"kind":"qkv_delta","rank":0,"target_modules":["q_proj","k_proj","v_proj"]})");
  EXPECT_EQ(train::adapter_spec_from_json(train::to_json(lora_spec()), "x"), lora_spec());
  EXPECT_EQ(train::adapter_spec_from_json(train::to_json(full), "x"), full);
}

TEST(AdapterSpec, ReadsTheAdapterJsonOfEarlierBuilds) {
  // final/adapter.json as `linearard distill` has written it (format version 1).
  const auto j = json::parse(R"({
 "alpha": 8.0,
 "base_model": "/models/base",
 "dropout": 0.05,
 "format": "linearard.trained_adapter",
 "kind": "lora",
 "rank": 4,
 "student_rope": {"factor": 4.0, "rope_theta": 10000.0, "rope_type": "linear"},
 "target_modules": ["q_proj", "v_proj", "down_proj"],
 "tensors": "trainable.safetensors",
 "version": 1
})");
  EXPECT_EQ(train::adapter_spec_from_json(j, "adapter.json"), lora_spec());
  const auto qkv = train::adapter_spec_from_json(
      json::parse(R"({"alpha": 0.0, "dropout": 0.0, "kind": "qkv_delta", "rank": 0,
                      "target_modules": ["q_proj", "k_proj", "v_proj"]})"), "adapter.json");
  EXPECT_EQ(qkv.kind, "full");
}

TEST(AdapterSpec, ReadsTheOlderTrainStateSpelling) {
  // train_state.json's task.adapter before AdapterSpec: PEFT-like names, "full" for q/k/v deltas.
  const auto old_lora = json::parse(R"({"kind": "lora", "lora_alpha": 8.0, "lora_dropout": 0.05, "r": 4,
                                        "target_modules": ["q_proj", "v_proj", "down_proj"]})");
  EXPECT_EQ(train::adapter_spec_from_json(old_lora, "train_state.json"), lora_spec());
  const auto old_full = json::parse(R"({"kind": "full", "target_modules": ["q_proj", "k_proj", "v_proj"]})");
  train::AdapterSpec full;
  full.kind = "full";
  EXPECT_EQ(train::adapter_spec_from_json(old_full, "train_state.json"), full);
  EXPECT_EQ(train::to_json(train::adapter_spec_from_json(old_full, "train_state.json")), train::to_json(full));
}

TEST(AdapterSpec, BadFieldsAreOneLineNamingFileAndField) {
  const std::string t = R"("target_modules": ["q_proj"])";
  EXPECT_EQ(error_of("[1]"), "ckpt/adapter.json: the adapter must be a JSON object, got [1]");
  EXPECT_EQ(error_of("{" + t + "}"), "ckpt/adapter.json: kind must be \"lora\" or \"qkv_delta\"");
  EXPECT_EQ(error_of(R"({"kind": "dora", )" + t + "}"),
            "ckpt/adapter.json: kind must be \"lora\" or \"qkv_delta\", got 'dora'");
  EXPECT_EQ(error_of(R"({"kind": "lora", "alpha": 8, )" + t + "}"), "ckpt/adapter.json: rank must be an integer > 0 (missing)");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 0, "alpha": 8, )" + t + "}"),
            "ckpt/adapter.json: rank must be an integer > 0, got 0");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 1e300, "alpha": 8, )" + t + "}"),
            "ckpt/adapter.json: rank must be an integer > 0, got 1e+300");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 4, "alpha": 0, )" + t + "}"),
            "ckpt/adapter.json: alpha must be a non-zero number, got 0");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 4, "alpha": 8, "dropout": 1, )" + t + "}"),
            "ckpt/adapter.json: dropout must be a number in [0, 1), got 1");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 4, "alpha": 8})"),
            "ckpt/adapter.json: target_modules must be a non-empty list of module names");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 4, "alpha": 8, "target_modules": ["lm_head"]})"),
            "ckpt/adapter.json: target_modules: 'lm_head' is not one of "
            "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  EXPECT_EQ(error_of(R"({"kind": "lora", "rank": 4, "alpha": 8, "target_modules": ["q_proj", "q_proj"]})"),
            "ckpt/adapter.json: target_modules: 'q_proj' listed twice");
  EXPECT_EQ(error_of(R"({"kind": "qkv_delta", "target_modules": ["q_proj", "up_proj"]})"),
            "ckpt/adapter.json: target_modules: 'up_proj' of a qkv_delta adapter is not one of q_proj, k_proj, v_proj");
}

}  // namespace

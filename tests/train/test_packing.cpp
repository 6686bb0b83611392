// --packing packed (issue 18): the packed block stream covers every token once and carries document
// ids; a packed block of documents gives each document the same logits and per-token losses as the
// document run alone (block-diagonal attention, per-document RoPE positions, masked first targets);
// the option's errors.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include "common/option_error.h"
#include "model/attention.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "train/data_source.h"
#include "train/lm_loss.h"
#include "train/random_model.h"
#include "train/run.h"
#include "train/tasks.h"
#include "train/train_flags.h"
#include "train/train_options.h"
#include "train_test_util.h"

namespace linearard {
namespace {

std::string write_docs(const std::string& name, const std::vector<std::vector<int>>& docs) {
  const std::string path = train_test::fresh_dir("packing_" + name) + "/docs.json";
  std::ofstream(path) << nlohmann::json(docs).dump();
  return path;
}

TEST(Packing, StreamCoversEveryTokenOnce) {
  // Ids 1..20 in order over documents of 5, 1, 7, 3, 0 and 4 tokens; T = 6: 3 blocks, 2 tokens left.
  std::vector<std::vector<int>> docs = {{}, {}, {}, {}, {}, {}};
  const std::vector<int> lengths = {5, 1, 7, 3, 0, 4};
  std::vector<int> doc_of;  // document of each stream token
  for (int d = 0, id = 1; d < 6; ++d)
    for (int i = 0; i < lengths[size_t(d)]; ++i) {
      docs[size_t(d)].push_back(id++);
      doc_of.push_back(d);
    }
  const std::string path = write_docs("stream", docs);
  const auto packed = train::open_token_files({path}, 6, "", 0, /*packed=*/true);
  ASSERT_TRUE(packed->packed());
  ASSERT_EQ(packed->num_blocks(), 3);
  for (int64_t b = 0; b < 3; ++b) {
    const auto ids = packed->block(b);
    const auto d = packed->doc_ids(b);
    ASSERT_EQ(d.size(), 6u);
    EXPECT_EQ(d[0], 0);
    for (int t = 0; t < 6; ++t) {
      EXPECT_EQ(ids[size_t(t)], int(b) * 6 + t + 1);  // the stream in order: every token once
      if (t > 0) {
        const bool same = doc_of[size_t(b * 6 + t)] == doc_of[size_t(b * 6 + t - 1)];
        EXPECT_EQ(d[size_t(t)], d[size_t(t - 1)] + (same ? 0 : 1)) << "block " << b << " token " << t;
      }
    }
  }
  // A shuffled epoch through the sampler: every token of the 3 blocks once, ids travel with them.
  train::BlockSampler sampler(*packed, 7, /*shuffle=*/true);
  at::Tensor doc_ids;
  const at::Tensor tokens = sampler.next_batch(3, &doc_ids);
  ASSERT_TRUE(doc_ids.defined());
  EXPECT_EQ(doc_ids.scalar_type(), at::kInt);
  const auto sorted = std::get<0>(tokens.flatten().sort());
  EXPECT_TRUE(at::equal(sorted, at::arange(1, 19, at::kLong)));
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t block = (tokens[b][0].item<int64_t>() - 1) / 6;
    const auto expected = packed->doc_ids(block);
    for (int t = 0; t < 6; ++t) EXPECT_EQ(doc_ids[b][t].item<int>(), expected[size_t(t)]);
  }
  // Split: unchanged (documents of >= 6 tokens: one block), no ids.
  const auto split = train::open_token_files({path}, 6);
  EXPECT_FALSE(split->packed());
  EXPECT_EQ(split->num_blocks(), 1);
  EXPECT_TRUE(split->doc_ids(0).empty());
  train::BlockSampler plain(*split, 7, true);
  at::Tensor none;
  plain.next_batch(1, &none);
  EXPECT_FALSE(none.defined());
  // Too little data for one packed block.
  EXPECT_THROW(train::open_token_files({path}, 21, "", 0, true), Error);
}

TEST(Packing, DocumentPositions) {
  const at::Tensor d = at::tensor({0, 0, 0, 1, 2, 2, 0, 0}, at::kInt).view({1, 8});
  const at::Tensor p = model::document_positions(d);
  EXPECT_TRUE(at::equal(p, at::tensor({0, 1, 2, 0, 0, 1, 0, 1}, at::kLong).view({1, 8})));
}

// The varlen attention's runs (model/attention.h document_runs): cu_seqlens over the flattened
// (B T) tokens, a run never crossing a row, length-1 runs included; ids that come back give none.
TEST(Packing, DocumentRunsForVarlenAttention) {
  const at::Tensor d = at::tensor({0, 0, 1, 1, 1, 3, 4, 4, 5, 9}, at::kInt).view({2, 5});
  const auto runs = model::document_runs(d);
  ASSERT_TRUE(runs.has_value());
  EXPECT_EQ(runs->cu_seqlens, (std::vector<int32_t>{0, 2, 5, 6, 8, 9, 10}));
  EXPECT_EQ(runs->max_length, 3);
  EXPECT_FALSE(model::document_runs(at::tensor({0, 1, 0}, at::kLong).view({1, 3})).has_value());
  const auto one = model::document_runs(at::zeros({1, 7}, at::kInt));
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->cu_seqlens, (std::vector<int32_t>{0, 7}));
  EXPECT_EQ(one->max_length, 7);
}

// On the CPU (and in float32 anywhere) the plan is the block-diagonal mask.
TEST(Packing, AttentionPlanOnCpuIsTheMask) {
  model::ModelConfig c;
  c.head_dim = 64;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  const at::Tensor d = at::tensor({0, 0, 1, 1}, at::kInt).view({1, 4});
  const auto plan = model::attention_plan(c, std::nullopt, 1, 4, at::kCPU, d, at::kBFloat16);
  EXPECT_FALSE(plan.cu_seqlens.has_value());
  ASSERT_TRUE(plan.mask.has_value());
  EXPECT_TRUE(at::equal(*plan.mask, *model::attention_mask(c, std::nullopt, 1, 4, at::kCPU, d)));
}

struct Tiny {
  model::ModelConfig config;
  std::unique_ptr<model::DecoderModel> model;
};

Tiny tiny_model() {
  Tiny t;
  const auto json = train::llama_config_json(32, 48, 2, 4, 2, 40, 64, 10000.0);
  t.config = model::parse_model_config(json.dump(), "tiny");
  t.model = std::make_unique<model::DecoderModel>(train::random_model(t.config, at::kDouble, at::kCPU, 3, 0.3));
  return t;
}

// Documents A (5 tokens), B (1 token), C (4 tokens) packed in one block of T = 10, twice (B = 2,
// the second row in another split) to check the batch dimension.
struct PackedCase {
  std::vector<int64_t> lengths = {5, 1, 4};
  at::Tensor tokens, doc_ids;  // (2, 10)
  std::vector<at::Tensor> alone;  // (1, length) each
};

PackedCase packed_case() {
  PackedCase c;
  c.tokens = at::randint(0, 40, {1, 10}, at::TensorOptions().dtype(at::kLong).device(at::kCPU));
  c.tokens = at::cat({c.tokens, c.tokens}, 0);
  std::vector<int> ids;
  int64_t at = 0;
  for (size_t d = 0; d < c.lengths.size(); ++d) {
    c.alone.push_back(c.tokens.narrow(0, 0, 1).narrow(1, at, c.lengths[d]));
    for (int64_t i = 0; i < c.lengths[d]; ++i) ids.push_back(int(d));
    at += c.lengths[d];
  }
  c.doc_ids = at::tensor(ids, at::kInt).view({1, 10}).repeat({2, 1});
  return c;
}

TEST(Packing, PackedForwardEqualsDocumentsAlone) {
  at::manual_seed(11);
  const Tiny t = tiny_model();
  const PackedCase c = packed_case();
  const auto tables = model::document_rope_tables(t.config, t.config.rope, c.doc_ids, at::kDouble);
  model::ForwardRequest request;
  request.rope = &tables;
  request.doc_ids = c.doc_ids;
  const at::Tensor packed = t.model->forward(c.tokens, request).logits;  // (2, 10, V)
  int64_t at = 0;
  for (size_t d = 0; d < c.alone.size(); ++d) {
    const auto alone_tables = t.model->rope_tables_for(t.config.rope, c.lengths[d]);
    model::ForwardRequest one;
    one.rope = &alone_tables;
    const at::Tensor logits = t.model->forward(c.alone[d], one).logits;  // (1, L, V)
    for (int64_t b = 0; b < 2; ++b)
      EXPECT_LT(train_test::relative_error(packed.narrow(0, b, 1).narrow(1, at, c.lengths[d]), logits), 1e-5)
          << "document " << d;  // float32 norms inside: not float64 precision
    at += c.lengths[d];
  }
  // Without doc ids the block is one sequence: the last document's logits differ.
  const auto block_tables = t.model->rope_tables_for(t.config.rope, 10);
  model::ForwardRequest plain;
  plain.rope = &block_tables;
  EXPECT_GT(train_test::relative_error(t.model->forward(c.tokens, plain).logits, packed), 1e-3);
}

// DistillTask (and cpt's LmTask): each loss part of a packed block is the token-weighted mean of
// the documents' parts alone (LM: weighted by predictions, length - 1).
TEST(Packing, PackedLossesEqualDocumentsAlone) {
  at::manual_seed(12);
  const Tiny t = tiny_model();
  const PackedCase c = packed_case();
  train::TrainOptions o = train::default_options("distill");
  o.objective.logits_kl_weight = 1.0;
  o.objective.logits_kl_last = 0;
  o.objective.lm_weight = 1.0;
  o.objective.hidden_weight = 1.0;
  o.run.activation_checkpointing = false;
  o.adapter.dropout = 0;
  o.adapter.targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  const model::RopeParams student =
      model::parse_rope_override(R"({"rope_type": "linear", "factor": 2.0})", t.config, "test");
  auto adapter = train::make_adapter(o, t.config, at::kCPU);
  {  // LoRA's B starts at 0: give it values so that the student differs from the teacher by more than RoPE
    at::NoGradGuard no_grad;
    for (const auto& [name, p] : adapter->named_parameters()) p.normal_(0, 0.2);
  }
  train::DistillTask task(o, *t.model, student, std::move(adapter));
  const train::LossParts packed = task.loss(c.tokens, c.doc_ids);
  std::vector<train::LossParts> alone;
  for (const auto& a : c.alone) alone.push_back(task.loss(a));
  auto weighted = [&](at::Tensor train::LossParts::*part, bool predictions) {
    double sum = 0, n = 0;
    for (size_t d = 0; d < alone.size(); ++d) {
      const double w = double(c.lengths[d] - (predictions ? 1 : 0));
      sum += w * (alone[d].*part).item<double>();
      n += w;
    }
    return sum / n;
  };
  for (auto [part, name] : {std::pair{&train::LossParts::q, "q"}, {&train::LossParts::k, "k"},
                            {&train::LossParts::v, "v"}, {&train::LossParts::hidden, "hidden"},
                            {&train::LossParts::logits, "logits"}}) {
    const double want = weighted(part, false);
    EXPECT_NEAR((packed.*part).item<double>(), want, 1e-4 * std::abs(want) + 1e-9) << name;
    EXPECT_GT(want, 1e-6) << name;  // the comparison is not between zeros
  }
  const double lm = weighted(&train::LossParts::lm, true);
  EXPECT_NEAR(packed.lm.item<double>(), lm, 1e-5 * lm);

  train::TrainOptions cpt = train::default_options("cpt");
  train::LmTask lm_task(cpt, *t.model, student, train::make_adapter(cpt, t.config, at::kCPU), at::kDouble);
  const double packed_lm = lm_task.loss(c.tokens, c.doc_ids).lm.item<double>();
  double sum = 0, n = 0;
  for (size_t d = 0; d < c.alone.size(); ++d) {
    sum += double(c.lengths[d] - 1) * lm_task.loss(c.alone[d]).lm.item<double>();
    n += double(c.lengths[d] - 1);
  }
  EXPECT_NEAR(packed_lm, sum / n, 1e-5 * packed_lm);
}

TEST(Packing, LmLossMasksDocumentStarts) {
  const at::Tensor hidden = at::randn({1, 4, 8}, at::kDouble), head = at::randn({6, 8}, at::kDouble);
  const at::Tensor tokens = at::tensor({1, 2, 3, 4}, at::kLong).view({1, 4});
  const at::Tensor docs = at::tensor({0, 0, 1, 1}, at::kInt).view({1, 4});
  const at::Tensor labels = at::tensor({2, -100, 4}, at::kLong);
  const at::Tensor want = train::chunked_lm_loss(hidden.narrow(1, 0, 3).reshape({3, 8}), head, labels);
  EXPECT_DOUBLE_EQ(train::causal_lm_loss(hidden, head, tokens, 0, docs).item<double>(), want.item<double>());
}

TEST(Packing, OptionValues) {
  for (const char* command : {"distill", "cpt", "pretrain"}) {
    train::TrainOptions o = train::train_options(command, {{"packing", "packed"}});
    EXPECT_EQ(o.run.packing, "packed") << command;
    EXPECT_EQ(train::to_json(o).value("packing", ""), "packed");
    EXPECT_FALSE(train::to_json(train::default_options(command)).contains("packing"));  // split: as before
    o.run.packing = "documents";
    o.run.out_dir = "x";
    o.run.data = {"y"};
    o.run.model_dir = "z";
    try {
      train::validate(o);
      ADD_FAILURE() << "no error";
    } catch (const OptionError& e) {
      EXPECT_EQ(e.option(), "packing");
      EXPECT_NE(std::string(e.what()).find("split or packed"), std::string::npos);
    }
  }
}

// A packed pretrain run end to end (options.json and train_state.json record the packing), and a
// resume with the other packing is refused: its data position counts other blocks.
TEST(Packing, PackedRunAndResumeNeedsSamePacking) {
  const std::string dir = train_test::fresh_dir("packing_run");
  const std::string data = write_docs("run_data", {{1, 2, 3, 4, 5, 6, 7}, {8, 9, 10}, {11, 12, 13, 14, 15, 16, 17, 18, 19},
                                                   {20}, {21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}});
  nlohmann::json given = {{"data", {data}}, {"out", dir + "/out"}, {"context", 8}, {"steps", 2},
                          {"checkpoint-every", 1}, {"hidden-size", 16}, {"intermediate-size", 24},
                          {"num-layers", 1}, {"num-heads", 2}, {"num-kv-heads", 2}, {"vocab-size", 40},
                          {"max-positions", 16}, {"device", "cpu"}, {"packing", "packed"}, {"warmup-steps", 0}};
  const auto result = train::run(train::train_options("pretrain", given));
  EXPECT_EQ(result.training.steps_done, 2);
  std::ifstream options(dir + "/out/options.json");
  EXPECT_EQ(nlohmann::json::parse(options).value("packing", ""), "packed");
  std::ifstream state(dir + "/out/checkpoints/step-000002/train_state.json");
  EXPECT_EQ(nlohmann::json::parse(state).value("packing", ""), "packed");
  given["packing"] = "split";
  given["resume"] = "latest";
  given["steps"] = 3;
  try {
    train::run(train::train_options("pretrain", given));
    ADD_FAILURE() << "no error";
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "packing");
    EXPECT_NE(std::string(e.what()).find("written with --packing packed"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace linearard

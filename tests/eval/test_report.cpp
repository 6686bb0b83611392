// The restoration report: the recovery formula, and an end-to-end `linearard report` on the
// fixture models whose report.json is parsed back here and every derived number recomputed from
// the raw per-model results (recovery on NLL for perplexity, on acc / acc_norm for multiple
// choice, teacher/restored ratios, the short/long split, the mean, the fidelity rows and the
// headline); `--from-json` redraws the same report.md.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/report.h"
#include "eval_test_util.h"
#include "test_env.h"

namespace {

using namespace linearard;
using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Report, RecoveryFormula) {
  EXPECT_DOUBLE_EQ(*eval::recovery(0.6, 0.4, 0.5), 0.5);    // accuracy: halfway back
  EXPECT_DOUBLE_EQ(*eval::recovery(2.0, 3.0, 2.2), 0.8);    // NLL (lower is better): same formula
  EXPECT_DOUBLE_EQ(*eval::recovery(2.0, 3.0, 1.9), 1.1);    // better than the teacher
  EXPECT_DOUBLE_EQ(*eval::recovery(0.6, 0.4, 0.3), -0.5);   // worse than the scaled model
  EXPECT_FALSE(eval::recovery(0.5, 0.5, 0.7).has_value());  // no gap to recover
}

const json& find_model_result(const json& list, const std::string& key, const json& value) {
  for (const auto& r : list)
    if (r[key] == value) return r;
  throw std::runtime_error("no result with " + key + " = " + value.dump());
}

TEST(Report, EndToEndNumbersRecomputeFromJson) {
  SKIP_WITHOUT_TOKENIZER();
  const std::string d = eval_test::dir();
  const std::string out = ::testing::TempDir() + "/eval_report";
  std::filesystem::remove_all(out);
  const std::string cmd = test_env::linearard_bin() + " report --teacher " + d + "/model --scaled '{\"rope_type\": " +
                          "\"linear\", \"factor\": 2.0}' --restored " + d + "/restored --tasks ppl,fidelity,passkey,mc --text " +
                          d + "/text.txt --contexts 32,64,128 --stride 16 --lengths 150,200 --depths 0,1 --trials 2 " +
                          "--mc qa=" + d + "/mc.jsonl --batch-size 3 --out " + out;
  const auto r = test_env::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Restoration report"), std::string::npos);
  const json report = eval_test::read_json(out + "/report.json");
  ASSERT_EQ(report["format"], "linearard-report");
  const int64_t native = report["native_context"];
  EXPECT_EQ(native, 64);  // the teacher's max_position_embeddings
  const json& models = report["models"];
  const char* roles[] = {"teacher", "scaled", "restored"};
  EXPECT_EQ(models["scaled"]["model"]["rope"]["rope_type"], "linear");
  EXPECT_EQ(models["teacher"]["model"]["rope"]["rope_type"], "default");

  double sum = 0;
  int n = 0, ppl_rows = 0, mc_rows = 0;
  for (const auto& row : report["short_text"]) {
    double v[3];
    if (row["kind"] == "perplexity") {
      ++ppl_rows;
      const int64_t T = row["context"];
      EXPECT_LE(T, native);
      double ppl[3];
      for (int i = 0; i < 3; ++i) {
        const json& x = find_model_result(models[roles[i]]["ppl"]["results"], "context", T);
        v[i] = x["nll"];
        ppl[i] = x["perplexity"];
        EXPECT_DOUBLE_EQ(row[roles[i]].get<double>(), ppl[i]);
        EXPECT_NEAR(std::exp(v[i]), ppl[i], 1e-9 * ppl[i]);
      }
      EXPECT_NEAR(row["relative_to_teacher"].get<double>(), ppl[0] / ppl[2], 1e-12);
    } else {
      ++mc_rows;
      const std::string field = row["field"];
      for (int i = 0; i < 3; ++i) v[i] = find_model_result(models[roles[i]]["mc"], "task", row["task"])[field];
      if (v[0] > 0) EXPECT_NEAR(row["relative_to_teacher"].get<double>(), v[2] / v[0], 1e-12);
    }
    if (std::abs(v[0] - v[1]) > 1e-12) {
      const double expected = (v[2] - v[1]) / (v[0] - v[1]);
      EXPECT_NEAR(row["recovery"].get<double>(), expected, 1e-12) << row["metric"];
      sum += expected;
      ++n;
    } else {
      EXPECT_TRUE(row["recovery"].is_null()) << row["metric"];
    }
  }
  EXPECT_EQ(ppl_rows, 2);  // contexts 32 and 64
  EXPECT_EQ(mc_rows, 2);   // qa acc and acc_norm
  ASSERT_GT(n, 0);
  EXPECT_NEAR(report["summary"]["mean_recovery"].get<double>(), sum / n, 1e-12);

  int long_ppl = 0, passkey = 0;
  for (const auto& row : report["long_context"]) {
    if (row["kind"] == "perplexity") {
      ++long_ppl;
      EXPECT_GT(row["context"].get<int64_t>(), native);
    } else {
      ++passkey;
      for (const char* role : roles) {
        const json& pk = models[role]["passkey"];
        const auto& lengths = pk["lengths"];
        size_t l = std::find(lengths.begin(), lengths.end(), row["length"]) - lengths.begin();
        double mean = 0;
        for (double a : pk["accuracy"][l]) mean += a / pk["depths"].size();
        EXPECT_NEAR(row[role].get<double>(), mean, 1e-12);
      }
    }
  }
  EXPECT_EQ(long_ppl, 1);  // context 128
  EXPECT_EQ(passkey, 2);
  // The scaled RoPE was really applied: the teacher and the scaled model differ at 128 tokens.
  EXPECT_NE(find_model_result(models["teacher"]["ppl"]["results"], "context", 128)["nll"],
            find_model_result(models["scaled"]["ppl"]["results"], "context", 128)["nll"]);

  // Fidelity: KL and top-1 rows at every context, the teacher's own row its self-comparison.
  int fidelity_rows = 0;
  for (const auto& row : report["fidelity"]) {
    ++fidelity_rows;
    const int64_t T = row["context"];
    const std::string field = row["kind"];
    ASSERT_TRUE(field == "kl" || field == "top1_agreement") << field;
    double v[3];
    for (int i = 0; i < 3; ++i) {
      const json& x = find_model_result(models[roles[i]]["fidelity"]["results"], "context", T);
      v[i] = x[field];
      EXPECT_DOUBLE_EQ(row[roles[i]].get<double>(), v[i]);
      EXPECT_EQ(x["positions"], find_model_result(models[roles[i]]["ppl"]["results"], "context", T)["tokens"]);
    }
    EXPECT_EQ(v[0], field == "kl" ? 0.0 : 1.0) << row["metric"];
    EXPECT_EQ(row["short"].get<bool>(), T <= native);
    if (field == "kl") EXPECT_GT(v[1], 0.0) << row["metric"];
    if (std::abs(v[0] - v[1]) > 1e-12) EXPECT_NEAR(row["recovery"].get<double>(), (v[2] - v[1]) / (v[0] - v[1]), 1e-12);
  }
  EXPECT_EQ(fidelity_rows, 6);  // kl and top1 at 32, 64, 128
  EXPECT_EQ(models["scaled"]["fidelity"]["teacher"]["rope"]["rope_type"], "default");
  // Headline: one row per short context with perplexity, gap recovered and fidelity of each model.
  ASSERT_EQ(report["headline"].size(), 2u);
  for (const auto& row : report["headline"]) {
    const int64_t T = row["context"];
    double nll[3];
    for (int i = 0; i < 3; ++i) {
      const std::string role = roles[i];
      const json& p = find_model_result(models[role]["ppl"]["results"], "context", T);
      const json& f = find_model_result(models[role]["fidelity"]["results"], "context", T);
      nll[i] = p["nll"];
      EXPECT_EQ(row[role + "_ppl"], p["perplexity"]);
      EXPECT_EQ(row[role + "_kl"], f["kl"]);
      EXPECT_EQ(row[role + "_top1_agreement"], f["top1_agreement"]);
    }
    EXPECT_NEAR(row["ppl_recovery"].get<double>(), (nll[2] - nll[1]) / (nll[0] - nll[1]), 1e-12);
  }

  const std::string md = slurp(out + "/report.md");
  EXPECT_NE(md.find("| ppl@32 (lower is better) |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| context | ppl teacher | ppl scaled | ppl restored | ppl gap recovered | KL scaled"),
            std::string("# Restoration report\n\n").size())
      << "the headline table opens the report\n" << md;
  EXPECT_NE(md.find("| kl@32 (KL(teacher‖model), lower is better) | 0.0000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| top1@64 (top-1 agreement) | 100.0% |"), std::string::npos) << md;
  for (const char* svg : {"/ppl_by_length.svg", "/passkey.svg", "/top1_agreement.svg"}) {
    const std::string s = slurp(out + svg);
    EXPECT_EQ(s.rfind("<svg", 0), 0u) << svg;
    EXPECT_NE(s.find("</svg>"), std::string::npos) << svg;
    EXPECT_NE(s.find("restored"), std::string::npos) << svg;
  }
  for (const char* role : roles) EXPECT_TRUE(std::filesystem::exists(out + "/results_" + role + ".json"));

  // --from-json redraws the same markdown and charts.
  const std::string redo = out + "_redo";
  std::filesystem::remove_all(redo);  // report refuses a non-empty --out (a rerun's leftovers)
  const auto r2 = test_env::run_command(test_env::linearard_bin() + " report --from-json " + out +
                                        "/report.json --out " + redo);
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_EQ(slurp(redo + "/report.md"), md);
  EXPECT_EQ(slurp(redo + "/ppl_by_length.svg"), slurp(out + "/ppl_by_length.svg"));
  EXPECT_EQ(slurp(redo + "/top1_agreement.svg"), slurp(out + "/top1_agreement.svg"));
  EXPECT_EQ(eval_test::read_json(redo + "/report.json"), report);

  // --from-results builds the same report from the per-model results (as `eval --json` writes them).
  const std::string joined = out + "_joined";
  std::filesystem::remove_all(joined);
  const auto r3 = test_env::run_command(test_env::linearard_bin() + " report --from-results " + out +
                                        "/results_teacher.json " + out + "/results_scaled.json " + out +
                                        "/results_restored.json --out " + joined);
  ASSERT_EQ(r3.exit_code, 0) << r3.output;
  EXPECT_EQ(slurp(joined + "/report.md"), md);
  EXPECT_EQ(eval_test::read_json(joined + "/report.json"), report);
  // A file that is not an eval result, or two files instead of three: one line naming the problem.
  const std::string bogus = out + "_bogus.json";
  { std::ofstream(bogus) << "{\"format\": \"something else\"}\n"; }
  std::filesystem::remove_all(joined + "2");
  const auto r4 = test_env::run_command(test_env::linearard_bin() + " report --from-results " + out +
                                        "/results_teacher.json " + bogus + " " + out + "/results_restored.json --out " +
                                        joined + "2");
  EXPECT_EQ(r4.exit_code, 1) << r4.output;
  EXPECT_NE(r4.output.find("linearard: error: " + bogus + ": not a result of linearard eval --json"), std::string::npos)
      << r4.output;
  const auto r5 = test_env::run_command(test_env::linearard_bin() + " report --from-results " + out +
                                        "/results_teacher.json " + bogus + " --out " + joined + "2");
  EXPECT_NE(r5.exit_code, 0) << r5.output;
}

TEST(Report, FidelityWithAnotherVocabularyFailsBeforeEvaluating) {
  SKIP_WITHOUT_TOKENIZER();
  const std::string d = eval_test::dir();
  const std::string out = ::testing::TempDir() + "/eval_report_vocab";
  std::filesystem::remove_all(out);
  const auto r = test_env::run_command(test_env::linearard_bin() + " report --teacher " + d +
                                       "/other_vocab --scaled '{\"rope_type\": \"linear\", \"factor\": 2.0}' --restored " +
                                       d + "/restored --tasks fidelity --text " + d + "/text.txt --tokenizer " + d +
                                       "/model --contexts 16 --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("linearard: error: --teacher " + d + "/other_vocab: vocab_size 300 differs from the "
                          "vocab_size 320 of --restored " + d + "/restored"),
            std::string::npos)
      << r.output;
}

TEST(Report, MissingModelIsAnError) {
  const json models = {{"teacher", json::object()}, {"scaled", json::object()}};
  EXPECT_THROW(eval::build_report(models, 64), std::exception);
}

}  // namespace

// The trainer's data inputs agree: distilling from text files (encoded with the model's tokenizer)
// and from the token shards `linearard tokenize` made of the same files give the same blocks, so
// the same first loss, bit for bit in the printed digits. Uses the shipped demo teacher.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "test_env.h"

namespace {

namespace fs = std::filesystem;
using linearard::test_env::run_command;

std::string first_loss(const std::string& output) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(output, m, std::regex("loss ([0-9.]+) ->"))) << output;
  return m.size() > 1 ? m[1].str() : "";
}

TEST(TrainDataInputs, TextAndTokenShardsGiveTheSameRun) {
  const std::string bin = linearard::test_env::linearard_bin();
  const std::string teacher = linearard::test_env::source_dir() + "/demo/teacher";
  const fs::path dir = fs::temp_directory_path() / ("linearard_data_inputs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "text");
  // Two documents of plain prose, long enough for several 64-token blocks each.
  for (int d = 0; d < 2; ++d) {
    std::ofstream f(dir / "text" / ("doc" + std::to_string(d) + ".txt"));
    for (int i = 0; i < 40; ++i)
      f << "And the evening and the morning were the " << (d * 40 + i) << " day, and it was good. ";
  }
  auto tok = run_command(bin + " tokenize --quiet --tokenizer " + teacher + " --input " + (dir / "text").string() +
                         " --out " + (dir / "shards").string());
  ASSERT_EQ(tok.exit_code, 0) << tok.output;

  const std::string common = " distill --model " + teacher +
                             " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --context 64 --batch-size 2"
                             " --steps 2 --lora-rank 4 --lora-alpha 8 --checkpoint-every 0 --no-shuffle --out ";
  auto from_text = run_command(bin + common + (dir / "run_text").string() + " --data " + (dir / "text").string());
  ASSERT_EQ(from_text.exit_code, 0) << from_text.output;
  auto from_shards = run_command(bin + common + (dir / "run_shards").string() + " --data " + (dir / "shards").string());
  ASSERT_EQ(from_shards.exit_code, 0) << from_shards.output;
  EXPECT_NE(from_shards.output.find("token shards"), std::string::npos) << from_shards.output;
  EXPECT_EQ(first_loss(from_text.output), first_loss(from_shards.output));
  fs::remove_all(dir);
}

}  // namespace

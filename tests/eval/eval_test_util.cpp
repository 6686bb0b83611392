#include "eval_test_util.h"

#include <fstream>
#include <stdexcept>

#include "test_env.h"

namespace linearard::eval_test {

std::string dir() { return test_env::fixtures_dir() + "/eval"; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": missing (run the eval_fixtures fixture)");
  return nlohmann::json::parse(in);
}

Loaded::Loaded(const std::string& name, const std::string& rope_override)
    : model(model::DecoderModel::load(dir() + "/" + name, at::kFloat, at::kCPU)) {
  eval.model = &model;
  eval.rope = eval::resolve_rope(model.config(), rope_override, "rope_override");
  eval.name = name;
  eval.dir = dir() + "/" + name;
  eval.rope_override = rope_override;
}

bool have_tokenizer() {
#ifdef LINEARARD_WITH_TOKENIZER
  return true;
#else
  return false;
#endif
}

}  // namespace linearard::eval_test

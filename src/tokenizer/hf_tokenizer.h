// A HF tokenizer.json with a BPE model: added tokens -> normalizer -> pre-tokenizer -> BPE ->
// post_processor (TemplateProcessing), and the decoder chain for decode().
#pragma once
#include <memory>

#include "tokenizer/tokenizer.h"

namespace linearard::tok {

// `path` is the tokenizer.json file; `config` its directory's tokenizer_config.json.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path, const TokenizerConfig& config);

}  // namespace linearard::tok

// A SentencePiece tokenizer.model through libsentencepiece.
#pragma once
#include <memory>

#include "tokenizer/tokenizer.h"

namespace linearard::tok {

std::unique_ptr<Tokenizer> load_sp_tokenizer(const std::string& path, const TokenizerConfig& config);

}  // namespace linearard::tok

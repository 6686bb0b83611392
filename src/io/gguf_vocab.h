// A HF model directory's tokenizer as GGUF tokenizer.ggml.* metadata, torch-free, as llama.cpp's
// convert_hf_to_gguf.py writes it (gguf-py constants.py Keys.Tokenizer):
//   byte-level BPE tokenizer.json  -> model "gpt2": tokens, token_type, merges, pre (from the
//                                     pre-tokenizer's shape: gpt2, smollm, llama-bpe, qwen2)
//   Metaspace / byte-fallback BPE  -> model "llama": tokens, scores (-merge rank: llama.cpp's SPM
//                                     merges by score), token_type (byte, control, unknown), merges
//   tokenizer.model only           -> model "llama": SentencePiece pieces, scores and types
// plus bos/eos/unk/padding ids, add_bos/add_eos (tokenizer.json's post_processor), add_space_prefix
// and tokenizer_config.json's chat_template. Anything else is a one-line error naming it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "io/gguf_writer.h"

namespace linearard::io {

// `config` is the model's config.json (token ids, vocab_size: the token list is padded to it with
// "[PAD<i>]" unused tokens, as convert_hf_to_gguf.py does).
void add_gguf_vocab(GgufWriter& w, const std::string& model_dir, const nlohmann::json& config);

}  // namespace linearard::io

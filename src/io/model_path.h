// Model inputs: wherever the CLI takes a model directory (--model, --teacher, --base, inspect's
// argument...), a GGUF file is accepted too. resolve_model_path() is the one place that decides.
#pragma once
#include <string>

namespace linearard::io {

// True for a path naming a .gguf file (by its extension, case-insensitive).
bool is_gguf_path(const std::string& path);

// The cache folder of imported GGUF files: $LINEARARD_CACHE/gguf, else
// $XDG_CACHE_HOME/linearard/gguf, else $HOME/.cache/linearard/gguf.
std::string gguf_cache_root();

// A directory path is returned unchanged. A .gguf file is imported once (bf16, io/gguf_import.h)
// into gguf_cache_root()/<xxh64 of its bytes>-<size>/ and that directory is returned: the import is
// written to a temporary folder and renamed into place when complete, so concurrent runs and
// interrupted imports never see a partial directory. The input file is only read.
std::string resolve_model_path(const std::string& path);

}  // namespace linearard::io

#!/usr/bin/env bash
# Copies the Debian-provided build dependencies that the GPU machines lack (they have CUDA, CMake,
# ninja and torch, but no apt) into .device-deps/, an ignored folder that a device run carries
# (carry: [".device-deps"]). CMake falls back to it when find_package()/pkg-config find nothing.
#   include/, googletest/      header-only and source dependencies (nlohmann-json, CLI11, GoogleTest)
#   tokenizer/{include,lib}/   PCRE2 (headers + static library) and SentencePiece (headers + the
#                              shared library, which bundles its protobuf-lite), so the GPU build has
#                              `linearard tokenize` (src/tokenizer/CMakeLists.txt)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.device-deps"
rm -rf "$deps" && mkdir -p "$deps/include" "$deps/tokenizer/include" "$deps/tokenizer/lib"
cp -r /usr/include/nlohmann /usr/include/CLI "$deps/include/"
cp -r /usr/src/googletest "$deps/googletest"
lib=/usr/lib/x86_64-linux-gnu
cp /usr/include/pcre2.h /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h \
   "$deps/tokenizer/include/"
cp "$lib/libpcre2-8.a" "$deps/tokenizer/lib/"
cp -L "$lib/libsentencepiece.so.0" "$deps/tokenizer/lib/libsentencepiece.so.0"
echo "device deps in $deps ($(du -sh "$deps" | cut -f1))"

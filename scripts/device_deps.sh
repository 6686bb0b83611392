#!/usr/bin/env bash
# Copies the Debian-provided build dependencies that the GPU machines lack (they have CUDA, CMake,
# ninja and torch, but no apt) into .device-deps/, an ignored folder that a device run carries
# (carry: [".device-deps"]). CMake falls back to it when find_package() finds nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.device-deps"
rm -rf "$deps" && mkdir -p "$deps/include"
cp -r /usr/include/nlohmann /usr/include/CLI "$deps/include/"
cp -r /usr/src/googletest "$deps/googletest"
echo "device deps in $deps ($(du -sh "$deps" | cut -f1))"

#!/usr/bin/env bash
# Builds linearard and runs every test (CTest/GoogleTest). CI runs exactly this (.ci/run).
# Extra CMake arguments: LINEARARD_CMAKE_ARGS="-DLINEARARD_CUDA=OFF" bash scripts/test.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC2086
cmake -S . -B build -G Ninja ${LINEARARD_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j2 --timeout 1500

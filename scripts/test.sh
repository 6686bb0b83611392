#!/usr/bin/env bash
# Builds linearard and runs every test (CTest/GoogleTest, then the Python package's pytest). CI runs
# exactly this (.ci/run).
# Extra CMake arguments: LINEARARD_CMAKE_ARGS="-DLINEARARD_CUDA=OFF" bash scripts/test.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC2086
cmake -S . -B build -G Ninja ${LINEARARD_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure -j2 --timeout 1500)
# The Python package (README "From Python"): built from the same CMake project with the same
# arguments, so ccache hands it the objects just compiled; its tests compare with build/linearard.
CMAKE_ARGS="${LINEARARD_CMAKE_ARGS:-}" .venv/bin/pip install -q --no-build-isolation .
LINEARARD_BIN="$root/build/linearard" .venv/bin/python -m pytest -q python/tests

#!/usr/bin/env bash
# Device run for the decoder: bf16 CUDA forward vs transformers on CUDA (test_model_cuda) and the
# float32 parity suite, on the GPU machine. Usage (repo root there; carry .device-deps):
#   bash scripts/gpu_model.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# The decoder needs no custom kernels: LINEARARD_CUDA=OFF keeps this run independent of them.
cmake -S . -B build-gpu-model -G Ninja -DLINEARARD_CUDA=OFF -DLINEARARD_PYTHON="$(command -v python3)" \
  -DCMAKE_BUILD_TYPE=Release > "$out/model_configure.log" 2>&1 || { tail -30 "$out/model_configure.log"; exit 1; }
ninja -C build-gpu-model -j16 linearard test_model_cuda test_model_parity > "$out/model_build.log" 2>&1 \
  || { grep -B2 -A12 -m3 "error" "$out/model_build.log" | head -60; exit 1; }
cd build-gpu-model
ctest -R "cuda_parity|test_model_cuda|parity" --output-on-failure 2>&1 | tee "$out/model_tests.log" | tail -25
./tests/model/test_model_cuda 2>&1 | grep "max |logit error|"

#!/usr/bin/env bash
# Device run for the evaluation: perplexity at a 32K context on a random LLaMA-2-7B-shaped model in
# bf16 (`linearard bench eval-ppl`): peak GPU memory and scored tokens/s, for docs/perf.md.
# Usage (repo root on the GPU machine; carry .device-deps): bash scripts/gpu_eval.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# The evaluation needs no custom kernels; tests are not needed for the benchmark.
cmake -S . -B build-gpu-eval -G Ninja -DLINEARARD_CUDA=OFF -DLINEARARD_TESTS=OFF \
  -DLINEARARD_PYTHON="$(command -v python3)" -DCMAKE_BUILD_TYPE=Release > "$out/eval_configure.log" 2>&1 \
  || { tail -30 "$out/eval_configure.log"; exit 1; }
ninja -C build-gpu-eval -j16 linearard > "$out/eval_build.log" 2>&1 \
  || { grep -B2 -A12 -m3 "error" "$out/eval_build.log" | head -60; exit 1; }
bin=build-gpu-eval/linearard
{
  echo "## $(date -u +%FT%TZ) $(cat "$out/gpu.txt")"
  "$bin" bench eval-ppl --shape 7b --context 32768 --windows 2 --decode 16
  "$bin" bench eval-ppl --shape 7b --context 4096 --windows 16 --batch-size 4
} 2>&1 | tee "$out/bench_eval_ppl.txt"

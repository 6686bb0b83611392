#!/usr/bin/env bash
# One device run for the trainer: configure + build (build-gpu-train/, reused while the machine is
# warm), then `linearard bench distill` (7b and 8b shapes) and `linearard bench cpt` (7b, 32K).
# Logs and JSON results go to $OUT (the device tool's return folder) or ./out.
# Usage (repo root, on the GPU machine; carry .device-deps): scripts/gpu_train.sh [distill|cpt|all] [extra bench flags]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"; shift || true
out="${OUT:-$root/out}"; mkdir -p "$out"
py="$(command -v python3)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

start=$(date +%s)
if [ ! -f build-gpu-train/build.ninja ]; then
  cmake -S . -B build-gpu-train -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$py" -DLINEARARD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
ninja -C build-gpu-train -j16 linearard > "$out/build.log" 2>&1 || { grep -B2 -A12 -m3 "error" "$out/build.log" | head -80; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

rc=0
if [ "$what" = distill ] || [ "$what" = all ]; then
  ./build-gpu-train/linearard bench distill --json "$out/bench_distill.json" "$@" 2>&1 | tee "$out/bench_distill.log" || rc=1
fi
if [ "$what" = cpt ] || [ "$what" = all ]; then
  ./build-gpu-train/linearard bench cpt --json "$out/bench_cpt.json" "$@" 2>&1 | tee "$out/bench_cpt.log" || rc=1
fi
exit $rc

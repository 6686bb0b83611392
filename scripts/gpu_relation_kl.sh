#!/usr/bin/env bash
# One device run for the CUDA relation-KL op: configure + build (reusing build-gpu-rkl/ while the
# machine is warm), the GPU tests, then `linearard bench relation-kl`. Logs go to $OUT (the device
# tool's return folder) or ./out. Usage (repo root, on the GPU machine; carry .device-deps):
#   scripts/gpu_relation_kl.sh [test|bench|all] [extra bench flags...]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"; shift || true
out="${OUT:-$root/out}"; mkdir -p "$out"
py="$(command -v python3)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

start=$(date +%s)
if [ ! -f build-gpu-rkl/build.ninja ]; then
  cmake -S . -B build-gpu-rkl -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$py" \
    -DCMAKE_BUILD_TYPE=Release > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
ninja -C build-gpu-rkl -j16 linearard test_relation_kl_cuda > "$out/build.log" 2>&1 || { grep -B2 -A12 -m3 "error" "$out/build.log" | head -80; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

rc=0
if [ "$what" = test ] || [ "$what" = all ]; then
  t0=$(date +%s)
  ./build-gpu-rkl/tests/ops/test_relation_kl_cuda --gtest_brief=0 > "$out/test.log" 2>&1; rc=$?
  echo "tests: rc=$rc in $(( $(date +%s) - t0 )) s; $(grep -c '^\[       OK' "$out/test.log") ok, $(grep -c '^\[  FAILED  \] [A-Z]' "$out/test.log") failed lines"
  grep -A12 "Failure" "$out/test.log" | head -60
  grep "^\[  FAILED" "$out/test.log" | head -20
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  ./build-gpu-rkl/linearard bench relation-kl --csv "$out/bench.csv" "$@" 2>&1 | tee "$out/bench.log" | grep -v "^D=" || rc=1
fi
exit $rc

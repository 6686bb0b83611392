#!/usr/bin/env bash
# The GPU checks written on 2026-12-07 that no device machine could run, in one call (~6 min on an
# H100 after the machine starts): one Release sm_90a build of linearard, linearard._C and
# test_model_cuda, then
#   1. scripts/gpu_python.sh on that build: the package's tests with the GPU and
#      bench/python_relation_kl.py (issue 21: the Python op's fwd+bwd within 3 % of the C++ bench's,
#      now with the reduction inside the C++ autograd node; also timed back to back);
#   2. the packed-document varlen attention (issue 18): its CUDA test against the masked SDPA, then
#      `bench distill --docs 0` (plain), `--docs 1` under the mask (the default) and under
#      LINEARARD_PACKED_ATTENTION=varlen (target: packed <= 1.05 x plain).
# If 2 passes and meets the target, make varlen the default in model::attention_plan
# (src/model/attention.cpp) and record the numbers in docs/perf.md.
# Carry: .device-deps .paper-kernels. Logs: $OUT/logs.tgz; a short table is printed last.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
final_out="${OUT:-$root/out}"; logs=/tmp/checks-logs; rm -rf "$logs"; mkdir -p "$logs/dist" "$final_out"
trap 'tar czf "$final_out/logs.tgz" -C /tmp checks-logs' EXIT
export PYTHONUNBUFFERED=1
build=/tmp/build-checks
cmake -S . -B "$build" -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_CUDA_ARCHS=90a-real -DCMAKE_BUILD_TYPE=Release \
  -DLINEARARD_TESTS=ON -DLINEARARD_PYTHON_MODULE=ON -DLINEARARD_PYTHON="$(command -v python3)" > "$logs/configure.log" 2>&1 \
  || { tail -20 "$logs/configure.log"; exit 1; }
ninja -C "$build" -j16 linearard linearard_python test_model_cuda > "$logs/build.log" 2>&1 \
  || { grep -m3 -A12 "error" "$logs/build.log" | head -40; exit 1; }
echo "[$SECONDS s] built"
OUT="$logs" BUILD_DIR="$build" bash scripts/gpu_python.sh > "$logs/python.txt" 2>&1
grep -E "passed|failed|module needs" "$logs/python.txt" | head -5
(cd "$build" && ./tests/model/test_model_cuda --gtest_filter='*Packed*') > "$logs/varlen_test.log" 2>&1
grep -E "^packed|PASSED|FAILED" "$logs/varlen_test.log"
bench() {  # name, LINEARARD_PACKED_ATTENTION value, documents per block (0: the plain block)
  LINEARARD_PACKED_ATTENTION="$2" "$build/linearard" bench distill --shape 7b --context 4096 --docs "$3" \
    > "$logs/dist/$1.log" 2>&1 || true
}
bench plain mask 0
bench mask1 mask 1
bench varlen1 varlen 1
bench varlen8 varlen 8
echo "[$SECONDS s] done"
tail -n 8 "$logs/python.txt"
echo "| block (bench distill 7b, T=4096) | step | tokens/s |"
echo "| --- | --- | ---: |"
for n in plain mask1 varlen1 varlen8; do
  echo "| $n | $(grep -h 'step ' "$logs/dist/$n.log" | head -1 | sed 's/^ *//') | $(grep -ho '[0-9]* tokens/s' "$logs/dist/$n.log" | head -1) |"
done

#!/usr/bin/env bash
# The whole GPU check in one device run: build with the CUDA kernels, run every CUDA test
# (relation-KL grid + determinism, bf16 decoder vs transformers), then the benchmarks whose numbers
# are in docs/perf.md (relation-KL, distill 7B/8B, CPT 32K). Logs under $OUT.
# Usage on the GPU machine (repo root; carry .device-deps): bash scripts/gpu_all.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out}"; mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$(command -v python3)" \
  -DCMAKE_BUILD_TYPE=Release > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
ninja -C build-gpu -j16 linearard test_relation_kl_cuda test_model_cuda > "$out/build.log" 2>&1 \
  || { grep -B2 -A12 -m3 "error" "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
rc=0
(cd build-gpu && ctest -R "fixture.cuda_parity" > "$out/fixture.log" 2>&1)
./build-gpu/tests/model/test_model_cuda > "$out/test_model_cuda.log" 2>&1 || rc=1
./build-gpu/tests/ops/test_relation_kl_cuda > "$out/test_relation_kl_cuda.log" 2>&1 || rc=1
for f in test_model_cuda test_relation_kl_cuda; do echo "$f: $(tail -1 "$out/$f.log")"; done
grep "max |logit error|" "$out/test_model_cuda.log"
./build-gpu/linearard bench relation-kl --T 4096 16384 32768 --D 128 64 --naive --sdpa \
  --csv "$out/bench_relation_kl.csv" > "$out/bench_relation_kl.log" 2>&1 || rc=1
./build-gpu/linearard bench distill --json "$out/bench_distill.json" > "$out/bench_distill.log" 2>&1 || rc=1
./build-gpu/linearard bench cpt --json "$out/bench_cpt.json" > "$out/bench_cpt.log" 2>&1 || rc=1
echo "== relation-KL"; grep -vE "^D=" "$out/bench_relation_kl.log" | tail -12
echo "== distill"; grep -E "step|tokens/s" "$out/bench_distill.log"
echo "== cpt"; grep -E "step|tokens/s" "$out/bench_cpt.log"
exit $rc

#!/usr/bin/env bash
# Data-parallel check and scaling benchmark on one multi-GPU host, in one device run:
#   1. build linearard and the distributed tests (CUDA, NCCL);
#   2. the NCCL correctness test: `distill --nproc 2 --device cuda` ends with the same adapter as one
#      process with grad-accum 2 (Distributed.DistillTwoGpusEqualGradAccum);
#   3. `linearard bench distill` started by `torchrun --standalone --no-python` on 1, 2, 4, ... GPUs
#      (each count a separate torchrun; all in this one call so the 1-GPU baseline shares the host);
#   4. a table: tokens/s, scaling against 1 GPU, exposed all-reduce, peak memory per GPU.
# NCCL_NVLS_ENABLE=0 stays set (the shared machines forbid NVLink multicast; the code forces it too).
# Usage on the GPU machine (repo root; carry .device-deps):
#   bash scripts/gpu_ddp.sh [--gpus "1 2"] [--shape 7b|8b|7b,8b] [--build-also "targets"] [bench distill flags]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out}"; mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
gpus_available=$(nvidia-smi -L | wc -l)
counts=""; shape=7b; also=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) counts="$2"; shift 2 ;;
    --build-also) also="$2"; shift 2 ;;  # more ninja targets for later steps of the same call
    --shape) shape="$2"; shift 2 ;;
    *) break ;;
  esac
done
if [ -z "$counts" ]; then
  counts="1"; n=2
  while [ "$n" -le "$gpus_available" ]; do counts="$counts $n"; n=$((n * 2)); done
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
nvidia-smi topo -m > "$out/topo.txt" 2>&1 || true

t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$(command -v python3)" \
  -DCMAKE_BUILD_TYPE=Release > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
# shellcheck disable=SC2086
ninja -C build-gpu -j"$(nproc)" linearard test_distributed $also > "$out/build.log" 2>&1 \
  || { grep -B2 -A12 -m3 "error" "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"

rc=0
if [ "$gpus_available" -ge 2 ]; then
  (cd build-gpu && ctest -R "fixture.train_models|Distributed" --output-on-failure > "$out/test_distributed.log" 2>&1) || rc=1
  grep -E "tests passed|Passed|Failed|max \|2 procs" "$out/test_distributed.log" | head -8
fi

for n in $counts; do
  torchrun --standalone --nproc-per-node "$n" --no-python ./build-gpu/linearard bench distill --shape "$shape" \
    --json "$out/ddp_$n.json" "$@" > "$out/ddp_$n.log" 2>&1 || { rc=1; tail -5 "$out/ddp_$n.log"; }
done

python3 - "$out" $counts <<'EOF'
import json, sys
out, counts = sys.argv[1], sys.argv[2:]
rows = {}  # shape -> {gpus: result}
for n in counts:
    try:
        for r in json.load(open(f"{out}/ddp_{n}.json")):
            rows.setdefault(r["shape"], {})[int(n)] = r
    except Exception as e:
        print(f"{n} GPU(s): no result ({e})")
print("| shape | GPUs | tokens/s | scaling vs 1 GPU | efficiency | step s | exposed all-reduce s | peak GiB per GPU |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for shape, by_n in rows.items():
    base = by_n.get(1, {}).get("tokens_per_s")
    for n, r in sorted(by_n.items()):
        if r.get("oom"):
            print(f"| {shape} | {n} | OOM | | | | | |"); continue
        t = r["tokens_per_s"]
        s = t / base if base else float("nan")
        peaks = ", ".join(f"{p:.1f}" for p in r["peak_gib_per_gpu"])
        print(f"| {shape} | {n} | {t:.0f} | {s:.2f}x | {100 * s / n:.0f} % | {r['step_s']:.3f} | "
              f"{r['exposed_allreduce_s']:.3f} | {peaks} |")
EOF
exit $rc

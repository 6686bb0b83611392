#!/usr/bin/env bash
# A refactor's GPU check in one device call: this tree's CUDA tests, then the relation-KL, distill
# and CPT benchmarks of this tree and of a baseline tree, alternated on the same GPU, and one table
# of both. Both are built here (Release, sm_90a) at the same time.
#
# Here (the dev machine):  bash scripts/device_deps.sh
#                          mkdir -p .gpu-base && git archive BASE_COMMIT | xz > .gpu-base/base.tar.xz
# GPU machine (repo root;  carry: .device-deps .gpu-base):  bash scripts/gpu_before_after.sh
# Environment: BASE (default .gpu-base/base.tar.xz), ROUNDS (2: bench after, base, after, base;
# REUSE=1 ROUND_FIRST=N: a later call on the warm machine adds rounds N.. to the first call's),
# RKL_T (4096,32768), RKL_D (128,64), PY_MODULE (1: also build linearard._C for gpu_python.sh). Logs under $OUT; the table is printed last.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Logs are written to $out and packed into $OUT/logs.tgz at the end (a device call returns 8 files).
final_out="${OUT:-$root/out}"; out=/tmp/ba-run; rm -rf "$out"; mkdir -p "$out" "$final_out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# A second call on the same warm machine (REUSE=1 ROUND_FIRST=2) times more rounds with the builds
# of the first.
if [ "${REUSE:-0}" = 1 ] && [ -x /tmp/ba-after/linearard ] && [ -x /tmp/ba-base/linearard ]; then
  cp /tmp/ba-out/* "$out/" 2>/dev/null
else
base_src=/tmp/ba-base-src
rm -rf "$base_src" && mkdir -p "$base_src" && tar -xJf "${BASE:-.gpu-base/base.tar.xz}" -C "$base_src" \
  && cp -a .device-deps "$base_src/" || { echo "gpu_before_after: no baseline tree (${BASE:-.gpu-base/base.tar.xz})"; exit 1; }
configure() {  # src build tests(ON|OFF)
  cmake -S "$1" -B "$2" -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_CUDA_ARCHS=90a-real -DCMAKE_BUILD_TYPE=Release \
    -DLINEARARD_TESTS="$3" -DLINEARARD_PYTHON="$(command -v python3)"
}
(configure . /tmp/ba-after ON > "$out/configure_after.log" 2>&1 &&
   ninja -C /tmp/ba-after -j12 linearard test_relation_kl_cuda test_model_cuda > "$out/build_after.log" 2>&1) & a=$!
(configure "$base_src" /tmp/ba-base OFF > "$out/configure_base.log" 2>&1 &&
   ninja -C /tmp/ba-base -j8 linearard > "$out/build_base.log" 2>&1) & b=$!
wait $a || { echo "after: build failed"; grep -m3 -A12 "error" "$out/configure_after.log" "$out/build_after.log" | head -50; exit 1; }
wait $b || { echo "base: build failed"; grep -m3 -A12 "error" "$out/configure_base.log" "$out/build_base.log" | head -50; exit 1; }
stamp "built both"
rc=0
# PY_MODULE=1: linearard._C joins the after-build while the tests run (scripts/gpu_python.sh then
# finds it built: BUILD_DIR=/tmp/ba-after); it is done before the benchmarks start.
if [ "${PY_MODULE:-0}" = 1 ]; then
  (cmake -S . -B /tmp/ba-after -DLINEARARD_PYTHON_MODULE=ON && ninja -C /tmp/ba-after -j8 linearard_python) \
    > "$out/py_module_build.log" 2>&1 & py_build=$!
fi
(cd /tmp/ba-after && ctest -R "fixture[.]cuda_parity" > "$out/fixtures.log" 2>&1)
for t in tests/ops/test_relation_kl_cuda tests/model/test_model_cuda; do
  name="$(basename "${t%% *}")"
  (cd /tmp/ba-after && ./$t) > "$out/$name.log" 2>&1 || rc=1
  echo "$name: $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/$name.log" | tr '\n' ' ')"
done
grep "max |logit error|" "$out/test_model_cuda.log"
stamp "GPU tests done (rc $rc)"
if [ -n "${py_build:-}" ]; then
  wait "$py_build" && stamp "built linearard._C" || { echo "linearard._C: build failed"; tail -5 "$out/py_module_build.log"; }
fi
fi
# Each benchmark runs for this tree, then for the baseline, so that a call cut short still has
# pairs; the result lines are printed as they come.
bench() {  # kind round
  local kind="$1" r="$2" n bin
  for n in after base; do
    bin=/tmp/ba-$n/linearard
    case "$kind" in
      rkl) "$bin" bench relation-kl --T "${RKL_T:-4096,32768}" --D "${RKL_D:-128,64}" --sdpa --no-naive \
             --csv "$out/rkl_$n.csv" > "$out/rkl_${n}_$r.log" 2>&1 || rc=1
             grep -v "^D=" "$out/rkl_${n}_$r.log" | tail -n 5 | sed "s/^/$n: /" ;;
      # The non-self / split backward (relation_kl_bwd_kernel: the A100 path, forced here on the H100).
      split) LINEARARD_RKL_SELF_SPLIT=1 "$bin" bench relation-kl --T 4096 --D "${RKL_D:-128,64}" --no-sdpa \
             --no-naive --csv "$out/rkl_split_$n.csv" > "$out/rkl_split_${n}_$r.log" 2>&1 || rc=1
             tail -n 2 "$out/rkl_split_${n}_$r.log" | sed "s/^/$n split: /" ;;
      distill|cpt) "$bin" bench "$kind" --json "$out/${kind}_${n}_$r.json" > "$out/${kind}_${n}_$r.log" 2>&1 || rc=1
             grep -E "tokens/s" "$out/${kind}_${n}_$r.log" | sed "s/^/$n: /" ;;
    esac
  done
  stamp "bench $kind round $r"
}
for r in $(seq "${ROUND_FIRST:-1}" $(( ${ROUND_FIRST:-1} + ${ROUNDS:-2} - 1 ))); do
  for kind in rkl split distill cpt; do bench "$kind" "$r"; done
done
python3 - "$out" <<'PY' | tee "$out/before_after.md"
import csv, glob, json, os, statistics, sys
out = sys.argv[1]
def rkl(name):  # (impl, D, T) -> [fwd+bwd ms of each round]
    rows = {}
    p = os.path.join(out, f"rkl_{name}.csv")
    if not os.path.exists(p):
        return rows
    for r in csv.DictReader(open(p)):
        rows.setdefault((r["impl"], r["D"], r["T"]), []).append(float(r["fwdbwd_ms"]))
    return rows
print("| relation-KL (B=1, H=32, bf16, causal) | after fwd+bwd ms | base fwd+bwd ms | after / base |")
print("| --- | ---: | ---: | ---: |")
for prefix, label in (("", ""), ("split_", "LINEARARD_RKL_SELF_SPLIT=1 ")):
    a, b = rkl(prefix + "after"), rkl(prefix + "base")
    for k in sorted(set(a) & set(b), key=lambda k: (k[0], -int(k[1]), int(k[2]))):
        ma, mb = statistics.median(a[k]), statistics.median(b[k])
        print(f"| {label}{k[0]} D={k[1]} T={k[2]} | {ma:.3f} | {mb:.3f} | {ma / mb:.3f} |")
def tps(kind, name):  # [(shape, tokens/s)]: bench distill writes a list of shapes, bench cpt one
    vals = []
    for p in sorted(glob.glob(os.path.join(out, f"{kind}_{name}_*.json"))):
        d = json.load(open(p))
        vals += [(it["shape"], float(it["tokens_per_s"])) for it in (d if isinstance(d, list) else [d])]
    return vals
print()
print("| training step | after tokens/s (rounds) | base tokens/s (rounds) | after / base |")
print("| --- | --- | --- | ---: |")
for kind in ("distill", "cpt"):
    va, vb = tps(kind, "after"), tps(kind, "base")
    for shape in sorted({s for s, _ in va}):
        xa = [t for s, t in va if s == shape]; xb = [t for s, t in vb if s == shape]
        if xa and xb:
            print(f"| {kind} {shape} | {', '.join(f'{x:.0f}' for x in xa)} | {', '.join(f'{x:.0f}' for x in xb)} | {statistics.median(xa) / statistics.median(xb):.3f} |")
PY
cp "$out/before_after.md" "$final_out/" && tar czf "$final_out/logs.tgz" -C "$out" .
rm -rf /tmp/ba-out && mkdir -p /tmp/ba-out && cp "$out"/rkl_*.csv "$out"/*.json /tmp/ba-out/ 2>/dev/null
stamp "done (rc $rc)"
exit $rc

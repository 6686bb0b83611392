#!/usr/bin/env bash
# One device run for the CUDA relation-KL op: build (or use binaries prebuilt on the dev machine),
# run the GPU tests, then `linearard bench relation-kl`. Logs go to $OUT (the device tool's return
# folder) or ./out. Run from the repo root on the GPU machine:
#   scripts/gpu_relation_kl.sh [test|bench|all] [extra bench flags...]
# Prebuilt mode (saves the device build minutes): if $RKL_BIN (default out/rkl-bin/) holds
# `linearard` and `test_relation_kl_cuda` (built on the dev machine with -DLINEARARD_CUDA=ON against
# the same torch 2.11 cu130; carry that folder), they run against the GPU machine's torch
# libraries. The `linearard` there may be a bench-only link (main, command, bench,
# bench_relation_kl objects + the relation-KL libraries), which needs no other CLI file to build.
# Otherwise: configure build-gpu-rkl/ (carry ".device-deps") and build with ninja -j16; the folder
# is reused while the machine stays warm.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"; shift || true
out="${OUT:-$root/out}"; mkdir -p "$out"
py="$(command -v python3)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

start=$(date +%s)
prebuilt="${RKL_BIN:-out/rkl-bin}"
if [ -x "$prebuilt/linearard" ] && { [ -x "$prebuilt/test_relation_kl_cuda" ] || [ "$what" = bench ]; }; then
  bin="$prebuilt"; test_bin="$prebuilt/test_relation_kl_cuda"
  torch_lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  export LD_LIBRARY_PATH="$torch_lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  echo "prebuilt binaries from $bin, torch libs from $torch_lib"
else
  if [ ! -f build-gpu-rkl/build.ninja ]; then
    cmake -S . -B build-gpu-rkl -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$py" \
      > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  fi
  if ! ninja -C build-gpu-rkl -j16 -k 0 linearard test_relation_kl_cuda > "$out/build.log" 2>&1; then
    grep -m5 "error" "$out/build.log"
    # The tests depend on the linearard binary (LINEARARD_BIN) only by order; when other CLI
    # files are broken, still link the test from the libraries that did build.
    (cd build-gpu-rkl && ninja -t commands tests/ops/test_relation_kl_cuda |
       grep -E "test_relation_kl_cuda\.dir|-o tests/ops/test_relation_kl_cuda( |$)" |
       sed 's#src/liblinearard_core.a#src/CMakeFiles/linearard_core.dir/ops/relation_kl/relation_kl_reference.cpp.o#' |
       bash -e) \
      >> "$out/build.log" 2>&1 || { echo "test link failed"; tail -20 "$out/build.log"; exit 1; }
  fi
  bin=build-gpu-rkl; test_bin=build-gpu-rkl/tests/ops/test_relation_kl_cuda
  echo "build: $(( $(date +%s) - start )) s"
fi

rc=0
if [ "$what" = test ] || [ "$what" = all ]; then
  t0=$(date +%s)
  "$test_bin" > "$out/test.log" 2>&1; rc=$?
  echo "tests: rc=$rc in $(( $(date +%s) - t0 )) s; $(grep -c '^\[       OK' "$out/test.log") ok, $(grep -c '^\[  FAILED  \] Grid' "$out/test.log") failed"
  grep -B3 -A10 "Failure" "$out/test.log" | head -70
  grep "^\[  FAILED" "$out/test.log" | head -30
fi
if { [ "$what" = bench ] || [ "$what" = all ]; } && [ -x "$bin/linearard" ]; then
  tag="$(basename "$bin")${LINEARARD_RKL_FWD_WARPS:+-fwdw$LINEARARD_RKL_FWD_WARPS}"
  "$bin/linearard" bench relation-kl --csv "$out/bench-$tag.csv" "$@" > "$out/bench-$tag.log" 2>&1 || rc=1
  echo "== bench $tag $*"; grep -v "^D=" "$out/bench-$tag.log"
fi
exit $rc

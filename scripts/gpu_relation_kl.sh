#!/usr/bin/env bash
# One device run for the CUDA relation-KL op: build (or use binaries prebuilt on the dev machine),
# run the GPU tests, then `linearard bench relation-kl`. Logs go to $OUT (the device tool's return
# folder) or ./out. Run from the repo root on the GPU machine:
#   scripts/gpu_relation_kl.sh [test|bench|all|docs] [extra bench flags...]
#   (docs: packed documents, issue 18: `bench relation-kl --T 4096 --docs N` for N in $RKL_DOCS,
#    default "2 8 32", each next to the single-document op; target: packed <= 1.05 x ideal)
#   scripts/gpu_relation_kl.sh prebuild BUILD_DIR   (dev machine: fill out/rkl-bin, see below)
#   scripts/gpu_relation_kl.sh devbuild             (GPU machine: configure build-gpu-rkl, then the
#                                                    same targeted build with 16 jobs; ~1-2 min instead
#                                                    of the whole project)
# Prebuilt mode (saves the device build minutes): if $RKL_BIN (default out/rkl-bin/) holds
# `linearard` and `test_relation_kl_cuda` (built on the dev machine with -DLINEARARD_CUDA=ON against
# the same torch 2.11 cu130; carry that folder), they run against the GPU machine's torch
# libraries. The `linearard` there may be a bench-only link (main, command, bench/bench,
# bench/relation_kl objects + the relation-KL libraries), which needs no other CLI file to build.
# Otherwise: configure build-gpu-rkl/ (carry ".device-deps") and build with ninja -j16; the folder
# is reused while the machine stays warm.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"; shift || true

# prebuild: on the dev machine, in an existing -DLINEARARD_CUDA=ON build dir, compile only the
# objects the relation-KL test and bench need (ninja's order-only deps would build every library
# first) and link out/rkl-bin/{test_relation_kl_cuda,linearard} by hand; the `linearard` there has
# only the bench subcommands. Stripped, the two are ~40 MB: carry "out/rkl-bin" (limit 64 MiB).
if [ "$what" = devbuild ]; then
  if [ ! -f build-gpu-rkl/build.ninja ]; then
    cmake -S . -B build-gpu-rkl -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_PYTHON="$(command -v python3)" \
      > "${OUT:-out}/configure.log" 2>&1 || { tail -30 "${OUT:-out}/configure.log"; exit 1; }
  fi
  what=prebuild; set -- build-gpu-rkl; export RKL_JOBS="${RKL_JOBS:-16}"
fi
if [ "$what" = prebuild ]; then
  bdir="$(cd "${1:?usage: prebuild BUILD_DIR}" && pwd)"; dst="$root/out/rkl-bin"; mkdir -p "$dst"
  cmds="$(mktemp)"; ninja -C "$bdir" -t commands tests/ops/test_relation_kl_cuda linearard | sort -u > "$cmds"
  C=src/ops/CMakeFiles/linearard_cuda.dir/relation_kl
  cu="$C/relation_kl_cuda.cu.o $C/relation_kl_simt.cu.o $C/relation_kl_tc_bf16.cu.o $C/relation_kl_tc_fp16.cu.o"
  ref=src/ops/CMakeFiles/linearard_ops.dir/relation_kl/relation_kl_reference.cpp.o
  err="src/CMakeFiles/linearard_formats.dir/common/error.cpp.o src/CMakeFiles/linearard_formats.dir/common/option_error.cpp.o"
  tobj="tests/ops/CMakeFiles/test_relation_kl_cuda.dir/test_relation_kl_cuda.cpp.o tests/ops/CMakeFiles/test_relation_kl_cuda.dir/__/test_main.cpp.o"
  # main.cpp's out-of-memory message formats with train/oom_report, its Ctrl-C exit is train/stop_signals
  # (torch-only dependencies).
  bobj="$(printf 'src/CMakeFiles/linearard.dir/cli/%s.cpp.o ' main command)"
  bobj="$bobj $(printf 'bench/CMakeFiles/linearard_bench.dir/%s.cpp.o ' bench relation_kl)"
  bobj="$bobj src/CMakeFiles/linearard_core.dir/train/oom_report.cpp.o src/CMakeFiles/linearard_core.dir/train/stop_signals.cpp.o"
  # One file per compile command (xargs would mangle their quotes); the PCH first, the rest 2 at a time.
  jobs="$(mktemp -d)"; i=0
  for o in src/CMakeFiles/linearard_core.dir/cmake_pch.hxx.gch $cu $ref $err $tobj $bobj; do
    grep -F -- "-o $o" "$cmds" | grep -v "ar qc" | head -1 > "$jobs/$(printf %02d $i).sh"; i=$((i + 1))
  done
  (cd "$bdir" && bash "$jobs/00.sh" && ls "$jobs"/*.sh | tail -n +2 | xargs -P"${RKL_JOBS:-2}" -n1 bash) || exit 1
  rm -rf "$jobs"
  bpy="$(sed -n 's/^LINEARARD_PYTHON:[A-Z]*=//p' "$bdir/CMakeCache.txt")"  # the torch the build used
  tl="$("${bpy:-python3}" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  libs="$ref $err -Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state $cu \
    -L/usr/local/cuda/targets/x86_64-linux/lib -Wl,--no-as-needed $tl/libtorch.so $tl/libtorch_cpu.so \
    $tl/libtorch_cuda.so $tl/libc10_cuda.so $tl/libc10.so -Wl,--as-needed -lcudadevrt -lcudart_static -lrt -lpthread -ldl"
  gtest=/usr/lib/x86_64-linux-gnu/libgtest.a  # Debian's; the GPU machines build it from .device-deps
  if [ ! -f "$gtest" ]; then ninja -C "$bdir" gtest > /dev/null || exit 1; gtest="$(find "$bdir" -name libgtest.a | head -1)"; fi
  (cd "$bdir" && c++ -O2 $tobj -o "$dst/test_relation_kl_cuda" "$gtest" $libs &&
     c++ -O2 $bobj -o "$dst/linearard" $libs) || exit 1
  strip -s "$dst/test_relation_kl_cuda" "$dst/linearard"; rm -f "$cmds"; ls -la "$dst"; exit 0
fi
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
       sed 's#src/liblinearard_core.a#src/ops/CMakeFiles/linearard_ops.dir/relation_kl/relation_kl_reference.cpp.o#' |
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
# ab: same-binary A/B of the kernel versions (LINEARARD_RKL_* switches, relation_kl_cuda.cu):
# the mma.sync kernels (LINEARARD_RKL_WGMMA=0) as the baseline, the default, then each variant named in $RKL_AB
# (space-separated VAR=value lists joined by commas, e.g. "LINEARARD_RKL_KEY_MAJOR=1").
if [ "$what" = ab ] && [ -x "$bin/linearard" ]; then
  for v in LINEARARD_RKL_WGMMA=0 default ${RKL_AB:-}; do
    envs=(); [ "$v" = default ] || IFS=, read -ra envs <<< "$v"
    echo "== $v $*" | tee -a "$out/ab.log"
    env "${envs[@]}" "$bin/linearard" bench relation-kl "$@" 2>&1 | grep -v "^D=" | tee -a "$out/ab.log" || rc=1
  done
fi
if [ "$what" = docs ] && [ -x "$bin/linearard" ]; then
  for n in ${RKL_DOCS:-2 8 32}; do
    "$bin/linearard" bench relation-kl --T 4096 --docs "$n" --no-naive --no-sdpa --csv "$out/bench-docs.csv" "$@" \
      > "$out/bench-docs$n.log" 2>&1 || rc=1
    echo "== bench --docs $n $*"; grep -E "documents|^[0-9]" "$out/bench-docs$n.log"
  done
fi
if { [ "$what" = bench ] || [ "$what" = all ]; } && [ -x "$bin/linearard" ]; then
  tag="$(basename "$bin")${LINEARARD_RKL_FWD_WARPS:+-fwdw$LINEARARD_RKL_FWD_WARPS}"
  "$bin/linearard" bench relation-kl --csv "$out/bench-$tag.csv" "$@" > "$out/bench-$tag.log" 2>&1 || rc=1
  echo "== bench $tag $*"; grep -v "^D=" "$out/bench-$tag.log"
fi
exit $rc

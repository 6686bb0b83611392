#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan) from the parsers' sources
# (torch-free, but for safetensors_index, which links the venv's LibTorch) and runs each for a
# given time on a scratch copy of its seed corpus (tests/fuzz/corpus/<name>/). docs/fuzzing.md.
#
#   bash scripts/fuzz.sh [--seconds N] [--only NAME] [--build DIR] [--build-only] [--no-build]
#
#   --seconds N   run time per target (default 60)
#   --only NAME   one target (safetensors_header, safetensors_index, model_config,
#                 tokenizer_json, token_shard, token_manifest, gguf,
#                 sentencepiece_model, bigbench_task, humaneval_task, adapter_spec); may be given
#                 more than once
#   --build DIR   where objects, binaries, scratch corpora and crash artifacts go
#                 (default build-fuzz)
#   --build-only  build and stop;  --no-build  run binaries built earlier
#
# Exit status: 0 when every target ran clean; 1 on any crash, sanitizer report, leak, timeout
# (-timeout=10 s per input) or out-of-memory (-rss_limit_mb=2048); 77 when clang or its libFuzzer
# runtime is missing (CTest reports the test as skipped). A failing input is kept as
# DIR/artifacts/<name>/crash-* (or timeout-*, oom-*, leak-*): reproduce with DIR/bin/fuzz_<name> FILE.
set -euo pipefail
# LINEARARD_SOURCE_DIR lets a copy of this script run elsewhere (bash reads a script as it goes,
# so editing it under a long run breaks that run).
root="${LINEARARD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

seconds=60
build="$root/build-fuzz"
only=()
do_build=1
do_run=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --build-only) do_run=0; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$build"
build="$(cd "$build" && pwd)"

# Target -> sources beyond tests/fuzz/fuzz_<name>.cpp. All torch-free (linearard_formats,
# linearard_data, linearard_tokenizer) except safetensors_index: the index reader
# (io/checkpoint.cpp) hands out LibTorch tensors, so that target links the venv's LibTorch and is
# left out (with a message) where no torch is found.
common="src/common/error.cpp src/common/option_error.cpp src/io/mapped_file.cpp src/io/atomic_file.cpp"
declare -A sources=(
  [safetensors_header]="$common src/io/safetensors.cpp"
  [safetensors_index]="$common src/io/safetensors.cpp src/io/checkpoint.cpp"
  [model_config]="$common src/model/model_config.cpp"
  [token_shard]="$common src/data/shard.cpp src/data/xxhash64.cpp"
  [token_manifest]="$common src/data/shard.cpp src/data/xxhash64.cpp"
  [gguf]="$common src/io/gguf.cpp src/io/gguf_dequant.cpp"
  [bigbench_task]="$common src/eval/bigbench_task.cpp"
  [humaneval_task]="$common src/eval/humaneval_task.cpp"
  [adapter_spec]="$common src/train/adapter_spec.cpp"
  [sentencepiece_model]="$common src/io/sentencepiece_model.cpp"
  [tokenizer_json]="$common src/tokenizer/utf8.cpp src/tokenizer/regex.cpp src/tokenizer/normalizer.cpp
    src/tokenizer/pre_tokenizer.cpp src/tokenizer/bpe.cpp src/tokenizer/added_tokens.cpp
    src/tokenizer/decoder.cpp src/tokenizer/hf_tokenizer.cpp src/tokenizer/sp_tokenizer.cpp
    src/tokenizer/load.cpp"
)
# Longest input per target: a few times the largest seed (the tokenizer seeds are cut-down real
# tokenizer.json files of 10-40 KB); longer inputs only slow the search.
declare -A max_len=([safetensors_header]=16384 [safetensors_index]=8192 [model_config]=8192 [token_shard]=4096
                    [token_manifest]=8192 [tokenizer_json]=65536 [gguf]=65536
                    [sentencepiece_model]=16384 [bigbench_task]=8192 [humaneval_task]=8192 [adapter_spec]=4096)
all_targets=(safetensors_header safetensors_index model_config tokenizer_json token_shard token_manifest gguf
             sentencepiece_model bigbench_task humaneval_task adapter_spec)
targets=("${only[@]:-${all_targets[@]}}")
for t in "${targets[@]}"; do
  [ -n "${sources[$t]+x}" ] || { echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
done

# LibTorch of the venv (scripts/setup.sh) or of LINEARARD_PYTHON, for safetensors_index only.
python="${LINEARARD_PYTHON:-$root/.venv/bin/python}"
torch_dir=""
torch_flags=()
torch_libs=()
if [[ " ${targets[*]} " == *" safetensors_index "* ]]; then
  torch_dir="$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)"
fi
if [ -n "$torch_dir" ]; then
  torch_flags=(-I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include")
  torch_libs=(-L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" -ltorch_cpu -lc10)
elif [[ " ${targets[*]} " == *" safetensors_index "* ]]; then
  if [ "${#targets[@]}" = 1 ]; then
    echo "fuzz.sh: SKIP: safetensors_index needs torch ($python cannot import it)"; exit 77
  fi
  echo "fuzz.sh: leaving out safetensors_index: $python cannot import torch (run scripts/setup.sh)"
  kept=()
  for t in "${targets[@]}"; do [ "$t" = safetensors_index ] || kept+=("$t"); done
  targets=("${kept[@]}")
fi

cxx="${CXX_FUZZ:-clang++}"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -I"$root/src" -I"$root/tests/fuzz")
extra_libs=()
if pkg-config --exists icu-uc 2>/dev/null; then
  flags+=(-DLINEARARD_WITH_ICU=1)
  extra_libs+=($(pkg-config --libs icu-uc))
fi

if [ "$do_build" = 1 ]; then
  # Skip (77), not fail, when the toolchain truly lacks libFuzzer; scripts/setup.sh installs it.
  # The marker tells a later --no-build run (the CTest tests) to skip as well.
  rm -f "$build/toolchain-missing"
  if ! command -v "$cxx" >/dev/null; then
    echo "fuzz.sh: SKIP: $cxx not found (scripts/setup.sh installs clang)" | tee "$build/toolchain-missing"; exit 77
  fi
  probe="$build/probe"
  mkdir -p "$probe"
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/p.cpp"
  if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
    echo "fuzz.sh: SKIP: $cxx cannot link -fsanitize=fuzzer (libFuzzer runtime missing:" \
         "scripts/setup.sh installs libclang-rt-dev)" | tee "$build/toolchain-missing"
    head -3 "$probe/err"; exit 77
  fi

  # Objects are shared between targets; rebuilt when a file they include (their -MMD list) is newer.
  mkdir -p "$build/obj" "$build/bin"
  up_to_date() {
    [ -f "$1" ] && [ -f "$1.d" ] || return 1
    local f
    for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$1.d"); do
      [ "$f" -nt "$1" ] && return 1
    done
    return 0
  }
  declare -A need=()
  for t in "${targets[@]}"; do
    for s in ${sources[$t]} tests/fuzz/fuzz_$t.cpp; do need[$s]=1; done
  done
  jobs_running=0
  failed=0
  for s in "${!need[@]}"; do
    obj="$build/obj/$(echo "$s" | tr '/' '_').o"
    up_to_date "$obj" && continue
    echo "fuzz.sh: compile $s"
    # Coverage hooks only; libFuzzer's main comes in at link time (-fsanitize=fuzzer).
    tf=()
    case "$s" in src/io/checkpoint.cpp|tests/fuzz/fuzz_safetensors_index.cpp) tf=("${torch_flags[@]}") ;; esac
    "$cxx" "${flags[@]}" "${tf[@]}" -fsanitize=fuzzer-no-link -MMD -MF "$obj.d" -c "$root/$s" -o "$obj" &
    jobs_running=$((jobs_running + 1))
    if [ "$jobs_running" -ge "${FUZZ_JOBS:-2}" ]; then
      wait -n || failed=1
      jobs_running=$((jobs_running - 1))
    fi
  done
  while [ "$jobs_running" -gt 0 ]; do wait -n || failed=1; jobs_running=$((jobs_running - 1)); done
  [ "$failed" = 0 ] || { echo "fuzz.sh: compile failed" >&2; exit 1; }
  for t in "${targets[@]}"; do
    objs=()
    for s in ${sources[$t]} tests/fuzz/fuzz_$t.cpp; do objs+=("$build/obj/$(echo "$s" | tr '/' '_').o"); done
    libs=()
    [ "$t" = tokenizer_json ] && libs=($(pkg-config --libs libpcre2-8 sentencepiece) "${extra_libs[@]}")
    [ "$t" = safetensors_index ] && libs=("${torch_libs[@]}")
    echo "fuzz.sh: link fuzz_$t"
    "$cxx" "${flags[@]}" -fsanitize=fuzzer "${objs[@]}" "${libs[@]}" -o "$build/bin/fuzz_$t"
  done
fi
[ "$do_run" = 1 ] || exit 0

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/bin/fuzz_$t"
  if [ ! -x "$bin" ] && [ -f "$build/toolchain-missing" ]; then cat "$build/toolchain-missing"; exit 77; fi
  [ -x "$bin" ] || { echo "fuzz.sh: $bin not built (run without --no-build)" >&2; exit 1; }
  # The repo's corpus stays untouched: libFuzzer adds what it finds to a scratch copy.
  work="$build/run/$t"
  rm -rf "$work" && mkdir -p "$work/corpus" "$build/artifacts/$t"
  cp -r "$root/tests/fuzz/corpus/$t/." "$work/corpus/" 2>/dev/null || true
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}"
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/")
  [ -f "$root/tests/fuzz/dict/$t.dict" ] && args+=(-dict="$root/tests/fuzz/dict/$t.dict")
  echo "fuzz.sh: fuzz_$t for ${seconds}s (log: $work/log)"
  # Scratch files of the path-based targets go to memory when possible (10x the executions of a
  # disk); removed here too since a crashing target skips its own clean-up.
  scratch="$work/tmp"
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch="$(mktemp -d /dev/shm/linearard-fuzz.XXXXXX)"; fi
  mkdir -p "$scratch"
  rc=0
  TMPDIR="$scratch" "$bin" "${args[@]}" "$work/corpus" >"$work/log" 2>&1 || rc=$?
  rm -rf "$scratch"
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*')"
  if [ "$rc" = 0 ]; then
    summary+=("fuzz_$t: ok, ${execs:-?} executions in ${seconds}s, coverage ${cov:-?} edges")
  else
    status=1
    summary+=("fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; see $work/log and $build/artifacts/$t/")
    grep -m1 -A25 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|deadly signal' "$work/log" || tail -30 "$work/log"
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"

#!/usr/bin/env bash
# The real-model restoration run, in one GPU-machine call (issue 16): SmolLM2-135M-Instruct from its
# GGUF -> `linearard import` -> tokenize the training text -> for each RoPE scaling (PI x4, YaRN x4)
# and each recipe: `linearard distill` / `linearard cpt` on the same tokens -> `linearard export`
# -> `linearard eval` (ppl + fidelity to the teacher) for every model, `linearard report` for the
# default recipe, and an independent transformers check (scripts/restore/fidelity_check.py) -> one
# table (scripts/restore/summarize.py).
#
# Prepare on the CPU machine: scripts/restore/prepare_carry.sh. The model is 94 MiB and a call
# carries 64 MiB, so it travels in two halves: the first call carries part-0 (staged in /tmp, kept
# while the machine is warm, and builds), the second part-1 and runs everything:
#   carry: .restore/parts/part-N .restore/model.sha256 .restore/corpus.tar.xz .device-deps/include
#          .device-deps/tokenizer (and .restore/suite.tar.xz in the second call, for the task suite)
#          and, optionally, .restore/samples (samples-<kind>.tar.xz from an earlier run's output:
#          reused instead of sampling when its settings are this run's, see sample_data below)
#   scripts/gpu_restore.sh [RECIPES.tsv]      (default scripts/restore/recipes.tsv)
# Environment: SCALINGS (default "pi4 yarn4"), EVAL_TOKENS (131072), SAMPLE_TOKENS (2400000), SAMPLE_BATCH (512;
# its KV cache is SAMPLE_BATCH x SAMPLE_LEN tokens: 488 x 4096 fits an H100, halve it for 8192),
# SAMPLE_LEN (the longest --context of the recipes on that kind of data, at least 4096; the three
# apply to `sampled` and `prompted` alike), PROMPT_TOKENS (64: the real-text window that starts each
# `prompted` sample), CONTEXTS (512,2048,8192),
# LONG_CONTEXTS (32768), STAGE_ONLY=1 (stage and build, then stop), BUILD_DIR (build-restore),
# SUITE_SCALINGS (pi4; empty: no task suite; the suite needs .restore/suite.tar.xz carried),
# CHECK=0 (no transformers check: linearard's own eval only, which CI tests against transformers).
# scripts/restore/gpu_session.sh runs this in the background across several calls.
# Everything lands in $OUT (logs, JSON, restoration_table.md, samples-<kind>.tar.xz of the teacher
# samples this run made).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
final_out="${OUT:-$root/out/restore}"; mkdir -p "$final_out"
work=/tmp/linearard-restore; mkdir -p "$work/parts"
# Results accumulate in $work/out (kept while the machine is warm): a call that ran out of time is
# resumed by the next one, which skips every step whose output exists; $OUT gets a copy at the end.
out="$work/out"; mkdir -p "$out"
recipes="${1:-scripts/restore/recipes.tsv}"
scalings="${SCALINGS:-pi4 yarn4}"
eval_tokens="${EVAL_TOKENS:-131072}"
contexts="${CONTEXTS:-512,2048,8192}"
long_contexts="${LONG_CONTEXTS:-32768}"
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# A tree exported with `git archive` names its commit in COMMIT (an enclosing checkout may be older).
{ cat COMMIT 2>/dev/null || git log -1 --format='commit %H %s' 2>/dev/null; } | tee "$out/commit.txt"
for p in .restore/parts/part-*; do [ -f "$p" ] && cp -n "$p" "$work/parts/"; done
stamp "staged parts: $(ls "$work/parts" | tr '\n' ' ')"

# --- build (kept in $BUILD_DIR while the machine is warm) --------------------------------------
build="${BUILD_DIR:-build-restore}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DLINEARARD_CUDA_ARCHS="${CUDA_ARCHS:-90a-real}" \
    -DLINEARARD_PYTHON="$(command -v python3)" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
ninja -C "$build" -j16 linearard > "$out/build.log" 2>&1 || { grep -B2 -A12 -m3 error "$out/build.log" | head -60; exit 1; }
grep -q "tokenizer on" "$out/configure.log" 2>/dev/null || grep -q "LINEARARD_WITH_TOKENIZER" "$build/build.ninja" \
  || { echo "gpu_restore: the build has no tokenizer (carry .device-deps/tokenizer)"; exit 1; }
bin="$(cd "$build" && pwd)/linearard"
stamp "build ok"
# GPU test of `linearard sample` (float32 on the GPU, every token against float64 transformers).
if [ ! -f "$out/gpu_test_sample.ok" ]; then
  LINEARARD_FIXTURES_DIR="$work/fixtures" python3 tests/eval/make_eval_fixtures.py > "$out/fixtures.log" 2>&1 \
    && LINEARARD_FIXTURES_DIR="$work/fixtures" LINEARARD_BIN="$bin" LINEARARD_SAMPLE_DEVICE=cuda \
       python3 tests/eval/check_sampling.py > "$out/gpu_test_sample.log" 2>&1 \
    && touch "$out/gpu_test_sample.ok"
  stamp "GPU test sample: $(tail -1 "$out/gpu_test_sample.log" 2>/dev/null || tail -1 "$out/fixtures.log")"
fi
# GPU test of the task suite (float32 on the GPU: BIG-bench log-likelihoods against transformers'
# re-implementation of the harness, RULER / passkey / HumanEval results equal to the CPU's).
if [ ! -f "$out/gpu_test_suite.ok" ] && [ -f "$work/fixtures/suite/expected.json" ]; then
  [ -f .cache/suite/bbh/navigate/task.json ] || { [ -f .restore/suite.tar.xz ] && mkdir -p .cache && tar -C .cache -xJf .restore/suite.tar.xz; }
  humaneval_file=""; [ -f .cache/suite/humaneval/HumanEval.jsonl ] && humaneval_file="$(pwd)/.cache/suite/humaneval/HumanEval.jsonl"
  LINEARARD_FIXTURES_DIR="$work/fixtures" LINEARARD_BIN="$bin" LINEARARD_SUITE_DEVICE=cuda \
       LINEARARD_SUITE_HUMANEVAL="$humaneval_file" python3 tests/eval/check_suite_device.py > "$out/gpu_test_suite.log" 2>&1 \
    && touch "$out/gpu_test_suite.ok"
  stamp "GPU test suite: $(tail -2 "$out/gpu_test_suite.log" | tr '\n' ' ')"
fi
[ "${STAGE_ONLY:-0}" = 1 ] && { stamp "STAGE_ONLY: stop"; exit 0; }

# --- the model ----------------------------------------------------------------------------------
read -r sum gguf_name < .restore/model.sha256
gguf="$work/$gguf_name"
if [ ! -f "$gguf" ]; then
  [ "$(ls "$work/parts" | wc -l)" -ge 2 ] || { echo "gpu_restore: only $(ls "$work/parts") staged: run again carrying the other part"; exit 3; }
  cat "$work"/parts/part-* > "$gguf.tmp" && echo "$sum  $gguf.tmp" | sha256sum -c --quiet - && mv "$gguf.tmp" "$gguf" \
    || { echo "gpu_restore: the staged parts do not give $gguf_name"; exit 1; }
fi
teacher="$work/teacher"
if [ ! -f "$teacher/config.json" ]; then
  "$bin" import "$gguf" --out "$teacher" > "$out/import.log" 2>&1 || { tail -5 "$out/import.log"; exit 1; }
fi
"$bin" inspect "$teacher" > "$out/inspect_teacher.txt" 2>&1
stamp "teacher: $(grep -m1 -i param "$out/inspect_teacher.txt")"

# --- data ---------------------------------------------------------------------------------------
# (again when the unpacked one predates prompts.jsonl)
[ -f "$work/corpus/prompts.jsonl" ] || tar -C "$work" -xJf .restore/corpus.tar.xz
mkdir -p "$work/data" "$work/runs" "$work/exports"
if [ ! -f "$work/data/kjv/manifest.json" ]; then
  "$bin" tokenize --tokenizer "$teacher" --input "$work/corpus/train.jsonl" --out "$work/data/kjv" --quiet \
    > "$out/tokenize.log" 2>&1 || { tail -5 "$out/tokenize.log"; exit 1; }
fi
stamp "tokenized KJV: $(grep -o '"total_tokens": *[0-9]*' "$work/data/kjv/manifest.json" | head -1)"
rope_of() {
  case "$1" in
    pi4) echo '{"rope_type":"linear","factor":4}' ;;
    yarn4) echo '{"rope_type":"yarn","factor":4,"original_max_position_embeddings":8192}' ;;
    *) echo "gpu_restore: unknown scaling $1" >&2; return 1 ;;
  esac
}

# --- evaluation of one model: linearard eval (ppl + fidelity) and the transformers check ---------
heldout="$work/corpus/heldout.jsonl"
eval_one() {  # name dir [rope]; skipped when its result exists (a second call resumes)
  local name="$1" dir="$2" rope="${3:-}"
  [ -f "$out/eval_$name.json" ] && return 0
  local args=(--model "$dir" --task ppl,fidelity --teacher "$teacher" --text "$heldout"
              --contexts "$contexts${long_contexts:+,$long_contexts}" --max-tokens "$eval_tokens" --device cuda
              --json "$out/eval_$name.json")
  [ -n "$rope" ] && args+=(--rope-scaling "$rope")
  "$bin" eval "${args[@]}" > "$out/eval_$name.log" 2>&1 || { echo "FAILED eval $name"; tail -3 "$out/eval_$name.log"; return 1; }
}
check_one() {  # name dir[@rope]: the independent transformers check, one model per process (CHECK=0: none)
  [ "${CHECK:-1}" = 1 ] || return 0
  [ -f "$out/check_$1.json" ] && return 0
  python3 scripts/restore/fidelity_check.py --teacher "$teacher" --model "$1=$2" --text "$heldout" \
      --contexts "$contexts" --ppl-contexts "${CHECK_LONG_CONTEXTS-$long_contexts}" --max-tokens "$eval_tokens" \
      --json "$out/check_$1.json" > "$out/check_$1.log" 2>&1 || { echo "FAILED check $1"; tail -3 "$out/check_$1.log"; return 1; }
}
export_dir() { [ -f "$work/exports/$1/merged/config.json" ] && echo "$work/exports/$1/merged" || echo "$work/exports/$1"; }

# --- one pipeline per (scaling, recipe), all in parallel (a 135M model leaves the GPU idle):
# train -> export -> evaluate, each step skipped when its output exists.
run_one() {  # id scaling command data flags...
  local id="$1" scaling="$2" cmd="$3" data="$4"; shift 4
  local rope; rope="$(rope_of "$scaling")" || return 1
  local run="$work/runs/$id"
  if [ ! -f "$(export_dir "$id")/config.json" ]; then
    # A run stopped at the deadline wrote a checkpoint on SIGTERM (docs/training-faults.md): resume it.
    local resume=()
    if [ -f "$run/options.json" ]; then resume=(--resume auto); else rm -rf "$run"; fi
    rm -rf "$work/exports/$id"
    # shellcheck disable=SC2068
    "$bin" "$cmd" --model "$teacher" --rope-scaling "$rope" --data "$work/data/$data" --out "$run" \
        --device cuda --checkpoint-every 0 "${resume[@]}" $@ >> "$out/train_$id.log" 2>&1 || { echo "FAILED $id"; tail -3 "$out/train_$id.log"; return 1; }
    cp "$run/metrics.jsonl" "$out/metrics_$id.jsonl" 2>/dev/null
    "$bin" export --checkpoint "$run/final" --out "$work/exports/$id" --format merged > "$out/export_$id.log" 2>&1 \
        || { echo "FAILED export $id"; tail -3 "$out/export_$id.log"; return 1; }
  fi
  local dir; dir="$(export_dir "$id")"
  suite_one "$scaling" "$id" & local su=$!
  eval_one "$id" "$dir" & local e=$!
  check_one "$id" "$dir" || return 1
  wait $e && wait $su
}
# A call has at most 600 s: at DEADLINE_S (default 540) after the start the unfinished steps are
# stopped and the table is made of what is done; the next call resumes the rest.
deadline=$(( t0 + ${DEADLINE_S:-540} ))
# The first recipe of recipes.tsv that runs for a scaling: it gets the report and the task suite.
first_recipe() {
  grep -v '^#' "$recipes" | while IFS=$'\t' read -r name for_scalings _; do
    [ -n "$name" ] && { [ "$for_scalings" = "*" ] || [[ ",$for_scalings," == *",$1,"* ]]; } && { echo "${1}_$name"; break; }
  done
}
# The offline task suite (scripts/eval_suite.sh: BBH, RULER, passkey, and HumanEval with
# SUITE_HUMANEVAL=1, as a share of the teacher's score) on teacher, scaled and the first recipe's
# model of each of SUITE_SCALINGS, when its data was carried. It starts inside that recipe's
# pipeline as soon as the model is exported (beside the other trainings: a 135M model leaves the
# GPU idle), or here for a call that resumes.
suite_scalings="${SUITE_SCALINGS-pi4}"
suite_one() {  # scaling id; skipped when done, or when less than SUITE_NEEDS_S remain in this call
  local scaling="$1" id="$2"
  [ -f .restore/suite.tar.xz ] && [[ " $suite_scalings " == *" $scaling "* ]] || return 0
  [ -f "$out/suite_$scaling/report.md" ] && return 0
  [ "$id" = "$(first_recipe "$scaling")" ] || return 0
  if [ $(( deadline - $(date +%s) )) -lt "${SUITE_NEEDS_S:-420}" ]; then
    stamp "suite $scaling: less than ${SUITE_NEEDS_S:-420} s left in this call, run the call again"; return 0
  fi
  [ -f .cache/suite/humaneval/HumanEval.jsonl ] || { mkdir -p .cache && tar -C .cache -xJf .restore/suite.tar.xz; }
  # The teacher and scaled models' part, started before the trainings (suite_early), ends first.
  while [ -f "$out/suite_$scaling.early" ]; do sleep 5; done
  local started=$SECONDS
  LINEARARD_BIN="$bin" bash scripts/eval_suite.sh "$teacher" "$(rope_of "$scaling")" "$(export_dir "$id")" \
      "$out/suite_$scaling" > "$out/suite_$scaling.log" 2>&1 || { echo "FAILED suite $scaling"; tail -3 "$out/suite_$scaling.log"; return 1; }
  echo "suite $scaling ($id): $(( SECONDS - started )) s" | tee "$out/suite_$scaling.time"
}
suite_early() {  # scaling: the suite's teacher and scaled models, beside sampling and training
  [ -f .restore/suite.tar.xz ] && [[ " $suite_scalings " == *" $1 "* ]] || return 0
  [ -f "$out/suite_$1/report.md" ] && return 0
  [ -f .cache/suite/humaneval/HumanEval.jsonl ] || { mkdir -p .cache && tar -C .cache -xJf .restore/suite.tar.xz; }
  touch "$out/suite_$1.early"
  SUITE_ROLES="teacher scaled" LINEARARD_BIN="$bin" bash scripts/eval_suite.sh "$teacher" "$(rope_of "$1")" - \
      "$out/suite_$1" > "$out/suite_${1}_early.log" 2>&1 || echo "FAILED suite (teacher, scaled) $1"
  rm -f "$out/suite_$1.early"
}
pids=()
# The suite's teacher and scaled models start now, beside sampling (a 135M model leaves the GPU idle).
rm -f "$out"/suite_*.early  # left by a run that was stopped
for scaling in $suite_scalings; do suite_early "$scaling" & pids+=($!); done
# The teacher's own text (`linearard sample`, temperature 1), once per run for each kind of data
# that a recipe reads: `sampled` starts every sample at a document start, `prompted` at a window of
# PROMPT_TOKENS tokens of corpus/prompts.jsonl (scripts/restore/make_corpus.py). Each kind is packed
# into samples-<kind>.tar.xz (with sample.key, its settings) beside the results, for the developer
# to keep; a carried .restore/samples/samples-<kind>.tar.xz whose sample.key equals this run's is
# unpacked instead of sampling again (about 5 GPU minutes for 4M tokens).
prompt_tokens="${PROMPT_TOKENS:-64}"
keep="$work/keep"; mkdir -p "$keep"
sample_data() {  # kind
  local kind="$1" data="$work/data/$1"
  mkdir -p "$work/data"
  grep -v '^#' "$recipes" | cut -f4 | grep -qx "$kind" || return 0
  # Each sample is one document: as long as the longest --context of the recipes that read it
  # (a block never spans two documents), at least 4096 tokens; SAMPLE_LEN overrides.
  local sample_len="${SAMPLE_LEN:-$(grep -v '^#' "$recipes" | awk -F'\t' -v k="$kind" '$4 == k' | grep -o -- '--context [0-9]*' \
    | awk -v m=4096 '$2 > m { m = $2 } END { print m }')}"
  local tokens="${SAMPLE_TOKENS:-2400000}" prompt_args=() prompts="none" log="$out/sample.log" info="$out/sample.json"
  [ "$kind" = sampled ] || { log="$out/sample_$kind.log"; info="$out/sample_$kind.json"; }
  if [ "$kind" = prompted ]; then
    local file="$work/corpus/prompts.jsonl"
    [ -f "$file" ] || { echo "gpu_restore: no prompts.jsonl in .restore/corpus.tar.xz: run scripts/restore/prepare_carry.sh again"; return 1; }
    prompt_args=(--prompts "$file" --prompt-tokens "$prompt_tokens")
    prompts="$(sha256sum < "$file" | cut -c1-16) prompt_tokens=$prompt_tokens"
  fi
  # What fixes the tokens (the batch size and the device do not: eval/sampling.h).
  local key="kind=$kind teacher=${sum:0:16} tokens=$tokens sample_tokens=$sample_len seed=1 temperature=1 prompts=$prompts"
  # Done earlier on this (warm) machine with the same settings (or before sample.key existed).
  if [ -f "$data/manifest.json" ] && { [ ! -f "$data/sample.key" ] || [ "$(cat "$data/sample.key")" = "$key" ]; }; then
    return 0
  fi
  local carried=".restore/samples/samples-$kind.tar.xz"
  if [ -f "$carried" ] || [ -f "$carried.part-0" ]; then
    rm -rf "$work/carried" && mkdir -p "$work/carried"
    if { [ -f "$carried" ] && tar -C "$work/carried" -xJf "$carried"; } \
       || { [ ! -f "$carried" ] && cat "$carried".part-* | tar -C "$work/carried" -xJf -; }; then
      if [ "$(cat "$work/carried/$kind/sample.key" 2>/dev/null)" = "$key" ] && [ -f "$work/carried/$kind/manifest.json" ] \
         && cp "$work/carried/$kind/sample.json" "$info" && rm -rf "$data" && mv "$work/carried/$kind" "$data"; then
        rm -rf "$work/carried"
        rm -f "$keep/samples-$kind".tar.xz*  # the developer has these tokens already
        echo "$key" > "$out/sample_$kind.reused"
        stamp "$kind: reused the carried $carried ($key)"
        return 0
      fi
      stamp "$kind: the carried $carried has other settings ($(cat "$work/carried/$kind/sample.key" 2>/dev/null || echo 'no sample.key')), this run: $key; sampling"
    else
      stamp "$kind: cannot unpack the carried $carried; sampling"
    fi
    rm -rf "$work/carried"
  fi
  "$bin" sample --model "$teacher" --out "$data.tmp" --tokens "$tokens" "${prompt_args[@]}" \
      --sample-tokens "$sample_len" --batch-size "${SAMPLE_BATCH:-512}" --seed 1 --device cuda --overwrite \
      > "$log" 2>&1 || { tail -5 "$log"; return 1; }
  echo "$key" > "$data.tmp/sample.key"
  cp "$data.tmp/sample.json" "$info"
  rm -rf "$data" && mv "$data.tmp" "$data"
  stamp "$kind: $(tail -1 "$log")"
  # Packed for the developer (at most 8 files of 16 MiB come back from a device call): parts of
  # 15 MiB when larger (carried as they are, or joined by `cat samples-KIND.tar.xz.part-*`).
  rm -f "$keep/samples-$kind".tar.xz*
  local tmp="$keep/.$kind" name="samples-$kind.tar.xz"  # packed out of sight of gpu_session.sh's copy
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -C "$work/data" -cf - "$kind" | xz -T0 -9 > "$tmp/$name" \
    && { [ "$(stat -c %s "$tmp/$name")" -le $(( 15 << 20 )) ] \
         || (cd "$tmp" && split -b 15M -d -a 1 "$name" "$name.part-" && rm "$name"); } \
    && mv "$tmp"/samples-* "$keep/" && rm -rf "$tmp" \
    && stamp "$kind: packed $(cd "$keep" && du -ch "$name"* | tail -1 | cut -f1) for reuse ($name)"
}
for kind in sampled prompted; do sample_data "$kind" || exit 1; done
ids=()
eval_one teacher "$teacher" & pids+=($!)
check_one teacher "$teacher" & pids+=($!)
for scaling in $scalings; do
  eval_one "${scaling}_scaled" "$teacher" "$(rope_of "$scaling")" & pids+=($!)
  check_one "${scaling}_scaled" "$teacher@$(rope_of "$scaling")" & pids+=($!)
done
# recipes.tsv: name, scalings it runs for (pi4,yarn4 or *), command, data (kjv | sampled | prompted), flags
while IFS=$'\t' read -r name for_scalings cmd data flags; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  for scaling in $scalings; do
    [ "$for_scalings" = "*" ] || [[ ",$for_scalings," == *",$scaling,"* ]] || continue
    id="${scaling}_${name}"
    ids+=("$id")
    run_one "$id" "$scaling" "$cmd" "$data" $flags < /dev/null &
    pids+=($!)
  done
done < "$recipes"
stamp "${#ids[@]} pipelines in parallel: ${ids[*]}"
wait_all() {
  while [ -n "$(jobs -rp)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 2; done
  if [ -n "$(jobs -rp)" ]; then
    stamp "deadline: stopping $(jobs -rp | wc -l) unfinished pipeline(s); run the same call again to resume them"
    pkill -f "$bin" ; pkill -f fidelity_check.py
  fi
  for p in "${pids[@]}"; do wait "$p" || failures=$((failures + 1)); done
  pids=()
}
failures=0
wait_all
stamp "training and evaluation done ($failures failed)"
# linearard's own report (headline: ppl, gap recovered, KL, top-1 per short context) for the
# first recipe of each scaling, joined from the evaluations above (`report --from-results`: no
# second evaluation of the same models).
for scaling in $scalings; do
  first="$(first_recipe "$scaling")"
  results=("$out/eval_teacher.json" "$out/eval_${scaling}_scaled.json" "$out/eval_$first.json")
  [ -n "$first" ] && [ -f "${results[0]}" ] && [ -f "${results[1]}" ] && [ -f "${results[2]}" ] \
    && [ ! -f "$out/report_$scaling/report.md" ] || continue
  "$bin" report --from-results "${results[@]}" --out "$out/report_$scaling" --overwrite \
      > "$out/report_$scaling.log" 2>&1 || { echo "FAILED report $scaling"; tail -3 "$out/report_$scaling.log"; }
done
wait_all
stamp "evaluation done"
# The suite for a resumed call whose models were exported earlier.
for scaling in $suite_scalings; do
  first="$(first_recipe "$scaling")"
  [ -n "$first" ] && [ -f "$(export_dir "$first")/config.json" ] || continue
  suite_one "$scaling" "$first" &
  pids+=($!)
done
wait_all
stamp "suite done"
python3 scripts/restore/summarize.py "$out" > "$out/restoration_table.md" || echo "summarize failed (no teacher results yet?)"
cat "$out/restoration_table.md"
# At most 8 files come back from a device call: the table, one JSON of all results, the rest packed.
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
merged = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, "*.json"))) if not p.endswith("results.json")}
json.dump(merged, open(os.path.join(out, "results.json"), "w"), indent=1)
PY
cp "$out/restoration_table.md" "$out/results.json" "$final_out/"
cp "$keep"/samples-*.tar.xz* "$final_out/" 2>/dev/null  # the teacher samples sampled in this run
(cd "$out" && tar czf "$final_out/logs.tgz" --exclude=restoration_table.md --exclude=results.json .)
stamp "done"
[ "$failures" = 0 ] || { echo "gpu_restore: $failures step(s) failed (logs in logs.tgz)"; exit 1; }

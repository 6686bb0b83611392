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
#          .device-deps/tokenizer
#   scripts/gpu_restore.sh [RECIPES.tsv]      (default scripts/restore/recipes.tsv)
# Environment: SCALINGS (default "pi4 yarn4"), EVAL_TOKENS (262144), CONTEXTS (512,2048,8192),
# LONG_CONTEXTS (32768), STAGE_ONLY=1 (stage and build, then stop), BUILD_DIR (build-restore).
# Everything lands in $OUT (logs, JSON, restoration_table.md).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out/restore}"; mkdir -p "$out"
work=/tmp/linearard-restore; mkdir -p "$work/parts"
recipes="${1:-scripts/restore/recipes.tsv}"
scalings="${SCALINGS:-pi4 yarn4}"
eval_tokens="${EVAL_TOKENS:-262144}"
contexts="${CONTEXTS:-512,2048,8192}"
long_contexts="${LONG_CONTEXTS:-32768}"
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
{ git log -1 --format='commit %H %s' 2>/dev/null || cat COMMIT 2>/dev/null; } | tee "$out/commit.txt"
for p in .restore/parts/part-*; do [ -f "$p" ] && cp -n "$p" "$work/parts/"; done
stamp "staged parts: $(ls "$work/parts" | tr '\n' ' ')"

# --- build (kept in $BUILD_DIR while the machine is warm) --------------------------------------
build="${BUILD_DIR:-build-restore}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DLINEARARD_PYTHON="$(command -v python3)" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
ninja -C "$build" -j16 linearard > "$out/build.log" 2>&1 || { grep -B2 -A12 -m3 error "$out/build.log" | head -60; exit 1; }
grep -q "tokenizer on" "$out/configure.log" 2>/dev/null || grep -q "LINEARARD_WITH_TOKENIZER" "$build/build.ninja" \
  || { echo "gpu_restore: the build has no tokenizer (carry .device-deps/tokenizer)"; exit 1; }
bin="$(cd "$build" && pwd)/linearard"
stamp "build ok"
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
[ -d "$work/corpus" ] || tar -C "$work" -xJf .restore/corpus.tar.xz
mkdir -p "$work/data" "$work/runs" "$work/exports"
if [ ! -f "$work/data/train/manifest.json" ]; then
  "$bin" tokenize --tokenizer "$teacher" --input "$work/corpus/train.jsonl" --out "$work/data/train" --quiet \
    > "$out/tokenize.log" 2>&1 || { tail -5 "$out/tokenize.log"; exit 1; }
fi
stamp "tokenized: $(grep -o '"tokens": *[0-9]*' "$work/data/train/manifest.json" | head -1)"

rope_of() {
  case "$1" in
    pi4) echo '{"rope_type":"linear","factor":4}' ;;
    yarn4) echo '{"rope_type":"yarn","factor":4,"original_max_position_embeddings":8192}' ;;
    *) echo "gpu_restore: unknown scaling $1" >&2; return 1 ;;
  esac
}

# --- training: every (scaling, recipe) pipeline in parallel (a 135M model leaves the GPU idle) ---
run_one() {  # id scaling command flags...
  local id="$1" scaling="$2" cmd="$3"; shift 3
  local rope; rope="$(rope_of "$scaling")" || return 1
  local run="$work/runs/$id"
  rm -rf "$run" "$work/exports/$id"
  # shellcheck disable=SC2068
  "$bin" "$cmd" --model "$teacher" --rope-scaling "$rope" --data "$work/data/train" --out "$run" \
      --device cuda --checkpoint-every 0 $@ > "$out/train_$id.log" 2>&1 || { echo "FAILED $id"; tail -3 "$out/train_$id.log"; return 1; }
  cp "$run/metrics.jsonl" "$out/metrics_$id.jsonl" 2>/dev/null
  "$bin" export --checkpoint "$run/final" --out "$work/exports/$id" --format merged > "$out/export_$id.log" 2>&1 \
      || { echo "FAILED export $id"; tail -3 "$out/export_$id.log"; return 1; }
}
pids=()
ids=()
for scaling in $scalings; do
  while IFS=$'\t' read -r name cmd flags; do
    [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
    id="${scaling}_${name}"
    ids+=("$id")
    run_one "$id" "$scaling" "$cmd" $flags < /dev/null &
    pids+=($!)
  done < "$recipes"
done
stamp "training ${#pids[@]} runs in parallel: ${ids[*]}"
failures=0
for p in ${pids[@]+"${pids[@]}"}; do wait "$p" || failures=$((failures + 1)); done
stamp "training done ($failures failed)"

# --- evaluation: linearard eval (ppl + fidelity) and the transformers check, per scaling ---------
heldout="$work/corpus/heldout.jsonl"
has_fidelity=0
"$bin" eval --help 2>&1 | grep -q -- "--teacher" && has_fidelity=1
eval_one() {  # name dir [rope]
  local name="$1" dir="$2" rope="${3:-}"
  local tasks="ppl"; [ $has_fidelity = 1 ] && tasks="ppl,fidelity"
  local args=(--model "$dir" --task "$tasks" --text "$heldout" --contexts "$contexts${long_contexts:+,$long_contexts}"
              --max-tokens "$eval_tokens" --device cuda --json "$out/eval_$name.json")
  [ -n "$rope" ] && args+=(--rope-scaling "$rope")
  [ $has_fidelity = 1 ] && args+=(--teacher "$teacher")
  "$bin" eval "${args[@]}" > "$out/eval_$name.log" 2>&1 || { echo "FAILED eval $name"; tail -3 "$out/eval_$name.log"; return 1; }
}
check_one() {  # name dir[@rope]: the independent transformers check, one model per process
  python3 scripts/restore/fidelity_check.py --teacher "$teacher" --model "$1=$2" --text "$heldout" \
      --contexts "$contexts" --ppl-contexts "$long_contexts" --max-tokens "$eval_tokens" \
      --json "$out/check_$1.json" > "$out/check_$1.log" 2>&1 || { echo "FAILED check $1"; tail -3 "$out/check_$1.log"; return 1; }
}
export_dir() { [ -f "$work/exports/$1/merged/config.json" ] && echo "$work/exports/$1/merged" || echo "$work/exports/$1"; }
epids=()
eval_one teacher "$teacher" & epids+=($!)
check_one teacher "$teacher" & epids+=($!)
for scaling in $scalings; do
  eval_one "${scaling}_scaled" "$teacher" "$(rope_of "$scaling")" & epids+=($!)
  check_one "${scaling}_scaled" "$teacher@$(rope_of "$scaling")" & epids+=($!)
done
for id in "${ids[@]}"; do
  dir="$(export_dir "$id")"
  [ -f "$dir/config.json" ] || continue
  eval_one "$id" "$dir" & epids+=($!)
  check_one "$id" "$dir" & epids+=($!)
done
# linearard's own report (headline: ppl, gap recovered, KL, top-1 per short context) for the
# default recipe of each scaling, when the recipes include one named "restore".
for scaling in $scalings; do
  dir="$(export_dir "${scaling}_restore")"
  [ -f "$dir/config.json" ] && [ $has_fidelity = 1 ] || continue
  "$bin" report --teacher "$teacher" --scaled "$(rope_of "$scaling")" --restored "$dir" --tasks ppl,fidelity \
      --text "$heldout" --max-tokens "$eval_tokens" --contexts "$contexts${long_contexts:+,$long_contexts}" --device cuda \
      --out "$out/report_$scaling" > "$out/report_$scaling.log" 2>&1 || echo "FAILED report $scaling" &
  epids+=($!)
done
for p in "${epids[@]}"; do wait "$p" || failures=$((failures + 1)); done
stamp "evaluation done"
python3 scripts/restore/summarize.py "$out" > "$out/restoration_table.md"
cat "$out/restoration_table.md"
# At most 8 files come back from a device call: the table, one JSON of all results, the rest packed.
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
merged = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, "*.json")))}
json.dump(merged, open(os.path.join(out, "results.json"), "w"), indent=1)
PY
(cd "$out" && tar czf logs.tgz --exclude=logs.tgz --exclude=restoration_table.md --exclude=results.json . \
   && find . -mindepth 1 -maxdepth 1 ! -name logs.tgz ! -name restoration_table.md ! -name results.json -exec rm -rf {} +)
stamp "done"
[ "$failures" = 0 ] || { echo "gpu_restore: $failures step(s) failed (logs in logs.tgz)"; exit 1; }

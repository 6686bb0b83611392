#!/usr/bin/env bash
# The offline task suite on teacher, scaled and restored models (linearard report): BIG-bench (the
# 22 BBH multiple-choice tasks, 3-shot, lm-eval's scoring), RULER (niah x3, vt, cwe, fwe) and passkey
# per length, each as a share of the teacher's score, with charts.
#
#   scripts/eval_suite.sh --prepare
#       (on a machine with scripts/setup.sh run) copies the suite's data into .cache/suite/:
#       the 22 BBH task.json files (33 MB) and the KJV Bible from Debian's bible-kjv as the RULER
#       haystack, and .cache/humaneval/HumanEval.jsonl (scripts/setup.sh) when present.
#       Pass `carry: [".cache/suite"]` to a GPU machine that has neither.
#   scripts/eval_suite.sh TEACHER SCALED RESTORED OUT [extra report flags...]
#       SCALED is a directory or a RoPE scaling (inline JSON / file) applied to TEACHER.
# The three models are evaluated by three `linearard eval` processes at once (SUITE_PARALLEL=0: one
# after another; a 135M model leaves a GPU mostly idle) and `linearard report --from-results` joins
# them; OUT keeps each model's results_<role>.json and eval_<role>.log.
# Defaults are sized for a 135M model (SmolLM2-135M) on one H200: teacher + scaled + restored in
# about 10 minutes. LINEARARD_BIN (default build/linearard), SUITE_DEVICE (default cuda),
# SUITE_LIMIT (docs per BBH task, default 60), SUITE_LENGTHS (default 4k,8k,16k).
# SUITE_HUMANEVAL=1 adds HumanEval (greedy, pass@1; runs the models' code in a sandbox:
# --allow-code-execution) from .cache/suite/humaneval/HumanEval.jsonl, SUITE_HUMANEVAL_LIMIT
# problems (default 0: all 164).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bbh_dirs=(causal_judgment date_understanding disambiguation_qa dyck_languages formal_fallacies_syllogisms_negation
  geometric_shapes hyperbaton logical_deduction movie_recommendation navigate penguins_in_a_table
  reasoning_about_colored_objects ruin_names salient_translation_error_detection snarks sports_understanding
  temporal_sequences tracking_shuffled_objects)
if [ "${1:-}" = --prepare ]; then
  src="${LINEARARD_BIGBENCH:-.cache/bigbench}"
  mkdir -p .cache/suite
  if [ -f "$src/navigate/task.json" ]; then
    mkdir -p .cache/suite/bbh
    for d in "${bbh_dirs[@]}"; do rm -rf ".cache/suite/bbh/$d"; cp -r "$src/$d" .cache/suite/bbh/; done
  else
    echo "eval_suite: no BIG-bench tasks in $src (scripts/setup.sh could not download bigbench==1.0.0): the suite runs without bbh" >&2
  fi
  if command -v bible >/dev/null; then
    bible Gen1:1-Rev22:21 | sed -e 's/^ *[0-9]* //' > .cache/suite/kjv.txt
  else
    echo "eval_suite: no 'bible' program (Debian bible-kjv): RULER uses its noise haystack" >&2
  fi
  if [ -f .cache/humaneval/HumanEval.jsonl ]; then
    mkdir -p .cache/suite/humaneval && cp .cache/humaneval/HumanEval.jsonl .cache/suite/humaneval/
  else
    echo "eval_suite: no .cache/humaneval/HumanEval.jsonl (scripts/setup.sh): SUITE_HUMANEVAL=1 will not work" >&2
  fi
  du -sh .cache/suite
  exit 0
fi
[ $# -ge 4 ] || { sed -n 2,23p "$0" >&2; exit 2; }
teacher="$1" scaled="$2" restored="$3" out="$4"
shift 4
bin="${LINEARARD_BIN:-build/linearard}"
lengths="${SUITE_LENGTHS:-4k,8k,16k}"
bbh="${LINEARARD_BIGBENCH:-.cache/suite/bbh}"
[ -d "$bbh" ] || bbh=.cache/bigbench
haystack=()
[ -f .cache/suite/kjv.txt ] && haystack=(--haystack .cache/suite/kjv.txt)
tasks=ruler,passkey
bbh_flags=()
if [ -f "$bbh/navigate/task.json" ]; then
  tasks=bbh,$tasks
  bbh_flags=(--bigbench "$bbh" --fewshot 3 --limit "${SUITE_LIMIT:-60}")
else
  echo "eval_suite: no BIG-bench tasks in $bbh: the suite runs without bbh" >&2
fi
humaneval=()
if [ "${SUITE_HUMANEVAL:-0}" = 1 ]; then
  tasks+=,humaneval
  humaneval=(--allow-code-execution --humaneval .cache/suite/humaneval/HumanEval.jsonl
             --humaneval-limit "${SUITE_HUMANEVAL_LIMIT:-0}")
fi
common=(--tasks "$tasks" "${humaneval[@]}" --device "${SUITE_DEVICE:-cuda}" --batch-size 32 "${bbh_flags[@]}"
        --ruler-lengths "$lengths" --ruler-samples 8 "${haystack[@]}"
        --lengths "$lengths" --depths 0,0.5,1 --trials 2 "$@")
mkdir -p "$out"
eval_role() {  # role model [rope scaling]
  local role="$1" model="$2" rope="${3:-}" started=$SECONDS
  local args=(--model "$model" "${common[@]}" --json "$out/results_$role.json" --overwrite)
  [ -n "$rope" ] && args+=(--rope-scaling "$rope")
  "$bin" eval "${args[@]}" > "$out/eval_$role.log" 2>&1 || { echo "eval_suite: $role failed:"; tail -3 "$out/eval_$role.log"; return 1; }
  echo "eval_suite: $role done in $(( SECONDS - started )) s"
}
scaled_args=("$teacher" "$scaled")
[ -d "$scaled" ] && scaled_args=("$scaled")
# SUITE_ROLES (default "teacher scaled restored"): the models to evaluate now; a role whose
# results_<role>.json exists is not evaluated again, and the report is joined once all three exist
# (so teacher and scaled can run before the restored model is trained).
started=$SECONDS
pids=()
for role in ${SUITE_ROLES:-teacher scaled restored}; do
  [ -f "$out/results_$role.json" ] && continue
  case "$role" in
    teacher) args=("$teacher") ;;
    scaled) args=("${scaled_args[@]}") ;;
    restored) args=("$restored") ;;
    *) echo "eval_suite: unknown role '$role' in SUITE_ROLES" >&2; exit 2 ;;
  esac
  if [ "${SUITE_PARALLEL:-1}" = 1 ]; then eval_role "$role" "${args[@]}" & pids+=($!); else eval_role "$role" "${args[@]}" || exit 1; fi
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ $failed = 0 ] || exit 1
for role in teacher scaled restored; do
  [ -f "$out/results_$role.json" ] || { echo "eval_suite: results of ${SUITE_ROLES:-} done; the report waits for the $role model"; exit 0; }
done
"$bin" report --from-results "$out/results_teacher.json" "$out/results_scaled.json" "$out/results_restored.json" \
  --out "$out" --overwrite
echo "eval_suite: teacher + scaled + restored in $(( SECONDS - started )) s"

#!/usr/bin/env bash
# The embedded default: restore a context-extended model on a laptop CPU, end to end.
#   1. the demo teacher (demo/teacher: a small LLaMA pre-trained by `linearard pretrain` on the King
#      James Bible, native context 128; rebuilt by scripts/demo/make_demo_teacher.sh)
#   2. the student = the same weights with linear (PI) RoPE scaling x4 (context 512)
#   3. `linearard distill` on held-in text (demo/distill.json holds the recipe)
#   4. `linearard export` to a merged HF checkpoint, then `linearard report`: perplexity of the three
#      models on held-out chapters at the native length (128) and the extended one (512).
# Usage: bash scripts/demo.sh [--quick]   (--quick: fewer steps, for the end-to-end test)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
steps_flag=()
[ "${1:-}" = "--quick" ] && steps_flag=(--steps 120)
bin="${LINEARARD_BIN:-}"
if [ -z "$bin" ]; then
  bash scripts/setup.sh
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build -j"$(nproc)" --target linearard
  bin="$root/build/linearard"
fi
py="${LINEARARD_PYTHON:-$root/.venv/bin/python}"
work="${LINEARARD_DEMO_DIR:-$root/out/demo}"
teacher="$root/demo/teacher"
scaling='{"rope_type":"linear","factor":4}'
mkdir -p "$work"
start=$(date +%s)

echo "== 1. data: King James Bible chapters (held-out evaluation text, held-in distillation text)"
[ -f "$work/data/eval.txt" ] || "$py" scripts/demo/make_demo_data.py "$work/data"

echo "== 2. teacher at its native length, and the student with linear (PI) x4"
"$bin" inspect "$teacher"
"$bin" eval --model "$teacher" --task ppl --text "$work/data/eval.txt" --contexts 128 --json "$work/eval_teacher.json"
"$bin" eval --model "$teacher" --rope-scaling "$scaling" --task ppl --text "$work/data/eval.txt" --contexts 128 \
  --json "$work/eval_scaled.json"

echo "== 3. linearard distill (recipe: demo/distill.json)"
rm -rf "$work/distill" "$work/restored" "$work/report"
"$bin" distill --config demo/distill.json --model "$teacher" --rope-scaling "$scaling" \
  --data "$work/data/distill.txt" --out "$work/distill" "${steps_flag[@]}"

echo "== 4. export the restored student and report"
"$bin" export --checkpoint "$work/distill/final" --out "$work/restored" --format merged
"$bin" report --teacher "$teacher" --scaled "$scaling" --restored "$work/restored" --tasks ppl \
  --text "$work/data/eval.txt" --contexts 128,512 --out "$work/report"
echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "report: $work/report/report.md, $work/report/report.json, charts: $work/report/*.svg"

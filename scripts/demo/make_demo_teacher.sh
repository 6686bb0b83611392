#!/usr/bin/env bash
# Rebuilds the demo teacher shipped in demo/teacher/: a small LLaMA-architecture model with native
# context 128, pre-trained by `linearard pretrain` on the King James Bible (public domain, Debian
# package bible-kjv). Exact data, seed and commands; runs on CPU or on a GPU (--device).
#   bash scripts/demo/make_demo_teacher.sh [build dir] [device] [steps]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$root/build}/linearard"
device="${2:-auto}"
steps="${3:-2000}"
py="${LINEARARD_PYTHON:-$root/.venv/bin/python}"
work="$root/out/demo-teacher-build"
mkdir -p "$work"

# 1. Text split by chapter (held-out evaluation text, distillation text, pre-training text) and a
#    byte-level BPE tokenizer (vocabulary 2048) trained on the pre-training text; ids as int32.
#    (Needs the Debian `bible` program; a GPU machine without it reuses a data folder made here.)
if [ ! -f "$work/data/pretrain.bin" ]; then
  "$py" "$root/scripts/demo/make_demo_data.py" "$work/data" --tokenizer-dir "$work/tokenizer"
fi
rm -rf "$work/run"

# 2. Pre-training: 4 layers, hidden 128, 4 heads of 32, 2 KV heads (GQA), FFN 384, context 128.
"$bin" pretrain --data "$work/data/pretrain.bin" --out "$work/run" --device "$device" \
  --hidden-size 128 --intermediate-size 384 --num-layers 4 --num-heads 4 --num-kv-heads 2 \
  --vocab-size 2048 --max-positions 128 --rope-theta 10000 --context 128 --batch-size 32 \
  --steps "$steps" --warmup-steps 100 --lr 2e-3 --min-lr-ratio 0.05 --weight-decay 0.1 --seed 1234 \
  --no-activation-checkpointing --checkpoint-every 0 --dtype fp32

# 3. The shipped directory: weights + config from the run, tokenizer files next to them.
rm -rf "$root/demo/teacher" && mkdir -p "$root/demo/teacher"
cp "$work/run/final/"*.json "$work/run/final/"*.safetensors "$root/demo/teacher/"
cp "$work/tokenizer/tokenizer.json" "$work/tokenizer/tokenizer_config.json" "$root/demo/teacher/"
echo "demo teacher written to demo/teacher ($(du -sh "$root/demo/teacher" | cut -f1))"

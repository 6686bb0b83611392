#!/usr/bin/env bash
# Tokenizer throughput: `linearard tokenize` against HF tokenizers' encode_batch on the same
# corpus (the whole KJV Bible, one document per chapter, as JSONL) with the same thread count.
# linearard is timed end to end (process start, tokenizer load, reading, encoding, writing
# shards); HF only for encode_batch on texts already in memory, so the ratio is conservative.
# Best of 3 runs each. Needs the tokenizer fixtures (ctest -R fixture.tokenizer_fixtures).
#   scripts/bench_tokenize.sh [BUILD_DIR] [THREADS] [TOKENIZERS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
threads="${2:-$(nproc)}"
shift $(( $# > 2 ? 2 : $# ))
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gpt2 llama3 qwen2 llama2 sp)
fix="$build/fixtures/tokenizer"
py="$root/.venv/bin/python"
[ -f "$fix/kjv_full.txt" ] || { echo "bench_tokenize: $fix missing: run ctest -R fixture.tokenizer_fixtures in $build" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$py" - "$fix/kjv_full.txt" "$work/kjv.jsonl" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
chapters = [c for c in re.split(r"\n(?=[^ \n][^\n]* \d+\n)", text) if c.strip()]
with open(sys.argv[2], "w") as f:
    for c in chapters:
        f.write(json.dumps({"text": c}) + "\n")
print(f"corpus: {len(chapters)} chapters, {len(text.encode()) / 1e6:.2f} MB", file=sys.stderr)
PY

printf "%-8s %8s %14s %14s %7s\n" tokenizer threads "linearard tok/s" "HF tok/s" ratio
for name in "${names[@]}"; do
  best=""
  for _ in 1 2 3; do
    rm -rf "$work/out"
    start=$(date +%s.%N)
    "$build/linearard" tokenize --quiet --tokenizer "$fix/$name" --input "$work/kjv.jsonl" --out "$work/out" --threads "$threads" >/dev/null
    end=$(date +%s.%N)
    s=$(echo "$end - $start" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
  done
  tokens=$("$py" -c "import json,sys;print(json.load(open(sys.argv[1]))['total_tokens'])" "$work/out/manifest.json")
  hf=$(RAYON_NUM_THREADS=$threads "$py" - "$fix/$name" "$work/kjv.jsonl" <<'PY'
import json, os, sys, time
d, corpus = sys.argv[1], sys.argv[2]
docs = [json.loads(l)["text"] for l in open(corpus)]
if os.path.exists(os.path.join(d, "tokenizer.json")):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(d).backend_tokenizer
    run = lambda: sum(len(e.ids) for e in tok.encode_batch(docs))
else:  # SentencePiece: its own batch encoder with the same thread count
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    n = int(os.environ["RAYON_NUM_THREADS"])
    run = lambda: sum(len(i) for i in sp.encode(docs, num_threads=n))
best = None
for _ in range(3):
    t = time.perf_counter(); n_tok = run(); s = time.perf_counter() - t
    best = s if best is None else min(best, s)
print(n_tok / best)
PY
)
  ours=$(echo "$tokens / $best" | bc -l)
  printf "%-8s %8d %14.0f %14.0f %7.2f\n" "$name" "$threads" "$ours" "$hf" "$(echo "$ours / $hf" | bc -l)"
done

#!/usr/bin/env python3
"""`linearard sample` against an independent re-implementation in float64 transformers.

For the tiny fixture model (tests/eval/make_eval_fixtures.py) the samples are recomputed here
token by token: full forward of LlamaForCausalLM (float64, no cache), softmax(logits / T), the
uniform of (seed, sample, position) by splitmix64 (Steele et al. 2014) written again in Python,
and the smallest id whose cumulative probability exceeds it. The documents the binary wrote
(one document per sample, EOS tokens inside) must equal these exactly, for the document-start prompt and for prompt
windows of a text file (tokenized here with `tokenizers`, shuffled by the same hash), at two
batch sizes (the tokens may not depend on the batch), and the manifest must let `distill` read
them (its vocab, bos and eos).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

from splitmix64 import MASK64, splitmix64

FIX = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "eval")
BIN = os.environ["LINEARARD_BIN"]


def uniform(seed, index, position):
    h = splitmix64(splitmix64(splitmix64(seed) ^ (index & MASK64)) ^ (position & MASK64))
    return (h >> 40) / float(1 << 24)


def read_shard_documents(path):
    data = open(path, "rb").read()
    assert data[:8] == b"LARDTOKS", path
    _version, width, n, _vocab, d = struct.unpack_from("<IIQQQ", data, 8)
    ids = struct.unpack_from("<%d%s" % (n, "H" if width == 2 else "I"), data, 64)
    docs_at = 64 + ((n * width + 7) // 8) * 8
    ranges = struct.unpack_from("<%dQ" % (2 * d), data, docs_at)
    return [list(ids[ranges[2 * i]:ranges[2 * i + 1]]) for i in range(d)]


# LINEARARD_SAMPLE_DEVICE=cuda runs the binary on the GPU in float32 (the GPU check of
# scripts/gpu_restore.sh): the tokens must still be the float64 reference's.
DEVICE = os.environ.get("LINEARARD_SAMPLE_DEVICE", "cpu")


def run_sample(out, *args):
    cmd = [BIN, "sample", "--model", os.path.join(FIX, "model"), "--out", out, "--quiet", "--device", DEVICE,
           "--dtype", "fp32", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAILED: %s\n%s" % (" ".join(cmd), r.stderr))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    docs = []
    for s in manifest["shards"]:
        docs += read_shard_documents(os.path.join(out, s["file"]))
    return manifest, docs


def reference(model, prompts, samples, S, T, seed, eos, drop_first):
    docs = []
    for s in range(samples):
        seq = list(prompts[s % len(prompts)])
        for t in range(len(seq), S):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            if T == 0:
                seq.append(int(torch.argmax(logits)))
                continue
            cdf = torch.cumsum(torch.softmax(logits / T, -1), 0)
            u = uniform(seed, s, t) * float(cdf[-1])
            seq.append(min(int((cdf < u).sum()), len(cdf) - 1))
        docs.append(seq[1 if drop_first else 0:])
    return docs


def main():
    model = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "model"), torch_dtype=torch.float64).eval()
    tok = Tokenizer.from_file(os.path.join(FIX, "model", "tokenizer.json"))
    cfg = json.load(open(os.path.join(FIX, "model", "tokenizer_config.json")))
    bos, eos = tok.token_to_id(cfg["bos_token"]), tok.token_to_id(cfg["eos_token"])
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        # Document-start prompts (this tokenizer adds BOS), temperature 1 and 0.7, two batch sizes.
        for T, seed in ((1.0, 3), (0.7, 11), (0.0, 0)):
            S, samples = 24, 5
            expected = reference(model, [[bos]], samples, S, T, seed, eos, False)
            for batch in (2, 5):
                out = os.path.join(tmp, "start_%g_%d" % (T, batch))
                manifest, docs = run_sample(out, "--tokens", str(S * samples), "--sample-tokens", str(S),
                                            "--temperature", str(T), "--seed", str(seed), "--batch-size", str(batch))
                if docs != expected:
                    failures.append("document start, T=%g, batch %d: %s != %s" % (T, batch, docs[:2], expected[:2]))
                if manifest["eos_id"] != eos or manifest["bos_id"] != bos:
                    failures.append("manifest bos/eos %s/%s, expected %s/%s" % (manifest["bos_id"], manifest["eos_id"], bos, eos))
        # Prompt windows of a text file: the first 6 tokens of each 6-token window, shuffled.
        text = open(os.path.join(FIX, "text.txt")).read()[:600]
        src = os.path.join(tmp, "prompts.txt")
        open(src, "w").write(text)
        ids = tok.encode(text).ids
        P, S, samples, seed = 6, 20, 4, 5
        windows = [ids[i:i + P] for i in range(0, len(ids) - P + 1, P)]
        for i in range(len(windows), 1, -1):
            j = int(uniform(seed, -1, i) * i) % i
            windows[i - 1], windows[j] = windows[j], windows[i - 1]
        expected = reference(model, windows, samples, S, 1.0, seed, eos, False)
        _, docs = run_sample(os.path.join(tmp, "prompts"), "--tokens", str(S * samples), "--sample-tokens", str(S),
                             "--prompts", src, "--prompt-tokens", str(P), "--seed", str(seed), "--batch-size", "3")
        if docs != expected:
            failures.append("prompt windows: %s != %s" % (docs[:2], expected[:2]))
    if failures:
        sys.exit("\n".join(failures))
    print("sample (%s): every token equals the float64 transformers re-implementation" % DEVICE)


if __name__ == "__main__":
    main()

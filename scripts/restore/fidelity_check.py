"""Independent check of a restoration run with transformers (not linearard's code): perplexity by
context and next-token fidelity to the teacher (KL(teacher || model), top-1 agreement) on held-out
text, for any number of models. Used by scripts/gpu_restore.sh beside `linearard eval`.

  python fidelity_check.py --teacher DIR --model NAME=DIR[@ROPE_JSON] ... --text FILE.jsonl
  (a model whose DIR is the teacher's with no ROPE_JSON is the teacher itself: KL 0, top-1 1)
         [--contexts 512,2048,8192] [--ppl-contexts 32768] [--max-tokens 262144] --json OUT

Windows are non-overlapping, over one stream of the documents' ids (each document encoded on its
own, as the tokenizer encodes it, joined in file order). KL and top-1 are averaged over every
predicted position of every window; logits are projected in chunks of rows (no T x V buffer for a
whole window). @ROPE_JSON overrides the model's rope_scaling (the scaled, untrained student).
"""
import argparse
import json
import math
import os
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

CHUNK_ROWS = 1024


def load(path, rope, device, dtype):
    config = AutoConfig.from_pretrained(path)
    if rope:
        params = dict(json.loads(rope))
        if "type" in params and "rope_type" not in params:
            params["rope_type"] = params.pop("type")
        current = getattr(config, "rope_parameters", None) or {}
        params.setdefault("rope_theta", current.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        if hasattr(config, "rope_parameters"):
            config.rope_parameters = params
        else:
            config.rope_scaling = params
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype)
    return model.to(device).eval()


@torch.no_grad()
def hidden_states(model, ids):
    out = model.model(input_ids=ids)
    return out.last_hidden_state[0]  # (T, C)


@torch.no_grad()
def window_stats(teacher, model, ids, lm_head_t, lm_head_m):
    """Sums over the window's predicted positions: nll of the model, KL(t||m), top-1 agreement."""
    h_m = hidden_states(model, ids)
    h_t = hidden_states(teacher, ids) if teacher is not None else None
    T = ids.shape[1]
    targets = ids[0, 1:]
    nll = kl = agree = 0.0
    for r0 in range(0, T - 1, CHUNK_ROWS):
        r1 = min(T - 1, r0 + CHUNK_ROWS)
        lm = torch.log_softmax((h_m[r0:r1] @ lm_head_m.T).float(), -1)  # (rows, V)
        nll -= lm.gather(1, targets[r0:r1, None]).sum().item()
        if h_t is not None:
            lt = torch.log_softmax((h_t[r0:r1] @ lm_head_t.T).float(), -1)
            kl += (lt.exp() * (lt - lm)).sum().item()
            agree += (lt.argmax(-1) == lm.argmax(-1)).sum().item()
    return nll, kl, agree, T - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR[@ROPE_JSON]")
    ap.add_argument("--text", required=True)
    ap.add_argument("--contexts", default="512,2048,8192")
    ap.add_argument("--ppl-contexts", default="")
    ap.add_argument("--max-tokens", type=int, default=262144)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    tok = AutoTokenizer.from_pretrained(args.teacher)
    stream = []
    with open(args.text) as f:
        for line in f:
            stream += tok(json.loads(line)["text"])["input_ids"]
            if len(stream) >= args.max_tokens:
                break
    stream = torch.tensor(stream[: args.max_tokens], device=args.device)[None]
    contexts = [int(c) for c in args.contexts.split(",") if c]
    ppl_contexts = [int(c) for c in args.ppl_contexts.split(",") if c]
    teacher = load(args.teacher, None, args.device, dtype)
    results = {"tokens": int(stream.shape[1]), "models": {}}
    for spec in args.model:
        name, rest = spec.split("=", 1)
        path, _, rope = rest.partition("@")
        model = teacher if path == args.teacher and not rope else load(path, rope, args.device, dtype)
        rows = {}
        for T in sorted(set(contexts + ppl_contexts)):
            fid = T in contexts and model is not teacher
            n_w = stream.shape[1] // T
            if n_w == 0:
                sys.exit(f"fidelity_check: {stream.shape[1]} tokens give no window of {T}")
            s = [0.0, 0.0, 0.0, 0]
            for w in range(n_w):
                st = window_stats(teacher if fid else None, model, stream[:, w * T:(w + 1) * T],
                                  teacher.lm_head.weight, model.lm_head.weight)
                s = [a + b for a, b in zip(s, st)]
            row = {"windows": n_w, "ppl": math.exp(s[0] / s[3])}
            if fid:
                row.update(kl=s[1] / s[3], top1=s[2] / s[3])
            elif T in contexts:
                row.update(kl=0.0, top1=1.0)
            rows[str(T)] = row
            print(f"{name:>16} T={T:>6} " + " ".join(f"{k}={v:.5g}" for k, v in row.items()), flush=True)
        results["models"][name] = rows
        if model is not teacher:
            del model
            torch.cuda.empty_cache() if args.device.startswith("cuda") else None
    with open(args.json + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    sys.exit(main())

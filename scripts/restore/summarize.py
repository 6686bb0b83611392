"""The table of a scripts/gpu_restore.sh run, from what it wrote to OUT: eval_<model>.json
(`linearard eval --task ppl,fidelity`, the headline numbers), check_<model>.json
(scripts/restore/fidelity_check.py, transformers float32, the independent check, where it ran;
model names start with the scaling, e.g. pi4_scaled, pi4_restore) and metrics_<id>.jsonl (the
trainer's). Prints markdown: per source and scaling, one row per model: perplexity and gap
recovered at each short context (on NLL: (nll_scaled - nll_model) / (nll_scaled - nll_teacher)),
KL(teacher || model) and top-1 agreement at each short context, perplexity at the long contexts,
tokens trained.

  python summarize.py OUT
"""
import glob
import json
import math
import os
import sys


def tokens_trained(out, name):
    path = os.path.join(out, f"metrics_{name}.jsonl")
    if not os.path.exists(path):
        return "", ""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    toks = sum(r.get("tokens", 0) for r in rows)
    secs = sum(r.get("step_seconds", 0) for r in rows)
    return f"{toks / 1e6:.2f}M", f"{toks / secs / 1e3:.1f}K" if secs else ""


def from_checks(out):
    models, tokens = {}, 0
    for path in sorted(glob.glob(os.path.join(out, "check_*.json"))):
        res = json.load(open(path))
        models.update(res["models"])
        tokens = res["tokens"]
    return models, tokens


def from_evals(out):
    """{model: {context: {ppl, kl, top1}}} from linearard eval's JSON (kl/top1 at short contexts)."""
    models, tokens = {}, 0
    for path in sorted(glob.glob(os.path.join(out, "eval_*.json"))):
        res = json.load(open(path))
        name = os.path.basename(path)[len("eval_"):-len(".json")]
        rows = {}
        for r in res.get("ppl", {}).get("results", []):
            rows[str(r["context"])] = {"ppl": r["perplexity"]}
            tokens = max(tokens, r["tokens"])
        for r in res.get("fidelity", {}).get("results", []):
            if str(r["context"]) in rows and r["context"] <= res["model"].get("max_position_embeddings", 1 << 62):
                rows[str(r["context"])].update(kl=r["kl"], top1=r["top1_agreement"])
        models[name] = rows
    return models, tokens


def main():
    out = sys.argv[1]
    printed = False
    for title, (models, tokens) in (("linearard eval (bf16)", from_evals(out)),
                                    ("transformers float32 check (fidelity_check.py)", from_checks(out))):
        if "teacher" not in models:
            continue
        print(f"\n## {title}")
        table(out, models, tokens)
        printed = True
    if not printed:
        sys.exit("summarize: no teacher results (eval_teacher.json / check_teacher.json)")


def table(out, models, tokens):
    teacher = models["teacher"]
    scalings = sorted({n.split("_", 1)[0] for n in models if n != "teacher"})
    for scaling in scalings:
        scaled = models.get(f"{scaling}_scaled")
        group = {"teacher": teacher, **{n: r for n, r in models.items() if n.startswith(scaling + "_")}}
        shorts = [c for c in teacher if "kl" in teacher[c]]
        longs = [c for c in teacher if "kl" not in teacher[c]]
        print(f"\n### {scaling} ({tokens} held-out tokens)\n")
        head = ["model"] + [f"ppl@{c}" for c in shorts] + [f"gap rec.@{c}" for c in shorts]
        head += [f"KL@{c}" for c in shorts] + [f"top-1@{c}" for c in shorts] + [f"ppl@{c}" for c in longs]
        head += ["tokens", "tok/s"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name, rows in group.items():
            cells = [name.removeprefix(scaling + "_")]
            cells += [f"{rows[c]['ppl']:.3f}" for c in shorts]
            for c in shorts:
                if scaled is None or name == "teacher":
                    cells.append("")
                    continue
                ns, nt, nm = (math.log(m[c]["ppl"]) for m in (scaled, teacher, rows))
                cells.append(f"{100 * (ns - nm) / (ns - nt):.1f} %" if ns != nt else "")
            cells += [f"{rows[c]['kl']:.4f}" for c in shorts]
            cells += [f"{100 * rows[c]['top1']:.1f} %" for c in shorts]
            cells += [f"{rows[c]['ppl']:.3f}" for c in longs]
            cells += list(tokens_trained(out, name))
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

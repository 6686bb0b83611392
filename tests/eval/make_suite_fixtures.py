"""Reference data for tests/eval/test_suite.cpp: two BIG-bench-format task.json files and, for each,
lm-evaluation-harness's scoring re-implemented here with transformers on the eval fixtures' tiny
model (make_eval_fixtures.py must have run): BIG-bench's prompt format (bigbench/api/json_task.py
defaults), the harness's few-shot context (lm_eval/api/task.py: fewshot_delimiter "\\n\\n",
target_delimiter " ", the document left out of the draw), its _encode_pair and loglikelihood
(log_softmax of float32 logits, summed over the continuation), acc and acc_norm. The draw of
few-shot examples is the project's documented splitmix64 Fisher-Yates (src/eval/bigbench_task.h),
written again here.

Writes $LINEARARD_FIXTURES_DIR/suite/: bigbench/<task>/task.json (one task with a subtask folder)
and expected.json.
"""
import json
import os
import shutil

import torch
import transformers
from splitmix64 import splitmix64

FIX = os.environ["LINEARARD_FIXTURES_DIR"]
OUT = os.path.join(FIX, "suite")
MODEL = os.path.join(FIX, "eval", "model")
FEWSHOT, SEED = 2, 1234

TASK_A = {  # BIG-bench defaults: "\nQ: ", "\nA: ", choices appended with "\n  choice: "
    "name": "sky_colors", "task_prefix": "Answer the question about colors.\n",
    "examples": [
        {"input": "What colour is the sky?", "target_scores": {"blue": 1, "green": 0, "red": 0}},
        {"input": "What colour is the grass?", "target_scores": {"blue": 0, "green": 1, "yellow": 0}},
        {"input": "What colour is the sun?", "target_scores": {"yellow": 1, "blue": 0}},
        {"input": "Is the café naïve?", "target_scores": {"déjà vu": 0, "yes": 1}},
        {"input": "Here we go. There and", "target": "back again"},  # generative: skipped
        {"input": "The pass key is", "target_scores": {"12345": 1, "54321": 0, "none": 0}},
    ]}
TASK_B = {  # logical_deduction-like prefixes, choices not appended
    "name": "fox_order", "append_choices_to_input": False, "example_input_prefix": "",
    "example_output_prefix": " ", "choice_prefix": " ",
    "task_prefix": "The following paragraphs each describe a quick brown fox.\n\n",
    "examples": [
        {"input": "A quick brown fox jumps over the lazy", "target_scores": {"dog.": 1, "cat.": 0, "sun.": 0}},
        {"input": "She sells sea shells by the sea", "target_scores": {"shore.": 1, "sky.": 0}},
        {"input": "The grass is green. The sky is", "target_scores": {"green.": 0, "blue.": 1}},
        {"input": "Which planet is closest to the sun?", "target_scores": {"Venus": 0, "Mercury": 1, "Mars": 0}},
    ]}



def fewshot_indices(n, doc, k, seed):
    pool = [i for i in range(n) if i != doc]
    k = min(k, len(pool))
    state = splitmix64(seed ^ splitmix64(doc))
    for j in range(k):
        state = splitmix64(state)
        r = j + state % (len(pool) - j)
        pool[j], pool[r] = pool[r], pool[j]
    return pool[:k]


def mc_examples(task):
    out = []
    for e in task["examples"]:
        if "target_scores" not in e:
            continue
        choices = list(e["target_scores"])
        scores = [e["target_scores"][c] for c in choices]
        out.append((e["input"], choices, scores.index(max(scores))))
    return out


def prompt(task, inp, choices):
    p = task.get("example_input_prefix", "\nQ: ") + inp
    if task.get("append_choices_to_input", True):
        p += "".join(task.get("choice_prefix", "\n  choice: ") + c for c in choices)
    return (p + task.get("example_output_prefix", "\nA: ")).rstrip()


def context(task, examples, doc):
    shots = [prompt(task, examples[i][0], examples[i][1]) + " " + examples[i][1][examples[i][2]]
             for i in fewshot_indices(len(examples), doc, FEWSHOT, SEED)]
    return task.get("task_prefix", "") + "".join(s + "\n\n" for s in shots) + prompt(task, *examples[doc][:2])


def encode_pair(tok, ctx, cont):
    n = len(ctx) - len(ctx.rstrip())
    if n:
        cont, ctx = ctx[-n:] + cont, ctx[:-n]
    whole = tok.encode(ctx + cont, add_special_tokens=False)
    c = tok.encode(ctx, add_special_tokens=False)
    return c, whole[len(c):]


def loglikelihood(model, ctx, cont, max_length):
    full = (ctx + cont)[-(max_length + 1):]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(full[:-1])[None]).logits[0]
    logp = torch.log_softmax(logits.float(), -1)[-len(cont):]  # the harness: F.log_softmax(logits.float())
    return logp.gather(1, torch.tensor(cont)[:, None]).double().sum().item()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for rel, task in (("bigbench/sky_colors", TASK_A), ("bigbench/fox_order/short", TASK_B)):
        os.makedirs(os.path.join(OUT, rel))
        with open(os.path.join(OUT, rel, "task.json"), "w", encoding="utf-8") as f:
            json.dump(task, f, ensure_ascii=False, indent=1)
    tok = transformers.AutoTokenizer.from_pretrained(MODEL)
    model = transformers.LlamaForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
    max_length = model.config.max_position_embeddings
    expected = {"fewshot": FEWSHOT, "seed": SEED, "max_length": max_length, "tasks": []}
    for name, task in (("sky_colors", TASK_A), ("fox_order_short", TASK_B)):
        examples = mc_examples(task)
        contexts, lls, acc, acc_norm = [], [], [], []
        for d, (_, choices, gold) in enumerate(examples):
            ctx = context(task, examples, d)
            contexts.append(ctx)
            ll = [loglikelihood(model, *encode_pair(tok, ctx, " " + c), max_length) for c in choices]
            lls += ll
            acc.append(1.0 if ll.index(max(ll)) == gold else 0.0)
            normed = [v / len(c) for v, c in zip(ll, choices)]
            acc_norm.append(1.0 if normed.index(max(normed)) == gold else 0.0)
        expected["tasks"].append({"name": name, "contexts": contexts, "loglikelihoods": lls,
                                  "acc": sum(acc) / len(acc), "acc_norm": sum(acc_norm) / len(acc_norm)})
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
    print("wrote suite fixtures to", OUT)


if __name__ == "__main__":
    main()

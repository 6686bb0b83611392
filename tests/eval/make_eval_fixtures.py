"""Reference data for the evaluation tests (tests/eval/*.cpp), made with transformers / tokenizers
on a tiny random LLaMA and a tiny byte-level BPE tokenizer trained here.

Writes $LINEARARD_FIXTURES_DIR/eval/:
  model/       tiny LlamaForCausalLM (GQA, float32) + tokenizer.json + tokenizer_config.json
  zero_head/   the same with lm_head = 0 (every logit 0: perplexity = vocabulary size)
  restored/    perturbed weights with a linear RoPE x2 in config.json (a stand-in restored model)
  ppl.json     token streams and HF-recipe NLL sums per (RoPE, context, stride, streams) case
  other_vocab/ the model with 300 of its ids (a teacher of another vocabulary for the fidelity errors)
  fidelity.json  KL(teacher || model), top-1 agreement and gold accuracy over the ppl.json streams
               and the HF recipe's windows, in float64 (transformers models in float64) per case
  generate.json  greedy continuations by transformers' generate() (KV cache) per RoPE
  mc.jsonl, mc_expected.json  multiple-choice docs and the harness rule's requests, LLs, acc, acc_norm
  passkey_keys.json  keys by an independent splitmix64, text.txt  text for the CLI tests
and then, with make_suite_fixtures.py, $LINEARARD_FIXTURES_DIR/suite/ (BIG-bench tasks and scores).
"""
import json
import math
import os
import shutil

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from splitmix64 import splitmix64

OUT = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "eval")
torch.manual_seed(0)

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
CORPUS = [
    FILLER,
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there.",
    "The pass key is 12345. Remember it. 12345 is the pass key. What is the pass key? The pass key is",
    "A quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun.",
    "Question: Which planet is closest to the sun? Answer: Mercury, Venus, Earth or Mars.",
    "She sells sea shells by the sea shore; the café is naïve about déjà vu. 0123456789",
]
TEXT = "\n".join(CORPUS * 3)


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 0)])
    return tok


def save_tokenizer(tok, model_dir):
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "add_bos_token": True, "add_eos_token": False}, f)


def make_config(vocab, rope=None, max_pos=64):
    fields = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=max_pos,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=0,
                  eos_token_id=1)
    if rope is not None:
        fields["rope_scaling"] = dict(rope)
    config = transformers.LlamaConfig(**fields)
    config._attn_implementation = "eager"
    return config


def model_with(state, vocab, rope=None, max_pos=64):
    m = transformers.LlamaForCausalLM(make_config(vocab, rope, max_pos)).float().eval()
    m.load_state_dict(state)
    return m


def reset_rope(m):
    """A fresh rotary state per forward: transformers' dynamic RoPE keeps the longest length seen."""
    re = m.model.rotary_emb
    if hasattr(re, "original_inv_freq"):
        re.register_buffer("inv_freq", re.original_inv_freq.clone(), persistent=False)
        re.max_seq_len_cached = re.original_max_seq_len


def token_logprobs(m, ids):
    """float64 log-softmax of the float32 logits of ids (1, n)."""
    reset_rope(m)
    with torch.no_grad():
        return torch.log_softmax(m(input_ids=ids).logits.double(), -1)[0]


def hf_recipe(m, ids, T, stride):
    """transformers' perplexity recipe, summed exactly: (nll_sum, scored tokens)."""
    n = len(ids)
    nll, count, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + T, n)
        trg_len = end - prev_end
        window = torch.tensor(ids[begin:end])[None]
        target = window.clone()
        target[:, :-trg_len] = -100
        logp = token_logprobs(m, window)[:-1]
        labels = target[0, 1:]
        keep = labels != -100
        nll -= logp[keep].gather(1, labels[keep][:, None]).sum().item()
        count += int(keep.sum())
        prev_end = end
        if end == n:
            break
    return nll, count


def ppl_cases(state, vocab):
    g = torch.Generator().manual_seed(1)
    streams = [torch.randint(2, vocab, (150,), generator=g).tolist(), torch.randint(2, vocab, (61,), generator=g).tolist()]
    specs = [  # name, rope override (None: the checkpoint's), T, stride, streams
        ("native_nonoverlap", None, 32, 32, [0]),
        ("native_sliding", None, 48, 16, [0]),
        ("native_stride1", None, 8, 1, [1]),
        ("two_documents", None, 40, 40, [0, 1]),
        ("two_documents_sliding", None, 40, 12, [0, 1]),
        ("linear_long", {"rope_type": "linear", "factor": 4.0}, 128, 128, [0]),
        ("dynamic_long_sliding", {"rope_type": "dynamic", "factor": 2.0}, 100, 30, [0]),
        ("yarn_long", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}, 96, 96, [0, 1]),
    ]
    cases = []
    for name, rope, T, stride, which in specs:
        m = model_with(state, vocab, rope)
        nll, count = 0.0, 0
        for s in which:
            a, b = hf_recipe(m, streams[s], T, stride)
            nll, count = nll + a, count + b
        cases.append({"name": name, "rope_override": json.dumps(rope) if rope else "", "context": T,
                      "stride": stride, "streams": which, "nll_sum": nll, "tokens": count})
    return {"streams": streams, "cases": cases}


def fidelity_cases(state, restored_state, vocab, streams):
    """Next-token fidelity over the HF recipe's windows: for every scored token i of a window, the
    distributions predicted at position i - 1 by the teacher and the model on the same ids, from
    float64 models: KL(teacher || model) = sum_v p_t (log p_t - log p_m) (F.kl_div with
    log_target), top-1 agreement (torch.argmax: first maximum), each model's top-1 vs gold."""
    specs = [  # name, teacher RoPE override, model checkpoint, model RoPE override, T, stride, streams
        ("linear4_nonoverlap", None, "model", {"rope_type": "linear", "factor": 4.0}, 32, 32, [0, 1]),
        ("linear4_sliding", None, "model", {"rope_type": "linear", "factor": 4.0}, 48, 16, [0]),
        ("yarn_teacher_restored", {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64},
         "restored", None, 40, 40, [0, 1]),
    ]
    cases = []
    for name, teacher_rope, model_name, model_rope, T, stride, which in specs:
        teacher = model_with(state, vocab, teacher_rope).double()
        if model_name == "model":
            model = model_with(state, vocab, model_rope).double()
        else:
            model = model_with(restored_state, vocab, model_rope or {"rope_type": "linear", "factor": 2.0},
                               max_pos=128).double()
        kl_sum, positions, agree, t_correct, m_correct = 0.0, 0, 0, 0, 0
        for s in which:
            ids, n, prev_end = streams[s], len(streams[s]), 0
            for begin in range(0, n, stride):
                end = min(begin + T, n)
                first = max(prev_end, begin + 1)  # scored tokens [first, end), predicted at i - 1
                window = torch.tensor(ids[begin:end])[None]
                with torch.no_grad():
                    reset_rope(teacher)
                    reset_rope(model)
                    lt = teacher(input_ids=window).logits[0, first - 1 - begin:end - 1 - begin]
                    lm = model(input_ids=window).logits[0, first - 1 - begin:end - 1 - begin]
                log_pt, log_pm = torch.log_softmax(lt, -1), torch.log_softmax(lm, -1)
                kl = torch.nn.functional.kl_div(log_pm, log_pt, reduction="sum", log_target=True).item()
                manual = (log_pt.exp() * (log_pt - log_pm)).sum().item()
                assert abs(kl - manual) <= 1e-9 * max(1.0, abs(manual)), (kl, manual)
                gold = torch.tensor(ids[first:end])
                kl_sum += kl
                positions += end - first
                agree += int((lt.argmax(-1) == lm.argmax(-1)).sum())
                t_correct += int((lt.argmax(-1) == gold).sum())
                m_correct += int((lm.argmax(-1) == gold).sum())
                prev_end = end
                if end == n:
                    break
        cases.append({"name": name, "teacher_rope_override": json.dumps(teacher_rope) if teacher_rope else "",
                      "model": model_name, "model_rope_override": json.dumps(model_rope) if model_rope else "",
                      "context": T, "stride": stride, "streams": which, "kl_sum": kl_sum, "positions": positions,
                      "agree": agree, "teacher_correct": t_correct, "model_correct": m_correct})
    return {"cases": cases}


def generate_cases(state, vocab):
    g = torch.Generator().manual_seed(2)
    specs = [("default", None, 20, 12), ("linear", {"rope_type": "linear", "factor": 2.0}, 40, 10),
             ("yarn", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}, 70, 8),
             # prompt inside max_position_embeddings, decoding past it: the frequencies change per step
             ("dynamic_crossing", {"rope_type": "dynamic", "factor": 2.0}, 60, 10)]
    cases = []
    for name, rope, n_prompt, n_new in specs:
        m = model_with(state, vocab, rope)
        reset_rope(m)
        prompt = torch.randint(2, vocab, (1, n_prompt), generator=g)
        with torch.no_grad():
            out = m.generate(prompt, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, num_beams=1,
                             eos_token_id=None, pad_token_id=0, use_cache=True)
        cases.append({"name": name, "rope_override": json.dumps(rope) if rope else "", "prompt": prompt[0].tolist(),
                      "new_tokens": n_new, "generated": out[0, n_prompt:].tolist()})
    return cases


MC_DOCS = [
    {"context": "Question: Which planet is closest to the sun?\nAnswer:", "choices": ["Mercury", "Venus", "Earth", "Mars"], "gold": 0},
    {"context": "The sky is", "choices": ["blue.", "green and yellow.", "a fox"], "gold": 0},
    {"context": "The grass is green. The sun is ", "choices": ["yellow.", "blue."], "gold": 0},  # trailing space
    {"context": "Here we go.\n", "choices": ["There and back again.", "The café is naïve."], "gold": 1},  # trailing newline
    {"context": "", "choices": ["The pass key is", "déjà vu"], "gold": 1},  # empty context: prefix token
    {"context": "A quick brown fox jumps over the lazy", "choices": ["dog", "cat sleeps", "sun"], "gold": 0},
    {"context": "She sells sea shells by the sea", "choices": ["shore", "sky", "shells"], "gold": 2},
]


def harness_requests(hf_tok, add_bos):
    """lm-evaluation-harness's loglikelihood requests (anchors §3.4), with transformers' tokenizer."""
    def enc(s):
        return hf_tok.encode(s, add_special_tokens=add_bos)
    reqs = []
    for d in MC_DOCS:
        for c in d["choices"]:
            context, cont = d["context"], " " + c
            if context == "":
                ctx = [hf_tok.bos_token_id if hf_tok.bos_token_id is not None else hf_tok.eos_token_id]
                cont_enc = enc(cont)
            else:
                n_spaces = len(context) - len(context.rstrip())
                if n_spaces > 0:
                    cont = context[-n_spaces:] + cont
                    context = context[:-n_spaces]
                whole = enc(context + cont)
                ctx = enc(context)
                cont_enc = whole[len(ctx):]
            reqs.append((ctx, cont_enc))
    return reqs


def harness_score(m, reqs, max_length):
    out = []
    for ctx, cont in reqs:
        full = (ctx + cont)[-(max_length + 1):]
        inp = torch.tensor(full[:-1])[None]
        logp = token_logprobs(m, inp)[-len(cont):]
        target = torch.tensor(cont)
        ll = logp.gather(1, target[:, None]).sum().item()
        greedy = bool((logp.argmax(-1) == target).all())
        out.append({"context": ctx, "continuation": cont, "ll": ll, "greedy": greedy})
    return out


def mean_stderr(xs):
    n = len(xs)
    mu = sum(xs) / n
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)


def mc_expected(m, hf_tok, add_bos, max_length):
    scored = harness_score(m, harness_requests(hf_tok, add_bos), max_length)
    acc, acc_norm, k = [], [], 0
    for d in MC_DOCS:
        lls = [scored[k + i]["ll"] for i in range(len(d["choices"]))]
        normed = [ll / len(c) for ll, c in zip(lls, d["choices"])]  # len: Python characters
        k += len(d["choices"])
        acc.append(1.0 if max(range(len(lls)), key=lambda i: (lls[i], -i)) == d["gold"] else 0.0)
        acc_norm.append(1.0 if max(range(len(normed)), key=lambda i: (normed[i], -i)) == d["gold"] else 0.0)
    return {"add_bos": add_bos, "max_length": max_length, "requests": scored,
            "acc": sum(acc) / len(acc), "acc_norm": sum(acc_norm) / len(acc_norm),
            "acc_stderr": mean_stderr(acc), "acc_norm_stderr": mean_stderr(acc_norm)}




def passkey_key(seed, length, depth_index, trial):
    h = splitmix64(seed)
    for v in (length, depth_index, trial):
        h = splitmix64(h ^ v)
    return 10000 + h % 90000


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tok = train_tokenizer()
    vocab = tok.get_vocab_size()
    base = transformers.LlamaForCausalLM(make_config(vocab)).float().eval()
    with torch.no_grad():
        for p in base.parameters():
            p.normal_(0.0, 0.3)  # large enough that the logits are far from uniform
    state = {k: v.clone() for k, v in base.state_dict().items()}

    model_dir = os.path.join(OUT, "model")
    base.save_pretrained(model_dir, safe_serialization=True)
    save_tokenizer(tok, model_dir)
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_dir)

    zero = model_with(state, vocab)
    with torch.no_grad():
        zero.lm_head.weight.zero_()
    zero.save_pretrained(os.path.join(OUT, "zero_head"), safe_serialization=True)
    save_tokenizer(tok, os.path.join(OUT, "zero_head"))

    restored = model_with(state, vocab, {"rope_type": "linear", "factor": 2.0}, max_pos=128)
    with torch.no_grad():
        for p in restored.parameters():
            p.add_(0.01 * torch.randn_like(p))
    restored.save_pretrained(os.path.join(OUT, "restored"), safe_serialization=True)
    save_tokenizer(tok, os.path.join(OUT, "restored"))

    other = transformers.LlamaForCausalLM(make_config(300)).float().eval()
    with torch.no_grad():
        for name, p in other.state_dict().items():
            p.copy_(state[name][:300] if name in ("model.embed_tokens.weight", "lm_head.weight") else state[name])
    other.save_pretrained(os.path.join(OUT, "other_vocab"), safe_serialization=True)

    ppl = ppl_cases(state, vocab)
    with open(os.path.join(OUT, "ppl.json"), "w") as f:
        json.dump(ppl, f)
    restored_state = {k: v.clone() for k, v in restored.state_dict().items()}
    with open(os.path.join(OUT, "fidelity.json"), "w") as f:
        json.dump(fidelity_cases(state, restored_state, vocab, ppl["streams"]), f)
    with open(os.path.join(OUT, "generate.json"), "w") as f:
        json.dump(generate_cases(state, vocab), f)
    with open(os.path.join(OUT, "mc.jsonl"), "w", encoding="utf-8") as f:
        for d in MC_DOCS:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    m = model_with(state, vocab)
    with open(os.path.join(OUT, "mc_expected.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "vocab_size": vocab,
                   "variants": [mc_expected(m, hf_tok, False, 64), mc_expected(m, hf_tok, True, 64),
                                mc_expected(m, hf_tok, False, 20)]}, f)
    keys = [{"seed": s, "length": L, "depth_index": d, "trial": t, "key": passkey_key(s, L, d, t)}
            for s in (0, 7, 2**63 + 5) for L in (1024, 32768) for d in (0, 3) for t in (0, 9)]
    with open(os.path.join(OUT, "passkey_keys.json"), "w") as f:
        json.dump(keys, f)
    with open(os.path.join(OUT, "text.txt"), "w", encoding="utf-8") as f:
        f.write(TEXT)
    print(f"wrote eval fixtures to {OUT} (vocab {vocab}, transformers {transformers.__version__})")
    # The task suite's BIG-bench reference scores with this model (make_suite_fixtures.py).
    import make_suite_fixtures
    make_suite_fixtures.main()


if __name__ == "__main__":
    main()

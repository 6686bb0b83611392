"""Round trip of `linearard export --format gguf` on a tiny llama with a byte-level BPE tokenizer:
    check_gguf_export.py LINEARARD_BIN WORK_DIR
For each RoPE (default, linear, yarn) and each --gguf-type (f32, f16, bf16, q8_0):
  - PyPI gguf's GGUFReader lists every key llama.cpp's llama loader requires, with the values the
    HF config implies (RoPE keys as convert_hf_to_gguf.py writes them);
  - every tensor's bytes equal gguf.quants.quantize of the HF tensor (Q/K rows permuted as
    convert_hf_to_gguf.py's LlamaModel.permute), 1-D tensors in F32;
  - transformers' GGUF loader reads the file (config keys it maps) and, given the HF config for the
    RoPE scaling it does not read for llama, gives logits equal to the HF model's with the weights
    round-tripped through the same encoding (exact), and within the type's tolerance of the
    original (f32: exact);
  - `linearard import` of the file gives the HF config's rope_parameters and the same logits.
Exit 0 when all agree."""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import gguf
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

BIN, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
TOL = {"f32": 0.0, "f16": 1e-2, "bf16": 5e-2, "q8_0": 5e-2}
QT = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
      "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}
ROPES = {"default": None, "linear": {"rope_type": "linear", "factor": 4.0},
         "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}}
REQUIRED = ["general.architecture", "llama.context_length", "llama.embedding_length", "llama.block_count",
            "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base", "llama.rope.dimension_count",
            "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
            "tokenizer.ggml.pre"]
errors = []


def make_base(d, rope):
    torch.manual_seed(5)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["The quick brown fox jumps over the lazy dog 12345. "] * 50, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                bos_token="<|endoftext|>")
    kw = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, vocab_size=tok.get_vocab_size(), max_position_embeddings=64,
              rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)
    cfg = transformers.LlamaConfig(**kw)
    if rope:
        cfg.rope_parameters = dict(rope, rope_theta=10000.0)
        cfg.max_position_embeddings = int(64 * rope["factor"])
    model = transformers.LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08)
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return model


def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf):
    m = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
         "lm_head.weight": "output.weight"}
    if hf in m:
        return m[hf]
    parts = hf.split(".")
    sub = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
           "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    return f"blk.{parts[2]}.{sub['.'.join(parts[3:-1])]}.{parts[-1]}"


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double()


def field(reader, key):
    f = reader.fields[key]
    return f.contents()


def main():
    ids = list(range(1, 60))
    for rope_name, rope in ROPES.items():
        base = os.path.join(WORK, f"base_{rope_name}")
        model = make_base(base, rope)
        cfg = json.load(open(os.path.join(base, "config.json")))
        ref_logits = logits(model, ids)
        sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
        for t in ["f32", "f16", "bf16", "q8_0"]:
            out = os.path.join(WORK, f"{rope_name}_{t}.gguf")
            subprocess.run([BIN, "export", "--model", base, "--format", "gguf", "--out", out, "--gguf-type", t,
                            "--overwrite"], check=True, capture_output=True)
            r = gguf.GGUFReader(out)
            where = f"{rope_name}/{t}"
            for k in REQUIRED:
                if k not in r.fields:
                    errors.append(f"{where}: key {k} missing")
            want = {"llama.context_length": cfg["max_position_embeddings"], "llama.embedding_length": 64,
                    "llama.block_count": 2, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
                    "llama.rope.freq_base": 10000.0, "llama.rope.dimension_count": 16}
            if rope:
                want["llama.rope.scaling.type"] = rope["rope_type"]
                want["llama.rope.scaling.factor"] = rope["factor"]
                if rope["rope_type"] == "yarn":
                    want["llama.rope.scaling.original_context_length"] = 64
            elif "llama.rope.scaling.type" in r.fields:
                errors.append(f"{where}: rope.scaling.type written for default RoPE")
            for k, v in want.items():
                got = field(r, k) if k in r.fields else None
                if got != v and not (isinstance(v, float) and got is not None and abs(got - v) < 1e-6):
                    errors.append(f"{where}: {k} = {got!r}, want {v!r}")
            # Tensor bytes vs gguf-py's encoders; the reference weights round-tripped the same way.
            tensors = {x.name: x for x in r.tensors}
            rt = {}
            for hf, w in sd.items():
                g = gguf_name(hf)
                if ".attn_q." in g:
                    w = permute(w, 4)
                elif ".attn_k." in g:
                    w = permute(w, 2)
                qt = QT[t] if w.ndim > 1 else gguf.GGMLQuantizationType.F32
                if g not in tensors:
                    errors.append(f"{where}: tensor {g} missing")
                    continue
                x = tensors[g]
                if x.tensor_type != qt:
                    errors.append(f"{where}: {g} type {x.tensor_type.name}, want {qt.name}")
                    continue
                enc = w if qt == gguf.GGMLQuantizationType.F32 else gguf.quants.quantize(w, qt)
                if np.asarray(x.data).tobytes() != np.ascontiguousarray(enc).tobytes():
                    errors.append(f"{where}: {g} bytes differ from gguf.quants.quantize")
                rt[hf] = gguf.quants.dequantize(np.asarray(enc), qt).reshape(sd[hf].shape) if qt != gguf.GGMLQuantizationType.F32 else w
            # Reference: the HF model with the encoded weights (un-permuted back).
            rt_model = transformers.LlamaForCausalLM(model.config).float().eval()
            state = {}
            for hf, w in rt.items():
                w = torch.from_numpy(np.array(w, dtype=np.float32))
                if ".q_proj." in hf or ".k_proj." in hf:
                    h = 4 if ".q_proj." in hf else 2
                    w = w.reshape(h, w.shape[0] // h // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
                state[hf] = w
            rt_model.load_state_dict(state)
            rt_logits = logits(rt_model, ids)
            # transformers' GGUF loader (it does not read llama's rope.scaling.*: the HF config gives it).
            d, f = os.path.dirname(out), os.path.basename(out)
            tf = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
            for key in ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                        "max_position_embeddings", "vocab_size", "intermediate_size"]:
                if getattr(tf.config, key) != cfg.get(key, getattr(model.config, key)):
                    errors.append(f"{where}: transformers config {key} {getattr(tf.config, key)} != {cfg.get(key)}")
            if tf.config.rope_parameters["rope_theta"] != 10000.0:
                errors.append(f"{where}: transformers rope_theta {tf.config.rope_parameters['rope_theta']}")
            tf2 = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, config=model.config, dtype=torch.float32)
            tl = logits(tf2.eval(), ids)
            if not torch.equal(tl, rt_logits):
                errors.append(f"{where}: transformers GGUF logits != encoded-weights reference "
                              f"(max {(tl - rt_logits).abs().max().item():.3g})")
            rel = ((tl - ref_logits).abs().max() / ref_logits.abs().max()).item()
            if rel > TOL[t]:
                errors.append(f"{where}: logits rel err {rel:.3g} > {TOL[t]}")
            # Our importer.
            imp = os.path.join(WORK, f"imp_{rope_name}_{t}")
            subprocess.run([BIN, "import", out, "--out", imp, "--dtype", "f32", "--overwrite"], check=True,
                           capture_output=True)
            icfg = json.load(open(os.path.join(imp, "config.json")))
            want_rope = dict(rope or {"rope_type": "default"}, rope_theta=10000.0)
            if icfg["rope_parameters"] != want_rope:
                errors.append(f"{where}: imported rope_parameters {icfg['rope_parameters']} != {want_rope}")
            if icfg["max_position_embeddings"] != cfg["max_position_embeddings"]:
                errors.append(f"{where}: imported max_position_embeddings {icfg['max_position_embeddings']}")
            im = transformers.AutoModelForCausalLM.from_pretrained(imp, dtype=torch.float32).eval()
            il = logits(im, ids)
            if not torch.equal(il, rt_logits):
                errors.append(f"{where}: imported logits != reference (max {(il - rt_logits).abs().max().item():.3g})")
            print(f"{where}: logits rel err {rel:.2e} (tolerance {TOL[t]})")
        # `linearard inspect FILE.gguf`: the tensor types as gguf-py reads them, and the RoPE.
        qfile = os.path.join(WORK, f"{rope_name}_q8_0.gguf")
        insp = subprocess.run([BIN, "inspect", qfile], capture_output=True, text=True)
        counts = {}
        reader = gguf.GGUFReader(qfile)
        for tensor in reader.tensors:
            counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
        want = "; tensor types: " + ", ".join(f"{k} x {v}" for k, v in sorted(counts.items()))
        line = next((l for l in insp.stdout.splitlines() if l.startswith("gguf ")), "")
        if insp.returncode != 0 or not line.endswith(want) or f"{len(reader.tensors)} tensors, architecture llama" not in line:
            errors.append(f"{rope_name}: inspect says {line!r} (rc {insp.returncode}), gguf-py reads {want!r}")
        rope_type = (rope or {}).get("rope_type", "default")
        if not any(l.startswith("rope ") and rope_type in l for l in insp.stdout.splitlines()):
            errors.append(f"{rope_name}: inspect shows no {rope_type} RoPE: {insp.stdout[-300:]!r}")
    for e in errors:
        print("MISMATCH", e)
    print(f"{0 if errors else 1} passed, {1 if errors else 0} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

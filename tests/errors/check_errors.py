#!/usr/bin/env python3
"""Runs every row of docs/errors.md: builds the bad input of the row (RECIPES below, keyed by the
row id), runs the linearard binary ($LINEARARD_BIN) and checks exit code 1, exactly one line on
stderr, and that the line is "linearard: error: " + the documented message once its placeholders
are filled in (<tmp>: the row's scratch folder, <pid>: the process id of the run). Fails when a
row has no recipe or a recipe no row.

  check_errors.py table    the table (default)
  check_errors.py guards   the output guards that must succeed: resume into its own --out,
                           --overwrite, tokenize --overwrite, eval --json over an earlier result
  check_errors.py print    prints each recipe's actual message as a table row (for editing the doc)

Fixtures are made here, small and fast: a random LLaMA-shaped model (numpy + safetensors), token
ids as JSON, and the demo teacher's tokenizer (demo/teacher/tokenizer.json).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("LINEARARD_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LINEARARD_BIN") or os.path.join(ROOT, "build", "linearard")
DOC = os.path.join(ROOT, "docs", "errors.md")
PREFIX = "linearard: error: "

# ---------------------------------------------------------------------------------------------
# Fixtures

VOCAB = 2048  # the demo tokenizer's vocabulary, so its token shards fit the model


def tiny_config(**overrides):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": VOCAB,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
         "tie_word_embeddings": False, "torch_dtype": "float32"}
    c.update(overrides)
    return c


def tiny_tensors(c, dtype=np.float32):
    rng = np.random.default_rng(0)
    C, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    H, Hk = c["num_attention_heads"], c["num_key_value_heads"]
    D = C // H
    t = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t.update({p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                  p + "self_attn.q_proj.weight": (H * D, C), p + "self_attn.k_proj.weight": (Hk * D, C),
                  p + "self_attn.v_proj.weight": (Hk * D, C), p + "self_attn.o_proj.weight": (C, H * D),
                  p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                  p + "mlp.down_proj.weight": (C, F)})
    out = {}
    for name, shape in t.items():
        out[name] = (np.ones(shape) if name.endswith("norm.weight") else 0.1 * rng.standard_normal(shape)).astype(dtype)
    return out


def write_model(d, config=None, tensors=None):
    os.makedirs(d, exist_ok=True)
    config = config or tiny_config()
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_file(tensors if tensors is not None else tiny_tensors(config), os.path.join(d, "model.safetensors"))
    return d


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def tokens_json(path, n=400):
    rng = np.random.default_rng(1)
    return write(path, json.dumps(rng.integers(3, VOCAB, size=n).tolist()))


def tokenizer_dir(d):
    os.makedirs(d, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "demo", "teacher", name), os.path.join(d, name))
    return d


TEXT = "In the beginning God created the heaven and the earth.\n" * 40


class Shared:
    """Fixtures made once per run and copied into the rows that need them."""

    def __init__(self, base):
        self.base = base
        self._shards = None
        self._final = None

    def shards(self):
        if self._shards is None:
            d = os.path.join(self.base, "shared")
            tok = tokenizer_dir(os.path.join(d, "tok"))
            text = write(os.path.join(d, "text.txt"), TEXT)
            out = os.path.join(d, "shards")
            run([BIN, "tokenize", "--quiet", "--tokenizer", tok, "--input", text, "--out", out], check=True)
            self._shards = out
        return self._shards

    def final(self):
        """The final/ folder (adapter.json + adapter.safetensors) of a one-step distillation."""
        if self._final is None:
            d = os.path.join(self.base, "shared", "run")
            os.makedirs(d)
            run([BIN, *distill_args(d)], check=True)
            self._final = os.path.join(d, "out", "final")
        return self._final

    def checkpoint_copy(self, t):
        """A row-local copy of final() and of its base model: export --checkpoint <tmp>/ckpt --base <tmp>/model."""
        shutil.copytree(self.final(), f"{t}/ckpt")
        write_model(f"{t}/model")
        return ["export", "--checkpoint", f"{t}/ckpt", "--base", f"{t}/model"]


def run(args, env=None, check=False):
    full_env = dict(os.environ)
    full_env.update({"OMP_NUM_THREADS": "1"})
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT", "LINEARARD_FAKE_FREE_BYTES"):
        full_env.pop(k, None)
    full_env.update(env or {})
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, text=True)
    out, err = p.communicate(timeout=300)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{out}\n{err}")
    return p.pid, p.returncode, out, err


# ---------------------------------------------------------------------------------------------
# Recipes: row id -> function(t, shared) returning (argv after the binary, extra environment).
# t is the row's scratch folder (<tmp> in the table).

ROPE2 = '{"rope_type":"linear","factor":2}'


def distill_args(t, model=None, data=None, out=None, extra=(), **flags):
    """A one-step CPU distillation of the tiny model; flags override the defaults (steps=2)."""
    model = model or write_model(f"{t}/model")
    data = data or tokens_json(f"{t}/tokens.json")
    f = {"device": "cpu", "context": 16, "batch-size": 1, "steps": 1, "lora-rank": 2, "checkpoint-every": 0}
    f.update({k.replace("_", "-"): v for k, v in flags.items()})
    a = ["distill", "--model", model, "--rope-scaling", ROPE2, "--data", data, "--out", out or f"{t}/out"]
    for k, v in f.items():
        a += [f"--{k}", str(v)]
    return a + list(extra)


def safetensors_bytes(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def model_with_weights_file(t, payload):
    d = f"{t}/model"
    os.makedirs(d, exist_ok=True)
    write(f"{d}/config.json", json.dumps(tiny_config()))
    write(f"{d}/model.safetensors", payload)
    return d


def r_config_missing(t, s):
    os.makedirs(f"{t}/model")
    return ["inspect", f"{t}/model"], None


def r_config_not_json(t, s):
    write(f"{t}/model/config.json", '{"model_type": "llama",')
    return ["inspect", f"{t}/model"], None


def r_config_model_type(t, s):
    write_model(f"{t}/model", tiny_config(model_type="gpt2"))
    return ["inspect", f"{t}/model"], None


def r_config_missing_field(t, s):
    c = tiny_config()
    del c["hidden_size"]
    write(f"{t}/model/config.json", json.dumps(c))
    return ["inspect", f"{t}/model"], None


def r_config_heads(t, s):
    write(f"{t}/model/config.json", json.dumps(tiny_config(num_attention_heads=3)))
    return ["inspect", f"{t}/model"], None


def r_config_rope_type(t, s):
    write(f"{t}/model/config.json", json.dumps(tiny_config(rope_scaling={"rope_type": "wavy", "factor": 2.0})))
    return ["inspect", f"{t}/model"], None


def r_config_hidden_act(t, s):
    write(f"{t}/model/config.json", json.dumps(tiny_config(hidden_act="relu")))
    return ["inspect", f"{t}/model"], None


def r_weights_missing(t, s):
    write(f"{t}/model/config.json", json.dumps(tiny_config()))
    return ["inspect", f"{t}/model"], None


def r_safetensors_short(t, s):
    return ["inspect", model_with_weights_file(t, b"\x01\x02\x03")], None


def r_safetensors_header_length(t, s):
    return ["inspect", model_with_weights_file(t, struct.pack("<Q", 1 << 40) + b"{}")], None


def r_safetensors_header_json(t, s):
    bad = b'{"a": [1,'
    return ["inspect", model_with_weights_file(t, struct.pack("<Q", len(bad)) + bad)], None


def r_safetensors_offsets(t, s):
    header = {"model.embed_tokens.weight": {"dtype": "F32", "shape": [VOCAB, 16], "data_offsets": [0, VOCAB * 64]}}
    return ["inspect", model_with_weights_file(t, safetensors_bytes(header, b"\0" * 64))], None


def r_safetensors_dtype(t, s):
    header = {"model.embed_tokens.weight": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}
    return ["inspect", model_with_weights_file(t, safetensors_bytes(header, b"\0" * 4))], None


def r_index_missing_shard(t, s):
    d = write_model(f"{t}/model")
    os.remove(f"{d}/model.safetensors")
    write(f"{d}/model.safetensors.index.json",
          json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}))
    return ["inspect", d], None


def r_index_outside(t, s):
    d = write_model(f"{t}/model")
    os.rename(f"{d}/model.safetensors", f"{t}/elsewhere.safetensors")
    write(f"{d}/model.safetensors.index.json",
          json.dumps({"weight_map": {"model.embed_tokens.weight": "../elsewhere.safetensors"}}))
    return ["inspect", d], None


def r_tensor_missing(t, s):
    c = tiny_config()
    w = tiny_tensors(c)
    del w["model.layers.1.mlp.up_proj.weight"]
    return ["inspect", write_model(f"{t}/model", c, w)], None


def r_tensor_shape(t, s):
    c = tiny_config()
    w = tiny_tensors(c)
    w["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 16), np.float32)
    return ["inspect", write_model(f"{t}/model", c, w)], None


def r_tensor_integer(t, s):
    c = tiny_config()
    w = tiny_tensors(c)
    w["model.layers.0.self_attn.q_proj.weight"] = np.zeros((16, 16), np.int32)
    return ["inspect", write_model(f"{t}/model", c, w)], None


def r_config_not_object(t, s):
    write_model(f"{t}/model")
    write(f"{t}/model/config.json", "[1, 2]")
    return ["inspect", f"{t}/model"], None


def r_tokenizer_missing(t, s):
    text = write(f"{t}/a.txt", TEXT)
    os.makedirs(f"{t}/tok")
    return ["tokenize", "--tokenizer", f"{t}/tok", "--input", text, "--out", f"{t}/out"], None


def r_tokenizer_json(t, s):
    text = write(f"{t}/a.txt", TEXT)
    write(f"{t}/tok/tokenizer.json", '{"model": {"type": "BPE", "vocab": {"a": 0}')
    return ["tokenize", "--tokenizer", f"{t}/tok", "--input", text, "--out", f"{t}/out"], None


def r_tokenizer_type(t, s):
    text = write(f"{t}/a.txt", TEXT)
    write(f"{t}/tok/tokenizer.json", json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 0}}}))
    return ["tokenize", "--tokenizer", f"{t}/tok", "--input", text, "--out", f"{t}/out"], None


def copy_shards(t, s):
    d = f"{t}/shards"
    shutil.copytree(s.shards(), d)
    return d


def eval_tokens_args(t, shards):
    return ["eval", "--model", write_model(f"{t}/model"), "--task", "ppl", "--tokens", shards, "--contexts", "16"]


def r_shard_checksum(t, s):
    d = copy_shards(t, s)
    path = f"{d}/shard-00000.bin"
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF  # a token id in the payload
    write(path, bytes(data))
    return eval_tokens_args(t, d), None


def r_shard_missing(t, s):
    d = copy_shards(t, s)
    os.remove(f"{d}/shard-00000.bin")
    return eval_tokens_args(t, d), None


def r_manifest_json(t, s):
    d = copy_shards(t, s)
    write(f"{d}/manifest.json", "{oops")
    return eval_tokens_args(t, d), None


def r_rope_json(t, s):
    a = distill_args(t)
    a[a.index("--rope-scaling") + 1] = '{"rope_type": linear}'
    return a, None


def r_rope_unknown(t, s):
    a = distill_args(t)
    a[a.index("--rope-scaling") + 1] = '{"rope_type":"warp","factor":2}'
    return a, None


def r_rope_factor(t, s):
    a = distill_args(t)
    a[a.index("--rope-scaling") + 1] = '{"rope_type":"linear","factor":0.5}'
    return a, None


def r_rope_missing(t, s):
    a = distill_args(t)
    i = a.index("--rope-scaling")
    del a[i:i + 2]
    return a, None


def r_steps_zero(t, s):
    return distill_args(t, steps=0), None


def r_lora_rank(t, s):
    return distill_args(t, lora_rank=0), None


def r_lora_targets(t, s):
    return distill_args(t, lora_targets="q,x"), None


def r_lora_targets_full(t, s):
    return distill_args(t, lora_targets="all", train_qkv="full"), None


def r_layers(t, s):
    return distill_args(t, extra=["--layers", "0,9"]), None


def r_relations(t, s):
    return distill_args(t, extra=["--relations", "q,x"]), None


def r_dtype(t, s):
    return distill_args(t, dtype="bf17"), None


def r_device(t, s):
    return distill_args(t, device="tpu"), None


def r_config_key(t, s):
    cfg = write(f"{t}/run.json", json.dumps({"steps": 1, "learning-rate": 0.1}))
    return distill_args(t, extra=["--config", cfg]), None


def r_nproc(t, s):
    return distill_args(t, extra=["--nproc", "0"]), None


def r_overwrite_resume(t, s):
    return distill_args(t, extra=["--overwrite", "--resume", "auto"]), None


def r_resume_latest(t, s):
    return distill_args(t, extra=["--resume", "latest"]), None


def r_out_not_empty(t, s):
    write(f"{t}/out/notes.txt", "mine")
    return distill_args(t), None


def r_out_earlier_run(t, s):
    write(f"{t}/out/options.json", "{}")
    return distill_args(t), None


def r_out_is_file(t, s):
    write(f"{t}/out", "a file")
    return distill_args(t), None


def r_out_inside_model(t, s):
    return distill_args(t, model=write_model(f"{t}/model"), out=f"{t}/model/run"), None


def r_out_is_model_link(t, s):
    write_model(f"{t}/model")
    os.symlink(f"{t}/model", f"{t}/link")
    return distill_args(t, model=f"{t}/model", out=f"{t}/link"), None


def r_out_contains_model(t, s):
    return distill_args(t, model=write_model(f"{t}/work/model"), out=f"{t}/work"), None


def r_pretrain_out_earlier_run(t, s):
    write(f"{t}/out/options.json", "{}")
    return ["pretrain", "--data", tokens_json(f"{t}/tokens.json"), "--out", f"{t}/out", "--device", "cpu"], None


def r_cpt_out_inside_model(t, s):
    m = write_model(f"{t}/model")
    return ["cpt", "--model", m, "--data", tokens_json(f"{t}/tokens.json"), "--out", f"{t}/model/cpt", "--device",
            "cpu", "--context", "16"], None


def r_tokenize_out(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    write(f"{t}/out/shard-00000.bin", b"old")
    return ["tokenize", "--tokenizer", tok, "--input", write(f"{t}/a.txt", TEXT), "--out", f"{t}/out"], None


def r_tokenize_out_in_tokenizer(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    return ["tokenize", "--tokenizer", tok, "--input", write(f"{t}/a.txt", TEXT), "--out", f"{t}/tok/shards"], None


def r_eval_json(t, s):
    m = write_model(f"{t}/model")
    write(f"{t}/results.json", '{"mine": true}')
    return ["eval", "--model", m, "--task", "ppl", "--tokens", copy_shards(t, s), "--contexts", "16",
            "--json", f"{t}/results.json"], None


def r_eval_json_in_model(t, s):
    m = write_model(f"{t}/model")
    return ["eval", "--model", m, "--task", "ppl", "--tokens", copy_shards(t, s), "--contexts", "16",
            "--json", f"{t}/model/results.json"], None


def r_fidelity_no_teacher(t, s):
    a = eval_tokens_args(t, copy_shards(t, s))
    a[a.index("--task") + 1] = "fidelity"
    return a, None


def bbh_args(t, task_json):
    write(f"{t}/bb/t/task.json", task_json)
    return ["eval", "--model", write_model(f"{t}/model"), "--tokenizer", tokenizer_dir(f"{t}/tok"), "--tasks", "bbh",
            "--bigbench", f"{t}/bb", "--bbh-tasks", "t"]


def r_bbh_task_field(t, s):
    return bbh_args(t, '{"examples": [{"input": "x", "target_scores": [1, 0]}]}'), None


def r_bbh_task_json(t, s):
    return bbh_args(t, '{"examples": ['), None


def r_bbh_task_missing(t, s):
    a = bbh_args(t, '{"examples": []}')
    a[a.index("--bbh-tasks") + 1] = "nothing"
    return a, None


HE_PROBLEM = {"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
              "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}


def humaneval_args(t, text, allow=True):
    write(f"{t}/he.jsonl", text)
    return ["eval", "--model", write_model(f"{t}/model"), "--tokenizer", tokenizer_dir(f"{t}/tok"), "--tasks",
            "humaneval", "--humaneval", f"{t}/he.jsonl"] + (["--allow-code-execution"] if allow else [])


def r_humaneval_no_exec(t, s):
    return humaneval_args(t, json.dumps(HE_PROBLEM) + "\n", allow=False), None


def r_humaneval_field(t, s):
    bad = dict(HE_PROBLEM, task_id="T/1")
    del bad["prompt"]
    return humaneval_args(t, json.dumps(HE_PROBLEM) + "\n" + json.dumps(bad) + "\n"), None


def r_humaneval_json(t, s):
    return humaneval_args(t, '{"task_id": "T/0", "prompt": \n'), None


def r_humaneval_empty(t, s):
    return humaneval_args(t, "\n"), None


def r_fidelity_vocab(t, s):
    a = eval_tokens_args(t, copy_shards(t, s))
    a[a.index("--task") + 1] = "fidelity"
    return a + ["--teacher", write_model(f"{t}/teacher", tiny_config(vocab_size=2000))], None


def r_report_out_teacher(t, s):
    m = write_model(f"{t}/model")
    return ["report", "--teacher", m, "--scaled", ROPE2, "--restored", m, "--tasks", "ppl", "--tokens",
            copy_shards(t, s), "--contexts", "16", "--out", f"{t}/model/report"], None


def r_report_from_results(t, s):
    for role in ("teacher", "scaled"):
        write(f"{t}/{role}.json", '{"model": {}, "plan": {}}')
    write(f"{t}/restored.json", '{"mine": true}')
    return ["report", "--from-results", f"{t}/teacher.json", f"{t}/scaled.json", f"{t}/restored.json",
            "--out", f"{t}/report"], None


def r_export_out_base(t, s):
    return s.checkpoint_copy(t) + ["--out", f"{t}/model/merged", "--format", "merged"], None


def r_export_out_checkpoint(t, s):
    return s.checkpoint_copy(t) + ["--out", f"{t}/ckpt/peft"], None


def r_data_empty(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    return ["tokenize", "--tokenizer", tok, "--input", write(f"{t}/empty.txt", ""), "--out", f"{t}/out"], None


def r_data_short(t, s):
    return distill_args(t, data=tokens_json(f"{t}/tokens.json", n=10)), None


def r_data_short_packed(t, s):
    return distill_args(t, data=tokens_json(f"{t}/tokens.json", n=10), packing="packed"), None


def r_packing(t, s):
    return distill_args(t, packing="documents"), None


def r_data_negative(t, s):
    return distill_args(t, data=write(f"{t}/tokens.bin", struct.pack("<4i", 5, 6, -7, 8) * 10)), None


def r_data_id_range(t, s):
    return distill_args(t, data=write(f"{t}/tokens.bin", struct.pack("<4i", 5, 6, VOCAB, 8) * 10)), None


def r_data_shard_missing(t, s):
    d = copy_shards(t, s)
    os.remove(f"{d}/shard-00000.bin")
    return distill_args(t, data=d), None


def r_nonfinite_steps(t, s):
    return distill_args(t, max_nonfinite_steps=-1), None


def r_data_type(t, s):
    return distill_args(t, data=write(f"{t}/tokens.csv", "1,2,3\n")), None


def r_data_utf8(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    bad = write(f"{t}/bad.jsonl", b'{"text": "ok"}\n{"text": "a\xff"}\n')
    return ["tokenize", "--tokenizer", tok, "--input", bad, "--out", f"{t}/out"], None


def r_data_missing(t, s):
    return distill_args(t, data=f"{t}/nothing.bin"), None


def r_disk_full_shards(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    return (["tokenize", "--quiet", "--tokenizer", tok, "--input", write(f"{t}/a.txt", TEXT), "--out", f"{t}/out"],
            {"LINEARARD_FAKE_FREE_BYTES": "1000"})


def r_disk_full_export(t, s):
    return s.checkpoint_copy(t) + ["--out", f"{t}/merged", "--format", "merged"], {"LINEARARD_FAKE_FREE_BYTES": "1000"}


def r_export_out_not_empty(t, s):
    write(f"{t}/export/notes.txt", "mine")
    return s.checkpoint_copy(t) + ["--out", f"{t}/export"], None


def r_arch_config(t, s):
    return ["pretrain", "--arch-config", f"{t}/nothing.json", "--data", tokens_json(f"{t}/tokens.json"), "--out",
            f"{t}/out", "--device", "cpu"], None


def r_disk_fake_bad(t, s):
    tok = tokenizer_dir(f"{t}/tok")
    return (["tokenize", "--quiet", "--tokenizer", tok, "--input", write(f"{t}/a.txt", TEXT), "--out", f"{t}/out"],
            {"LINEARARD_FAKE_FREE_BYTES": "lots"})


def r_env_rank(t, s):
    return distill_args(t), {"WORLD_SIZE": "2", "RANK": "two"}


def r_env_rank_range(t, s):
    return distill_args(t), {"WORLD_SIZE": "2", "RANK": "2"}


def r_env_world(t, s):
    return distill_args(t), {"WORLD_SIZE": "0"}


def r_env_port(t, s):
    return distill_args(t), {"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "70000"}


def r_env_cuda(t, s):
    return distill_args(t, device="cuda"), None



def gguf_bytes(version=3, kvs=(), tensors=(), data=b""):
    """A GGUF file (ggml docs/gguf.md): kvs = (key, type, packed value), tensors = (name, dims, type, offset)."""
    s = lambda x: struct.pack("<Q", len(x)) + x.encode()
    b = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, ty, v in kvs:
        b += s(k) + struct.pack("<I", ty) + v
    for name, dims, ty, off in tensors:
        b += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, off)
    return b + b"\0" * (-len(b) % 32) + data


def gguf_import(t, payload):
    with open(f"{t}/m.gguf", "wb") as f:
        f.write(payload)
    return ["import", f"{t}/m.gguf", "--out", f"{t}/out"], None


GGUF_LLAMA = [("general.architecture", 8, struct.pack("<Q", 5) + b"llama")]


def r_gguf_magic(t, s):
    return gguf_import(t, b"GGUX" + gguf_bytes()[4:])


def r_gguf_version(t, s):
    return gguf_import(t, gguf_bytes(version=1))


def r_gguf_truncated(t, s):
    return gguf_import(t, gguf_bytes()[:12])


def r_gguf_tensor_type(t, s):
    return gguf_import(t, gguf_bytes(kvs=GGUF_LLAMA, tensors=[("w", [32], 99, 0)], data=b"\0" * 128))


def r_gguf_past_end(t, s):
    return gguf_import(t, gguf_bytes(kvs=GGUF_LLAMA, tensors=[("w", [64], 0, 0)], data=b"\0" * 128))


def r_gguf_missing_key(t, s):
    return gguf_import(t, gguf_bytes(kvs=GGUF_LLAMA, tensors=[("w", [32], 0, 0)], data=b"\0" * 128))


def r_gguf_export_dynamic(t, s):
    c = tiny_config(rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    m = tokenizer_dir(write_model(f"{t}/model", config=c))
    return ["export", "--model", m, "--format", "gguf", "--out", f"{t}/m.gguf"], None


def r_gguf_export_exists(t, s):
    m = tokenizer_dir(write_model(f"{t}/model"))
    write(f"{t}/m.gguf", b"old")
    return ["export", "--model", m, "--format", "gguf", "--out", f"{t}/m.gguf"], None


def r_gguf_export_type(t, s):
    m = tokenizer_dir(write_model(f"{t}/model"))
    return ["export", "--model", m, "--format", "gguf", "--out", f"{t}/m.gguf", "--gguf-type", "q4"], None


def r_sample_tokens(t, s):
    m = tokenizer_dir(write_model(f"{t}/model"))
    return ["sample", "--model", m, "--out", f"{t}/sampled", "--tokens", "0"], None


def r_sample_temperature(t, s):
    m = tokenizer_dir(write_model(f"{t}/model"))
    return ["sample", "--model", m, "--out", f"{t}/sampled", "--tokens", "64", "--temperature", "-1"], None


RECIPES = {
    "sample-tokens": r_sample_tokens,
    "sample-temperature": r_sample_temperature,
    "config-missing": r_config_missing,
    "config-not-json": r_config_not_json,
    "config-model-type": r_config_model_type,
    "config-missing-field": r_config_missing_field,
    "config-heads": r_config_heads,
    "config-rope-type": r_config_rope_type,
    "config-hidden-act": r_config_hidden_act,
    "weights-missing": r_weights_missing,
    "safetensors-short": r_safetensors_short,
    "safetensors-header-length": r_safetensors_header_length,
    "safetensors-header-json": r_safetensors_header_json,
    "safetensors-offsets": r_safetensors_offsets,
    "safetensors-dtype": r_safetensors_dtype,
    "gguf-magic": r_gguf_magic,
    "gguf-version": r_gguf_version,
    "gguf-truncated": r_gguf_truncated,
    "gguf-tensor-type": r_gguf_tensor_type,
    "gguf-past-end": r_gguf_past_end,
    "gguf-missing-key": r_gguf_missing_key,
    "index-missing-shard": r_index_missing_shard,
    "index-outside": r_index_outside,
    "tensor-missing": r_tensor_missing,
    "tensor-shape": r_tensor_shape,
    "tensor-integer": r_tensor_integer,
    "config-not-object": r_config_not_object,
    "tokenizer-missing": r_tokenizer_missing,
    "tokenizer-json": r_tokenizer_json,
    "tokenizer-type": r_tokenizer_type,
    "shard-checksum": r_shard_checksum,
    "shard-missing": r_shard_missing,
    "manifest-json": r_manifest_json,
    "rope-json": r_rope_json,
    "rope-unknown": r_rope_unknown,
    "rope-factor": r_rope_factor,
    "rope-missing": r_rope_missing,
    "steps-zero": r_steps_zero,
    "lora-rank": r_lora_rank,
    "lora-targets": r_lora_targets,
    "lora-targets-full": r_lora_targets_full,
    "layers": r_layers,
    "relations": r_relations,
    "dtype": r_dtype,
    "device": r_device,
    "config-key": r_config_key,
    "nproc": r_nproc,
    "overwrite-resume": r_overwrite_resume,
    "resume-latest": r_resume_latest,
    "out-not-empty": r_out_not_empty,
    "out-earlier-run": r_out_earlier_run,
    "out-is-file": r_out_is_file,
    "out-inside-model": r_out_inside_model,
    "out-is-model-link": r_out_is_model_link,
    "out-contains-model": r_out_contains_model,
    "pretrain-out-earlier-run": r_pretrain_out_earlier_run,
    "cpt-out-inside-model": r_cpt_out_inside_model,
    "tokenize-out": r_tokenize_out,
    "tokenize-out-in-tokenizer": r_tokenize_out_in_tokenizer,
    "eval-json": r_eval_json,
    "eval-json-in-model": r_eval_json_in_model,
    "fidelity-no-teacher": r_fidelity_no_teacher,
    "fidelity-vocab": r_fidelity_vocab,
    "bbh-task-field": r_bbh_task_field,
    "bbh-task-json": r_bbh_task_json,
    "bbh-task-missing": r_bbh_task_missing,
    "humaneval-no-exec": r_humaneval_no_exec,
    "humaneval-field": r_humaneval_field,
    "humaneval-json": r_humaneval_json,
    "humaneval-empty": r_humaneval_empty,
    "report-out-teacher": r_report_out_teacher,
    "report-from-results": r_report_from_results,
    "export-out-base": r_export_out_base,
    "export-out-checkpoint": r_export_out_checkpoint,
    "data-empty": r_data_empty,
    "data-short": r_data_short,
    "data-short-packed": r_data_short_packed,
    "packing": r_packing,
    "data-negative": r_data_negative,
    "data-id-range": r_data_id_range,
    "data-shard-missing": r_data_shard_missing,
    "nonfinite-steps": r_nonfinite_steps,
    "data-type": r_data_type,
    "data-utf8": r_data_utf8,
    "data-missing": r_data_missing,
    "disk-full-shards": r_disk_full_shards,
    "disk-full-export": r_disk_full_export,
    "export-out-not-empty": r_export_out_not_empty,
    "gguf-export-dynamic": r_gguf_export_dynamic,
    "gguf-export-exists": r_gguf_export_exists,
    "gguf-export-type": r_gguf_export_type,
    "arch-config": r_arch_config,
    "disk-fake-bad": r_disk_fake_bad,
    "env-rank": r_env_rank,
    "env-rank-range": r_env_rank_range,
    "env-world": r_env_world,
    "env-port": r_env_port,
    "env-cuda": r_env_cuda,
}

# Rows whose message depends on the machine: run only where the condition holds.
def has_cuda_device():
    return any(os.path.exists(f"/dev/nvidia{i}") for i in range(8))


ONLY_IF = {"env-cuda": lambda: not has_cuda_device()}

# ---------------------------------------------------------------------------------------------
# The table


def read_table(path):
    """Rows of the table: `| id | kind | bad input | `message` |` -> {id: message}."""
    rows = {}
    for line in open(path, encoding="utf-8"):
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 4:
            raise SystemExit(f"{path}: row with {len(cells)} cells, expected 4: {line}")
        row_id = cells[0].strip("`")
        message = cells[3]
        if not (message.startswith("`") and message.endswith("`")):
            raise SystemExit(f"{path}: row {row_id}: the message must be in backticks")
        if row_id in rows:
            raise SystemExit(f"{path}: duplicate row id {row_id}")
        rows[row_id] = message[1:-1]
    return rows


def run_row(row_id, base, shared):
    t = os.path.join(base, row_id)
    os.makedirs(t)
    args, env = RECIPES[row_id](t, shared)
    pid, rc, out, err = run([BIN, *args], env=env)
    return t, pid, rc, out, err


def main_table(base, print_only=False):
    shared = Shared(base)
    rows = {} if print_only else read_table(DOC)
    failures = []
    if not print_only:
        for row_id in rows:
            if row_id not in RECIPES:
                failures.append(f"{row_id}: row has no recipe in {__file__}")
        for row_id in RECIPES:
            if row_id not in rows:
                failures.append(f"{row_id}: recipe has no row in docs/errors.md")
    checked = skipped = 0
    for row_id in RECIPES:
        if row_id not in rows and not print_only:
            continue
        if row_id in ONLY_IF and not ONLY_IF[row_id]():
            print(f"skip {row_id} (not on this machine)")
            skipped += 1
            continue
        start = time.time()
        t, pid, rc, out, err = run_row(row_id, base, shared)
        lines = err.splitlines()
        if print_only:
            shown = [l.replace(t, "<tmp>").replace(str(pid), "<pid>") for l in lines]
            msg = shown[0][len(PREFIX):] if len(shown) == 1 and shown[0].startswith(PREFIX) else repr(shown)
            print(f"| `{row_id}` | | | `{msg.replace('|', chr(92) + '|')}` |  rc={rc}")
            continue
        want = PREFIX + rows[row_id].replace("<tmp>", t).replace("<pid>", str(pid))
        problems = []
        if rc != 1:
            problems.append(f"exit code {rc}, expected 1")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr, expected 1")
        if not lines or lines[0] != want:
            problems.append(f"stderr {lines!r}\n      expected {want!r}")
        status = "ok" if not problems else "FAIL"
        print(f"{status:4} {row_id} ({time.time() - start:.1f} s)")
        if problems:
            failures.append(f"{row_id}: " + "; ".join(problems) + f"\n      stdout: {out[-500:]!r}")
        checked += 1
    if print_only:
        return 0
    print(f"{checked} rows checked, {skipped} skipped, {len(rows)} in docs/errors.md")
    for f in failures:
        print("FAILED", f)
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# Guards that must let the right runs through


def expect(cond, what, failures, err=""):
    """One check; on failure the end of the run's stderr is shown."""
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        print("     stderr: " + err.strip()[-600:].replace("\n", "\n     "))
        failures.append(what)


def main_guards(base):
    failures = []
    t = os.path.join(base, "guards")
    os.makedirs(t)
    shared = Shared(base)

    # Training: a run, a refused rerun, a resume into its own --out, then --overwrite.
    args = distill_args(t, steps=2, checkpoint_every=1)
    _, rc, out, err = run([BIN, *args])
    expect(rc == 0, "distill into a new --out", failures, err)
    _, rc, _, err = run([BIN, *args])
    expect(rc == 1 and "holds an earlier run" in err, "distill into its earlier --out without --resume is refused",
           failures, err)
    more = distill_args(t, model=f"{t}/model", data=f"{t}/tokens.json", steps=3, checkpoint_every=1)
    _, rc, out, err = run([BIN, *more, "--resume", "latest"])
    expect(rc == 0 and "resumed from" in err,
           "--resume latest continues the run in its own --out", failures, err)
    expect(os.path.isdir(f"{t}/out/checkpoints/step-000003"), "the resumed run reached step 3", failures)
    _, rc, out, err = run([BIN, *more, "--resume", "auto"])
    expect(rc == 0, "--resume auto into its own --out", failures, err)
    write(f"{t}/out/notes.txt", "mine")
    _, rc, out, err = run([BIN, *args, "--overwrite"])
    expect(rc == 0, "--overwrite starts afresh in a non-empty --out", failures, err)
    expect(not os.path.exists(f"{t}/out/checkpoints/step-000003"), "--overwrite removed the earlier run's checkpoints",
           failures)
    expect(os.path.exists(f"{t}/out/notes.txt"), "--overwrite kept a file that is not the run's", failures)
    lines = open(f"{t}/out/metrics.jsonl").read().splitlines()
    expect(len(lines) == 2, f"--overwrite started a fresh metrics.jsonl ({len(lines)} lines, expected 2)", failures)

    # tokenize --overwrite: stale shards of an earlier run go.
    tok = tokenizer_dir(f"{t}/tok")
    text = write(f"{t}/a.txt", TEXT)
    write(f"{t}/shards/shard-00007.bin", b"stale")
    _, rc, _, err = run([BIN, "tokenize", "--quiet", "--tokenizer", tok, "--input", text, "--out", f"{t}/shards"])
    expect(rc == 1 and "not empty" in err, "tokenize into a non-empty --out is refused", failures)
    _, rc, _, err = run([BIN, "tokenize", "--quiet", "--tokenizer", tok, "--input", text, "--out", f"{t}/shards",
                         "--overwrite"])
    replaced = not os.path.exists(f"{t}/shards/shard-00007.bin") and os.path.exists(f"{t}/shards/manifest.json")
    expect(rc == 0 and replaced,
           "tokenize --overwrite replaces the earlier shards", failures, err)

    # eval --json: an earlier result is replaced, a foreign file only with --overwrite.
    m = f"{t}/model"
    ev = [BIN, "eval", "--model", m, "--task", "ppl", "--tokens", f"{t}/shards", "--contexts", "16", "--json"]
    _, rc, _, err = run(ev + [f"{t}/r.json"])
    expect(rc == 0, "eval --json into a new file", failures, err)
    _, rc, _, err = run(ev + [f"{t}/r.json"])
    expect(rc == 0, "eval --json over its earlier result", failures, err)
    write(f"{t}/mine.json", "{}")
    _, rc, _, err = run(ev + [f"{t}/mine.json", "--overwrite"])
    expect(rc == 0 and "plan" in open(f"{t}/mine.json").read(), "eval --json --overwrite replaces another file",
           failures, err)

    # report --overwrite writes into a non-empty folder.
    write(f"{t}/report/notes.txt", "mine")
    rep = [BIN, "report", "--teacher", m, "--scaled", ROPE2, "--restored", m, "--tasks", "ppl", "--tokens",
           f"{t}/shards", "--contexts", "16", "--out", f"{t}/report"]
    _, rc, _, err = run(rep)
    expect(rc == 1 and "not empty" in err, "report into a non-empty --out is refused", failures)
    _, rc, _, err = run(rep + ["--overwrite"])
    expect(rc == 0 and os.path.exists(f"{t}/report/report.json"), "report --overwrite", failures, err)

    # No disk space for the checkpoint: the run stops with the message and leaves no partial checkpoint.
    _, rc, _, err = run([BIN, *distill_args(t, out=f"{t}/full", steps=1)], env={"LINEARARD_FAKE_FREE_BYTES": "1000"})
    last = err.strip().splitlines()[-1] if err.strip() else ""
    expect(rc == 1 and last.startswith(PREFIX) and "not enough free disk space" in last,
           "a checkpoint write without free disk space fails with one error line", failures, err)
    left = os.listdir(f"{t}/full/checkpoints") if os.path.isdir(f"{t}/full/checkpoints") else []
    expect(left == [], f"... and leaves nothing in checkpoints/ ({left})", failures, err)

    print(f"{len(failures)} guard checks failed")
    return 1 if failures else 0


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "table"
    # Resolved: messages that print canonical paths (export) then match <tmp> too.
    base = os.path.realpath(tempfile.mkdtemp(prefix="linearard_errors_"))
    rc = 1
    try:
        start = time.time()
        if mode == "table":
            rc = main_table(base)
        elif mode == "print":
            rc = main_table(base, print_only=True)
        elif mode == "guards":
            rc = main_guards(base)
        else:
            raise SystemExit(f"unknown mode {mode}")
        print(f"{mode}: {time.time() - start:.1f} s")
        return rc
    finally:
        if rc == 0 or os.environ.get("LINEARARD_KEEP_ERRORS_TMP") is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

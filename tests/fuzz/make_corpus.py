"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (checked in; re-run to refresh them).

    .venv/bin/python tests/fuzz/make_corpus.py --tokenizers DIR --linearard BIN [--io-fixtures DIR]

Valid seeds come from the reference libraries (safetensors, transformers configs) or the tool
itself (`linearard tokenize` shards and manifest); tokenizer.json seeds are the test fixtures'
tokenizers (DIR/<name>/tokenizer.json, tests/tokenizer/make_tokenizer_fixtures.py) cut down to a
few hundred ids. A few broken seeds per target start the fuzzer next to each error path.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np
import safetensors.numpy
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))


def out_dir(target):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def raw_safetensors(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    d = out_dir("safetensors_header")
    tensors = {
        "model.embed_tokens.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "model.norm.weight": np.ones(4, dtype=np.float16),
        "step": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "mask": np.array([True, False, True]),
    }
    put(d, "valid_mixed", safetensors.numpy.save(tensors, metadata={"format": "pt"}))
    put(d, "valid_one", safetensors.numpy.save({"w": np.zeros((2, 2), dtype=np.float64)}))
    put(d, "valid_empty", safetensors.numpy.save({}))
    put(d, "bf16_u8", raw_safetensors({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                                       "b": {"dtype": "U8", "shape": [1, 4], "data_offsets": [4, 8]}},
                                      bytes(8)))
    put(d, "bad_truncated", safetensors.numpy.save({"w": np.zeros(8, dtype=np.float32)})[:-5])
    put(d, "bad_overlap", raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                           "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                                          bytes(8)))
    put(d, "bad_duplicate", struct.pack("<Q", 2 * 60) +
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],'
        b'"data_offsets":[0,1]}}'.ljust(120) + b"x")
    put(d, "bad_huge_shape", raw_safetensors(
        {"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}))
    put(d, "bad_length", struct.pack("<Q", 2**63) + b"{}")


def index_seeds(fixtures_io):
    """Seeds for fuzz_safetensors_index, whose scratch folder holds two shards: a (F32 [2, 3]) and
    b (I64 scalar) in model-00001-of-00002.safetensors, c (BF16 [3]) in model-00002-of-00002."""
    d = out_dir("safetensors_index")
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    put(d, "valid.json", json.dumps({"metadata": {"total_size": 38}, "weight_map": {"a": s1, "b": s1, "c": s2}},
                                    indent=2))
    put(d, "valid_subset.json", json.dumps({"weight_map": {"c": s2}}))
    put(d, "bad_wrong_shard.json", json.dumps({"weight_map": {"a": s2}}))
    put(d, "bad_missing_shard.json", json.dumps({"weight_map": {"a": "model-00003-of-00003.safetensors"}}))
    put(d, "bad_not_string.json", json.dumps({"weight_map": {"a": 1}}))
    put(d, "bad_path.json", json.dumps({"weight_map": {"a": "../" + s1, "b": "/etc/passwd"}}))
    put(d, "bad_no_map.json", json.dumps({"metadata": {}}))
    if fixtures_io:  # an index written by huggingface_hub (tests/io/make_fixtures.py)
        with open(os.path.join(fixtures_io, "sharded", "model.safetensors.index.json"), "rb") as f:
            put(d, "hf_index.json", f.read())


def config_seeds():
    d = out_dir("model_config")
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=256, max_position_embeddings=512)
    cases = {
        "llama_default": transformers.LlamaConfig(**small),
        "llama_linear": transformers.LlamaConfig(**small, rope_parameters={
            "rope_type": "linear", "factor": 8.0, "rope_theta": 10000.0}),
        "llama_yarn": transformers.LlamaConfig(**small, rope_parameters={
            "rope_type": "yarn", "factor": 4.0, "rope_theta": 500000.0,
            "original_max_position_embeddings": 128, "beta_fast": 32.0, "beta_slow": 1.0}),
        "llama3": transformers.LlamaConfig(**small, rope_parameters={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 256, "rope_theta": 500000.0}),
        "mistral": transformers.MistralConfig(**small, sliding_window=128),
        "qwen2": transformers.Qwen2Config(**small, use_sliding_window=True, sliding_window=64),
    }
    for name, cfg in cases.items():
        put(d, name + ".json", cfg.to_json_string())
    v4 = dict(small, model_type="llama", rope_theta=10000.0, eos_token_id=[2, 3], bos_token_id=1,
              rope_scaling={"type": "dynamic", "factor": 2.0}, torch_dtype="bfloat16", head_dim=16)
    put(d, "v4_dynamic.json", json.dumps(v4))
    longrope = dict(small, model_type="llama", original_max_position_embeddings=256,
                    rope_scaling={"rope_type": "longrope", "short_factor": [1.0] * 8,
                                  "long_factor": [2.0] * 8, "attention_factor": 1.2})
    put(d, "longrope.json", json.dumps(longrope))
    put(d, "override_linear.json", '{"rope_type": "linear", "factor": 8}')
    put(d, "override_yarn_v4.json", '{"rope_scaling": {"type": "yarn", "factor": 16.0}}')
    put(d, "bad_type.json", json.dumps(dict(small, model_type="gpt2")))
    put(d, "bad_heads.json", json.dumps(dict(small, model_type="llama", num_key_value_heads=3)))
    put(d, "bad_float.json", json.dumps(dict(small, model_type="llama", hidden_size=64.5)))
    put(d, "regress_float_int.json", json.dumps(dict(small, model_type="llama", hidden_size=1e300)))
    put(d, "regress_deep.json", '{"model_type": "llama", "rope_scaling": ' + "[" * 5000 + "]" * 5000 + "}")
    put(d, "bad_syntax.json", '{"model_type": "llama", "hidden_size": ')


def shrink_tokenizer(path, keep_ids):
    """The tokenizer.json at `path` with only vocabulary ids < keep_ids and the merges among them."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    model = j["model"]
    vocab = {t: i for t, i in model["vocab"].items() if i < keep_ids}
    model["vocab"] = vocab
    merges = []
    for m in model.get("merges", []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["merges"] = merges
    if model.get("unk_token") is not None and model["unk_token"] not in vocab:
        model["unk_token"] = None
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def tokenizer_seeds(fixtures):
    d = out_dir("tokenizer_json")
    for name in sorted(os.listdir(fixtures)):
        path = os.path.join(fixtures, name, "tokenizer.json")
        if os.path.isfile(path):
            put(d, name + ".json", shrink_tokenizer(path, 400))
    minimal = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3},
                         "merges": ["a b"], "unk_token": "<unk>", "fuse_unk": True}}
    put(d, "minimal.json", json.dumps(minimal))
    put(d, "bad_merge.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}}))
    # Regression seeds of bugs the fuzzer found (fixed in src/tokenizer/decoder.cpp, bpe.cpp).
    tiny = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
    put(d, "regress_decoder_null.json", json.dumps({"model": tiny, "decoder": {"type": "Sequence", "decoders": [None]}}))
    put(d, "regress_strip_empty.json", json.dumps(
        {"model": tiny, "decoder": {"type": "Strip", "content": "", "start": 2**31 - 1, "stop": 0}}))
    put(d, "regress_strip_float.json", json.dumps({"model": tiny, "decoder": {"type": "Strip", "content": "a", "start": 1e30}}))
    put(d, "regress_metaspace_empty.json", json.dumps({"model": tiny, "decoder": {"type": "Metaspace", "replacement": ""}}))
    put(d, "regress_vocab_id.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 2**31 - 1, "b": 1.5e10}, "merges": []}}))
    put(d, "bad_regex.json", json.dumps({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["},
                                                           "behavior": "Isolated"},
                                         "model": {"type": "BPE", "vocab": {}, "merges": []}}))


def shard_seeds(linearard, tokenizer_dir):
    ds = out_dir("token_shard")
    dm = out_dir("token_manifest")
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "in.jsonl")
        with open(text, "w") as f:
            for line in ["In the beginning", "God created the heaven and the earth.", "", "Amen."]:
                f.write(json.dumps({"text": line}) + "\n")
        out = os.path.join(tmp, "tok")
        subprocess.run([linearard, "tokenize", "--tokenizer", tokenizer_dir, "--input", text, "--out", out,
                        "--shard-tokens", "8", "--quiet", "--threads", "1"], check=True)
        with open(os.path.join(out, "manifest.json"), "rb") as f:
            manifest = f.read()
        shards = sorted(n for n in os.listdir(out) if n != "manifest.json")
        for n in shards[:3]:
            with open(os.path.join(out, n), "rb") as f:
                put(ds, n, f.read())
    with open(os.path.join(ds, shards[0]), "rb") as f:
        first = f.read()
    put(ds, "bad_truncated", first[:-3])
    put(ds, "bad_magic", b"LARDTOKX" + first[8:])
    put(ds, "bad_header_only", first[:64])
    put(dm, "valid.json", manifest)
    m = json.loads(manifest)
    m["shards"][0]["xxh64"] = "not-hex"
    put(dm, "bad_checksum.json", json.dumps(m))
    m = json.loads(manifest)
    m["total_tokens"] = 1e300
    put(dm, "regress_float.json", json.dumps(m))
    put(dm, "bad_format.json", json.dumps({"format": "other"}))
    put(dm, "bad_types.json", json.dumps({"format": "linearard-token-shards", "vocab_size": -1,
                                          "total_tokens": "x", "shards": {}}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizers", required=True, help="fixture folder with <name>/tokenizer.json")
    p.add_argument("--linearard", required=True, help="linearard binary (for token shards)")
    p.add_argument("--io-fixtures", help="tests/io fixture folder (for an index written by huggingface_hub)")
    a = p.parse_args()
    safetensors_seeds()
    index_seeds(a.io_fixtures)
    config_seeds()
    tokenizer_seeds(a.tokenizers)
    shard_seeds(a.linearard, os.path.join(a.tokenizers, "gpt2"))


if __name__ == "__main__":
    main()

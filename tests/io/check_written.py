"""Reads files that the C++ writer produced with the reference `safetensors` package and checks
them against DIR/expected.json (written by tests/io/test_safetensors.cpp from the test's inputs).
Exits 1 with one line per mismatch.

usage: check_written.py DIR
expected.json = {"files": {relpath: {"metadata": {...}, "tensors": {name: {dtype, shape, hex}}}},
                 "sharded": {reldir: {"metadata": {...}, "files": [...], "tensors": {...}}}}
"""
import json
import os
import sys

import torch
from safetensors import safe_open

TAGS = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.float8_e5m2: "F8_E5M2",
        torch.float8_e4m3fn: "F8_E4M3", torch.int16: "I16", torch.uint16: "U16", torch.float16: "F16",
        torch.bfloat16: "BF16", torch.int32: "I32", torch.uint32: "U32", torch.float32: "F32",
        torch.float64: "F64", torch.int64: "I64", torch.uint64: "U64"}
errors = []


def check_tensor(where, name, t, want):
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()
    got = {"dtype": TAGS[t.dtype], "shape": list(t.shape), "hex": raw}
    for key in ("dtype", "shape", "hex"):
        if got[key] != want[key]:
            errors.append(f"{where}: tensor '{name}' {key} is {got[key]!r}, expected {want[key]!r}")


def check_file(path, metadata, tensors):
    with safe_open(path, framework="pt") as f:
        if (f.metadata() or {}) != metadata:
            errors.append(f"{path}: metadata {f.metadata()} != {metadata}")
        names = set(f.keys())
        for name in names - set(tensors):
            errors.append(f"{path}: unexpected tensor '{name}'")
        for name in names & set(tensors):
            check_tensor(path, name, f.get_tensor(name), tensors[name])
        return names


def main(root):
    with open(os.path.join(root, "expected.json")) as f:
        expected = json.load(f)
    for rel, spec in expected.get("files", {}).items():
        path = os.path.join(root, rel)
        missing = set(spec["tensors"]) - check_file(path, spec["metadata"], spec["tensors"])
        errors.extend(f"{path}: tensor '{n}' missing" for n in sorted(missing))
    for rel, spec in expected.get("sharded", {}).items():
        d = os.path.join(root, rel)
        if sorted(os.listdir(d)) != sorted(spec["files"]):
            errors.append(f"{d}: files {sorted(os.listdir(d))}, expected {sorted(spec['files'])}")
            continue
        index_path = os.path.join(d, "model.safetensors.index.json")
        if not os.path.exists(index_path):  # one shard: HF writes model.safetensors, no index
            weight_map = {n: "model.safetensors" for n in spec["tensors"]}
        else:
            with open(index_path) as f:
                index = json.load(f)
            weight_map = index["weight_map"]
            total = sum(len(t["hex"]) // 2 for t in spec["tensors"].values())
            if index["metadata"].get("total_size") != total:
                errors.append(f"{index_path}: total_size {index['metadata'].get('total_size')} != {total}")
        if set(weight_map) != set(spec["tensors"]):
            errors.append(f"{d}: weight_map names {sorted(weight_map)} != {sorted(spec['tensors'])}")
            continue
        seen = set()
        for shard in sorted(set(weight_map.values())):
            want = {n: spec["tensors"][n] for n, s in weight_map.items() if s == shard}
            seen |= check_file(os.path.join(d, shard), spec["metadata"], want)
        if seen != set(spec["tensors"]):
            errors.append(f"{d}: shards hold {sorted(seen)}, expected {sorted(spec['tensors'])}")
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

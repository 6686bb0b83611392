"""Independent check of `linearard export` outputs with transformers, PEFT and safetensors.
Called by test_export.cpp; exits 1 with a message on the first mismatch.

  check_export.py logits --base B --expected E.safetensors [--peft P] [--merged M]
      E holds "tokens" (B, T) int64 and "logits" (B, T, V) float32: the C++ student (base weights,
      student RoPE, adapter as a separate q/k/v delta). P is loaded the way its README says
      (base + student_config.json, then PeftModel.from_pretrained); M with AutoModelForCausalLM.
      Both must give E's logits to 1e-5 relative (max |a - b| / max |b|). Also checks the PEFT
      config, that the merged weights differ from the base exactly in the --targets modules
      (default q_proj,k_proj,v_proj), and that the base's other files were copied verbatim.
  check_export.py config C1.json X1.json [C2.json X2.json ...]
      AutoConfig reads each student config C as X says: X = {"rope_parameters": {...},
      "max_position_embeddings": N}. transformers 5.x reads the v4 rope_scaling mirror first when it
      is present, so this also checks that the mirror says the same as rope_parameters.
"""
import argparse
import glob
import json
import math
import os
import sys

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file

TOL = 1e-5


def die(msg):
    print("check_export: FAIL:", msg)
    sys.exit(1)


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def logits_of(model, tokens):
    with torch.no_grad():
        return model(input_ids=tokens).logits.float()


def load_weights(model_dir):
    out = {}
    for f in sorted(glob.glob(os.path.join(model_dir, "*.safetensors"))):
        with safe_open(f, "pt") as h:
            if (h.metadata() or {}).get("format") != "pt":
                die(f"{f}: metadata format is not 'pt'")
        out.update(load_file(f))
    return out


def check_peft(args, tokens, expected):
    from peft import PeftModel
    with open(os.path.join(args.peft, "adapter_config.json")) as f:
        cfg = json.load(f)
    for key, want in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("bias", "none"),
                      ("inference_mode", True), ("use_rslora", False), ("use_dora", False)):
        if cfg.get(key) != want:
            die(f"adapter_config.json: {key} = {cfg.get(key)!r}, expected {want!r}")
    if sorted(cfg["target_modules"]) != sorted(args.targets):
        die(f"adapter_config.json: target_modules {cfg['target_modules']}, expected {args.targets}")
    # PEFT's own reader of adapter_config.json (LoraConfig.from_pretrained) sees the trained values.
    from peft import LoraConfig
    lora = LoraConfig.from_pretrained(args.peft)
    for key, want in (("r", args.lora_r), ("lora_alpha", args.lora_alpha), ("lora_dropout", args.lora_dropout)):
        if getattr(lora, key) != want:
            die(f"LoraConfig.from_pretrained: {key} = {getattr(lora, key)!r}, expected {want!r}")
    with safe_open(os.path.join(args.peft, "adapter_model.safetensors"), "pt") as h:
        if h.metadata().get("format") != "pt":
            die("adapter_model.safetensors: metadata format is not 'pt'")
        keys = list(h.keys())
    if not keys or not all(k.startswith("base_model.model.model.layers.") for k in keys):
        die(f"adapter_model.safetensors: unexpected keys {keys[:3]}")
    modules = {k.split(".")[-3] for k in keys}  # ...{self_attn,mlp}.<module>.lora_{A,B}.weight
    if modules != set(args.targets):
        die(f"adapter_model.safetensors: LoRA tensors for {sorted(modules)}, expected {sorted(args.targets)}")
    # The recipe of the adapter's README.
    config = transformers.AutoConfig.from_pretrained(os.path.join(args.peft, "student_config.json"))
    base = transformers.AutoModelForCausalLM.from_pretrained(args.base, config=config, dtype=torch.float32,
                                                             attn_implementation="eager")
    model = PeftModel.from_pretrained(base, args.peft).eval()
    wrapped = {n.split(".")[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    if wrapped != set(args.targets):
        die(f"PEFT wrapped {sorted(wrapped)}, expected {sorted(args.targets)}")
    got = logits_of(model, tokens)
    err = rel_err(got, expected)
    print(f"PEFT adapter on base + student_config.json vs C++ student: rel err {err:.2e}")
    if not err <= TOL:
        die(f"PEFT logits differ from the C++ student: rel err {err:.3e} > {TOL}")
    # Control: the same adapter on the base's own config (native RoPE) must NOT match; otherwise
    # this test could not tell whether the student RoPE reached the model.
    native = transformers.AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32,
                                                               attn_implementation="eager")
    control = rel_err(logits_of(PeftModel.from_pretrained(native, args.peft).eval(), tokens), expected)
    print(f"control, adapter on the native-RoPE base: rel err {control:.2e}")
    if control < 1e-3:
        die("the student RoPE makes no difference to the logits; the test cannot detect a lost RoPE")
    return got


def check_merged(args, tokens, expected, peft_logits):
    model = transformers.AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    if args.expect_class and type(model).__name__ != args.expect_class:
        die(f"merged checkpoint loads as {type(model).__name__}, expected {args.expect_class}")
    got = logits_of(model, tokens)
    err = rel_err(got, expected)
    print(f"merged checkpoint ({type(model).__name__}) vs C++ student: rel err {err:.2e}")
    if not err <= TOL:
        die(f"merged logits differ from the C++ student: rel err {err:.3e} > {TOL}")
    if peft_logits is not None:
        e2 = rel_err(got, peft_logits)
        print(f"merged vs PEFT: rel err {e2:.2e}")
        if not e2 <= TOL:
            die(f"merged logits differ from PEFT's: rel err {e2:.3e}")
    base_w, merged_w = load_weights(args.base), load_weights(args.merged)
    if sorted(base_w) != sorted(merged_w):
        die(f"tensor names differ: {sorted(set(base_w) ^ set(merged_w))[:5]}")
    for name, w in base_w.items():
        m = merged_w[name]
        if m.dtype != w.dtype or m.shape != w.shape:
            die(f"{name}: {m.dtype} {tuple(m.shape)} vs base {w.dtype} {tuple(w.shape)}")
        targeted = any(name.endswith(f".{p}.weight") for p in args.targets)
        if targeted == torch.equal(m, w):
            die(f"{name}: {'unchanged' if targeted else 'changed'} by the merge")
    if args.expect_sharded and not os.path.exists(os.path.join(args.merged, "model.safetensors.index.json")):
        die("merged checkpoint is not sharded")
    for f in os.listdir(args.base):
        src = os.path.join(args.base, f)
        if f.endswith((".safetensors", ".index.json")) or f in ("config.json", "README.md") or os.path.isdir(src):
            continue
        dst = os.path.join(args.merged, f)
        if not os.path.exists(dst) or open(src, "rb").read() != open(dst, "rb").read():
            die(f"{f} was not copied verbatim into the merged checkpoint")
    if any(os.path.exists(os.path.join(args.base, f)) for f in ("tokenizer.json", "tokenizer.model")):
        transformers.AutoTokenizer.from_pretrained(args.merged)  # loads as a model directory


def run_logits(args):
    exp = load_file(args.expected)
    tokens, expected = exp["tokens"], exp["logits"]
    peft_logits = check_peft(args, tokens, expected) if args.peft else None
    if args.merged:
        check_merged(args, tokens, expected, peft_logits)


def check_config(config_path, expected_path):
    with open(expected_path) as f:
        want = json.load(f)
    config = transformers.AutoConfig.from_pretrained(config_path)
    got = dict(config.rope_parameters)
    for key, value in want["rope_parameters"].items():
        g = got.get(key)
        same = (math.isclose(g, value, rel_tol=1e-12) if isinstance(value, float) and isinstance(g, (int, float))
                else g == value)
        if not same:
            die(f"{config_path}: rope_parameters[{key!r}] = {g!r}, expected {value!r} (all: {got})")
    if config.max_position_embeddings != want["max_position_embeddings"]:
        die(f"{config_path}: max_position_embeddings {config.max_position_embeddings}, "
            f"expected {want['max_position_embeddings']}")
    print(f"config {os.path.basename(config_path)}: rope_parameters {got}, "
          f"max_position_embeddings {config.max_position_embeddings}")


def run_config(args):
    if not args.pairs or len(args.pairs) % 2:
        die("config mode takes pairs CONFIG.json EXPECTED.json")
    for i in range(0, len(args.pairs), 2):
        check_config(args.pairs[i], args.pairs[i + 1])


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("--base", required=True)
    lg.add_argument("--expected", required=True)
    lg.add_argument("--peft")
    lg.add_argument("--merged")
    lg.add_argument("--expect-sharded", action="store_true")
    lg.add_argument("--expect-class", help="the transformers class the merged checkpoint must load as")
    lg.add_argument("--lora-r", type=int, default=4)
    lg.add_argument("--lora-alpha", type=float, default=8.0)
    lg.add_argument("--lora-dropout", type=float, default=0.05)
    lg.add_argument("--targets", default="q_proj,k_proj,v_proj", type=lambda s: s.split(","),
                    help="the adapter's modules (comma list)")
    cf = sub.add_parser("config")
    cf.add_argument("pairs", nargs="+")
    args = p.parse_args()
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    run_logits(args) if args.mode == "logits" else run_config(args)
    print("check_export: OK")


if __name__ == "__main__":
    main()

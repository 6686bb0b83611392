"""Writes the GGUF test files of tests/gguf under $LINEARARD_FIXTURES_DIR/gguf with PyPI `gguf`
(the reference writer and numpy dequantizer) and the references the C++ tests compare against:

  quants_v3.gguf, quants_v2.gguf   one tensor per supported ggml type; quants_ref.bin holds what
                                   gguf.quants.dequantize returns for each (float32, in file order)
  tiny_bpe.gguf                    a random-init LlamaForCausalLM (transformers) with a byte-level
                                   BPE vocabulary (tokenizer.ggml.model gpt2, pre smollm), Q/K rows
                                   permuted as llama.cpp's convert_hf_to_gguf.py does, mixed types
  tiny_spm.gguf (version 2)        the same kind of model with a SentencePiece-style vocabulary
                                   (tokenizer.ggml.model llama: scores, token types, byte tokens)
  tiny_*.ref/                      what transformers makes of each file with
                                   from_pretrained(dir, gguf_file=...): config.json, the model's
                                   float32 tensors (model.safetensors), the tokenizer ids of
                                   strings.json (ids.json) and the logits of a fixed sequence
  bad/*.gguf                       broken files for the one-line errors (test_gguf_errors.cpp)
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.environ.get("LINEARARD_FIXTURES_DIR", "build/fixtures"), "gguf")
RNG = np.random.default_rng(16)

# Types gguf.quants can quantize (the writer's own encoders), and K-quants it can only decode:
# their blocks are random bytes with finite half-precision scales.
QUANTIZABLE = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]
# Byte offsets of the half-precision scale fields in each K-quant block (ggml-common.h).
K_SCALE_FIELDS = {Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}


def random_kquant_blocks(qtype, rows, cols):
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block_elems
    raw = RNG.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in K_SCALE_FIELDS[qtype]:
        scale = RNG.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block_elems * block_bytes)


def encode(qtype, values):
    """(quantized bytes or float array, dequantized float32 reference) for a 2-D float32 array."""
    if qtype == Q.F32:
        return values, values
    if qtype in QUANTIZABLE:
        data = gguf.quants.quantize(values, qtype)
    else:
        data = random_kquant_blocks(qtype, *values.shape)
    return data, gguf.quants.dequantize(data, qtype).astype(np.float32)


def add_encoded(writer, name, qtype, values):
    data, ref = encode(qtype, values)
    if qtype == Q.F32:
        writer.add_tensor(name, values.astype(np.float32))
    elif qtype in (Q.F16,):
        writer.add_tensor(name, data)
    else:
        writer.add_tensor(name, data, raw_dtype=qtype)  # shape from the bytes
    return ref


def set_version(path, version):
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", version))


def write_quants():
    writer = gguf.GGUFWriter(os.path.join(OUT, "quants_v3.gguf"), "llama")
    refs = []
    types = QUANTIZABLE + list(K_SCALE_FIELDS)
    for qtype in types:
        values = RNG.standard_normal((3, 512)).astype(np.float32)
        values[0, :7] = [0.0, -0.0, 1e-8, -65504.0, 3.0e-5, 1.0, -1.0]  # zeros, subnormal/extreme halves
        refs.append(add_encoded(writer, f"t.{qtype.name}", qtype, values))
    writer.add_uint32("test.count", len(types))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(os.path.join(OUT, "quants_ref.bin"), "wb") as f:
        for r in refs:
            f.write(np.ascontiguousarray(r, dtype="<f4").tobytes())
    # Version 2 has the same little-endian layout (docs/gguf.md): only the version field differs.
    data = open(os.path.join(OUT, "quants_v3.gguf"), "rb").read()
    with open(os.path.join(OUT, "quants_v2.gguf"), "wb") as f:
        f.write(data)
    set_version(os.path.join(OUT, "quants_v2.gguf"), 2)


# --- tokenizers -------------------------------------------------------------------------------

CORPUS = [
    "The quick brown fox jumps over the lazy dog. ",
    "It was the best of times, it was the worst of times; numbers 1234567 and 3.14159! ",
    "Hello world, hello World: HELLO?  Tabs\tand\nnewlines\n\n  spaces.   ",
    "Ünïcödé tëxt, naïve café, Ελληνικά, русский, 中文字符, 日本語のテキスト, emoji 🙂🚀. ",
    "don't can't I'm you're we've they'll she'd  -- (parens) [brackets] {braces} <tags> ",
] * 20


def byte_level_tokenizer():
    """A small byte-level BPE (as SmolLM2's), trained with `tokenizers` on CORPUS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    global ORIGINAL_BPE
    ORIGINAL_BPE = tok
    j = json.loads(tok.to_str())
    vocab = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    types = [3 if t in specials else 1 for t in tokens]
    return tokens, merges, types


def spm_tokenizer():
    """A small SentencePiece BPE with byte fallback (as Llama 2's), trained with sentencepiece."""
    import io
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, model_type="bpe",
                                   vocab_size=420, byte_fallback=True, character_coverage=1.0,
                                   minloglevel=2, hard_vocab_limit=False)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        # llama.cpp's llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte.
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1)
    return tokens, scores, types


# --- tiny models ------------------------------------------------------------------------------

def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute: HF rotate-half rows -> llama.cpp interleaved rows."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# The ggml type of each tensor kind (a different mix per model, all dims multiples of 256).
MIX_BPE = {"token_embd": Q.Q8_0, "attn_q": Q.Q4_K, "attn_k": Q.Q5_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_1,
           "ffn_gate": Q.Q2_K, "ffn_up": Q.Q3_K, "ffn_down": Q.Q5_0, "output": Q.F16}
MIX_SPM = {"token_embd": Q.F16, "attn_q": Q.Q4_0, "attn_k": Q.Q8_0, "attn_v": Q.Q5_1, "attn_output": Q.BF16,
           "ffn_gate": Q.Q6_K, "ffn_up": Q.Q4_K, "ffn_down": Q.F32, "output": Q.Q8_0}


def write_tiny(name, tokenizer_kind, mix, tied, version, rope_scaling=None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    if tokenizer_kind == "gpt2":
        tokens, merges, types = byte_level_tokenizer()
        scores = None
    else:
        tokens, scores, types = spm_tokenizer()
        merges = None
    torch.manual_seed(16)
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=tied)
    model = LlamaForCausalLM(cfg).eval()
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    path = os.path.join(OUT, name + ".gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(50000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(len(tokens))
    if rope_scaling:
        w.add_rope_scaling_type(rope_scaling["type"])
        w.add_rope_scaling_factor(rope_scaling["factor"])
        w.add_rope_scaling_orig_ctx_len(rope_scaling["original"])
    w.add_tokenizer_model(tokenizer_kind)
    if tokenizer_kind == "gpt2":
        w.add_tokenizer_pre("smollm")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(False)
        w.add_add_space_prefix(False)
    else:
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
    # Tensors, named as llama.cpp's convert script names them, q/k permuted.
    H = cfg.num_attention_heads
    KV = cfg.num_key_value_heads
    add_encoded(w, "token_embd.weight", mix["token_embd"], sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", (1 + 0.1 * RNG.standard_normal(cfg.hidden_size)).astype(np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", (1 + 0.1 * RNG.standard_normal(cfg.hidden_size)).astype(np.float32))
        add_encoded(w, f"blk.{i}.attn_q.weight", mix["attn_q"], permute(sd[p + "self_attn.q_proj.weight"], H, H))
        add_encoded(w, f"blk.{i}.attn_k.weight", mix["attn_k"], permute(sd[p + "self_attn.k_proj.weight"], H, KV))
        add_encoded(w, f"blk.{i}.attn_v.weight", mix["attn_v"], sd[p + "self_attn.v_proj.weight"])
        add_encoded(w, f"blk.{i}.attn_output.weight", mix["attn_output"], sd[p + "self_attn.o_proj.weight"])
        add_encoded(w, f"blk.{i}.ffn_gate.weight", mix["ffn_gate"], sd[p + "mlp.gate_proj.weight"])
        add_encoded(w, f"blk.{i}.ffn_up.weight", mix["ffn_up"], sd[p + "mlp.up_proj.weight"])
        add_encoded(w, f"blk.{i}.ffn_down.weight", mix["ffn_down"], sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", (1 + 0.1 * RNG.standard_normal(cfg.hidden_size)).astype(np.float32))
    if not tied:
        add_encoded(w, "output.weight", mix["output"], sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if version != 3:
        set_version(path, version)
    write_transformers_reference(name, ORIGINAL_BPE if tokenizer_kind == "gpt2" else None)


ORIGINAL_BPE = None

STRINGS = [
    "", " ", "  ", "\n", "\t", "Hello world", " Hello world", "Hello  world", "hello\nworld\n\n",
    "The quick brown fox jumps over the lazy dog.", "It's 2024: 3.14159, 1,000,000 and 42!",
    "don't can't I'm you're we've they'll she'd", "Ünïcödé naïve café", "Ελληνικά русский",
    "中文字符 日本語のテキスト", "emoji 🙂🚀 and 👍🏽", "<|im_start|>user\nHi<|im_end|>", "a<|endoftext|>b",
    "   leading and trailing   ", "tabs\t\tand\r\nCRLF", "x" * 50, "ab" * 33, "zzz qqq jjj", "\u00a0nbsp\u2003em",
    "mixed123abc456", "UPPER lower MiXeD", "(parens) [brackets] {braces} <tags>", "a.b,c;d:e!f?g",
    "ﬁ ligature ﬀ", "e\u0301 combining", "\u200bzero width", "🙂" * 5, "1 22 333 4444 55555",
]


def edge_strings():
    out = list(STRINGS)
    words = "the of and to in is was it for on with as his that he by at from be this had not are but".split()
    extra = "🙂 é ß Ω 中 \t \n 1 23 ' . , ! ? - ( )".split(" ")
    for k in range(300):
        n = int(RNG.integers(1, 12))
        parts = [str(RNG.choice(words + extra)) for _ in range(n)]
        seps = [str(RNG.choice([" ", "  ", "", "\n", " \n", "\t"])) for _ in range(n)]
        out.append("".join(p + s for p, s in zip(parts, seps)))
    return out


def write_transformers_reference(name, original=None):
    """What transformers' own GGUF loader makes of the file: the reference of test_gguf_import."""
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ref = os.path.join(OUT, name + ".ref")
    os.makedirs(ref, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=name + ".gguf", dtype=torch.float32).eval()
    with open(os.path.join(ref, "config.json"), "w") as f:
        f.write(model.config.to_json_string())
    save_file({k: v.detach().contiguous().numpy() for k, v in model.state_dict().items()
               if not (model.config.tie_word_embeddings and k == "lm_head.weight")},
              os.path.join(ref, "model.safetensors"))
    ids = (torch.arange(64) * 7919 + 13) % model.config.vocab_size
    with torch.no_grad():
        logits = model(ids.unsqueeze(0)).logits[0].float().numpy()
    save_file({"ids": ids.numpy().astype(np.int64), "logits": logits}, os.path.join(ref, "logits.safetensors"))
    tok = AutoTokenizer.from_pretrained(OUT, gguf_file=name + ".gguf")
    strings = edge_strings()
    with open(os.path.join(ref, "ids.json"), "w") as f:
        # "original": the tokenizer the GGUF was made from (Digits + ByteLevel, as SmolLM2's), which
        # llama.cpp's "smollm" split reproduces; transformers' GGUF loader splits with the GPT-2
        # regex only and differs where whitespace precedes a digit.
        j = {"strings": strings, "transformers": [tok(s).input_ids for s in strings]}
        if original is not None:
            j["original"] = [original.encode(s).ids for s in strings]
        json.dump(j, f, ensure_ascii=False)


# --- broken files -----------------------------------------------------------------------------

def write_bad():
    bad = os.path.join(OUT, "bad")
    os.makedirs(bad, exist_ok=True)
    good = open(os.path.join(OUT, "quants_v3.gguf"), "rb").read()
    r = gguf.GGUFReader(os.path.join(OUT, "quants_v3.gguf"))

    def info_fields(i):
        """Byte offsets of tensor info i's n_dims, type and offset fields (name, n_dims, dims, type, offset)."""
        start = r.tensors[i].field.offset
        n_dims_at = start + 8 + struct.unpack_from("<Q", good, start)[0]
        type_at = n_dims_at + 4 + 8 * struct.unpack_from("<I", good, n_dims_at)[0]
        return n_dims_at, type_at, type_at + 4

    _, type_at, offset_at = info_fields(0)
    q4_0_dims_at = info_fields(QUANTIZABLE.index(Q.Q4_0))[0] + 4

    def put(name, data):
        with open(os.path.join(bad, name), "wb") as f:
            f.write(data)

    put("bad_magic.gguf", b"GGUX" + good[4:])
    put("bad_version.gguf", good[:4] + struct.pack("<I", 7) + good[8:])
    put("truncated_header.gguf", good[:40])
    put("truncated_data.gguf", good[:len(good) - 100])
    put("unknown_type.gguf", good[:type_at] + struct.pack("<I", 99) + good[type_at + 4:])
    put("past_end.gguf", good[:offset_at] + struct.pack("<Q", 1 << 30) + good[offset_at + 8:])
    put("misaligned.gguf", good[:offset_at] + struct.pack("<Q", 3) + good[offset_at + 8:])
    # A Q4_0 tensor whose first dimension (512) becomes 500: not a whole number of blocks.
    put("bad_blocks.gguf", good[:q4_0_dims_at] + struct.pack("<Q", 500) + good[q4_0_dims_at + 8:])
    # A model whose llama.feed_forward_length (512) disagrees with its FFN tensors.
    tiny = open(os.path.join(OUT, "tiny_bpe.gguf"), "rb").read()
    key = b"llama.feed_forward_length"
    at = tiny.index(key) + len(key) + 4
    assert struct.unpack_from("<I", tiny, at)[0] == 512
    put("bad_shape.gguf", tiny[:at] + struct.pack("<I", 768) + tiny[at + 4:])
    # A model file without llama.block_count.
    w = gguf.GGUFWriter(os.path.join(bad, "missing_key.gguf"), "llama")
    w.add_embedding_length(256)
    w.add_tensor("token_embd.weight", np.zeros((4, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    write_quants()
    write_tiny("tiny_bpe", "gpt2", MIX_BPE, tied=True, version=3)
    write_tiny("tiny_spm", "llama", MIX_SPM, tied=False, version=2)
    write_bad()
    print("gguf fixtures in", OUT)


if __name__ == "__main__":
    sys.exit(main())

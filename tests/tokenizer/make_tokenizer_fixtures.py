#!/usr/bin/env python3
"""Reference data for the tokenizer parity tests.

Trains small tokenizers of every kind linearard reads, with the reference libraries, on the King
James Bible as printed by the Debian `bible` program (package bible-kjv, scripts/setup.sh):
  gpt2     byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex), added tokens with flags
  llama3   byte-level BPE, Split(LLaMA-3 regex) + ByteLevel, ignore_merges, BOS template
  qwen2    byte-level BPE, NFC + Split(Qwen2 regex) + ByteLevel, no BOS
  smollm   byte-level BPE, Digits(individual) + ByteLevel
  llama2   SentencePiece-style BPE with byte fallback: Prepend + Replace normalizers
  mistral  the same model with the Metaspace pre-tokenizer (prepend_scheme "first"), BOS from
           tokenizer_config.json (no post_processor)
  sp       a SentencePiece tokenizer.model (python sentencepiece trainer)
and writes, per tokenizer, refs.jsonl: {"text", "ids", "decoded"} for >= 1 MB of corpus
documents (chapters) and a list of edge cases. ids come from transformers' AutoTokenizer (its
backend tokenizer for the corpus, which carries transformers' BOS/EOS rule); decoded from
tokenizers' decode without skipping special tokens; for sp from the sentencepiece library with
tokenizer_config.json's add_bos_token / add_eos_token. Note: transformers 5.17 ignores those two
flags when tokenizer.json exists (the "mistral" case sets add_bos_token but gets no BOS).
Also writes the CLI inputs (corpus.jsonl, invalid UTF-8 files) and their expected ids.
"""
import json
import os
import subprocess
import sys
import time

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = os.path.join(os.environ.get("LINEARARD_FIXTURES_DIR", "build/fixtures"), "tokenizer")
CORPUS_BYTES = 1_200_000  # parity corpus; the acceptance criterion asks for >= 1 MB

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "\n\n\n", "\r", "Hello world", " Hello", "Hello  world   ", "a\tb\nc\r\nd",
    "I'm you're he'll they'd she's IT'S WE'VE Don'T", "1234567890 3.14159 1,000,000 ٣٤٥ ²³ ¼", "12345678901234567890",
    "😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ok", "日本語のテキスト 中文文本 한국어", "e\u0301 n\u0303 cafe\u0301 Å Å ﬁ ǅ İstanbul",
    "a     b", "   leading", "trailing   ", "\u00a0nbsp\u2003em\u3000ideo\u2028ls", "tabs\t\t\tand\n \n  \nlines",
    "a" * 3000, "Supercalifragilisticexpialidocious" * 40, "x1y2z3" * 500,
    "Привет мир", "مرحبا بالعالم", "שָׁלוֹם", "ελληνικά", "\x00\x01\x7f control",
    "\u2581 already metaspace \u2581\u2581x", "<0x41> looks like a byte token", "<unk> and <s> and </s> inside text",
    "Hello<|endoftext|>world", "<|endoftext|>", "<<|endoftext|>>", "<|begin_of_text|>x<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>", "peace peaceful peace. (peace)", "  <custom>  after <custom>x",
    "In the beginning God created the heaven and the earth.\n\n  2 And the earth was without form",
]


def log(msg):
    print(f"[tokenizer fixtures] {msg}", file=sys.stderr, flush=True)


def kjv_chapters():
    """Chapters of the KJV as documents ("Genesis 1\n\n  1 In the beginning ...")."""
    try:
        text = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("make_tokenizer_fixtures.py: the `bible` program is missing: install Debian package bible-kjv "
                 "(scripts/setup.sh)")
    docs, cur = [], []
    for line in text.split("\n"):
        # A chapter heading is a non-indented line like "Genesis 1" after a blank line.
        if line and not line.startswith(" ") and line.split()[-1].isdigit() and cur and len("\n".join(cur)) > 200:
            docs.append("\n".join(cur).strip("\n") + "\n")
            cur = []
        cur.append(line)
    if cur:
        docs.append("\n".join(cur).strip("\n") + "\n")
    return text, docs


def save(tok, name, config):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", **config}, f, indent=1)
    return d


def train_byte_level(name, train_text, pre, normalizer=None, specials=(), ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_text, trainer)
    return tok


def sp_style_json(train_text, normalizer, pre_tokenizer, decoder, post):
    """LLaMA-2 layout: <unk> <s> </s>, 256 <0xXX> byte tokens, then the learnt pieces."""
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.Replace(" ", "\u2581")
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.train_from_iterator(train_text, trainers.BpeTrainer(vocab_size=2500, limit_alphabet=120, show_progress=False))
    learnt = json.loads(t.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(learnt["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    j = json.loads(Tokenizer(models.BPE()).to_str())
    j["model"] = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": learnt["merges"]}
    j["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    j["normalizer"], j["pre_tokenizer"], j["decoder"], j["post_processor"] = normalizer, pre_tokenizer, decoder, post
    return Tokenizer.from_str(json.dumps(j))


def build_tokenizers(train_text):
    dirs = {}
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok = train_byte_level("gpt2", train_text, bl, specials=["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.add_tokens([AddedToken("<custom>", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("peace", single_word=True, normalized=True)])
    dirs["gpt2"] = save(tok, "gpt2", {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})

    split = lambda pat: pre_tokenizers.Split(Regex(pat), behavior="isolated", invert=False)
    nobl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = train_byte_level("llama3", train_text, pre_tokenizers.Sequence([split(LLAMA3_PATTERN), nobl]),
                           specials=specials, ignore_merges=True)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])])
    dirs["llama3"] = save(tok, "llama3", {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})

    tok = train_byte_level("qwen2", train_text, pre_tokenizers.Sequence([split(QWEN2_PATTERN), nobl]),
                           normalizer=normalizers.NFC(), specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    dirs["qwen2"] = save(tok, "qwen2", {"bos_token": None, "eos_token": "<|endoftext|>", "add_bos_token": False})

    tok = train_byte_level("smollm", train_text, pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), bl]), specials=["<|endoftext|>"])
    dirs["smollm"] = save(tok, "smollm", {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})

    sp_decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    llama2_norm = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    bos_template = {"type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    tok = sp_style_json(train_text, llama2_norm, None, sp_decoder, bos_template)
    dirs["llama2"] = save(tok, "llama2", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                          "add_bos_token": True, "add_eos_token": False})
    meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    tok = sp_style_json(train_text, None, meta, dict(meta), None)
    dirs["mistral"] = save(tok, "mistral", {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True})
    return dirs


def build_sentencepiece(train_file):
    import sentencepiece as spm
    d = os.path.join(OUT, "sp")
    os.makedirs(d, exist_ok=True)
    spm.SentencePieceTrainer.train(input=train_file, model_prefix=os.path.join(d, "tokenizer"), vocab_size=2000,
                                   model_type="bpe", byte_fallback=True, character_coverage=0.9995,
                                   max_sentence_length=20000, minloglevel=2, num_threads=2)
    os.remove(os.path.join(d, "tokenizer.vocab"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": True, "add_eos_token": True, "bos_token": "<s>", "eos_token": "</s>"}, f)
    return d, spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))


def write_refs(d, texts, ids, decoded, kinds, lossless):
    """lossless: the reference's decode(encode(text) without BOS/EOS) gives the text back."""
    with open(os.path.join(d, "refs.jsonl"), "w") as f:
        for t, i, s, k, rt in zip(texts, ids, decoded, kinds, lossless):
            f.write(json.dumps({"kind": k, "text": t, "ids": i, "decoded": s, "lossless": rt}, ensure_ascii=False) + "\n")


def main():
    t0 = time.time()
    os.makedirs(OUT, exist_ok=True)
    full_text, chapters = kjv_chapters()
    corpus, size = [], 0
    for c in chapters:
        if size >= CORPUS_BYTES:
            break
        corpus.append(c)
        size += len(c.encode())
    train_text = chapters[-400:]  # train on the end of the book, test on the beginning
    train_file = os.path.join(OUT, "train.txt")
    with open(train_file, "w") as f:
        f.write("".join(train_text))
    log(f"corpus: {len(corpus)} chapters, {size / 1e6:.2f} MB; training text {sum(map(len, train_text)) / 1e6:.2f} MB")

    dirs = build_tokenizers(train_text)
    log(f"trained HF tokenizers in {time.time() - t0:.1f} s")
    from transformers import AutoTokenizer  # after training: the import is the slow part
    texts = corpus + EDGE_CASES
    kinds = ["corpus"] * len(corpus) + ["edge"] * len(EDGE_CASES)
    for name, d in dirs.items():
        hf = AutoTokenizer.from_pretrained(d)
        ids = [e.ids for e in hf.backend_tokenizer.encode_batch(corpus)]
        ids += [hf(t)["input_ids"] for t in EDGE_CASES]
        decoded = hf.backend_tokenizer.decode_batch(ids, skip_special_tokens=False)
        plain = [e.ids for e in hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]
        lossless = [t == r for t, r in zip(texts, hf.backend_tokenizer.decode_batch(plain, skip_special_tokens=False))]
        write_refs(d, texts, ids, decoded, kinds, lossless)
    log(f"HF references in {time.time() - t0:.1f} s")

    d, sp = build_sentencepiece(train_file)
    ids = [[sp.bos_id()] + sp.encode(t) + [sp.eos_id()] for t in texts]
    write_refs(d, texts, ids, [sp.decode(i) for i in ids], kinds, [sp.decode(sp.encode(t)) == t for t in texts])
    dirs["sp"] = d

    # CLI inputs: the corpus as JSONL documents, and invalid UTF-8 with its replaced reference.
    with open(os.path.join(OUT, "corpus.jsonl"), "w") as f:
        for c in corpus[:300]:
            f.write(json.dumps({"id": len(c), "text": c}) + "\n")
    bad = b"Hello \xff world \xe2\x82 end \xed\xa0\x80 x \xc0\xaf \xf0\x9f\x98 caf\xc3\xa9\n"
    with open(os.path.join(OUT, "invalid_utf8.txt"), "wb") as f:
        f.write(bad)
    replaced = bad.decode("utf-8", errors="replace")
    hf = AutoTokenizer.from_pretrained(dirs["llama3"])
    with open(os.path.join(OUT, "invalid_utf8_expected.json"), "w") as f:
        json.dump({"text": replaced, "ids": hf(replaced)["input_ids"]}, f)
    with open(os.path.join(OUT, "kjv_full.txt"), "w") as f:
        f.write(full_text)
    with open(os.path.join(OUT, "tokenizers.txt"), "w") as f:
        f.write("\n".join(sorted(dirs)) + "\n")
    log(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()

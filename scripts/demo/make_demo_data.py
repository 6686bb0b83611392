"""Data of the embedded demo, from the King James Bible (public domain; Debian package bible-kjv,
printed by its `bible` program). Deterministic: no randomness at all.

  python make_demo_data.py OUT_DIR [--tokenizer-dir DIR]

Chapters are split by index: every 10th chapter (i % 10 == 0) is held out from everything (the
evaluation text); chapters with i % 10 == 5 are the distillation text (held in: the teacher saw them
in pre-training, the evaluation never does); the rest is pre-training text. With --tokenizer-dir,
a byte-level BPE tokenizer (vocabulary 2048) is trained with HF tokenizers on the pre-training text
and saved there (tokenizer.json, tokenizer_config.json), and the pre-training text is encoded to
OUT_DIR/pretrain.bin (int32 ids, EOS between chapters).
"""
import argparse
import json
import os
import subprocess

VOCAB = 2048  # small enough for a CPU model, large enough for whole common words


def chapters():
    text = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    docs, cur = [], []
    for line in text.split("\n"):
        # A chapter heading ("Genesis 1") is a non-indented line ending in a number.
        if line and not line.startswith(" ") and line.split()[-1].isdigit() and cur:
            docs.append(" ".join(" ".join(cur).split()))
            cur = []
            continue
        if line.strip():
            # Verse lines look like "  1 In the beginning ...": drop the verse number.
            words = line.split()
            cur.append(" ".join(words[1:] if words and words[0].isdigit() else words))
    if cur:
        docs.append(" ".join(" ".join(cur).split()))
    return [d for d in docs if d]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--tokenizer-dir")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    docs = chapters()
    split = {"eval": [d for i, d in enumerate(docs) if i % 10 == 0],
             "distill": [d for i, d in enumerate(docs) if i % 10 == 5],
             "pretrain": [d for i, d in enumerate(docs) if i % 10 != 0]}
    for name, part in split.items():
        with open(os.path.join(args.out_dir, f"{name}.txt"), "w") as f:
            f.write("\n".join(part) + "\n")
    print({k: f"{len(v)} chapters, {sum(map(len, v)) / 1e6:.2f} MB" for k, v in split.items()})
    if not args.tokenizer_dir:
        return
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(split["pretrain"], trainer)
    os.makedirs(args.tokenizer_dir, exist_ok=True)
    tok.save(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    with open(os.path.join(args.tokenizer_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "model_max_length": 128}, f, indent=1)
    import numpy as np
    eos = tok.token_to_id("<|endoftext|>")
    ids = []
    for enc in tok.encode_batch(split["pretrain"]):
        ids.extend(enc.ids + [eos])
    np.asarray(ids, dtype=np.int32).tofile(os.path.join(args.out_dir, "pretrain.bin"))
    print(f"tokenizer: vocab {tok.get_vocab_size()}, pre-training tokens {len(ids)}")


if __name__ == "__main__":
    main()

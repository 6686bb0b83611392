"""Text of the real-model restoration run (scripts/gpu_restore.sh), from two different sources, so
that the evaluation text is not the distillation text's kind:

  train.jsonl   the King James Bible, consecutive chapters joined into documents of at least
                DOC_CHARS characters (~10K tokens: a training block of 4096 tokens must fit in one
                document), one per line (public domain; Debian bible-kjv, printed by its `bible`
                program)
  heldout.jsonl modern English quotations, one per line: Debian's `fortunes` cookie files
                (fortune-mod's literature, wisdom, science, work, people, politics, ... collections)

  python make_corpus.py OUT_DIR

Deterministic. The fortunes are a different source, era and register than the training text.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
from make_demo_data import chapters as kjv_chapters  # noqa: E402  (the demo's KJV chapter reader)

FORTUNES = "/usr/share/games/fortunes"
# The English prose collections of Debian's `fortunes` (not the offensive or ASCII-art ones).
COLLECTIONS = ["literature", "wisdom", "science", "work", "people", "politics", "men-women", "education",
               "humorists", "law", "love", "medicine", "miscellaneous", "pets", "platitudes", "food",
               "sports", "definitions", "goedel", "linuxcookie", "computers", "cookie", "fortunes",
               "riddles", "drugs", "ethnic", "family", "kids", "magic", "news", "paradoxum", "songs-poems",
               "startrek", "wisdom", "zippy"]


DOC_CHARS = 40000


def join_chapters(chapters):
    docs, cur = [], []
    for c in chapters:
        cur.append(c)
        if sum(map(len, cur)) >= DOC_CHARS:
            docs.append(" ".join(cur))
            cur = []
    if cur:
        docs.append(" ".join(cur))
    return docs


def fortunes():
    out, seen = [], set()
    for name in COLLECTIONS:
        path = os.path.join(FORTUNES, name)
        if not os.path.isfile(path) or name in seen:
            continue
        seen.add(name)
        with open(path, encoding="utf-8", errors="replace") as f:
            for entry in f.read().split("\n%\n"):
                entry = entry.strip("%\n ")
                if len(entry) > 40:
                    out.append(entry)
    return out


def write_jsonl(path, docs):
    with open(path + ".tmp", "w") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    train, held = join_chapters(kjv_chapters()), fortunes()
    if not held:
        sys.exit(f"make_corpus: no fortunes under {FORTUNES} (Debian package fortunes)")
    write_jsonl(os.path.join(out, "train.jsonl"), train)
    write_jsonl(os.path.join(out, "heldout.jsonl"), held)
    print(f"train: {len(train)} KJV documents, {sum(map(len, train)) / 1e6:.2f} MB; "
          f"heldout: {len(held)} fortunes, {sum(map(len, held)) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""Text of the real-model restoration run (scripts/gpu_restore.sh), from three different sources, so
that the evaluation text is not the distillation text's kind:

  train.jsonl   the King James Bible, consecutive chapters joined into documents of at least
                DOC_CHARS characters (~10K tokens: a training block of 4096 tokens must fit in one
                document), one per line (public domain; Debian bible-kjv, printed by its `bible`
                program)
  heldout.jsonl modern English quotations, one per line: Debian's `fortunes` cookie files
                (fortune-mod's literature, wisdom, science, work, people, politics, ... collections)
  prompts.jsonl the starts of the `prompted` teacher samples (`linearard sample --prompts
                prompts.jsonl --prompt-tokens P`: each sample begins with one P-token window of
                these documents and the teacher writes the rest): modern English prose of several
                registers, none of it from the held-out source (no fortunes) nor the Bible. One
                document a line, {"text": ..., "source": ...}; a document is consecutive prose
                paragraphs of one file, about DOC_PROMPT_CHARS characters.

  python make_corpus.py OUT_DIR

Deterministic (for the same Debian packages). The fortunes are a different source, era and
register than the training text.

Why prompts: the teacher's samples from document starts are narrow (sweep 4: logits KL 0.053 on
them, 0.123 on held-out text); a window of real text at each sample's start sets a topic and a
register the teacher then continues in its own words. Sources (Debian main; `prepare_carry.sh`
installs the packages), each a register of its own, each capped at SOURCE_CHARS characters taken
evenly over the source (every k-th document), so that no source fills the prompts:

  faq        question and answer            debian-faq: the Debian GNU/Linux FAQ (text edition)
  reference  tutorial, how-to               debian-reference-en: the Debian Reference (text)
  policy     normative specification        debian-policy: the Debian Policy Manual (text)
  devref     procedures, duties             developers-reference: the Debian Developer's Reference
  gnu        advice, style guide            gnu-standards: the GNU Coding Standards and
                                            "Information for Maintainers of GNU Software"
  history    narrative, essay, constitution debian-history: the Debian project history, Ian
                                            Murdock's manifesto, the Debian constitution
  python     explanatory, teaching          python3-doc: the Python tutorial, HOWTOs and FAQ (3.11
                                            on bookworm; reStructuredText sources, markup stripped)
  manpages   reference manual               manpages: Linux man-pages sections 5 and 7 (file
                                            formats, overviews), rendered by man(1)
  wordnet    dictionary glosses, examples   wordnet-base: WordNet 3.0 synsets (every 4th), as
                                            "word, synonym (noun): gloss; \"example\""
  licenses   legal                          base-files: /usr/share/common-licenses (GPL, LGPL,
                                            Apache, MPL, GFDL, Artistic, CC0)

Only paragraphs that read as prose are kept (reflowed to one line each: at least PARA_MIN_CHARS
characters and 12 words, mostly letters, no table rules or shell prompts, ending like a sentence);
code, tables and headings are dropped. On Debian bookworm: 991 documents, 2.1 MB of text (2.2 MB
corpus.tar.xz with the rest), 482K tokens of SmolLM2's tokenizer, 7,041 windows of 64 tokens
(`linearard sample` takes consecutive non-overlapping windows of each document and shuffles them by
its --seed) against 976 samples of a 4M-token run: every sample starts from a different window.
No 10-word run of the held-out fortunes occurs in the prompts.
"""
import glob
import gzip
import json
import os
import re
import subprocess
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


# --- prompts ------------------------------------------------------------------------------------
DOC_PROMPT_CHARS = 2000  # a prompt document: consecutive prose paragraphs of one file
SOURCE_CHARS = 300000    # at most this much text of one source
PARA_MIN_CHARS = 100
PYTHON_DOCS = "/usr/share/doc/python3*/html/_sources"  # python3-doc (python3.11-doc on bookworm)


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def reflow(block):
    return " ".join(block.split())


def is_prose(para):
    """A reflowed paragraph that reads as English prose (not code, a table, a heading or a list
    of names)."""
    words = para.split()
    if len(para) < PARA_MIN_CHARS or len(words) < 12:
        return False
    if re.search(r"\|.*\||\+--|-{4}|={4}|\*{4}|^[$#>] |>>>|\.\.\.\.|[{};]\s*$", para):
        return False
    letters = sum(c.isalpha() or c == " " for c in para)
    if letters < 0.85 * len(para):
        return False
    if sum(len(w) for w in words) / len(words) > 9:  # paths, URLs, identifiers
        return False
    return para[-1] in ".?!:)\"'”’"


def paragraphs(text, indented_is_code=False):
    """Prose paragraphs (blank-line separated blocks, reflowed) of a plain-text document. With
    indented_is_code (reStructuredText), a block whose lines are all indented is a literal block."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        if indented_is_code and all(ln[:1] in " \t" for ln in lines):
            continue
        para = reflow(block)
        if is_prose(para):
            out.append(para)
    return out


def strip_rst(text):
    """reStructuredText to plain text: roles, literals, links and directives."""
    text = re.sub(r"^\.\. .*$", "", text, flags=re.M)                    # directives, targets, comments
    text = re.sub(r":[a-z:]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # :role:`text <target>`
    text = re.sub(r"``([^`]*)``", r"\1", text)                            # ``literal``
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)                # `text <url>`_
    text = re.sub(r"`([^`]*)`_*", r"\1", text)                            # `interpreted`
    text = re.sub(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*", lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.M)  # "text::" -> "text:" (a literal block follows)
    return re.sub(r"\s*::$", "", text, flags=re.M)        # "text ::" and "::" -> nothing


def render_man(path):
    env = dict(os.environ, MANWIDTH="80", MAN_DISABLE_SECCOMP="1", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-P", "cat", "-l", path],
                       capture_output=True, text=True, env=env)
    return r.stdout if r.returncode == 0 else ""


def package_files(package, pattern):
    """The files of an installed Debian package whose path matches `pattern`, sorted."""
    r = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_corpus: Debian package {package} is not installed (scripts/restore/prepare_carry.sh installs it)")
    return sorted(p for p in r.stdout.split("\n") if re.search(pattern, p) and os.path.isfile(p)
                  and not os.path.islink(p))


def need(path):
    if not os.path.isfile(path):
        sys.exit(f"make_corpus: {path} is missing (scripts/restore/prepare_carry.sh installs its Debian package)")
    return path


def wordnet_entries():
    """'word, synonym (noun): gloss' for every 4th synset of WordNet 3.0 that has a gloss of a few words."""
    pos_name = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
    entries = []
    for pos in ("noun", "verb", "adj", "adv"):
        n = 0
        for line in open(need(f"/usr/share/wordnet/data.{pos}"), encoding="utf-8", errors="replace"):
            if line.startswith("  ") or " | " not in line:
                continue  # the license header
            n += 1
            if n % 4:
                continue
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            words = [re.sub(r"\((a|p|ip)\)$", "", w) for w in words]
            gloss = gloss.strip()
            if len(gloss.split()) >= 6:
                entries.append(f"{', '.join(words[:4])} ({pos_name[pos]}): {gloss}")
    return entries


def prompt_sources():
    """{source: [(file, [paragraph, ...]), ...]} in a fixed order."""
    doc = "/usr/share/doc"
    sources = {
        "faq": [need(f"{doc}/debian/FAQ/debian-faq.en.txt.gz")],
        "reference": [need("/usr/share/debian-reference/debian-reference.en.txt.gz")],
        "policy": [need(f"{doc}/debian-policy/policy.txt.gz")],
        "devref": [need("/usr/share/developers-reference/developers-reference.txt.gz")],
        "gnu": [need(f"{doc}/gnu-standards/standards.text.gz"), need(f"{doc}/gnu-standards/maintain.text.gz")],
        "history": [need(f"{doc}/debian-history/docs/project-history.en.txt.gz"),
                    need(f"{doc}/debian-history/debian-manifesto.gz"), need(f"{doc}/debian-history/constitution.txt.gz")],
        "licenses": [need(f"/usr/share/common-licenses/{n}") for n in
                     ("GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "Artistic", "CC0-1.0")],
    }
    # The GNU documents' Info cross references ("*note (maintain)Legal Matters::") read as "see Legal Matters".
    def text(path):
        return re.sub(r"\*([Nn])ote\s+(?:\([^)]*\))?([^:]+)::", lambda m: ("s" if m.group(1) == "n" else "S") + "ee " + m.group(2),
                      read_text(path))
    out = {name: [(path, paragraphs(text(path))) for path in paths] for name, paths in sources.items()}
    pydocs = sorted(glob.glob(PYTHON_DOCS))
    if not pydocs:
        sys.exit(f"make_corpus: no {PYTHON_DOCS} (Debian python3-doc; scripts/restore/prepare_carry.sh installs it)")
    out["python"] = [(p, paragraphs(strip_rst(read_text(p)), indented_is_code=True))
                     for part in ("tutorial", "howto", "faq")
                     for p in sorted(glob.glob(os.path.join(pydocs[-1], part, "*.rst.txt")))]
    out["manpages"] = [(p, paragraphs(render_man(p))) for p in package_files("manpages", r"/man[57]/[^/]+\.[57]\.gz$")]
    out["wordnet"] = [("wordnet", wordnet_entries())]
    return out


def chunk(paras, size):
    """Consecutive paragraphs joined into documents of about `size` characters."""
    docs, cur = [], []
    for para in paras:
        cur.append(para)
        if sum(map(len, cur)) >= size:
            docs.append("\n\n".join(cur))
            cur = []
    if cur and sum(map(len, cur)) >= size // 4:
        docs.append("\n\n".join(cur))
    return docs


def prompt_documents():
    """[{"text", "source"}]: each source's documents, every k-th where it has more than SOURCE_CHARS."""
    out, stats = [], []
    for name, files in prompt_sources().items():
        sep = "\n" if name == "wordnet" else "\n\n"
        docs = []
        for _path, paras in files:
            docs += [d.replace("\n\n", sep) for d in chunk(paras, DOC_PROMPT_CHARS)]
        if not docs:
            sys.exit(f"make_corpus: no prose in the prompt source {name}")
        total = sum(map(len, docs))
        step = max(1, -(-total // SOURCE_CHARS))  # ceil
        kept = docs[::step]
        out += [{"text": d, "source": name} for d in kept]
        stats.append(f"{name} {len(kept)} docs {sum(map(len, kept)) / 1e3:.0f}K")
    return out, stats


def write_jsonl(path, docs):
    with open(path + ".tmp", "w") as f:
        for d in docs:
            f.write(json.dumps(d if isinstance(d, dict) else {"text": d}) + "\n")
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    train, held = join_chapters(kjv_chapters()), fortunes()
    if not held:
        sys.exit(f"make_corpus: no fortunes under {FORTUNES} (Debian package fortunes)")
    write_jsonl(os.path.join(out, "train.jsonl"), train)
    write_jsonl(os.path.join(out, "heldout.jsonl"), held)
    prompts, stats = prompt_documents()
    write_jsonl(os.path.join(out, "prompts.jsonl"), prompts)
    print(f"train: {len(train)} KJV documents, {sum(map(len, train)) / 1e6:.2f} MB; "
          f"heldout: {len(held)} fortunes, {sum(map(len, held)) / 1e6:.2f} MB; "
          f"prompts: {len(prompts)} documents, {sum(len(d['text']) for d in prompts) / 1e6:.2f} MB ({', '.join(stats)})")


if __name__ == "__main__":
    main()

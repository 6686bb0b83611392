"""Checks the report of the shortened demo (scripts/demo.sh --quick): at the teacher's native
length the restored student's perplexity must be strictly closer to the teacher's than the scaled
student's, and the scaled one must be worse than the teacher (else the demo shows nothing).
Reads the numbers from report.json's per-model results, not from the report's own ratios."""
import json
import sys

report = json.load(open(sys.argv[1]))
native = report["native_context"]


def ppl(role, context):
    for r in report["models"][role]["ppl"]["results"]:
        if r["context"] == context:
            return r["perplexity"]
    sys.exit(f"check_demo: no ppl@{context} for {role}")


t, s, r = (ppl(role, native) for role in ("teacher", "scaled", "restored"))
print(f"ppl@{native}: teacher {t:.3f}, scaled {s:.3f}, restored {r:.3f}")
if not s > t:
    sys.exit("check_demo: the scaled student is not worse than the teacher")
if not abs(r - t) < abs(s - t):
    sys.exit("check_demo: the restored student is not closer to the teacher than the scaled one")
long_rows = [row for row in report["long_context"] if row["kind"] == "perplexity"]
if not long_rows:
    sys.exit("check_demo: no long-context perplexity in the report")
print("demo restoration check passed")

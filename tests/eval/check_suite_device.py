"""The offline task suite on a device (LINEARARD_SUITE_DEVICE, default cpu) through the CLI, in
float32 on the eval fixtures' tiny model (make_eval_fixtures.py and make_suite_fixtures.py must
have run):
  - BIG-bench: every log-likelihood against make_suite_fixtures.py's transformers re-implementation
    of lm-evaluation-harness's scoring (expected.json), acc and acc_norm equal;
  - RULER, passkey (and HumanEval with LINEARARD_SUITE_HUMANEVAL=FILE.jsonl): the device's results
    equal the CPU's (the specification), timings left out.
scripts/gpu_restore.sh runs it on the GPU with LINEARARD_SUITE_DEVICE=cuda.
"""
import json
import os
import subprocess
import sys
import tempfile

FIX = os.environ["LINEARARD_FIXTURES_DIR"]
BIN = os.environ.get("LINEARARD_BIN", "build/linearard")
DEVICE = os.environ.get("LINEARARD_SUITE_DEVICE", "cpu")
HUMANEVAL = os.environ.get("LINEARARD_SUITE_HUMANEVAL", "")
MODEL = os.path.join(FIX, "eval", "model")
SUITE = os.path.join(FIX, "suite")
# float32 on the GPU sums in another order than on the CPU: a log-likelihood of -24 nats moves by
# about 1e-5; the CPU agrees with transformers to 1e-6 (tests/eval/test_suite.cpp).
LL_TOL = 1e-6 if DEVICE == "cpu" else 2e-5


def run_eval(device, tasks, extra):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "eval.json")
        cmd = [BIN, "eval", "--model", MODEL, "--tasks", tasks, "--device", device, "--dtype", "fp32",
               "--json", out] + extra
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("check_suite_device: %s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()[-2000:]))
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def without_timings(x):
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items()
                if "second" not in k and not k.endswith("per_s") and k not in ("model", "device")}
    if isinstance(x, list):
        return [without_timings(v) for v in x]
    return x


def main():
    with open(os.path.join(SUITE, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    got = run_eval(DEVICE, "bbh", ["--bigbench", os.path.join(SUITE, "bigbench"), "--bbh-tasks",
                                   ",".join(t["name"] for t in expected["tasks"]), "--fewshot",
                                   str(expected["fewshot"]), "--fewshot-seed", str(expected["seed"]),
                                   "--batch-size", "3"])
    worst = 0.0
    for want, row in zip(expected["tasks"], got["bbh"]):
        lls = row["loglikelihoods"]
        if len(lls) != len(want["loglikelihoods"]):
            sys.exit("check_suite_device: %s: %d log-likelihoods, expected %d" % (want["name"], len(lls), len(want["loglikelihoods"])))
        for k, (a, b) in enumerate(zip(lls, want["loglikelihoods"])):
            err = abs(a - b) / max(1.0, abs(b))
            worst = max(worst, err)
            if err > LL_TOL:
                sys.exit("check_suite_device: %s request %d: %.8f, transformers %.8f" % (want["name"], k, a, b))
        for key in ("acc", "acc_norm"):
            if row[key] != want[key]:
                sys.exit("check_suite_device: %s %s %s, expected %s" % (want["name"], key, row[key], want[key]))
    print("bbh (%s): %d tasks, log-likelihoods within %.1e relative of transformers (worst %.1e), acc equal"
          % (DEVICE, len(expected["tasks"]), LL_TOL, worst))
    tasks, extra = "ruler,passkey", ["--ruler-lengths", "4096", "--ruler-samples", "2", "--lengths", "512,1024",
                                     "--depths", "0,1", "--trials", "2", "--batch-size", "4"]
    if HUMANEVAL:
        tasks += ",humaneval"
        extra += ["--humaneval", HUMANEVAL, "--allow-code-execution", "--limit", "4"]
    device_run = without_timings(run_eval(DEVICE, tasks, extra))
    cpu_run = without_timings(run_eval("cpu", tasks, extra)) if DEVICE != "cpu" else device_run
    for key in tasks.split(","):
        if device_run.get(key) != cpu_run.get(key):
            sys.exit("check_suite_device: %s on %s differs from the CPU's:\n%s\n%s"
                     % (key, DEVICE, json.dumps(device_run.get(key))[:1500], json.dumps(cpu_run.get(key))[:1500]))
    print("%s (%s): equal to the CPU's results" % (tasks, DEVICE))


if __name__ == "__main__":
    main()

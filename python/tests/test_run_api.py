"""linearard.distill / cpt / export / report against the `linearard` binary (an independent path: its own
argument parsing, its own process): the same flags as keyword arguments give the same run (options,
losses, adapter bytes), the same export files and the same report; distill's default recipe
applies; the export loads in transformers and PEFT; progress is printed as the CLI prints it; bad
keywords and values raise a one-sentence ValueError naming the keyword; outputs are never
overwritten without overwrite=True."""
import json
import re
import signal
import subprocess
import sys

import pytest
import torch

import linearard
from conftest import REPO, STUDENT_ROPE, write_tiny_model

# One run's flags, once as keyword arguments and once as the CLI's (lora_rank 4 keeps it quick;
# everything else the default recipe leaves, layers and relations as lists).
KEYWORDS = dict(device="cpu", context=16, steps=3, batch_size=2, grad_accum=1, checkpoint_every=0, lora_rank=4,
                lora_alpha=8, shuffle=False, layers=[0, 2], relations=["q", "k", "v"], lr=1e-2, warmup_steps=1)
FLAGS = ["--device", "cpu", "--context", "16", "--steps", "3", "--batch-size", "2", "--grad-accum", "1",
         "--checkpoint-every", "0", "--lora-rank", "4", "--lora-alpha", "8", "--no-shuffle", "--layers", "0,2",
         "--relations", "q,k,v", "--lr", "1e-2", "--warmup-steps", "1"]
TIMING = re.compile(r"\d+ tok/s|ETA \S+|\d+(\.\d+)?s\b")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_api")
    model = write_tiny_model(root / "model")
    g = torch.Generator().manual_seed(3)
    blocks = [torch.randint(0, 101, (48,), generator=g).tolist() for _ in range(3)]
    (root / "blocks.json").write_text(json.dumps(blocks))
    return {"model": model, "data": str(root / "blocks.json")}


@pytest.fixture(scope="module")
def runs(inputs, linearard_bin, tmp_path_factory):
    """The same distill from Python and from the CLI, with what each printed."""
    root = tmp_path_factory.mktemp("runs")
    cli = subprocess.run([linearard_bin, "distill", "--model", inputs["model"], "--data", inputs["data"],
                          "--out", str(root / "cli"), "--rope-scaling", json.dumps(STUDENT_ROPE), *FLAGS],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    # In a subprocess too, so that its stdout / stderr are captured as a user's terminal shows them.
    script = ("import json, sys, linearard\n"
              "r = linearard.distill(*sys.argv[1:4], rope_scaling=json.loads(sys.argv[4]), **json.loads(sys.argv[5]))\n"
              "print('result:', json.dumps(r))\n")
    py = subprocess.run([sys.executable, "-c", script, inputs["model"], str(root / "py"), inputs["data"],
                         json.dumps(STUDENT_ROPE), json.dumps(KEYWORDS)], capture_output=True, text=True)
    assert py.returncode == 0, py.stderr
    result = json.loads(py.stdout.split("result: ", 1)[1])
    return {"root": root, "cli": cli, "py": py, "result": result}


def _lines(text, out_dir):
    return [TIMING.sub("#", line.replace(str(out_dir), "OUT")) for line in text.replace("\r", "\n").splitlines()
            if line.strip()]


def test_distill_equals_the_cli(runs):
    root, result = runs["root"], runs["result"]
    assert result["steps"] == 3 and result["out"] == str(root / "py") and result["final"] == str(root / "py" / "final")
    options = {k: json.loads((root / k / "options.json").read_text()) for k in ("py", "cli")}
    assert options["py"].pop("out") == str(root / "py")
    options["cli"].pop("out")
    assert options["py"] == options["cli"]
    metrics = {k: [json.loads(line) for line in (root / k / "metrics.jsonl").read_text().splitlines()]
               for k in ("py", "cli")}
    for a, b in zip(metrics["py"], metrics["cli"], strict=True):
        assert {k: v for k, v in a.items() if not k.endswith(("seconds", "tok_s", "time", "per_s"))} == \
               {k: v for k, v in b.items() if not k.endswith(("seconds", "tok_s", "time", "per_s"))}
    assert result["last_loss"] == metrics["cli"][-1]["loss"] and result["metrics"] == metrics["py"][-1]
    for name in ("trainable.safetensors", "adapter.safetensors"):
        a, b = root / "py" / "final" / name, root / "cli" / "final" / name
        if b.exists():
            assert a.read_bytes() == b.read_bytes(), name


def test_default_recipe_applies(runs):
    options = json.loads((runs["root"] / "py" / "options.json").read_text())
    # restore's values where no keyword gave one (the struct defaults are the paper's: lr 2e-5, no hidden term)
    assert options["hidden-weight"] == 10.0 and options["logits-kl-weight"] == 1.0 and options["logits-kl-last"] == 0
    assert options["lora-targets"] == "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    assert options["lr"] == 1e-2 and options["lora-rank"] == 4 and options["layers"] == [0, 2]  # the keywords'


def test_cpt_with_a_config_file_equals_the_cli(inputs, linearard_bin, tmp_path):
    # --config below the given values, as on the command line (cpt has no recipe).
    (tmp_path / "c.json").write_text(json.dumps({"lr": 5e-3, "lora-rank": 2, "steps": 5}))
    keywords = dict(device="cpu", context=16, steps=2, checkpoint_every=0, lora_targets="q,v", config=tmp_path / "c.json")
    result = linearard.cpt(inputs["model"], tmp_path / "py", inputs["data"], rope_scaling=STUDENT_ROPE, **keywords)
    cli = subprocess.run([linearard_bin, "cpt", "--model", inputs["model"], "--data", inputs["data"], "--out",
                          str(tmp_path / "cli"), "--rope-scaling", json.dumps(STUDENT_ROPE), "--device", "cpu",
                          "--context", "16", "--steps", "2", "--checkpoint-every", "0", "--lora-targets", "q,v",
                          "--config", str(tmp_path / "c.json")], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    options = {k: json.loads((tmp_path / k / "options.json").read_text()) for k in ("py", "cli")}
    assert options["py"].pop("out") != options["cli"].pop("out")
    assert options["py"] == options["cli"]
    assert options["py"]["lr"] == 5e-3 and options["py"]["lora-rank"] == 2 and options["py"]["steps"] == 2
    cli_loss = json.loads((tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    assert result["steps"] == 2 and result["last_loss"] == cli_loss


def test_progress_is_printed_as_the_cli_prints_it(runs):
    root = runs["root"]
    for stream in ("stdout", "stderr"):
        py = _lines(getattr(runs["py"], stream), root / "py")
        cli = _lines(getattr(runs["cli"], stream), root / "cli")
        if stream == "stdout":
            assert py[-1].startswith("result: ")
            py = py[:-1]
        assert py == cli, stream
    assert "step 3/3" in runs["py"].stderr and "options: " in runs["py"].stdout


def test_export_loads_in_transformers_and_peft(runs, inputs, linearard_bin, tmp_path):
    import peft
    import transformers

    root = runs["root"]
    outputs = linearard.export(runs["result"]["final"], tmp_path / "py", format="both")
    assert outputs == [str(tmp_path / "py" / "peft"), str(tmp_path / "py" / "merged")]
    cli = subprocess.run([linearard_bin, "export", "--checkpoint", str(root / "cli" / "final"), "--out",
                          str(tmp_path / "cli"), "--format", "both"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    for sub in ("peft", "merged"):  # the same checkpoint bytes (test above), the same files
        names = sorted(p.name for p in (tmp_path / "cli" / sub).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "py" / sub).iterdir())
        for name in names:
            if name.endswith(".safetensors"):
                assert (tmp_path / "py" / sub / name).read_bytes() == (tmp_path / "cli" / sub / name).read_bytes()
    merged = transformers.AutoModelForCausalLM.from_pretrained(outputs[1])
    config = transformers.AutoConfig.from_pretrained(inputs["model"])
    config.rope_parameters = {**config.rope_parameters, **STUDENT_ROPE}
    base = transformers.AutoModelForCausalLM.from_pretrained(inputs["model"], config=config)
    adapted = peft.PeftModel.from_pretrained(base, outputs[0])
    ids = torch.randint(0, 101, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, rtol=1e-4, atol=1e-4)


def test_report_writes_its_report(linearard_bin, tmp_path):
    teacher, text = str(REPO / "demo" / "teacher"), tmp_path / "text.txt"
    text.write_text(" ".join(["in the beginning was the word and the word was with god"] * 80))
    keywords = dict(tasks=["ppl", "fidelity"], text=[text], contexts=[64, 128], max_tokens=1024)
    got = linearard.report(tmp_path / "py", teacher=teacher, scaled=json.dumps(STUDENT_ROPE), restored=teacher,
                           **keywords)
    assert {p.name for p in (tmp_path / "py").iterdir()} >= {"report.json", "report.md", "ppl_by_length.svg"}
    assert got == json.loads((tmp_path / "py" / "report.json").read_text())
    cli = subprocess.run([linearard_bin, "report", "--teacher", teacher, "--scaled", json.dumps(STUDENT_ROPE),
                          "--restored", teacher, "--tasks", "ppl,fidelity", "--text", str(text), "--contexts",
                          "64,128", "--max-tokens", "1024", "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "py" / "report.md").read_text() == (tmp_path / "cli" / "report.md").read_text()


def _value_error(f, **kwargs):
    with pytest.raises(ValueError) as e:
        f(**kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_bad_keywords_and_values_raise_value_error(inputs, tmp_path):
    run = dict(model=inputs["model"], out=tmp_path / "run", data=inputs["data"], rope_scaling=STUDENT_ROPE,
               device="cpu", context=16, steps=1)
    assert _value_error(linearard.distill, **run, lora_rnak=4) == "lora_rnak: not an option of distill"
    assert _value_error(linearard.distill, **run, steps_="x") == "steps_: not an option of distill"
    assert _value_error(linearard.cpt, **run, hidden_weight=1.0) == "hidden_weight: not an option of cpt"
    assert _value_error(linearard.distill, **{**run, "steps": "many"}) == "steps: expected an integer, got 'many'"
    assert _value_error(linearard.distill, **run, lora_rank=0) == "lora_rank: must be >= 1"
    assert _value_error(linearard.distill, **{**run, "context": 1}) == "context: must be >= 2"
    assert _value_error(linearard.distill, **run, lr=float("nan")) == "lr: must be >= 0"
    assert _value_error(linearard.distill, **run, betas=[0.9]) == "betas: expected two values, e.g. 0.9,0.999"
    assert _value_error(linearard.distill, **run, recipe="fast").startswith("recipe: unknown recipe 'fast' (")
    assert _value_error(linearard.distill, **{**run, "rope_scaling": None}) == \
        "rope_scaling: is required (the student's scaled RoPE)"
    assert _value_error(linearard.distill, **run, lora_targets=["q", "x"]).startswith(
        "lora_targets: unknown module 'x' in 'q,x'")
    assert _value_error(linearard.distill, **{**run, "device": object()}).startswith("device: expected a bool, number")
    assert _value_error(linearard.distill, **run, nproc=2).startswith("nproc: 2 processes start from the command line")
    assert not (tmp_path / "run").exists()  # nothing written for a bad option
    assert _value_error(linearard.export, checkpoint=tmp_path, out=tmp_path / "x", format="tar").startswith("format: ")
    assert _value_error(linearard.report, out=tmp_path / "r", native_context="4k") == \
        "native_context: expected an integer, got '4k'"


def test_outputs_are_never_overwritten(runs, inputs, tmp_path):
    out = runs["root"] / "py"
    before = (out / "final" / "adapter.json").read_bytes()
    message = _value_error(linearard.distill, model=inputs["model"], out=out, data=inputs["data"],
                           rope_scaling=STUDENT_ROPE, **KEYWORDS)
    assert message.startswith(f"out {out}: holds an earlier run")
    assert (out / "final" / "adapter.json").read_bytes() == before
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    message = _value_error(linearard.export, checkpoint=out / "final", out=tmp_path / "x", format="peft")
    assert message.startswith(f"out {tmp_path / 'x'}: directory is not empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no staging folder left behind
    assert (tmp_path / "x" / "mine.txt").read_text() == "keep"
    assert linearard.export(out / "final", tmp_path / "x", format="peft", overwrite=True) == [str(tmp_path / "x")]
    assert (tmp_path / "x" / "adapter_config.json").exists()


def test_ctrl_c_raises_keyboard_interrupt_after_a_checkpoint(inputs, tmp_path):
    # SIGINT mid-run: the step finishes, the checkpoint is written, Python gets KeyboardInterrupt
    # (the CLI exits 130 instead); resume="auto" continues the run.
    script = ("import json, sys, linearard\n"
              "kw = json.loads(sys.argv[4])\n"
              "try:\n"
              "    linearard.distill(*sys.argv[1:4], **kw)\n"
              "except KeyboardInterrupt:\n"
              "    print('KeyboardInterrupt', flush=True)\n"
              "r = linearard.distill(*sys.argv[1:4], resume='auto', **kw)\n"
              "print('resumed to step', r['steps'], flush=True)\n")
    keywords = {**KEYWORDS, "steps": 100000, "rope_scaling": STUDENT_ROPE}
    run = subprocess.Popen([sys.executable, "-c", script, inputs["model"], str(tmp_path / "run"), inputs["data"],
                            json.dumps(keywords)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _interrupt_twice(run, tmp_path / "run")
    finally:
        run.kill()  # no-op once it has ended; ends a 100000-step run when a check above failed
        run.communicate()


def _interrupt_twice(run, out):
    for line in iter(run.stderr.readline, ""):
        if line.startswith("step "):  # a progress line: training runs
            break
    run.send_signal(signal.SIGINT)
    # The resumed run has 100000 steps to go: SIGTERM stops it once it trains again.
    for line in iter(run.stdout.readline, ""):
        if line.startswith("KeyboardInterrupt"):
            break
    checkpoints = list((out / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and checkpoints[0].name.startswith("step-")
    done = int(checkpoints[0].name.split("-")[1])
    for line in iter(run.stderr.readline, ""):  # the first run's last lines
        if line.startswith("interrupted by SIGINT after step"):
            break
    for line in iter(run.stderr.readline, ""):
        if line.startswith("step "):  # the resumed run trains on from the checkpoint's step
            assert int(line.split()[1].split("/")[0]) == done + 1, line
            break
    run.send_signal(signal.SIGTERM)  # SIGTERM ends the process, as on the command line
    assert run.wait(timeout=120) == 128 + signal.SIGTERM


def test_docstrings_list_the_keywords():
    assert "lora_rank" in linearard.distill.__doc__ and "recipe" in linearard.distill.__doc__
    assert "[default restore]" in linearard.distill.__doc__
    assert "lora_rank" not in linearard.pretrain.__doc__ and "hidden_size" in linearard.pretrain.__doc__
    assert "gguf_type" in linearard.export.__doc__ and "contexts" in linearard.report.__doc__

"""The commands as Python calls: linearard.distill / cpt / pretrain / export / report run what
`linearard distill` ... `linearard report` run, in this process (C++, the GIL released).

Keyword arguments are the command's flags with `-` spelled `_` (``lora_rank=64`` is
``--lora-rank 64``). They go to the same option table and layering as the command line's
(src/train/train_flags.h: given values > ``config=FILE.json`` > ``recipe=`` (distill's default
``restore``) > defaults), so a call and the command with the same flags train the same run. Values:
bool (flags: ``shuffle=False`` is ``--no-shuffle``), int, float, str, os.PathLike, a dict for
``rope_scaling`` (or its JSON text), a list where the flag takes several values (``data``) or a
comma list (``layers=[0, 1]`` is ``--layers 0,1``); None leaves the option at its default. A bad
option or value raises ValueError with the command line's one-line message, the option spelled as
the keyword. Progress and the summary are printed as the command line prints them (C++ stdout and
stderr). Each command's keywords are listed in its docstring, from the C++ option table.
"""
import json
import math
import numbers
import os
import sys
from functools import lru_cache

from . import _C

__all__ = ["distill", "cpt", "pretrain", "export", "report"]


@lru_cache(maxsize=None)
def _table(command):
    # name -> {name, help, default, flag, several}: the C++ table (common/option_layers.h).
    return {row["name"]: row for row in json.loads(_C.describe_options(command))}


def _scalar(value, keyword):
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        # JSON has no inf / nan: as text, the C++ parses it and its range check names the option.
        return value if math.isfinite(value) else repr(value)
    raise ValueError(f"{keyword}: expected a bool, number, string or path, got {type(value).__name__}")


def _options(command, values):
    """The keyword arguments as the JSON object of option values the C++ table reads."""
    table = _table(command)
    given = {}
    for keyword, value in values.items():
        if value is None:
            continue
        name = keyword.replace("_", "-")
        row = table.get(name, {})
        if isinstance(value, dict):
            # rope-scaling: recorded in options.json as given, so as json.dumps writes it (the text
            # `--rope-scaling "$(python -c 'print(json.dumps(...))')"` would give the CLI).
            given[name] = json.dumps(value)
        elif isinstance(value, (list, tuple)):
            items = [_scalar(v, keyword) for v in value]
            # A flag of one value takes the comma list the command line would be given.
            given[name] = items if row.get("several") else ",".join(
                ("true" if v else "false") if isinstance(v, bool) else str(v) for v in items)
        else:
            given[name] = _scalar(value, keyword)
    return json.dumps(given)


def _run(call):
    # The C++ writes to the process's stdout / stderr: Python's own buffered lines go first.
    sys.stdout.flush()
    sys.stderr.flush()
    return json.loads(call())


def _train(command, values):
    nproc = values.get("nproc")
    if nproc is not None and not isinstance(nproc, bool) and isinstance(nproc, numbers.Integral) and nproc > 1:
        # --nproc re-executes this process's command line for each worker (src/train/distributed.cpp):
        # the linearard binary, not a Python session.
        raise ValueError(f"nproc: {nproc} processes start from the command line "
                         f"(`linearard {command} --nproc {nproc}` or torchrun); from Python nproc is 1")
    options = _options(command, values)
    result = _run(lambda: _C.run_train(command, options))
    metrics = os.path.join(result["out"], "metrics.jsonl")
    if os.path.exists(metrics):  # the last step's logged metrics (loss parts, lr, grad norm, ...)
        with open(metrics) as f:
            lines = f.read().splitlines()
        result["metrics"] = json.loads(lines[-1]) if lines else {}
    return result


def distill(model, out, data, rope_scaling=None, **options):
    return _train("distill", dict(model=model, out=out, data=data, rope_scaling=rope_scaling, **options))


def cpt(model, out, data, rope_scaling=None, **options):
    return _train("cpt", dict(model=model, out=out, data=data, rope_scaling=rope_scaling, **options))


def pretrain(out, data, **options):
    return _train("pretrain", dict(out=out, data=data, **options))


def export(checkpoint, out, **options):
    return _run(lambda: _C.run_export(_options("export", dict(checkpoint=checkpoint, out=out, **options))))["outputs"]


def report(out, teacher=None, scaled=None, restored=None, **options):
    return _run(lambda: _C.run_report(_options(
        "report", dict(out=out, teacher=teacher, scaled=scaled, restored=restored, **options))))


_TRAIN_RETURNS = """Returns a dict: out, final (out/final: the adapter, or pretrain's model), steps, first_loss,
last_loss (this process's first and last step), metrics (the last line of out/metrics.jsonl),
ran_workers (False: nproc > 1 runs from the command line only). Ctrl-C finishes the step, writes
a checkpoint and raises KeyboardInterrupt (SIGTERM ends the process, exit code 143, as the command
line does); ``resume="auto"`` continues the run."""

_SUMMARIES = {
    "distill": ("Attention-relation distillation of the RoPE-scaled student (``rope_scaling``) from its "
                "native-RoPE teacher (the same ``model``): `linearard distill`.", _TRAIN_RETURNS),
    "cpt": ("Continued pre-training (LM loss) of the RoPE-scaled student with adapters: `linearard cpt`.",
            _TRAIN_RETURNS),
    "pretrain": ("LM training of a new LLaMA-shaped model from random weights: `linearard pretrain`.",
                 _TRAIN_RETURNS),
    "export": ("A training checkpoint (``checkpoint``, e.g. out/final of distill) as a PEFT adapter "
               "directory, a merged HF checkpoint or a GGUF file: `linearard export`; "
               "``checkpoint=None, model=DIR, format=\"gguf\"`` converts a merged model.",
               "Returns the paths written: [out], or [out/peft, out/merged] for format both."),
    "report": ("The restoration report of teacher, scaled and restored model: `linearard report`.",
               "Returns report.json's content (also written, with report.md and the charts, to out)."),
}


def _doc(command):
    summary, returns = _SUMMARIES[command]
    lines = [summary, "", "Keyword arguments (the flags of `linearard %s`, `-` spelled `_`):" % command]
    for row in _table(command).values():
        keyword = row["name"].replace("-", "_")
        kind = " (bool)" if row["flag"] else " (list)" if row["several"] else ""
        default = f" [default {row['default']}]" if row["default"] else ""
        lines.append(f"    {keyword}{kind}: {row['help']}{default}")
    return "\n".join(lines + ["", returns])


for _f in (distill, cpt, pretrain, export, report):
    _f.__doc__ = _doc(_f.__name__)
del _f

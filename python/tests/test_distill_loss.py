"""linearard.RelationDistillLoss on PEFT LoRA models of the four architectures: the same loss and
parts as `linearard distill` logs for its first step (same checkpoint, same batch, lr 0), padding,
one optimizer step that moves only the LoRA tensors, gradient checkpointing, bad arguments."""
import json
import subprocess

import pytest
import torch

import linearard
from conftest import STUDENT_ROPE, load_student, lora

FULL_OBJECTIVE = dict(weight_q=0.5, weight_k=2.0, weight_v=1.5, kv_normalization="kv-heads", logits_kl_weight=0.7,
                      logits_kl_last=9, temperature=2.0, hidden_weight=0.3, lm_weight=0.2)
PARITY_CASES = {
    "llama_full_objective": ("llama", FULL_OBJECTIVE),
    "llama_layers_qk_all_logits": ("llama", dict(layers=[0, 2], relations="q,k", logits_kl_weight=1.0,
                                                 logits_kl_last=0)),
    "mistral_paper": ("mistral", {}),
    "qwen2_paper": ("qwen2", {}),
    "qwen3_hidden": ("qwen3", dict(hidden_weight=0.5, relations="k,v")),
}


def cli_flags(options):
    flags = {"layers": "all", "relations": "q,k,v", "logits_kl_weight": 0.0, "hidden_weight": 0.0, **options}
    if isinstance(flags["layers"], list):
        flags["layers"] = ",".join(map(str, flags["layers"]))
    out = []
    for name, value in flags.items():
        out += ["--" + name.replace("_", "-"), str(value)]
    return out


def cli_first_step(binary, model_dir, tokens, options, tmp_path):
    """The loss parts `linearard distill` logs for its first step on `tokens` (B, T)."""
    data = tmp_path / "blocks.json"
    data.write_text(json.dumps(tokens.tolist()))  # one document per row: blocks in row order
    B, T = tokens.shape
    run = subprocess.run(
        [binary, "distill", "--model", model_dir, "--rope-scaling", json.dumps(STUDENT_ROPE), "--data", str(data),
         "--out", str(tmp_path / "run"), "--steps", "1", "--lr", "0", "--grad-accum", "1", "--batch-size", str(B),
         "--context", str(T), "--no-shuffle", "--device", "cpu", "--dtype", "fp32", "--lora-rank", "4",
         "--lora-alpha", "8", "--lora-dropout", "0", "--lora-targets", "q,k,v", "--checkpoint-every", "0",
         *cli_flags(options)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])


def tokens(B=2, T=24, seed=1):
    return torch.randint(0, 101, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", PARITY_CASES)
def test_loss_equals_cli_first_step(case, tiny_models, linearard_bin, tmp_path):
    model_type, options = PARITY_CASES[case]
    ids = tokens()
    want = cli_first_step(linearard_bin, tiny_models[model_type], ids, options, tmp_path)
    loss_fn = linearard.RelationDistillLoss(lora(load_student(tiny_models[model_type])), **options)
    got = loss_fn(ids)
    for part in ("loss", "q", "k", "v", "hidden", "logits", "lm"):
        value = getattr(got, part)
        assert (value is None) == (part not in want), part
        if value is not None:
            assert value.item() == pytest.approx(want[part], rel=1e-5, abs=1e-7), part
    assert got.loss.item() > 0


def test_padding_is_left_out(tiny_models):
    """A right-padded row gives the loss of its unpadded tokens (causal: padding comes last)."""
    every_position = dict(FULL_OBJECTIVE, logits_kl_last=0)  # the last k positions would differ
    loss_fn = linearard.RelationDistillLoss(lora(load_student(tiny_models["llama"])), **every_position)
    ids = tokens(B=1, T=20)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=ids.dtype)], 1)
    mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 4)], 1).long()
    plain, masked = loss_fn(ids), loss_fn(padded, mask)
    for part in ("loss", "q", "k", "v", "hidden", "logits", "lm"):
        assert getattr(masked, part).item() == pytest.approx(getattr(plain, part).item(), rel=1e-5), part


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_step_changes_only_lora_parameters(tiny_models):
    model = lora(load_student(tiny_models["qwen3"]), targets=("q_proj", "k_proj", "v_proj", "o_proj"))
    loss_fn = linearard.RelationDistillLoss(model, hidden_weight=0.5, logits_kl_weight=1.0)
    before = snapshot(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    loss_fn(tokens()).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    lora_b = {n for n in before if "lora_B" in n}
    assert lora_b and lora_b <= changed  # B starts at 0, so A's first gradient is 0
    assert all("lora_" in n for n in changed), sorted(n for n in changed if "lora_" not in n)
    # The teacher is the frozen base: after the step the loss still compares with it.
    assert loss_fn(tokens()).loss.item() > 0


@pytest.mark.skipif(not (torch.cuda.is_available() and linearard._C.has_cuda()),
                    reason="needs a GPU and a CUDA build of linearard._C")
def test_cuda_loss_equals_cpu(tiny_models):
    """The hooks and the CUDA op on the GPU (float32) give the CPU loss and LoRA gradients; bf16 runs
    and stays near them (the loss of the model in bf16, parts within bf16 resolution)."""
    ids = tokens()
    results = []
    for device, dtype in (("cpu", torch.float32), ("cuda", torch.float32), ("cuda", torch.bfloat16)):
        torch.manual_seed(0)
        model = lora(load_student(tiny_models["llama"], dtype=dtype))
        for name, p in model.named_parameters():  # B = 0 at init: give the adapters a gradient path
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(len(name)))
        model.to(device)
        out = linearard.RelationDistillLoss(model, **FULL_OBJECTIVE)(ids.to(device))
        out.loss.backward()
        grads = {n: p.grad.float().cpu() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    cpu, gpu32, gpu16 = results
    for part in ("loss", "q", "k", "v", "hidden", "logits", "lm"):
        assert getattr(gpu32[0], part).item() == pytest.approx(getattr(cpu[0], part).item(), rel=1e-4, abs=1e-6), part
        assert getattr(gpu16[0], part).item() == pytest.approx(getattr(cpu[0], part).item(), rel=0.1, abs=1e-3), part
    assert cpu[1].keys() == gpu32[1].keys() and all("lora_" in n for n in cpu[1])
    for name, g in cpu[1].items():
        torch.testing.assert_close(gpu32[1][name], g, rtol=1e-3, atol=1e-5 * g.abs().max().item())


def test_gradient_checkpointing(tiny_models):
    """Non-reentrant checkpointing gives the same loss and LoRA gradients; reentrant is refused."""
    def loss_and_grads(checkpointing):
        student = load_student(tiny_models["llama"])
        torch.manual_seed(0)  # PEFT draws lora_A from the global generator
        model = lora(student)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": checkpointing == "reentrant"})
            model.enable_input_require_grads()
        loss = linearard.RelationDistillLoss(model, hidden_weight=0.3)
        with torch.no_grad():  # B != 0, so every LoRA tensor gets a gradient
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
        out = loss(tokens())
        out.loss.backward()
        return out.loss.item(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain_loss, plain_grads = loss_and_grads(None)
    ckpt_loss, ckpt_grads = loss_and_grads("non-reentrant")
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    for n, g in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[n], g, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="non-reentrant"):
        loss_and_grads("reentrant")


def bad_loss_arguments(tiny_models):
    import transformers

    path = tiny_models["llama"]
    model = lora(load_student(path))
    native = lora(transformers.AutoModelForCausalLM.from_pretrained(path))
    make = linearard.RelationDistillLoss
    ids = tokens()
    return [
        ("not peft", lambda: make(load_student(path)), "model must be a PEFT model"),
        ("native rope", lambda: make(native), "teacher_rope is None but the model's own RoPE is already native"),
        ("teacher rope", lambda: make(model, teacher_rope={"factor": 2}), "teacher_rope must be a transformers"),
        ("layers range", lambda: make(model, layers=[0, 3]), "layers must be indices in [0, 3)"),
        ("layers text", lambda: make(model, layers="0,x"), "layers must be 'all', a list"),
        ("relations", lambda: make(model, relations="q,o"), "relations must be a subset of q,k,v"),
        ("weight", lambda: make(model, weight_k=float("inf")), "weight_k must be a finite number"),
        ("kv normalization", lambda: make(model, kv_normalization="mean"), "kv_normalization must be"),
        ("logits last", lambda: make(model, logits_kl_last=-1), "logits_kl_last must be an integer >= 0"),
        ("temperature", lambda: make(model, temperature=0), "temperature must be > 0"),
        ("no term", lambda: make(model, relations=""), "relations is empty and every other weight is 0"),
        ("ids rank", lambda: make(model)(ids[0]), "input_ids must be a (B, T) tensor"),
        ("ids dtype", lambda: make(model)(ids.float()), "input_ids must hold integer token ids"),
        ("ids device", lambda: make(model)(ids.to("meta")), "input_ids is on meta but the model is on cpu"),
        ("mask shape", lambda: make(model)(ids, ids[:, :5]), "attention_mask must have input_ids' shape"),
        ("mask device", lambda: make(model)(ids, torch.ones_like(ids, device="meta")), "attention_mask is on meta"),
        ("mask empty", lambda: make(model)(ids, torch.zeros_like(ids)), "attention_mask has no valid token"),
    ]


def test_bad_arguments_raise_value_error(tiny_models):
    unsupported = lora(load_student(tiny_models["llama"]))
    unsupported.get_base_model().config.model_type = "gpt2"
    cases = bad_loss_arguments(tiny_models)
    cases.append(("model type", lambda: linearard.RelationDistillLoss(unsupported), "model has model_type 'gpt2'"))
    for name, call, words in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert words in str(error.value), (name, str(error.value))
        assert str(error.value).count(". ") == 0, (name, "not one sentence")

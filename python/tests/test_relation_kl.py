"""linearard.relation_kl / relation_kl_self against a naive PyTorch implementation (materialised
softmax rows, KL(teacher || student) per row): gradcheck in float64, forward in bf16/fp16/fp32,
and every ValueError of the argument checks."""
import math

import pytest
import torch

import linearard

CUDA = [pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and linearard._C.has_cuda()), reason="needs a GPU and a CUDA build"))]
DEVICES = ["cpu"] + CUDA


def naive_rows(xs, ys, xt, yt, key_mask=None, causal=True, scale_s=None, scale_t=None):
    """Per-row KL(teacher || student) (B, H, T) from the materialised (B, H, T, T) relations."""
    B, H, T, Ds = xs.shape
    scale_s = 1 / math.sqrt(Ds) if scale_s is None else scale_s
    scale_t = 1 / math.sqrt(xt.shape[-1]) if scale_t is None else scale_t
    ys = ys.repeat_interleave(H // ys.shape[1], dim=1)  # key head h // (H / Hk)
    yt = yt.repeat_interleave(H // yt.shape[1], dim=1)
    valid = torch.ones(B, 1, T, T, dtype=torch.bool, device=xs.device)
    if causal:
        valid = valid & torch.ones(T, T, dtype=torch.bool, device=xs.device).tril()
    if key_mask is not None:
        valid = valid & key_mask.bool()[:, None, None, :]
    log_s = torch.log_softmax((xs @ ys.transpose(-1, -2) * scale_s).masked_fill(~valid, -math.inf), -1)
    log_t = torch.log_softmax((xt @ yt.transpose(-1, -2) * scale_t).masked_fill(~valid, -math.inf), -1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~valid, 0.0).sum(-1)  # (B, H, T)
    row_valid = valid.any(-1)
    if key_mask is not None:
        row_valid = row_valid & key_mask.bool()[:, None, :]
    return kl.masked_fill(~row_valid, 0.0)


def inputs(B=2, H=4, Hk=4, Hkt=None, T=9, Ds=8, Dt=8, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).to(device, dtype)
    Hkt = Hk if Hkt is None else Hkt
    return make(B, H, T, Ds), make(B, Hk, T, Ds), make(B, H, T, Dt), make(B, Hkt, T, Dt)


def padding_mask(B, T, device="cpu"):
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[0, :2] = False  # left padding
    mask[-1, -3:] = False  # right padding
    return mask


CASES = {
    "causal": dict(),
    "non_causal": dict(causal=False),
    "key_mask": dict(mask=True),
    "key_mask_non_causal": dict(mask=True, causal=False),
    "gqa": dict(Hk=2, Hkt=1),
    "scales_and_dims": dict(Ds=8, Dt=12, scale_s=0.7, scale_t=0.2),
}


def split_case(case):
    """CASES[case] -> (key_mask, causal, scale keyword arguments, shape keyword arguments of inputs())."""
    c = dict(CASES[case])
    mask = padding_mask(2, 9) if c.pop("mask", False) else None
    causal = c.pop("causal", True)
    scales = {k: c.pop(k) for k in ("scale_s", "scale_t") if k in c}
    return mask, causal, scales, c


@pytest.mark.parametrize("case", CASES)
def test_gradcheck_relation_kl(case):
    mask, causal, scales, shapes = split_case(case)
    xs, ys, xt, yt = inputs(**shapes)
    xs.requires_grad_(True)
    ys.requires_grad_(True)

    rows = linearard.relation_kl(xs, ys, xt, yt, mask, causal, reduction="none", **scales)
    torch.testing.assert_close(rows, naive_rows(xs, ys, xt, yt, mask, causal, **scales), rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b: linearard.relation_kl(a, b, xt, yt, mask, causal, reduction="none", **scales), (xs, ys))
    # The gradient of the sum equals the naive one (and the teacher gets none).
    xt.requires_grad_(True)
    linearard.relation_kl(xs, ys, xt, yt, mask, causal, **scales).backward()
    ours = (xs.grad.clone(), ys.grad.clone())
    xs.grad = ys.grad = None
    naive_rows(xs, ys, xt.detach(), yt, mask, causal, **scales).sum().backward()
    torch.testing.assert_close(ours, (xs.grad, ys.grad), rtol=1e-9, atol=1e-12)
    assert xt.grad is None


@pytest.mark.parametrize("case", CASES)
def test_gradcheck_relation_kl_self(case):
    mask, causal, scales, shapes = split_case(case)
    shapes.pop("Hkt", None)
    H = shapes.pop("Hk", 4)  # a self relation has one head count (K/K and V/V run over the key heads)
    xs, _, xt, _ = inputs(H=H, Hk=H, **shapes)
    xs.requires_grad_(True)

    rows = linearard.relation_kl_self(xs, xt, mask, causal, reduction="none", **scales)
    torch.testing.assert_close(rows, naive_rows(xs, xs, xt, xt, mask, causal, **scales), rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a: linearard.relation_kl_self(a, xt, mask, causal, reduction="none", **scales), (xs,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 5e-2)])
def test_forward_dtypes_against_float64(device, dtype, tolerance):
    """Inputs rounded to the dtype, compared with the float64 naive KL of the same rounded values:
    what remains is the op's own arithmetic (bf16/fp16 products on GPUs, float32 accumulation)."""
    xs, ys, xt, yt = inputs(Hk=2, T=33, Ds=16, Dt=16, dtype=dtype, device=device)
    mask = padding_mask(2, 33, device)
    rows = linearard.relation_kl(xs, ys, xt, yt, mask, reduction="none")
    assert rows.dtype == torch.float32 and rows.device.type == device
    want = naive_rows(*(t.double() for t in (xs, ys, xt, yt)), mask)
    assert (rows.double() - want).abs().max() <= tolerance * want.abs().max()
    self_rows = linearard.relation_kl_self(xs, xt, mask, reduction="none")
    self_want = naive_rows(xs.double(), xs.double(), xt.double(), xt.double(), mask)
    assert (self_rows.double() - self_want).abs().max() <= tolerance * self_want.abs().max()


def test_reductions():
    xs, ys, xt, yt = inputs(Hk=2)
    mask = padding_mask(2, 9)
    rows = linearard.relation_kl(xs, ys, xt, yt, mask, reduction="none")
    assert rows.shape == (2, 4, 9)
    torch.testing.assert_close(linearard.relation_kl(xs, ys, xt, yt, mask), rows.sum())
    valid_rows = int(mask.sum())
    torch.testing.assert_close(linearard.relation_kl(xs, ys, xt, yt, mask, reduction="mean"),
                               rows.sum() / (valid_rows * 4))
    torch.testing.assert_close(linearard.relation_kl(xs, ys, xt, yt, reduction="mean"),
                               linearard.relation_kl(xs, ys, xt, yt) / (2 * 9 * 4))


def test_reduced_gradients_equal_the_per_row_ones():
    """reduction="sum" / "mean" run the reduction inside the C++ autograd node (relation_kl_sum):
    its gradients must equal those of the per-row output reduced by PyTorch."""
    xs, ys, xt, yt = inputs(Hk=2)
    mask = padding_mask(2, 9)
    valid_rows = int(mask.sum())
    for reduction, scale in (("sum", 1.0), ("mean", 1.0 / (valid_rows * 4))):
        a, b = xs.detach().requires_grad_(True), ys.detach().requires_grad_(True)
        (linearard.relation_kl(a, b, xt, yt, mask, reduction="none").sum() * scale).backward()
        c, d = xs.detach().requires_grad_(True), ys.detach().requires_grad_(True)
        linearard.relation_kl(c, d, xt, yt, mask, reduction=reduction).backward()
        torch.testing.assert_close(c.grad, a.grad, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(d.grad, b.grad, rtol=1e-6, atol=1e-12)
        e = xs.detach().requires_grad_(True)
        (linearard.relation_kl_self(e, xt, mask, reduction="none").sum() * scale).backward()
        f = xs.detach().requires_grad_(True)
        linearard.relation_kl_self(f, xt, mask, reduction=reduction).backward()
        torch.testing.assert_close(f.grad, e.grad, rtol=1e-6, atol=1e-12)


def test_integer_key_mask_equals_bool():
    xs, ys, xt, yt = inputs()
    mask = padding_mask(2, 9)
    torch.testing.assert_close(linearard.relation_kl(xs, ys, xt, yt, mask.long()),
                               linearard.relation_kl(xs, ys, xt, yt, mask))


def bad_arguments():
    """(name, call, words the message must contain): every check of linearard/relation_kl.py."""
    xs, ys, xt, yt = inputs(Hk=2, dtype=torch.float32)
    f = linearard.relation_kl
    cases = [
        ("not a tensor", lambda: f(xs.tolist(), ys, xt, yt), "xs must be a torch.Tensor"),
        ("rank", lambda: f(xs, ys[0], xt, yt), "ys must have rank 4"),
        ("dtype unsupported", lambda: f(xs, ys, xt.int(), yt), "xt has dtype torch.int32"),
        ("dtype mismatch", lambda: f(xs, ys.half(), xt, yt), "ys has dtype torch.float16 but xs has torch.float32"),
        ("teacher dtype mismatch", lambda: f(xs, ys, xt, yt.double()), "yt has dtype torch.float64 but xt"),
        ("device unsupported", lambda: f(*(t.to("meta") for t in (xs, ys, xt, yt))), "xs is on meta; the op runs"),
        ("device mismatch", lambda: f(xs, ys.to("meta"), xt, yt), "ys is on meta but xs is on cpu"),
        ("batch", lambda: f(xs, ys, xt[:1], yt), "xt has shape (1, 4, 9, 8) but B and T must match"),
        ("length", lambda: f(xs, ys[:, :, :5], xt, yt), "ys has shape (2, 2, 5, 8) but B and T"),
        ("teacher heads", lambda: f(xs, ys, xt[:, :2], yt), "xt has 2 heads but xs has 4"),
        ("gqa", lambda: f(xs, ys, xt, torch.cat([yt, yt[:, :1]], 1)), "yt has 3 key heads, which does not divide"),
        ("head dim", lambda: f(xs, ys[..., :4], xt, yt), "ys has head dim 4 but xs has 8"),
        ("zero head dim", lambda: f(xs[..., :0], ys[..., :0], xt, yt), "xs has head dim 0"),
        ("mask type", lambda: f(xs, ys, xt, yt, key_mask=[[1] * 9] * 2), "key_mask must be a torch.Tensor"),
        ("mask shape", lambda: f(xs, ys, xt, yt, key_mask=torch.ones(2, 8, dtype=torch.bool)),
         "key_mask must have shape (B, T) = (2, 9), got (2, 8)"),
        ("mask dtype", lambda: f(xs, ys, xt, yt, key_mask=torch.ones(2, 9)), "key_mask must be a bool or integer"),
        ("causal", lambda: f(xs, ys, xt, yt, causal=1), "causal must be True or False"),
        ("scale", lambda: f(xs, ys, xt, yt, scale_s=float("nan")), "scale_s must be a finite number"),
        ("scale type", lambda: f(xs, ys, xt, yt, scale_t="0.1"), "scale_t must be a finite number"),
        ("reduction", lambda: f(xs, ys, xt, yt, reduction="avg"), "reduction must be 'none', 'sum' or 'mean'"),
        ("self heads", lambda: linearard.relation_kl_self(xs, xt[:, :2]), "xt has 2 heads but xs has 4"),
        ("self dtype", lambda: linearard.relation_kl_self(xs.bfloat16(), xt.int()), "xt has dtype torch.int32"),
    ]
    if torch.cuda.is_available():
        cases.append(("cuda mismatch", lambda: f(xs, ys, xt.cuda(), yt), "xt is on cuda:0 but xs is on cpu"))
        cases.append(("float64 on cuda", lambda: f(*(t.double().cuda() for t in (xs, ys, xt, yt))),
                      "float64 is supported on CPU only"))
        cases.append(("mask device", lambda: f(xs, ys, xt, yt, key_mask=torch.ones(2, 9, dtype=torch.bool, device="cuda")),
                      "key_mask is on cuda:0 but xs is on cpu"))
    return cases


@pytest.mark.parametrize("name,call,words", bad_arguments(), ids=[c[0] for c in bad_arguments()])
def test_bad_arguments_raise_value_error(name, call, words):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert words in message
    assert message.endswith(".") and message.count(". ") == 0, f"not one sentence: {message}"

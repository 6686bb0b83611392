"""The CUDA op through the Python package against float64: its error (per-row KL and both gradients)
must be at most twice the error of a naive implementation in the same dtype on the same GPU
(relation logits materialised in the inputs' dtype, softmax and KL in float32, autograd), on shapes
that span several kernel tiles, with GQA, key padding and the self relation; and a second backward
is bitwise equal to the first (the kernels' backward is deterministic). The rule and its floors are
the C++ GPU test's (tests/ops/test_relation_kl_cuda.cpp). Skipped without a GPU and a CUDA build."""
import math

import pytest
import torch

import linearard

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and linearard._C.has_cuda()),
                                reason="needs a GPU and a CUDA build of linearard._C")

# Several 64/128-row tiles, a ragged last tile, GQA 8 -> 2, head dims of small and large models.
SHAPES = {
    "D64_gqa": dict(B=2, H=8, Hk=2, T=301, D=64),
    "D128": dict(B=1, H=4, Hk=4, T=257, D=128),
}
DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def make_inputs(B, H, Hk, T, D, dtype, seed=0):
    """Student = teacher + noise (a context-extended model and its original), rounded to `dtype`."""
    g = torch.Generator().manual_seed(seed)
    xt = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    yt = torch.randn(B, Hk, T, D, generator=g, dtype=torch.float64)
    xs = xt + 0.5 * torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    ys = yt + 0.5 * torch.randn(B, Hk, T, D, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :5] = False  # left padding
    mask[-1, -17:] = False  # right padding
    row_weights = torch.rand(B, H, T, generator=g, dtype=torch.float64)  # dL/dKL of each row
    return [t.to(dtype).double() for t in (xs, ys, xt, yt)], mask, row_weights


def rows_and_grads(fn, student, teacher, mask, row_weights, device, dtype):
    """fn(*student, *teacher, mask) -> per-row KL; its value and d(sum w KL)/d(student) in float64."""
    leaves = [t.detach().to(device, dtype).clone().requires_grad_(True) for t in student]
    rows = fn(*leaves, *(t.to(device, dtype) for t in teacher), mask.to(device))
    (rows.double() * row_weights.to(device)).sum().backward()
    return rows.detach().double().cpu(), [t.grad.double().cpu() for t in leaves]


def naive_same_dtype(xs, ys, xt, yt, key_mask):
    """naive_rows with the relation products in the inputs' dtype and the rest in float32 (float64
    for float64 inputs: then it is the exact reference)."""
    wide = torch.float64 if xs.dtype == torch.float64 else torch.float32
    B, H, T, D = xs.shape
    ys_rep, yt_rep = (y.repeat_interleave(H // y.shape[1], dim=1) for y in (ys, yt))
    logits_s = (xs @ ys_rep.transpose(-1, -2)).to(wide)
    logits_t = (xt @ yt_rep.transpose(-1, -2)).to(wide)
    return rows_from_logits(logits_s / math.sqrt(D), logits_t / math.sqrt(D), key_mask)


def valid_keys(T, key_mask):
    """(B, 1, T, T): key j of row i is valid when j <= i and key_mask[b, j]."""
    return torch.ones(T, T, dtype=torch.bool, device=key_mask.device).tril() & key_mask.bool()[:, None, None, :]


def rows_from_logits(logits_s, logits_t, key_mask):
    """Per-row KL(teacher || student) (B, H, T) of causal, key-masked (B, H, T, T) relation logits."""
    valid = valid_keys(logits_s.shape[-1], key_mask)
    log_s = torch.log_softmax(logits_s.masked_fill(~valid, -math.inf), -1)
    log_t = torch.log_softmax(logits_t.masked_fill(~valid, -math.inf), -1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~valid, 0.0).sum(-1)
    return kl.masked_fill(~(valid.any(-1) & key_mask.bool()[:, None, :]), 0.0)


def max_abs_lse(pair, key_mask):
    """max |log-sum-exp| over the valid rows of the float64 relation of (x, y) or (x, x)."""
    x, y = (pair * 2)[:2]
    y = y.repeat_interleave(x.shape[1] // y.shape[1], dim=1)
    valid = valid_keys(x.shape[2], key_mask)
    lse = (x @ y.transpose(-1, -2) / math.sqrt(x.shape[-1])).masked_fill(~valid, -math.inf).logsumexp(-1)
    return lse[valid.any(-1).expand_as(lse)].abs().max().item()


# Units of roundoff at the reference's magnitude (tests/ops/relation_kl_test_util.h roundoff_floor).
EPS = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10, torch.float32: 2.0**-23}


def check_twice_naive(op, naive, student, teacher, mask, row_weights, dtype):
    ref_rows, ref_grads = rows_and_grads(naive, student, teacher, mask, row_weights, "cpu", torch.float64)
    op_rows, op_grads = rows_and_grads(op, student, teacher, mask, row_weights, "cuda", dtype)
    nv_rows, nv_grads = rows_and_grads(naive, student, teacher, mask, row_weights, "cuda", dtype)
    # Floors, as the C++ GPU test: 4 ulps of the dtype at the reference's magnitude, and the
    # resolution of the op's float32 row statistics (a probability recomputed from a saved LSE
    # carries ~eps32 |lse|), where the naive run is exact on structurally zero rows.
    eps32 = 2.0**-23
    lse_scale = max(1.0, max_abs_lse(student, mask), max_abs_lse(teacher, mask))
    grad_scale = 2 / math.sqrt(student[0].shape[-1]) * row_weights.abs().max().item() * \
        max(t.abs().max().item() for t in student)
    for what, got, naive_got, want, stat_floor in (
            ("per-row KL", [op_rows], [nv_rows], [ref_rows], 4 * eps32 * lse_scale),
            ("gradient", op_grads, nv_grads, ref_grads, 4 * eps32 * lse_scale * grad_scale)):
        for i, (g, n, w) in enumerate(zip(got, naive_got, want)):
            floor = max(4 * EPS[dtype] * w.abs().max().item(), stat_floor)
            err, naive_err = (g - w).abs().max().item(), (n - w).abs().max().item()
            assert math.isfinite(err) and err <= 2 * max(naive_err, floor), \
                f"{what} {i}: error {err:.3g} > 2 x max(naive same-dtype {naive_err:.3g}, floor {floor:.3g})"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_relation_kl_within_twice_naive(shape, dtype):
    s = SHAPES[shape]
    (xs, ys, xt, yt), mask, w = make_inputs(s["B"], s["H"], s["Hk"], s["T"], s["D"], dtype)
    op = lambda a, b, c, d, m: linearard.relation_kl(a, b, c, d, m, reduction="none")
    check_twice_naive(op, naive_same_dtype, [xs, ys], [xt, yt], mask, w, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_relation_kl_self_within_twice_naive(shape, dtype):
    s = SHAPES[shape]
    (xs, _, xt, _), mask, w = make_inputs(s["B"], s["H"], s["Hk"], s["T"], s["D"], dtype)
    op = lambda a, c, m: linearard.relation_kl_self(a, c, m, reduction="none")
    naive = lambda a, c, m: naive_same_dtype(a, a, c, c, m)
    check_twice_naive(op, naive, [xs], [xt], mask, w, dtype)


@pytest.mark.parametrize("self_relation", [False, True], ids=["qk", "self"])
def test_second_backward_is_bitwise_equal(self_relation):
    (xs, ys, xt, yt), mask, w = make_inputs(1, 8, 2, 1031, 64, torch.bfloat16, seed=1)
    to = lambda t: t.to("cuda", torch.bfloat16)
    grads = []
    for _ in range(2):
        a, b = to(xs).requires_grad_(True), to(ys).requires_grad_(True)
        if self_relation:
            rows = linearard.relation_kl_self(a, to(xt), mask.cuda(), reduction="none")
        else:
            rows = linearard.relation_kl(a, b, to(xt), to(yt), mask.cuda(), reduction="none")
        (rows * w.float().cuda()).sum().backward()
        grads.append([a.grad.clone()] + ([] if self_relation else [b.grad.clone()]))
    for g1, g2 in zip(*grads):
        assert torch.equal(g1, g2)

"""The relation-KL op for PyTorch: exact KL(teacher || student) between the row-wise softmax
distributions of two relation matrices, never materialising a T x T map (the C++ op,
src/ops/relation_kl/relation_kl.h; LinearARD, arXiv 2604.00004, §3).

    s_ij = scale_s <xs_i, ys_j>    xs (B, H, T, Ds) student queries, ys (B, Hk, T, Ds) student keys
    t_ij = scale_t <xt_i, yt_j>    xt (B, H, T, Dt) teacher queries, yt (B, Hkt, T, Dt) teacher keys
    KL_i = sum_j p_t,ij (log p_t,ij - log p_s,ij),  p = softmax over the valid keys j of row i

Valid keys of row i: key_mask[b, j] true and, when causal, j <= i (the diagonal included). Query
head h reads key head h // (H / Hk) (GQA). Padded rows give 0. Gradients flow to xs and ys only;
the backward is the C++ op's own (its autograd Functions), the fused one for relation_kl_self.
"""
import math
import numbers

import torch

from . import _C

_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float64)
_REDUCTIONS = ("none", "sum", "mean")


def relation_kl(xs, ys, xt, yt, key_mask=None, causal=True, scale_s=None, scale_t=None, reduction="sum"):
    """KL(teacher || student) of the relations xs ys^T (student) and xt yt^T (teacher).

    scale_s / scale_t default to 1 / sqrt(Ds) and 1 / sqrt(Dt). reduction: "none" gives the per-row
    KL (B, H, T) in float32 (float64 for float64 inputs), "sum" its sum, "mean" its sum divided by
    the valid rows times H (the paper's normalisation: valid tokens x query heads).
    Inputs: bfloat16, float16 or float32 on CPU or CUDA, float64 on CPU.
    """
    tensors = {"xs": xs, "ys": ys, "xt": xt, "yt": yt}
    _check_tensors(tensors, key_mask)
    _check_shapes(tensors, pairs=(("xs", "ys"), ("xt", "yt")))
    scale_s, scale_t = _scales(scale_s, scale_t, xs, xt)
    _check_options(causal, reduction)
    if reduction == "none":
        return _C.relation_kl(xs, ys, xt, yt, key_mask, scale_s, scale_t, causal)
    return _C.relation_kl_sum(xs, ys, xt, yt, key_mask, scale_s, scale_t, causal, _sum_weight(xs, key_mask, reduction))


def relation_kl_self(xs, xt, key_mask=None, causal=True, scale_s=None, scale_t=None, reduction="sum"):
    """Self-relation KL (Q/Q, K/K or V/V): relation_kl(xs, xs, xt, xt, ...) with the row and column
    gradient terms fused. xs (B, H, T, Ds) student, xt (B, H, T, Dt) teacher; arguments as relation_kl."""
    tensors = {"xs": xs, "xt": xt}
    _check_tensors(tensors, key_mask)
    _check_shapes(tensors, pairs=())
    scale_s, scale_t = _scales(scale_s, scale_t, xs, xt)
    _check_options(causal, reduction)
    if reduction == "none":
        return _C.relation_kl_self(xs, xt, key_mask, scale_s, scale_t, causal)
    return _C.relation_kl_self_sum(xs, xt, key_mask, scale_s, scale_t, causal, _sum_weight(xs, key_mask, reduction))


def _sum_weight(xs, key_mask, reduction):
    """The reduction as a weight on the sum, which the C++ op applies in its own autograd node (a
    separate sum / division here would add nodes whose CPU time sits between the forward and the
    backward kernels). "mean" divides by valid rows x H; with a key_mask counting them reads it."""
    if reduction == "sum":
        return 1.0
    B, H, T = xs.shape[0], xs.shape[1], xs.shape[2]
    valid_rows = B * T if key_mask is None else int(key_mask.count_nonzero())
    return 1.0 / max(valid_rows * H, 1)


def _shape(t):
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_tensors(tensors, key_mask):
    """Type, rank, dtype and device of every input; the first tensor's device is the reference."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
        if t.dim() != 4:
            raise ValueError(f"{name} must have rank 4 (B, H, T, D), got shape {_shape(t)}.")
        if t.dtype not in _DTYPES:
            raise ValueError(f"{name} has dtype {t.dtype}; expected bfloat16, float16, float32 or float64.")
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}.")
        if t.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{name} is on {t.device}; the op runs on CPU or CUDA.")
        if t.dtype == torch.float64 and t.device.type != "cpu":
            raise ValueError(f"{name} is float64 on {t.device}; float64 is supported on CPU only.")
    if key_mask is None:
        return
    if not isinstance(key_mask, torch.Tensor):
        raise ValueError(f"key_mask must be a torch.Tensor or None, got {type(key_mask).__name__}.")
    B, T = first.shape[0], first.shape[2]
    if key_mask.shape != (B, T):
        raise ValueError(f"key_mask must have shape (B, T) = ({B}, {T}), got {_shape(key_mask)}.")
    if key_mask.is_floating_point() or key_mask.is_complex():
        raise ValueError(f"key_mask must be a bool or integer tensor, got {key_mask.dtype}.")
    if key_mask.device != first.device:
        raise ValueError(f"key_mask is on {key_mask.device} but {first_name} is on {first.device}.")


def _check_shapes(tensors, pairs):
    """Student and teacher share B, T and the query heads H; keys divide H (GQA); each (query, key)
    pair in `pairs` shares its head dim and dtype."""
    names = list(tensors)
    xs, xt = tensors[names[0]], tensors["xt"]
    B, H, T = xs.shape[0], xs.shape[1], xs.shape[2]
    for name, t in tensors.items():
        if t.shape[0] != B or t.shape[2] != T:
            raise ValueError(f"{name} has shape {_shape(t)} but B and T must match xs's ({B}, {T}).")
        if t.shape[3] == 0:
            raise ValueError(f"{name} has head dim 0.")
    if H == 0:
        raise ValueError("xs has 0 heads.")
    if xt.shape[1] != H:
        raise ValueError(f"xt has {xt.shape[1]} heads but xs has {H} (student and teacher query heads must match).")
    for query, key in pairs:
        q, k = tensors[query], tensors[key]
        if k.shape[1] == 0 or H % k.shape[1] != 0:
            raise ValueError(f"{key} has {k.shape[1]} key heads, which does not divide the {H} query heads (GQA).")
        if k.shape[3] != q.shape[3]:
            raise ValueError(f"{key} has head dim {k.shape[3]} but {query} has {q.shape[3]}.")
        if k.dtype != q.dtype:
            raise ValueError(f"{key} has dtype {k.dtype} but {query} has {q.dtype}.")


def _scales(scale_s, scale_t, xs, xt):
    scales = []
    for name, value, x in (("scale_s", scale_s, xs), ("scale_t", scale_t, xt)):
        if value is None:
            value = 1.0 / math.sqrt(x.shape[3])
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number or None, got {value!r}.")
        scales.append(float(value))
    return scales


def _check_options(causal, reduction):
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be True or False, got {causal!r}.")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}.")

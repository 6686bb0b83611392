"""The Python op's fwd+bwd time beside the C++ benchmark's and the paper's Triton kernel, one GPU run.

    python bench/python_relation_kl.py --bin build/linearard --paper-kernels .paper-kernels [--T 1024,4096,8192]

Three timings per sequence length T (B=1, H=32, D=128, bf16, causal, as `linearard bench relation-kl`):
  * self relation (Q/Q, the training case): `linearard bench relation-kl` (C++, run as a subprocess
    in this process's turn) and `linearard.relation_kl_self` (Python autograd), timed the same way:
    CUDA events around one forward + backward, synchronised after each call, median of the repeats
    (and the Python op once more with the calls back to back, a training loop's regime);
  * query/key relation (attention, what the paper's kernel computes): `linearard.relation_kl(q, k,
    qt, kt)` and the paper's `attn_kl_align(qs, ks, qt, kt)` (public repository gracefulning/LinearARD,
    kernels/attention_KL, a fetched copy in an ignored folder: never part of this repository).
FLOPs: bench/flop_model.h's relation-KL model (2 FLOPs per multiply-add of the matrix products;
causal halves them), the same for both relations. Writes a CSV (--csv) and prints a markdown table.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

import torch

import linearard


def relation_kl_fwdbwd_flops(B, H, T, D):
    """bench/flop_model.h: forward 2 B H T^2 (Ds + Dt), backward that again + 4 B H T^2 Ds, causal half."""
    fwd = 2.0 * B * H * T * T * (D + D)
    bwd = fwd + 4.0 * B * H * T * T * D
    return (fwd + bwd) / 2


def time_cuda(fn, warmup, repeats):
    """Median / p20 / p80 milliseconds of fn(), each call between two CUDA events and synchronised
    (bench/relation_kl.cpp time_cuda's method)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms = []
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ms.append(start.elapsed_time(stop))
    ms.sort()
    q = lambda p: ms[min(len(ms) - 1, int(p * (len(ms) - 1) + 0.5))]
    return statistics.median(ms), q(0.2), q(0.8)


def time_cuda_back_to_back(fn, warmup, repeats):
    """Milliseconds per call of `repeats` calls issued back to back between two CUDA events, one
    synchronisation at the end: a training loop's regime, where the CPU work of a call (Python,
    PyTorch's autograd engine) overlaps the GPU work of the calls before it."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / repeats


def cpp_bench(binary, T, B, H, D, warmup, repeats):
    """{T: fwd+bwd median ms} of `linearard bench relation-kl` (self relation, the CUDA op)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rkl.csv")
        cmd = [binary, "bench", "relation-kl", "--T", ",".join(map(str, T)), "--D", str(D), "--B", str(B),
               "--H", str(H), "--warmup", str(warmup), "--repeats", str(repeats), "--no-naive", "--no-sdpa",
               "--csv", path]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return {int(r["T"]): float(r["fwdbwd_ms"]) for r in csv.DictReader(open(path))
                if r["impl"] == "relation_kl_cuda"}


def inputs(B, H, T, D, seed):
    """Student and teacher tensors (B, H, T, D) bf16; teacher = student + noise (bench/relation_kl.cpp)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(B, H, T, D, device="cuda", generator=g, dtype=torch.bfloat16)
    y = (x.float() + 0.5 * torch.randn(B, H, T, D, device="cuda", generator=g)).bfloat16()
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the linearard binary (for the C++ benchmark)")
    ap.add_argument("--paper-kernels", help="folder holding the paper's attention_KL package (skipped when absent)")
    ap.add_argument("--T", default="1024,4096,8192")
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--H", type=int, default=32)
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--csv", help="write one row per implementation and T")
    a = ap.parse_args()
    Ts = [int(t) for t in a.T.split(",")]
    B, H, D = a.B, a.H, a.D
    scale = D ** -0.5

    attn_kl_align = None
    if a.paper_kernels and os.path.isdir(os.path.join(a.paper_kernels, "attention_KL")):
        sys.path.insert(0, os.path.abspath(a.paper_kernels))
        from attention_KL.integration import attn_kl_align  # noqa: E402  (the paper's Triton kernel)

    cpp = cpp_bench(a.bin, Ts, B, H, D, a.warmup, a.repeats)
    rows, table = [], []  # CSV rows; one dict of timings per T
    for T in Ts:
        x, y = inputs(B, H, T, D, seed=T)
        q, k = inputs(B, H, T, D, seed=T + 1)
        qt, kt = (q.float() + 0.3 * torch.randn_like(q, dtype=torch.float)).bfloat16(), \
                 (k.float() + 0.3 * torch.randn_like(k, dtype=torch.float)).bfloat16()
        xs = x.detach().requires_grad_(True)
        qs, ks = q.detach().requires_grad_(True), k.detach().requires_grad_(True)

        # The training use: a summed loss, backward. (The C++ benchmark's dL/dKL_i are random, here
        # they are 1: the kernels' work does not depend on the values.)
        def python_self():
            linearard.relation_kl_self(xs, y).backward()
            xs.grad = None

        def python_qk():
            linearard.relation_kl(qs, ks, qt, kt, scale_s=scale, scale_t=scale).backward()
            qs.grad = ks.grad = None

        def paper_qk():
            attn_kl_align(qs, ks, qt, kt, None, True, scale, scale).backward()
            qs.grad = ks.grad = None

        flops = relation_kl_fwdbwd_flops(B, H, T, D)
        timed = [("relation_kl_self (Python)", "self", python_self), ("relation_kl (Python)", "qk", python_qk)]
        if attn_kl_align is not None:
            timed.append(("paper Triton attn_kl_align", "qk", paper_qk))
        row = {"T": T, "cpp_self_ms": cpp.get(T, float("nan"))}
        for name, rel, fn in timed:
            # The paper's kernel runs ~100x longer: fewer repeats keep the call short.
            reps = a.repeats if "paper" not in name else max(3, a.repeats // 5)
            med, p20, p80 = time_cuda(fn, a.warmup, reps)
            row[name] = med
            rows.append(dict(T=T, B=B, H=H, D=D, relation=rel, impl=name, fwdbwd_ms=f"{med:.4f}",
                             p20=f"{p20:.4f}", p80=f"{p80:.4f}", tflops=f"{flops / med / 1e9:.1f}"))
            print(f"T={T} {name}: {med:.3f} ms [{p20:.3f}, {p80:.3f}] ({flops / med / 1e9:.0f} TFLOP/s)", flush=True)
        rows.append(dict(T=T, B=B, H=H, D=D, relation="self", impl="linearard bench relation-kl (C++)",
                         fwdbwd_ms=f"{row['cpp_self_ms']:.4f}", p20="", p80="",
                         tflops=f"{flops / row['cpp_self_ms'] / 1e9:.1f}"))
        row["self_back_to_back"] = time_cuda_back_to_back(python_self, a.warmup, a.repeats)
        rows.append(dict(T=T, B=B, H=H, D=D, relation="self", impl="relation_kl_self (Python, back to back)",
                         fwdbwd_ms=f"{row['self_back_to_back']:.4f}", p20="", p80="",
                         tflops=f"{flops / row['self_back_to_back'] / 1e9:.1f}"))
        row.setdefault("paper Triton attn_kl_align", float("nan"))
        table.append(row)

    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    gpu = torch.cuda.get_device_name()
    print(f"\n{gpu}, B={B}, H={H}, D={D}, bf16, causal; fwd+bwd ms (median)\n")
    print("| T | self: C++ bench | self: Python op | Python / C++ | self: Python, back to back | / C++ "
          "| Q/K: Python op | Q/K: paper Triton | paper / ours |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in table:
        c, p, pb, pq, tr = r["cpp_self_ms"], r["relation_kl_self (Python)"], r["self_back_to_back"], \
            r["relation_kl (Python)"], r["paper Triton attn_kl_align"]
        print(f"| {r['T']} | {c:.3f} | {p:.3f} | {p / c:.3f} | {pb:.3f} | {pb / c:.3f} | {pq:.3f} | {tr:.3f} "
              f"| {tr / pq:.1f}x |")


if __name__ == "__main__":
    main()

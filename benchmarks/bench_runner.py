"""Throughput of the pilot runner (transformers Trainer) against a plain torch training loop.

Same model, data, optimizer (AdamW), schedule, clipping, batch and number of steps; the Trainer's
rate counts training only (evaluation time is excluded, as the runner records it). Runs alternate
(runner, plain, runner, plain, ...) so machine load hits both alike; the table reports the median
over repeats. On a GPU it also reports model FLOPs utilisation (analytic training FLOPs per second
over the GPU's peak bf16 rate, given with --peak-tflops).

    python benchmarks/bench_runner.py --sizes 1e5,1e6 --steps 150 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e5,1e6", help="requested non-embedding N, comma-separated")
    ap.add_argument("--arch", default="llama")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="GPU peak (dense bf16) for MFU, e.g. 989 for an H100 SXM"
    )
    ap.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = ap.parse_args()

    import torch
    import transformers

    from bayescale.runner import plain_torch_loop, plan_pilot, train_pilot
    from bayescale.runner.shapes import training_flops

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for n in [float(x) for x in args.sizes.split(",")]:
        probe = plan_pilot(n, 1.0, arch=args.arch, batch_size=args.batch_size)
        tokens = args.steps * args.batch_size * probe.shape.seq_len
        plan = plan_pilot(
            n, tokens, arch=args.arch, batch_size=args.batch_size, eval_tokens=probe.shape.seq_len * 16, curve_points=1
        )
        runner, plain = [], []
        for r in range(-1, args.repeats):  # repeat -1 warms up (first-call costs of torch) and is dropped
            with tempfile.TemporaryDirectory() as work:
                res = train_pilot(
                    n,
                    tokens,
                    arch=args.arch,
                    batch_size=args.batch_size,
                    eval_tokens=plan.eval_tokens,
                    curve_points=1,
                    work_dir=work,
                    save_every_s=1e9,
                    device="cuda" if cuda else "cpu",
                    threads=args.threads,
                )
            runner.append(res.row["train_tokens_per_s"])
            plain.append(
                plain_torch_loop(plan, threads=args.threads)["tokens_per_s"] if not cuda else _plain_cuda(plan)
            )
            if r < 0:
                runner.pop(), plain.pop()
                continue
            print(
                f"N={n:.3g} repeat {r}: runner {runner[-1]:.0f} tok/s, plain torch {plain[-1]:.0f} tok/s",
                file=sys.stderr,
            )
        flops_tok = training_flops(plan.shape, 1.0)
        row = {
            "N (non-emb.)": res.row["N"],
            "shape": f"{plan.shape.n_layer}x{plan.shape.d_model}",
            "batch x ctx": f"{args.batch_size}x{plan.shape.seq_len}",
            "steps": plan.hyper.steps,
            "runner tok/s": statistics.median(runner),
            "plain torch tok/s": statistics.median(plain),
        }
        row["runner / plain"] = row["runner tok/s"] / row["plain torch tok/s"]
        row["runner GFLOP/s"] = row["runner tok/s"] * flops_tok / 1e9
        if cuda and args.peak_tflops:
            row["MFU"] = row["runner GFLOP/s"] / (args.peak_tflops * 1e3)
        rows.append(row)
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = list(rows[0])
    lines = [
        (
            f"Machine: {platform.machine()} {device}; Python {platform.python_version()}; torch {torch.__version__}; "
            f"transformers {transformers.__version__}; load average {load:.1f} at the end; {args.repeats} alternating repeats after one warm-up pair, medians."
        ),
        f"Command: `python benchmarks/bench_runner.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')})",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[h]) for h in header) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")


def _plain_cuda(plan) -> float:  # pragma: no cover - GPU only
    import torch

    from bayescale.runner.train import build_model

    model = build_model(plan.shape, seed=plan.seed).cuda()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=plan.hyper.lr,
        betas=(plan.hyper.adam_beta1, plan.hyper.adam_beta2),
        weight_decay=plan.hyper.weight_decay,
        fused=True,
    )
    import numpy as np

    tokens = np.asarray(plan.streams.train[: plan.hyper.batch_size * plan.shape.seq_len * 64], dtype=np.int64)
    data = torch.from_numpy(tokens).view(-1, plan.shape.seq_len).cuda()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(plan.hyper.steps):
        batch = data[(i * plan.hyper.batch_size) % (len(data) - plan.hyper.batch_size) :][: plan.hyper.batch_size]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), plan.hyper.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return plan.hyper.steps * plan.hyper.batch_size * plan.shape.seq_len / (time.perf_counter() - t0)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


if __name__ == "__main__":
    main()

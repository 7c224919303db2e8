"""Throughput of the pilot runner (transformers Trainer) against a plain torch training loop.

Same model, data, optimizer (AdamW), schedule, clipping, batch and number of steps; the Trainer's
rate counts training only (evaluation time is excluded, as the runner records it). Runs alternate
(runner, plain, runner, plain, ...) so machine load hits both alike; the table reports the median
over repeats.

On a GPU (``--device cuda``) it times the steady state instead: the steps after ``--warmup-steps``
(which take cuBLAS's and torch.compile's first-call costs), for each of ``--paths``: ``runner`` (the
Trainer path, bf16 autocast and fused AdamW), ``runner-compiled`` (the same with ``torch.compile``),
``runner-autotuned`` (``torch.compile`` in mode "max-autotune-no-cudagraphs"), ``plain``,
``plain-compiled`` and ``plain-autotuned`` (a plain torch loop doing the same), and reports model FLOPs
utilisation: analytic training FLOPs per second over the GPU's datasheet peak (dense bf16,
``bayescale.runner.hardware``). ``--batch-sizes`` adds batches beside the batch rule's.

    python benchmarks/bench_runner.py --sizes 1e5,1e6 --steps 150 --repeats 3
    python benchmarks/bench_runner.py --device cuda --sizes 1e7,1e8,3e8 --steps 60 --warmup-steps 20 \
        --paths runner,plain,runner-compiled --batch-sizes rule,512 --json gpu.jsonl
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
        "--paths", default="runner,plain", help="GPU: runner or plain, each optionally -compiled or -autotuned"
    )
    ap.add_argument("--batch-sizes", default="rule", help="GPU: 'rule' (the batch rule's) and/or sequences per step")
    ap.add_argument("--warmup-steps", type=int, default=20, help="GPU: steps before the clock starts")
    ap.add_argument("--json", default=None, help="GPU: append one JSON line per measurement to this file")
    ap.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = ap.parse_args()

    import torch
    import transformers

    from bayescale.runner import plain_torch_loop, plan_pilot, train_pilot
    from bayescale.runner.shapes import training_flops

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda:
        return gpu_main(args)
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
                    device="cpu",
                    threads=args.threads,
                )
            runner.append(res.row["train_tokens_per_s"])
            plain.append(plain_torch_loop(plan, threads=args.threads)["tokens_per_s"])
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
        rows.append(row)
    device = f"CPU, {torch.get_num_threads()} torch threads"
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


def gpu_main(args) -> None:  # pragma: no cover - GPU only
    """Steady-state tokens/s and MFU of each path, size and batch on the GPU (see the module docstring)."""
    import gc
    import json

    import torch
    import transformers

    from bayescale.runner import plan_pilot
    from bayescale.runner.hardware import peak_bf16_flops
    from bayescale.runner.shapes import hyper_for, training_flops

    if not 0 < args.warmup_steps < args.steps:
        raise SystemExit(f"--warmup-steps {args.warmup_steps} must be in 1..{args.steps - 1} (--steps {args.steps})")
    name = torch.cuda.get_device_name(0)
    peak = peak_bf16_flops(name)
    rows = []
    for n in [float(x) for x in args.sizes.split(",")]:
        for batch in args.batch_sizes.split(","):
            seq = 128  # the runner's default context
            # "rule": the batch rule's at 20 tokens per parameter (the steps here are far fewer)
            b = hyper_for(n, 20 * n, seq, arch=args.arch).batch_size if batch == "rule" else int(batch)
            plan = plan_pilot(
                n, args.steps * b * seq, arch=args.arch, batch_size=b, eval_tokens=seq * 16, curve_points=1
            )
            for path in args.paths.split(","):
                gc.collect()  # the previous path's model and Trainer, before this path's memory is measured
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                tok_s, passes = _gpu_path(plan, path, args.warmup_steps)
                row = {
                    "N": n,
                    "shape": f"{plan.shape.n_layer}x{plan.shape.d_model}",
                    "batch": f"{b}x{seq}" + (" (rule)" if batch == "rule" else ""),
                    "path": path,
                    "passes": passes,
                    "tokens/s": tok_s,
                    "TFLOP/s": tok_s * training_flops(plan.shape, 1.0) / 1e12,
                    "MFU": tok_s * training_flops(plan.shape, 1.0) / peak,
                    "peak GiB": torch.cuda.max_memory_allocated() / 2**30,
                    "wall s": time.perf_counter() - t,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps({**row, "device": name, "peak_tflops": peak / 1e12}) + "\n")
    header = list(rows[0])
    lines = [
        f"Machine: {name} (peak dense bf16 {peak / 1e12:.0f} TFLOP/s, datasheet); torch {torch.__version__}; "
        f"transformers {transformers.__version__}; Python {platform.python_version()}; steady state: the steps after "
        f"the first {args.warmup_steps} of {args.steps}, one run each.",
        f"Command: `python benchmarks/bench_runner.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')})",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(_fmt(r[h]) for h in header) + " |" for r in rows]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(lines) + "\n")


#: What each path's suffix asks of torch.compile.
COMPILE = {"": False, "compiled": True, "autotuned": "max-autotune-no-cudagraphs"}


def _gpu_path(plan, path: str, warmup: int) -> tuple[float, int]:  # pragma: no cover - GPU only
    """Steady-state training tokens/s of ``plan`` on the GPU along ``path``, and the forward passes per
    optimizer step (the runner splits a batch that its memory estimate says does not fit)."""
    import torch
    from transformers import TrainerCallback

    from bayescale.runner import build_pilot, plain_torch_loop, train_model

    loop, _, how = path.partition("-")
    if loop not in ("runner", "plain") or how not in COMPILE:
        raise SystemExit(f"--paths: {path!r} is not one of runner, plain, each optionally -compiled or -autotuned")
    if loop == "plain":
        return plain_torch_loop(plan, device="cuda", compile=COMPILE[how], warmup_steps=warmup)["tokens_per_s"], 1

    class StepClock(TrainerCallback):
        """Wall time between the end of step ``warmup`` and the end of the last step (before its eval)."""

        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (warmup, plan.hyper.steps):
                torch.cuda.synchronize()
                setattr(self, "t0" if state.global_step == warmup else "t1", time.perf_counter())

    clock = StepClock()
    model, data = build_pilot(plan, "cuda")
    with tempfile.TemporaryDirectory() as work:
        trained = train_model(
            model, data, plan, Path(work), device="cuda", compile=COMPILE[how], save_every_s=1e9, callbacks=[clock]
        )
    del model
    tok_s = (plan.hyper.steps - warmup) * plan.hyper.batch_size * plan.shape.seq_len / (clock.t1 - clock.t0)
    return tok_s, plan.hyper.batch_size // trained.micro_batch


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


if __name__ == "__main__":
    main()

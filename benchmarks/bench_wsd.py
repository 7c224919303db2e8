"""WSD pilots against separate cosine pilots: losses at each cooldown point, over several seeds, on CPU.

For each model size and seed it trains one warmup-stable-decay trunk of D tokens with a cooldown
branch ending at each fraction in ``--cooldowns`` (:func:`bayescale.runner.train_wsd`), and a separate
cosine pilot at the same N for each branch's D, as the runner trains it by default
(:func:`bayescale.runner.train_pilot`: its batch rule, so a shorter pilot takes smaller batches).
With ``--batch-size`` every pilot, trunk and cosine alike, takes that batch (the same steps for the
same D: the schedules alone differ); with ``--matched-batch`` it also trains cosine pilots at the WSD trunk's batch size (the same steps
as the branch), which separates the schedule from the batch rule; with ``--cosine-to-zero``, cosine
pilots at that batch size whose rate decays to 0 (the runner's rule stops at 10% of the peak; the WSD
cooldown goes to 0), which separates the final rate from the shape of the schedule.

Per (N, D) it reports the mean loss of each kind over seeds, WSD minus cosine (mean and its standard
error over the paired seeds), and the seed-to-seed standard deviation of the cosine losses: the
noise the issue's target measures against. And the FLOPs (6 N D, non-embedding N) of one WSD trunk
with all its branches against the sum of the separate cosine pilots.

    nice -n 5 python benchmarks/bench_wsd.py --sizes 1.5e4,4e4 --tokens 6e5,1.2e6 --seeds 0,1,2 \
        --out wsd.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def train_all(args) -> list[dict]:
    """One record per trained pilot: kind (wsd, cosine, cosine-matched), N, D, seed, loss, FLOPs, wall."""
    from bayescale.runner import train_pilot
    from bayescale.runner.wsd import train_wsd

    common = {"eval_tokens": args.eval_tokens, "curve_points": 1, "threads": 1, "device": "cpu", "save_every_s": 1e9}
    fixed = {} if args.batch_size is None else {"batch_size": args.batch_size}  # else: the batch rule
    if args.lr_scale is not None:  # both schedules at the same factor on the runner's learning-rate rule
        common["lr_scale"] = args.lr_scale
    records = []
    for n, d in zip(_floats(args.sizes), _floats(args.tokens), strict=True):
        for seed in [int(s) for s in args.seeds.split(",")]:
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                wsd = train_wsd(n, d, cooldowns=args.cooldowns, seed=seed, work_dir=work, **fixed, **common)
                rows = [r.row for r in wsd]
                wall = time.perf_counter() - t0
            trunk_flops = max(r["C"] for r in rows) + sum(r["C_branch"] for r in rows) - rows[-1]["C_branch"]
            for r in rows:
                records.append(_record("wsd", n, r, seed, wall / len(rows), trunk_flops))
            for r in rows:
                kinds = [("cosine", None)] + ([("cosine-matched", r["batch_size"])] if args.matched_batch else [])
                for kind, batch in kinds + ([("cosine-to-0", r["batch_size"])] if args.cosine_to_zero else []):
                    if kind == "cosine-matched" and r is rows[-1]:
                        continue  # the full-length cosine pilot already has the trunk's batch size
                    with tempfile.TemporaryDirectory() as work:
                        t0 = time.perf_counter()
                        if kind == "cosine-to-0":
                            row = _cosine_to_zero(n, r["tokens_requested"], seed, batch, Path(work), common)
                        else:
                            size = {"batch_size": batch} if batch else fixed
                            row = train_pilot(n, r["tokens_requested"], seed=seed, work_dir=work, **size, **common).row
                        records.append(_record(kind, n, row, seed, time.perf_counter() - t0, row["C"]))
                print(f"N={n:.3g} D={r['D']:.3g} seed {seed}: wsd {r['loss']:.4f}", file=sys.stderr, flush=True)
    return records


def _cosine_to_zero(n: float, tokens: float, seed: int, batch: int, work: Path, common: dict) -> dict:
    """A cosine pilot at ``batch`` whose rate decays to 0 instead of the rule's 10% (the runner has no
    option for it: its plan is changed here, and trained as train_pilot would)."""
    from dataclasses import replace

    from bayescale.runner.models import count_params
    from bayescale.runner.plan import plan_pilot
    from bayescale.runner.train import build_pilot, record_pilot, train_model

    plan = plan_pilot(
        n,
        tokens,
        seed=seed,
        batch_size=batch,
        eval_tokens=common["eval_tokens"],
        curve_points=common["curve_points"],
        lr_scale=common.get("lr_scale"),
    )
    plan = replace(plan, hyper=replace(plan.hyper, min_lr_ratio=0.0))
    model, data = build_pilot(plan)
    trained = train_model(model, data, plan, work, device="cpu", save_every_s=common["save_every_s"])
    return record_pilot(plan, count_params(model, plan.arch), trained, work).row


def _record(kind: str, n: float, row: dict, seed: int, wall: float, flops: float) -> dict:
    return {
        "kind": kind,
        "n_requested": n,
        "fraction_D": row["tokens_requested"],
        "N": row["N"],
        "D": row["D"],
        "seed": seed,
        "loss": row["loss"],
        "lr": row["lr"],
        "batch_size": row["batch_size"],
        "steps": row["steps"],
        "C": row["C"],
        "flops_total": flops,
        "wall_s": wall,
    }


def summarise(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per (N, requested D): WSD vs cosine; per N: FLOPs of the WSD runs against the cosine pilots."""
    points, costs = [], []
    for n in sorted({r["n_requested"] for r in records}):
        at_n = [r for r in records if r["n_requested"] == n]
        for dreq in sorted({r["fraction_D"] for r in at_n}):
            by = {k: {r["seed"]: r for r in at_n if r["kind"] == k and r["fraction_D"] == dreq} for k in _kinds(at_n)}
            seeds = sorted(by["wsd"])
            wsd = [by["wsd"][s]["loss"] for s in seeds]
            row = {"N": by["wsd"][seeds[0]]["N"], "D": by["wsd"][seeds[0]]["D"], "seeds": len(seeds)}
            row["WSD loss"] = statistics.mean(wsd)
            for k in [k for k in by if k != "wsd"]:
                other = [by[k][s]["loss"] if s in by[k] else by["cosine"][s]["loss"] for s in seeds]
                diff = [a - b for a, b in zip(wsd, other, strict=True)]
                row[f"{k} loss"] = statistics.mean(other)
                row[f"WSD - {k}"] = statistics.mean(diff)
                row[f"se of WSD - {k}"] = statistics.stdev(diff) / len(diff) ** 0.5
                row[f"{k} seed sd"] = statistics.stdev(other)
            row["within 2 sd"] = abs(row["WSD - cosine"]) <= 2 * row["cosine seed sd"]
            points.append(row)
        wsd_flops = statistics.mean({r["seed"]: r["flops_total"] for r in at_n if r["kind"] == "wsd"}.values())
        cos = [r for r in at_n if r["kind"] == "cosine"]
        cos_flops = sum(r["C"] for r in cos) / len({r["seed"] for r in cos})
        wsd_wall = sum(r["wall_s"] for r in at_n if r["kind"] == "wsd")
        costs.append(
            {
                "N": at_n[0]["N"],
                "WSD FLOPs": wsd_flops,
                "cosine FLOPs (sum)": cos_flops,
                "WSD / cosine FLOPs": wsd_flops / cos_flops,
                "WSD wall s": wsd_wall,
                "cosine wall s": sum(r["wall_s"] for r in cos),
            }
        )
    return points, costs


def _kinds(records: list[dict]) -> list[str]:
    return [k for k in ("wsd", "cosine", "cosine-matched", "cosine-to-0") if any(r["kind"] == k for r in records)]


def _table(rows: list[dict]) -> list[str]:
    header = list(rows[0])
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        out.append("| " + " | ".join(_fmt(row[h]) for h in header) + " |")
    return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 or v == 0 else f"{v:.4f}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1.5e4,4e4", help="requested non-embedding N, comma-separated")
    ap.add_argument("--tokens", default="6e5,1.2e6", help="the trunk's D for each size, comma-separated")
    ap.add_argument("--cooldowns", type=_floats, default=[0.25, 0.5, 1.0], help="branch points, fractions of D")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--eval-tokens", type=int, default=32768)
    ap.add_argument("--matched-batch", action="store_true", help="also cosine pilots at the trunk's batch size")
    ap.add_argument("--cosine-to-zero", action="store_true", help="also cosine pilots at that batch, decaying to 0")
    ap.add_argument("--batch-size", type=int, default=None, help="one batch for every pilot (default: the batch rule)")
    ap.add_argument(
        "--lr-scale", type=float, default=None, help="factor on the learning-rate rule (default: the runner's)"
    )
    ap.add_argument("--records", default=None, help="read the pilots from these JSONs (comma-separated), not train")
    ap.add_argument("--out", default=None, help="write the pilots' records to this JSON")
    args = ap.parse_args()

    import torch

    t0 = time.perf_counter()
    if args.records:
        records = [r for f in args.records.split(",") for r in json.loads(Path(f).read_text())]
    else:
        records = train_all(args)
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=1))
    points, costs = summarise(records)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Machine: {platform.machine()} CPU, 1 torch thread per pilot; Python {platform.python_version()}; "
        f"torch {torch.__version__}; load average {load:.1f} at the end; {time.perf_counter() - t0:.0f} s.",
        f"Command: `python benchmarks/bench_wsd.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')})",
        "",
        *_table(points),
        "",
        *_table(costs),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

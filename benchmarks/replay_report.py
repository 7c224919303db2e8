"""Tables, figure and footer of the issue-16 replay benchmark (``bench_replay.py``)."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

SECTION = "## Replay of real sweeps (issue 16)"
FIXED_FOR_BEST = ("cheapest", "random", "ladder20", "ladder_target", "isoflop")


def pool_meta(pool: Any) -> dict[str, Any]:
    t = pool.targets
    return {
        "n_runs": len(pool.runs),
        "n_targets": len(pool.target_ids),
        "n_initial": len(pool.initial_ids),
        "flops": pool.flops,
        "initial_flops": pool.cost(pool.initial_ids),
        "target_C": [float(t["C"].min()), float(t["C"].max())],
        "max_pool_C": float(pool.runs.loc[pool.pool_ids(), "C"].max()),
        "spec": pool.spec,
        "note": pool.note,
    }


def family(method: str) -> str:
    return "random" if method.startswith("random:") else method


def footer(argv: list[str], t_total: float, loads: list[float], jobs: int) -> str:
    import jax
    import numpyro
    import scipy
    from bench_brier import git_commit

    import bayescale

    cmd = "PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/bench_replay.py " + " ".join(shlex.quote(a) for a in argv)
    return (
        f"Run: `{cmd}` on {_dt.date.today().isoformat()}, commit {git_commit()}; {platform.platform()}, "
        f"{os.cpu_count()} CPUs, {jobs} worker process(es), no GPU; Python {platform.python_version()}, bayescale "
        f"{bayescale.__version__}, numpyro {numpyro.__version__}, jax {jax.__version__}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}. Total {t_total / 60:.1f} min; 1-minute load average {min(loads):.1f}-{max(loads):.1f} "
        "(the machine is shared: wall times are inflated when it exceeds the CPUs)."
    )


def _nanmean(values: list[float]) -> float:
    """Mean over the finite values; nan when there are none (no warning)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _f(x: Any, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def cells(recs: list[dict[str, Any]]) -> dict[tuple[str, str, float], dict[str, float]]:
    """(pool, family, budget) -> metrics, random seeds averaged (coverage over all their target runs)."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if "error" not in r:
            groups[(r["pool"], family(r["method"]), r["budget_frac"])].append(r)
    out = {}
    for key, rs in groups.items():
        m = {k: _nanmean([r[k] for r in rs]) for k in ("r2", "mare", "cov90", "spent_of_pool", "n_runs")}
        for k in ("share_lt5", "share_gt100"):
            v = [r[k] for r in rs if r[k] is not None and math.isfinite(r[k])]
            m[k] = float(np.mean(v)) if v else float("nan")
        m["n"], m["n_targets"] = len(rs), rs[0]["n_targets"]
        out[key] = m
    return out


def pooled_table(c: dict[tuple[str, str, float], dict[str, float]], fams: list[str], budget: float) -> list[str]:
    L = [
        f"**Budget {100 * budget:g}% of each pool's FLOPs** (pooled over pools)",
        "",
        "| method | median R^2 | mean R^2 | mean abs rel err | 90% coverage | FLOPs spent (% of pool) | runs | <5 tok/param | >100 tok/param |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fam in fams:
        rows = [v for (p, f, b), v in c.items() if f == fam and b == budget]
        if not rows:
            continue
        r2 = np.array([v["r2"] for v in rows])
        r2 = r2[np.isfinite(r2)]
        w = np.array([v["n_targets"] for v in rows], float)
        cov = float(np.sum(w * [v["cov90"] for v in rows]) / w.sum())
        L.append(
            f"| {fam} | {_f(float(np.median(r2)) if r2.size else float('nan'), '.2f')} | {_f(_nanmean(list(r2)), '.2f')} | "
            f"{100 * np.mean([v['mare'] for v in rows]):.2f}% | {cov:.2f} | "
            f"{100 * np.mean([v['spent_of_pool'] for v in rows]):.2f}% | {np.mean([v['n_runs'] for v in rows]):.1f} | "
            f"{_f(_nanmean([v['share_lt5'] for v in rows]), '.2f')} | "
            f"{_f(_nanmean([v['share_gt100'] for v in rows]), '.2f')} |"
        )
    return L + [""]


def pool_table(
    c: dict[tuple[str, str, float], dict[str, float]], pool: str, fams: list[str], budgets: list[float]
) -> list[str]:
    L = [
        "| method | " + " | ".join(f"{100 * b:g}%: R^2 / rel err / cov90 / spent / runs" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for fam in fams:
        row = [fam]
        for b in budgets:
            v = c.get((pool, fam, b))
            row.append(
                "error"
                if v is None
                else f"{_f(v['r2'], '.2f')} / {100 * v['mare']:.2f}% / {v['cov90']:.2f} / "
                f"{100 * v['spent_of_pool']:.2f}% / {v['n_runs']:.0f}"
            )
        L.append("| " + " | ".join(row) + " |")
    return L + [""]


def best_fixed(
    c: dict[tuple[str, str, float], dict[str, float]], pool: str, b: float
) -> tuple[str, dict[str, float]] | None:
    cand = [(f, c[(pool, f, b)]) for f in FIXED_FOR_BEST if (pool, f, b) in c]
    cand = [x for x in cand if math.isfinite(x[1]["r2"])]
    return max(cand, key=lambda x: x[1]["r2"]) if cand else None


def headline(c: dict[tuple[str, str, float], dict[str, float]], pools: list[str], budgets: list[float]) -> list[str]:
    def trio(v: dict[str, float] | None) -> str:
        return "-" if v is None else f"{_f(v['r2'], '.2f')} / {100 * v['mare']:.2f}% / {v['cov90']:.2f}"

    L = [
        "| pool | budget | bayescale (default planner) | best fixed design (chosen after the fact by R^2) | MSPE-style |",
        "|---|---|---|---|---|",
    ]
    for p in pools:
        for b in budgets:
            bf = best_fixed(c, p, b)
            best = "-" if bf is None else f"{bf[0]}: {trio(bf[1])}"
            L.append(
                f"| {p} | {100 * b:g}% | {trio(c.get((p, 'bayescale', b)))} | {best} | {trio(c.get((p, 'mspe', b)))} |"
            )
    return L + [""]


def render(res: dict[str, Any]) -> str:
    meta, recs = res["meta"], res["records"]
    budgets, pools = meta["budgets"], list(meta["pools"])
    fams = list(dict.fromkeys(family(m) for m in meta["methods"]))
    c = cells(recs)
    L = [SECTION, "", *INTRO, ""]
    L.append(
        "| pool | runs | targets | initial | pool FLOPs | initial design (% of pool FLOPs) | target C / largest pool C | spec |"
    )
    L.append("|---|---|---|---|---|---|---|---|")
    for p, m in meta["pools"].items():
        L.append(
            f"| {p} | {m['n_runs']} | {m['n_targets']} | {m['n_initial']} | {m['flops']:.3g} | "
            f"{100 * m['initial_flops'] / m['flops']:.3f}% | {m['target_C'][0] / m['max_pool_C']:.3g}-"
            f"{m['target_C'][1] / m['max_pool_C']:.3g}x | {Path(m['spec']).stem} |"
        )
    L.append("")
    if meta.get("eval_spec") and meta["eval_spec"] != meta.get("spec"):
        L.append(
            f"Every design here is scored with `{Path(meta['eval_spec']).stem}` (Laplace), not with the spec in the "
            "table, which sets only the initial design's size."
        )
        L.append("")
    for b in budgets:
        over = [p for p, m in meta["pools"].items() if m["initial_flops"] > b * m["flops"]]
        if over:
            L.append(
                f"At {100 * b:g}% the initial design alone is over budget in {', '.join(over)}: every method there is "
                "the initial design (the rows are identical by construction, not a tie)."
            )
    how = meta.get("target_as")
    said = (
        "the target region itself (a DataFrame of N, D, weight accepted by `parse_target`)"
        if how == "region"
        else "one point, the compute-weighted geometric centre of the target region (`parse_target` does not take a DataFrame yet)"
    )
    L += ["", f"bayescale's planners were asked about {said}.", ""]
    n_porian = sum(p.startswith("porian:") for p in pools)
    if n_porian > 1:
        L += [
            f"Pooled tables weigh every pool alike, so Porian et al.'s {n_porian} configurations make up {n_porian} of the {len(pools)} pools.",
            "",
        ]
    L += ["**Headline: R^2 / mean |rel err| / 90% coverage per pool and budget**", ""]
    L += headline(c, pools, budgets)
    for b in budgets:
        L += pooled_table(c, fams, b)
    L += [
        "**Per pool** (R^2 / mean abs relative error / 90% coverage / FLOPs spent as % of the pool / runs in the design, initial included; random: mean over seeds)",
        "",
    ]
    for p in pools:
        L += [f"*{p}*", ""] + pool_table(c, p, fams, budgets)
    for fam in [f for f in fams if f.startswith("bayescale")]:
        rs = [r for r in recs if r["method"] == fam and "rounds" in r]
        if rs:
            rounds = sum(r["rounds"] for r in rs)
            stops = sum(r["stop_advised"] for r in rs)
            L.append(
                f"`{fam}`: {rounds / len(rs):.1f} suggest rounds per design ({len(rs)} designs); its stopping rule "
                f"advised stopping in {stops} of {rounds} rounds (not followed); {sum(bool(r['errors']) for r in rs)} designs ended by an error."
            )
    L.append("")
    errors = [r for r in recs if "error" in r]
    notes = [r for r in recs if r.get("errors")]
    if errors or notes:
        L.append(
            "Failures: "
            + "; ".join(
                f"{r['pool']}/{r['method']}/{100 * r['budget_frac']:g}%: {r.get('error') or r['errors'][0]}"
                for r in errors + notes
            )[:3000]
        )
        L.append("")
    L.append(res["footer"])
    return "\n".join(L) + "\n"


INTRO = [
    "Does bayescale's next-pilot planner pick runs that predict a sweep's largest runs? Each published sweep is replayed: its recorded runs are the pool, the top 10% by compute, whole compute levels (runs within 0.05 decades of compute of each other are one level, so no pool run shares the targets' isoFLOP budget; the OLMo ladder: its 7B-4T and 13B-5T runs) is the target region, never chosen or revealed; every method starts from the cheapest p + 2 runs (p = the law's parameter count), pays them and then 6ND per run it reveals out of a budget of 1%, 5% or 10% of the pool's FLOPs, and every design is fitted the same way (bayescale Laplace fit of the spec in the table) and scored on the target runs. Protocol after Li et al. 2026, \"Spend Less, Fit Better\" (arXiv 2604.22753); only its abstract could be read, so the details (target region, initial design, the MSPE-style score) are this benchmark's reading of it. Code: `benchmarks/bench_replay.py` (protocol, evaluation), `benchmarks/replay_methods.py` (designs), `benchmarks/replay_report.py` (tables).",
    "",
    "Methods: `cheapest` first; `random` (mean over seeds); `ladder20` and `ladder_target` (per 0.1-decade bin of N, the recorded run nearest 20 tokens/parameter, or the target region's compute-weighted ratio, within 2x); `isoflop` (per 0.25-decade level of compute, 4 runs spread over N); `vopt` (greedy, one run at a time: largest drop of the target region's mean linearised predictive variance at the current Huber point fit, per cost^0.4); `mspe` (the same score for a mixture of the modes of 8-start Huber fits, weighted by likelihood: expected drop of within-mode variance plus between-mode spread, the outcome integrated by a 7-point rule, per cost^0.4); `bayescale` = `bayescale.suggest` with its default planner, `bayescale:<name>` each registered planner (the default planner's entry is the `bayescale` run itself, recorded under both names): the remaining pool as candidates, the budget left, k = 8 per round, at most 4 rounds, one run per point (`max_replicates=1`); its stopping advice is not followed. A design spends its order skipping runs it cannot afford. The adaptive baselines select with the Chinchilla form even on datablations.",
]


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = cells(res["records"])
    fams = list(dict.fromkeys(family(m) for m in res["meta"]["methods"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fam in fams:
        xs, ys = [], []
        for b in res["meta"]["budgets"]:
            rows = [v for (p, f, bb), v in c.items() if f == fam and bb == b]
            if rows:
                xs.append(100 * np.mean([v["spent_of_pool"] for v in rows]))
                ys.append(100 * np.mean([v["mare"] for v in rows]))
        ax.plot(xs, ys, marker="o", label=fam)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs spent (% of the pool, mean over pools)")
    ax.set_ylabel("mean |relative error| on the target runs (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

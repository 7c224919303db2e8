"""Why does ``bayescale.compare`` place the crossover worlds' crossings early? (issue 17)

    PYTHONPATH=. nice python benchmarks/crossing_diagnostics.py --worlds 25 --json /tmp/cross_diag.json
    PYTHONPATH=. nice python benchmarks/crossing_diagnostics.py --worlds 25 --pooling all-free ...

Per crossover world of ``bench_compare.py`` (the same worlds, seeds and Laplace fit, drift
correlation 0.5) and target (10x, 100x the largest run), from the comparison's own draws:

* ``p_cross``, and the crossing's median over the crossing draws only (what the table reported
  before) against the median and 90% interval over all draws (``crossing_location``);
* ``pit``: the share of draws that cross at or before the true crossing (uniform over worlds if
  the crossing's posterior is calibrated; a draw that crosses beyond the target counts as later);
* ``multi``: the share of draws whose loss difference changes sign more than once on the grid,
  and the median of the *first* sign change (``crossings`` reports the last);
* ``nodrift_med``: the crossing-draws median with the extrapolation drift left out;
* ``d_z``: the fitted loss difference (log, at the grid point nearest the largest run) minus the
  truth, over its posterior sd; ``E``: the shared irreducible loss (truth 1.82).

Prints one line per world and target and a summary; ``--json`` keeps the rows. About 3 s a world.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_compare as bc  # noqa: E402

from bayescale import _compare_quantities as cq  # noqa: E402
from bayescale._compare_fit import recipe_fit  # noqa: E402
from bayescale.comparison import compare  # noqa: E402

POOLINGS = {"default": None, "all-free": {"free": ["E", "A", "B", "alpha", "beta"]}}


def true_slope(pa: dict, pb: dict, c_max: float) -> float:
    """How much the true log-loss difference falls over the decade of compute past the largest run."""
    C = np.array([c_max, 10 * c_max])
    d = np.log(bc.optimal_loss(pb, C) / bc.optimal_loss(pa, C))
    return float(d[0] - d[1])


def world_rows(index: int, pooling: dict | None) -> list[dict]:
    """The diagnostics of crossover world ``index`` at both targets (one fit, as the benchmark)."""
    rng = np.random.default_rng([0, bc.FAMILIES.index("crossover"), index])
    pa, pb = bc.world_params("crossover", rng)
    runs = bc.world_runs(pa, pb, int(rng.integers(0, 2**31)))
    c_max = float(runs.C.max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = compare(runs, at={"C": c_max * max(bc.TARGETS)}, method="laplace", seed=index, pooling=pooling)
    no_drift = {
        g: recipe_fit(first.fit, first.spec, first.pooling, first.groups, k, None) for k, g in enumerate(first.groups)
    }
    rows = []
    for fx in bc.TARGETS:
        cmp = first if fx == max(bc.TARGETS) else bc.retarget(first, c_max * fx, first.drift_correlation)
        keep = cmp.curve_C <= c_max * fx * (1 + 1e-9)
        grid = cmp.curve_C[keep]
        truth = bc.truth_at(pa, pb, cmp.curve_C, c_max * fx)["cross_true"]
        diff = cmp.curves["B"][:, keep] - cmp.curves["A"][:, keep]
        crosses, last = cq.crossings(diff, grid)
        sign = np.sign(diff)
        change = sign[:, 1:] * sign[:, :-1] < 0
        first_change = np.where(change.any(axis=1), grid[np.argmax(change, axis=1)], np.nan)
        where = cq.crossing_location(diff, grid)
        med, lo, hi = cq.location_interval(where, 0.9)
        plain = cq.frontier_log_loss(no_drift["B"], grid) - cq.frontier_log_loss(no_drift["A"], grid)
        plain_cross, plain_last = cq.crossings(plain, grid)
        j = int(np.argmin(np.abs(np.log(grid / c_max))))
        d_true = math.log(bc.optimal_loss(pb, grid[j]) / bc.optimal_loss(pa, grid[j]))
        rows.append(
            {
                "world": index,
                "target_x": fx,
                "truth": truth / c_max,
                "p_cross": float(crosses.mean()),
                "cond_med": float(np.nanmedian(last)) / c_max if crosses.any() else math.nan,
                "first_med": float(np.nanmedian(first_change)) / c_max if crosses.any() else math.nan,
                "multi": float(np.mean(change.sum(axis=1) >= 2)),
                "nodrift_p": float(plain_cross.mean()),
                "nodrift_med": float(np.nanmedian(plain_last)) / c_max if plain_cross.any() else math.nan,
                "med": med / c_max,
                "lo": lo / c_max,
                "hi": hi / c_max,
                "pit": float(np.mean(where <= truth)),
                "d_true": d_true,
                "d_med": float(np.median(diff[:, j])),
                "d_z": float((np.median(diff[:, j]) - d_true) / diff[:, j].std()),
                "d_sd": float(diff[:, j].std()),
                "d_slope": true_slope(pa, pb, c_max),
                "E": float(np.median(cmp.recipes["A"].posterior["E"])),
            }
        )
    return rows


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _range(values: list[float]) -> str:
    return f"median {np.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def summary(rows: list[dict]) -> list[str]:
    out = []
    for fx in bc.TARGETS:
        x = [r for r in rows if r["target_x"] == fx]
        det = [r for r in x if r["p_cross"] > 0.5]
        pit = np.array([r["pit"] for r in x])
        dz = np.array([r["d_z"] for r in x])
        ratio = {
            k: np.median([r[k] / r["truth"] for r in det]) if det else math.nan
            for k in ("cond_med", "first_med", "nodrift_med", "med")
        }
        out.append(
            f"{fx:g}x: detected {len(det)}/{len(x)}; among them the crossing / truth (median): crossing draws' median "
            f"{ratio['cond_med']:.2f}, first sign change {ratio['first_med']:.2f}, no drift {ratio['nodrift_med']:.2f}, "
            f"all draws' median {ratio['med']:.2f}; crossing draws' median / largest run "
            f"{np.median([r['cond_med'] for r in det]) if det else math.nan:.2f}. "
            f"PIT mean {pit.mean():.2f} sd {pit.std(ddof=1):.2f} (uniform: 0.50, 0.29), in [0.05, 0.95] "
            f"{int(np.sum((pit >= 0.05) & (pit <= 0.95)))}/{len(x)}; truth inside the 90% interval "
            f"{sum(r['lo'] <= r['truth'] <= r['hi'] for r in x)}/{len(x)}, interval open beyond the target "
            f"{sum(math.isinf(r['hi']) for r in x)}/{len(x)}. d_z mean {dz.mean():.2f} sd {dz.std(ddof=1):.2f} "
            f"(detected {_mean([r['d_z'] for r in det]):.2f}, not {_mean([r['d_z'] for r in x if r['p_cross'] <= 0.5]):.2f}). "
            f"Draws with several sign changes: median {np.median([r['multi'] for r in x]):.3f}, max "
            f"{max(r['multi'] for r in x):.3f}. E median {np.median([r['E'] for r in x]):.3f} (truth 1.82). "
            f"At the largest run (1e-3 log loss): true difference {_range([1e3 * r['d_true'] for r in x])}, its "
            f"posterior sd {_range([1e3 * r['d_sd'] for r in x])}, the true fall per decade beyond "
            f"{_range([1e3 * r['d_slope'] for r in x])}."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=int, default=25, help="crossover worlds (the first N of bench_compare.py's)")
    ap.add_argument("--pooling", choices=list(POOLINGS), default="default")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    if args.worlds < 1:
        ap.error("--worlds must be at least 1")
    rows = []
    for i in range(args.worlds):
        for r in world_rows(i, POOLINGS[args.pooling]):
            rows.append(r)
            print(" ".join(f"{k}={v:.3g}" for k, v in r.items()), flush=True)
    print("\n".join(summary(rows)))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

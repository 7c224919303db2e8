"""Recipe comparison on real recipe pairs held out at larger compute (issue 17).

Does the gap between two recipes drift beyond their runs as much as ``bayescale.compare`` says?
The synthetic worlds of ``bench_compare.py`` follow the law exactly, so any drift of the gap can
only widen their intervals; they cannot say how much a real gap drifts. Here the truth is
recorded: Porian et al.'s isoFLOP sweeps (``porian/isoflop_points.csv``), every pair of settings
measured with the same loss (same source file, dataset and evaluation), fitted on the budgets up
to ``--train-max`` FLOPs and asked for the compute-optimal loss difference at each larger budget.
The observed difference is that of the two settings' isoFLOP minima at the budget (the lowest
recorded loss there; both sit slightly above the true minimum, by a grid step that mostly cancels
in the difference). Each fit is read with the learned gap drift and with stated drift correlations
(``--rhos``; :func:`bench_compare.retarget`, no refit).

Reported per drift setting, pooled over pairs and budgets (pairs share settings, so the cases are
not independent): 50% and 90% coverage of the observed difference, the median 90% width, and the
same coverage for each setting's own loss (is the level calibrated, apart from the gap?).

    PYTHONPATH=. nice .venv/bin/python benchmarks/compare_heldout.py --json /tmp/heldout.json
    PYTHONPATH=. nice .venv/bin/python benchmarks/compare_heldout.py --spec recommended --json /tmp/heldout_avg.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import REPO, _rho, log, markdown, retarget  # noqa: E402

#: Columns that name one of Porian et al.'s settings; pairs share source file, dataset and evaluation.
SETTING = ["hparams", "warmup", "decay", "param_count"]
GROUP = ["source_file", "dataset", "val"]
TRAIN_MAX = 1.7e18
RHOS = ("learned", 0.5, 1.0)


def settings(points: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """``(group key, its points)`` for each (source file, dataset, evaluation) with two or more settings."""
    out = []
    for key, sub in points.groupby(GROUP):
        if sub.groupby(SETTING).ngroups >= 2:
            out.append((key, sub))
    return out


def pair_table(sub: pd.DataFrame, a: tuple, b: tuple) -> pd.DataFrame:
    parts = []
    for name in (a, b):
        s = sub[(sub[SETTING] == pd.Series(name, index=SETTING)).all(axis=1)]
        label = "/".join(name)
        parts.append(pd.DataFrame({"N": s.n_params, "D": s.tokens, "loss": s.loss, "setting": label, "flops": s.flops}))
    out = pd.concat(parts, ignore_index=True)
    return out.assign(run_id=[f"r{i}" for i in range(len(out))])


def observed_minima(table: pd.DataFrame) -> pd.DataFrame:
    """The lowest recorded loss of each setting at each budget (its isoFLOP minimum)."""
    return table.groupby(["setting", "flops"])["loss"].min().unstack("setting")


def interval_hits(draws: np.ndarray, value: float) -> dict[str, Any]:
    lo90, lo50, med, hi50, hi90 = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "in50": bool(lo50 <= value <= hi50),
        "in90": bool(lo90 <= value <= hi90),
        "width90": float(hi90 - lo90),
        "median": float(med),
        "observed": float(value),
        "side": "above" if value > hi90 else "below" if value < lo90 else "inside",
    }


def run_pair(label: str, table: pd.DataFrame, train_max: float, method: str, rhos: tuple, spec: str) -> list[dict]:
    import bayescale as bs

    train = table[table.flops <= train_max].drop(columns="flops")
    minima = observed_minima(table)
    budgets = [float(c) for c in minima.index if c > train_max and minima.loc[c].notna().all()]
    if not budgets:
        return []
    base, other = list(dict.fromkeys(table.setting))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = bs.compare(
            train,
            by="setting",
            baseline=base,
            at={"C": budgets[-1]},
            method=method,
            seed=0,
            drift_correlation=rhos[0],
            spec=spec,
        )
    seconds = time.perf_counter() - t0
    rows = []
    for rho in rhos:
        for C in budgets:
            cmp = retarget(first, C, rho)
            diff = cmp.losses[other] - cmp.losses[base]
            obs = minima.loc[C]
            row = {"pair": label, "rho": rho, "C": C, "x": C / float(train.eval("6 * N * D").max()), "seconds": seconds}
            row["diff"] = interval_hits(diff, float(obs[other] - obs[base]))
            row["levels"] = [interval_hits(cmp.losses[g], float(obs[g])) for g in (base, other)]
            row["gap"] = first.gap_drift()
            row["warnings"] = len(first.warnings)
            row["laws"] = dict(first.law_weights)
            rows.append(row)
    d = rows[0]["diff"]
    log(f"{label}: diff at {budgets[0]:.2g} obs {d['observed']:+.4f} med {d['median']:+.4f} ({seconds:.1f} s)")
    return rows


def run(data: Path, train_max: float, method: str, rhos: tuple, spec: str) -> list[dict]:
    points = pd.read_csv(data / "porian" / "isoflop_points.csv")
    rows = []
    for key, sub in settings(points):
        names = list(dict.fromkeys(map(tuple, sub[SETTING].to_numpy())))
        for a, b in itertools.combinations(names, 2):
            label = f"{key[1]} {key[2]} ({key[0]}): {'/'.join(b)} vs {'/'.join(a)}"
            rows += run_pair(label, pair_table(sub, a, b), train_max, method, rhos, spec)
    return rows


def summary(rows: list[dict], rhos: tuple) -> list[str]:
    out = []
    for rho in rhos:
        r = [x for x in rows if x["rho"] == rho]
        diffs = [x["diff"] for x in r]
        levels = [lv for x in r for lv in x["levels"]]
        out.append(
            [
                _rho(rho),
                len(diffs),
                f"{np.mean([d['in90'] for d in diffs]):.2f}",
                f"{np.mean([d['in50'] for d in diffs]):.2f}",
                f"{np.median([d['width90'] for d in diffs]):.3f}",
                f"{sum(d['side'] == 'above' for d in diffs)} / {sum(d['side'] == 'below' for d in diffs)}",
                f"{np.mean([lv['in90'] for lv in levels]):.2f}",
                f"{np.mean([lv['in50'] for lv in levels]):.2f}",
            ]
        )
    header = [
        "drift between recipes",
        "cases (pair x budget)",
        "90% coverage of the loss difference",
        "50% coverage",
        "median 90% width (nats)",
        "misses above / below",
        "90% coverage of each setting's loss",
        "50% coverage",
    ]
    return markdown(out, header)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BAYESCALE_DATA", REPO.parent / "shared" / "data"))
    )
    ap.add_argument("--train-max", type=float, default=TRAIN_MAX, help="largest training budget (FLOPs)")
    ap.add_argument("--method", choices=["laplace", "nuts"], default="laplace")
    ap.add_argument("--spec", default="chinchilla", help="the spec compared with (e.g. recommended: the law average)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not (args.data / "porian" / "isoflop_points.csv").is_file():
        print(f"no Porian data under {args.data}: set BAYESCALE_DATA or --data", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = run(args.data, args.train_max, args.method, RHOS, args.spec)
    print("\n".join(summary(rows, RHOS)))
    print(f"{len({r['pair'] for r in rows})} pairs, {(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv[1:], "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

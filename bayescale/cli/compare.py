"""``bayescale compare``: which recipe should we scale? Recipes compared by their scaling laws.

Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily, inside the command function.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayescale._words import join_names
from bayescale.errors import BayescaleError, seed_argument

from ._common import (
    _fitting_words,
    _fmt,
    _pct,
    _print_json,
    _spec_source,
    _stages,
    _table,
    _validate_ci_prob,
    _validate_output,
    _with_readable_warnings,
    parse_point,
)


def parse_target(text: str) -> dict[str, float]:
    """``--at`` text as a target: ``C=1e23`` or ``N=7e9,D=1.4e12``."""
    point = parse_point(text)
    if set(point) not in ({"C"}, {"N", "D"}):
        raise BayescaleError(
            f"--at {text!r}: give C=FLOPS (compute-optimal) or N=PARAMS,D=TOKENS, got {join_names(sorted(point), quoted=True)}"
        )
    return point


def _drift_correlation(text: str) -> float | str:
    """``--drift-correlation``: a number, or the text as given ('learned'; :func:`bayescale.compare` refuses others by name)."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def parse_pooling(share: str | None, pool: str | None, free: str | None) -> dict[str, list[str]] | None:
    """``--share E --pool alpha,beta`` as a pooling mapping; None (the default pooling) when none is given."""
    if share is None and pool is None and free is None:
        return None
    names = lambda text: [n.strip() for n in (text or "").split(",") if n.strip()]  # noqa: E731
    given = {"share": share, "pool": pool, "free": free}
    # an option left out keeps its default (--share: the irreducible loss), so it is not sent
    return {kind: names(text) for kind, text in given.items() if text is not None}


def _comparison_text(cmp: Any) -> str:
    t = cmp.table()
    pct = _pct(cmp.ci_prob)
    header = [
        cmp.by,
        "median loss",
        f"{pct} interval",
        "P(best)",
        "regret",
        f"x compute vs {cmp.baseline}",
        f"{pct} interval",
        "P(better)",
        "P(cross)",
    ]
    rows = []
    for name, r in t.iterrows():
        base = name == cmp.baseline
        rows.append(
            [
                str(name),
                f"{r['median']:.4f}",
                f"[{r['lo']:.4f}, {r['hi']:.4f}]",
                f"{r['p_best']:.2f}",
                f"{r['regret']:.4f}",
                "baseline" if base else _fmt(r["multiplier"], 3),
                "" if base else _multiplier_interval(r),
                "" if base else f"{r['p_better']:.2f}",
                "" if base else f"{r['p_cross']:.2f}",
            ]
        )
    return _table(rows, header)


def _multiplier_interval(row: Any) -> str:
    """``[lo, hi]``; an edge held at the searched range's bound reads ``<=lo`` or ``>=hi``."""
    from bayescale._compare_verdict import multiplier_bounds

    return "[{}, {}]".format(*multiplier_bounds(row))


def _compare_cmd(args: argparse.Namespace) -> int:
    import bayescale as bs
    from bayescale.comparison import compare

    _validate_ci_prob(args.ci_prob)
    target = parse_target(args.at)
    pooling = parse_pooling(args.share, args.pool, args.free)
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise BayescaleError(f"--report {str(args.report)!r}: give an .html path")
    if args.report is not None:
        _validate_output(args.report, "the report", "comparison.html")
    stages = _stages(args)
    spec = bs.load_spec(_spec_source(args.spec))
    stages(_fitting_words(spec, args) + f", one law per {args.by}")
    cmp = _with_readable_warnings(
        lambda: compare(
            args.runs,
            args.by,
            spec=spec,
            at=target,
            baseline=args.baseline,
            pooling=pooling,
            method=args.method,
            seed=args.seed,
            risk=args.risk,
            ci_prob=args.ci_prob,
            drift_correlation=args.drift_correlation,
            chains=args.chains,
            warmup=args.warmup,
            draws=args.draws,
        )
    )
    if args.report is not None:
        from bayescale.report import write_comparison_html

        stages("report")
        write_comparison_html(cmp, args.report)
    if args.json or args.format == "json":
        _print_json(cmp.to_dict())
        return 0
    print(
        f"{cmp.by}: {', '.join(cmp.groups)}; pooling: {cmp.pooling.describe(cmp.spec.law)}; at {cmp.target.describe()}"
    )
    print(_comparison_text(cmp))
    print()
    print(cmp.verdict)
    if args.report is not None:
        print(f"report: {args.report}")
    return 0


def _compare_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Fit one scaling law per recipe (a grouping column of the runs table) jointly and compare them at a "
        "target: the effective compute multiplier over the baseline and its trend with compute, P(better), the "
        "loss difference, where the curves cross, P(best), expected regret and a verdict in words."
    )
    p.add_argument("runs", help="runs table (CSV) with a grouping column")
    p.add_argument("--by", default="recipe", help="the grouping column (default: recipe)")
    p.add_argument("--at", required=True, help="target: C=FLOPS (compute-optimal) or N=PARAMS,D=TOKENS")
    p.add_argument("--baseline", help="the recipe the others are measured against (default: the first in the table)")
    p.add_argument(
        "--spec",
        default="chinchilla",
        help="model spec (default: the bundled chinchilla), or a law average such as recommended",
    )
    p.add_argument(
        "--share",
        help="parameters one value for all recipes, comma-separated (default: E, unless --pool or --free names it)",
    )
    p.add_argument("--pool", help="parameters pooled hierarchically across recipes, comma-separated (LogNormal priors)")
    p.add_argument("--free", help="parameters free per recipe (the default for all not shared or pooled)")
    p.add_argument(
        "--drift-correlation",
        type=_drift_correlation,
        default="learned",
        help="how much of each recipe's extrapolation drift is its own: 'learned' from the runs' leave-future-out "
        "splits (default), or a correlation of the recipes' drifts, 0 (independent) to 1 (shared, cancels in "
        "differences)",
    )
    p.add_argument(
        "--risk",
        default="cvar:0.9",
        help="risk measure ranking recipes: mean, quantile:0.9, var:0.9 or cvar:0.9 (default)",
    )
    p.add_argument("--ci-prob", type=float, default=0.9, help="interval probability (default 0.9)")
    p.add_argument("--seed", type=seed_argument, default=0, help="the one seed (default 0)")
    p.add_argument(
        "--method",
        choices=("nuts", "laplace", "psis"),
        default="nuts",
        help="NUTS (default), or the quick Laplace approximation, or Laplace corrected by PSIS",
    )
    p.add_argument("--chains", type=int, help="number of chains (default: the spec's)")
    p.add_argument("--warmup", type=int, help="warmup iterations per chain (default: the spec's)")
    p.add_argument("--draws", type=int, help="draws per chain (default: the spec's)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: the comparison as JSON")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--report", type=Path, help="also write an HTML report of the comparison here")
    p.set_defaults(func=_compare_cmd)


PARSERS = {"compare": _compare_parser}

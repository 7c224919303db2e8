"""``bayescale fit | summary | predict | validate | loo | demo``: fitting a spec and reading a fit.

Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily: :mod:`bayescale.inference`,
:mod:`bayescale.checks`, NumPy and pandas inside the command functions, so building these
parsers stays cheap.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from bayescale._words import join_names
from bayescale.errors import BayescaleError, seed_argument

from ._common import (
    PREDICTIVE_COLUMNS,
    _diagnostics_line,
    _fit_options,
    _fitting_words,
    _fmt,
    _header,
    _one_line,
    _pct,
    _predictive_text,
    _print_json,
    _records,
    _say_cautions,
    _say_fit_problems,
    _spec_source,
    _stages,
    _summary_text,
    _table,
    _validate_ci_prob,
    _validate_output,
    _validate_point,
    _warn_unless_printed,
    _with_readable_warnings,
    load_fit,
    parse_point,
)

if TYPE_CHECKING:  # annotations only: no import at run time
    from bayescale._stages import Stages
    from bayescale.inference import Fit

#: Spec and runs file of ``bayescale demo``.
DEMO_SPEC = "chinchilla"
DEMO_RUNS = "pilot_runs.csv"
#: Multiples of the largest demo run's compute at which ``demo`` extrapolates.
DEMO_SCALES = (10.0, 100.0, 1000.0)
#: Tokens per parameter along which ``demo`` extrapolates (Chinchilla's rule of thumb).
DEMO_TOKENS_PER_PARAM = 20.0


def _band(
    fit: Fit, points: Sequence[Mapping[str, float]], ci_prob: float, noise: bool, seed: int
) -> list[dict[str, Any]]:
    """Median and equal-tailed ``ci_prob`` interval of the loss at each point."""
    import numpy as np

    if not 0 < ci_prob < 1:
        raise BayescaleError(f"--ci-prob must be in (0, 1), got {ci_prob!r}")
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    out = []
    for point in points:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught below, in words
            band = fit.predict(point, noise=noise, seed=seed)
        draws = band.values.reshape(-1, band.sizes["point"])[:, 0]
        bad = ~np.isfinite(draws) | (draws <= 0)
        if bad.any():
            where = ", ".join(f"{k}={v:g}" for k, v in point.items())
            raise BayescaleError(
                f"the loss at {where} is not a finite number > 0 for {bad.mean():.0%} of the posterior draws "
                "(the law overflows there): the point is too far from the runs for this fit"
            )
        row = {k: float(band[k].values[0]) for k in ("N", "D", "C") if k in band.coords}
        row.update({k: v for k, v in point.items() if k not in row})
        q = np.quantile(draws, [lo, 0.5, hi])
        row.update(median=float(q[1]), lower=float(q[0]), upper=float(q[2]))
        out.append(row)
    return out


def _band_text(rows: Sequence[Mapping[str, Any]], ci_prob: float, lead: Sequence[str] = ()) -> str:
    inputs = list(dict.fromkeys(k for r in rows for k in r if k not in ("median", "lower", "upper", *lead)))
    pct = f"{100 * ci_prob:g}%"
    header = [*lead, *inputs, "median loss", f"{pct} interval"]
    body = []
    for r in rows:
        body.append(
            [
                *(str(r[k]) for k in lead),
                *(_fmt(r.get(k), 3) for k in inputs),
                f"{r['median']:.4f}",
                f"[{r['lower']:.4f}, {r['upper']:.4f}]",
            ]
        )
    return _table(body, header, right=[False] * len(lead) + [True] * (len(header) - len(lead)))


def _fit_and_report(
    spec: Any, runs: Any, args: argparse.Namespace, out: Path, stage: Stages, ci_prob: float = 0.9
) -> Any:
    from bayescale.averaging import fit as run_fit

    _validate_output(out)
    stage(_fitting_words(spec, args, len(runs)))

    result = _with_readable_warnings(
        lambda: run_fit(
            spec,
            runs,
            seed=args.seed,
            method=args.method,
            chains=args.chains,
            warmup=args.warmup,
            draws=args.draws,
            progress=args.progress,
            calibrate=None if getattr(args, "calibrate", "none") == "none" else args.calibrate,
        )
    )
    print(_header(result))
    print()
    _print_average(result)
    print(_summary_text(result.summary(ci_prob=ci_prob)))
    print()
    print(_diagnostics_line(result.diagnostics()))
    stage(f"writing {out}")
    path = result.save(out)
    print(f"wrote {path}")
    return result


def cmd_fit(args: argparse.Namespace) -> int:
    stage = _stages(args)
    stage(f"loading the spec and the runs table {args.runs}")
    from bayescale.data import load_runs
    from bayescale.spec import load_spec

    _validate_output(Path(args.output), inputs={"the runs table": args.runs, "the spec": args.spec})
    spec = load_spec(_spec_source(args.spec))
    runs = load_runs(args.runs)
    _fit_and_report(spec, runs, args, Path(args.output), stage)
    return 0


def _without_tables(diag: Any) -> Any:
    """The diagnostics without their per-parameter tables (``summary`` prints those as ``summary``), at
    every level: a law average's members each carry their own."""
    if isinstance(diag, dict):
        return {k: _without_tables(v) for k, v in diag.items() if k != "table"}
    return diag


def cmd_summary(args: argparse.Namespace) -> int:
    fit = load_fit(args.fit)
    _validate_ci_prob(args.ci_prob)
    table = fit.summary(ci_prob=args.ci_prob)
    diag = fit.diagnostics()
    misfit = _misfit_or_none(fit)
    sensitivity = _sensitivity(fit, getattr(args, "at", None))
    if args.format == "json":
        summary = {var: {col: rec[col] for col in table.columns} for var, rec in table.iterrows()}
        diagnostics = _without_tables(diag)
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "law": fit.spec.law.name,
                "formula": fit.spec.law.formula,
                "method": fit.method,
                "runs": len(fit.runs),
                "ci_prob": args.ci_prob,
                "summary": summary,
                "diagnostics": diagnostics,
                "misfit": misfit.to_dict() if misfit is not None else None,
                "sensitivity": sensitivity.to_dict(),
                "average": _average_json(fit),
                "drift_scale": getattr(fit, "drift_scale", None),
            }
        )
        return 0
    print(_header(fit))
    print()
    _print_average(fit)
    print(_summary_text(table))
    print()
    learned = None if hasattr(fit, "weights_table") else fit.drift_scale  # an average's: by law, said above
    if learned:
        from bayescale.discrepancy import drift_words

        print(f"extrapolation: {drift_words(learned)}")
    print(_diagnostics_line(diag))
    for line in _modes_lines(diag):
        print(line)
    # Every finding is part of the summary (stdout, so that `summary > file` keeps it) and is warned too,
    # unless stdout is stderr's stream (a terminal), where the warning would repeat it.
    if misfit is not None and not misfit.misfits:
        print(f"law fit: {misfit}")
    for message in misfit.messages if misfit is not None else []:
        print(f"law fit: the law misfits its runs: {_one_line(message)}")
        _warn_unless_printed(f"the law misfits its runs: {message}")
    if misfit is not None and misfit.misfits:
        print(f"law fit: what to do: {misfit.advice}")
        _warn_unless_printed(f"what to do about the law's misfit: {misfit.advice}")
    for problem in diag.get("problems", []):
        print(f"problem: {_one_line(problem)}")
        _warn_unless_printed(problem)
    _print_sensitivity(sensitivity, trusted=not diag.get("problems"))
    return 0


def _sensitivity(fit: Fit, at: Sequence[str] | None) -> Any:
    """Power-scaling prior sensitivity of the parameters and, with ``--at``, of the loss there."""
    points = [parse_point(text) for text in at or ()]
    for text, point in zip(at or (), points):
        _validate_point(fit, text, point)
    return fit.sensitivity(points or None)


def _print_sensitivity(s: Any, trusted: bool = True) -> None:
    """The sensitivity line and each finding, also as a warning (as the misfit findings are)."""
    caveat = "" if trusted else " (read from a fit with the problems above: do not rely on it)"
    if not s.messages:
        print(s.summary() + caveat)
        return
    for message in s.messages:
        print(f"prior sensitivity: {_one_line(message)}")
        _warn_unless_printed(message)
    if s.method in ("laplace", "fixed"):
        print(s.summary().splitlines()[-1] + caveat)
    elif caveat:
        print(f"prior sensitivity{caveat}")


def _print_average(fit: Fit) -> None:
    """A law average's laws: weight, leave-future-out score and learned drift, one line each."""
    if not hasattr(fit, "weights_table"):
        return
    for law, row in fit.weights_table().iterrows():
        drift = f"; {row['drift']}" if row["drift"] else ""
        print(f"  {law}: weight {row['weight']:.2f}, leave-future-out log density {row['elpd_lfo']:.2f} per run{drift}")
    print()


def _average_json(fit: Fit) -> Any:
    """A law average's laws, weights and learned drift scales (None for one law)."""
    if not hasattr(fit, "weights_table"):
        return None
    table = fit.weights_table()
    return {"description": fit.describe(), "laws": _records(table.reset_index(), ["law", *table.columns])}


def _modes_lines(diag: Mapping[str, Any]) -> list[str]:
    """The posterior's modes, one line each, when it has more than one (:mod:`bayescale.modes`);
    ``--format json`` carries them as ``diagnostics.modes``."""
    modes = diag.get("modes", [])
    if len(modes) < 2:
        return []
    lines = [
        f"posterior modes: {len(modes)} (weight: share of the posterior mass; what the draws do, in the warning below)"
    ]
    for i, m in enumerate(modes):
        params = ", ".join(f"{k} {_fmt(v)}" for k, v in m["params"].items())
        chains = ",".join(map(str, m["chains"])) or "-"
        p = m["prediction"]
        lines.append(
            f"  mode {i + 1}  weight {m['weight']:.2f}  chains {chains}  {params}  loss {_fmt(p['loss'])} at C {p['C']:.3g}"
        )
    return lines


def _misfit_or_none(fit: Fit) -> Any:
    """The fit's residual patterns (:mod:`bayescale.misfit`), or None when too few runs to test."""
    try:
        return fit.misfit()
    except BayescaleError:
        return None


def cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    points = [parse_point(text) for text in args.at]
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    for text, point in zip(args.at, points):
        _validate_point(fit, text, point)
    stage(f"predicting the loss at {len(points)} point{'s' if len(points) != 1 else ''}")
    rows = _band(fit, points, args.ci_prob, args.noise, args.seed)
    problems = _say_fit_problems(fit)
    cautions = _say_cautions(fit, pd.DataFrame(rows, index=args.at))
    if args.format == "json":
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "ci_prob": args.ci_prob,
                "noise": args.noise,
                "points": rows,
                "problems": problems,
                "cautions": cautions,
            }
        )
        return 0
    what = "a new run's measured loss (with observation noise)" if args.noise else "the law's loss"
    print(f"{_header(fit)}\npredicting {what}\n")
    print(_band_text(rows, args.ci_prob))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bayescale.checks import leave_largest_out
    from bayescale.spec import load_spec

    if not 0 < args.holdout_top < 1:
        raise BayescaleError(f"--holdout-top must be a fraction in (0, 1), got {args.holdout_top!r}")
    stage = _stages(args)
    stage("loading the spec")
    spec = load_spec(_spec_source(args.spec))
    stage(
        f"leave-largest-out: holding out the top {_pct(args.holdout_top)} of {args.runs} by compute; "
        + _fitting_words(spec, args)
    )
    said: list[str] = []  # the fit's warnings, for the JSON output too
    val = _with_readable_warnings(
        lambda: leave_largest_out(
            spec,
            args.runs,
            holdout_top=args.holdout_top,
            seed=args.seed,
            method=args.method,
            chains=args.chains,
            warmup=args.warmup,
            draws=args.draws,
            progress=args.progress,
        ),
        said,
    )
    diag = val.fit.diagnostics() if val.fit is not None else None
    if args.format == "json":
        doc = {
            "spec": spec.name,
            "spec_id": spec.id,
            "holdout_top": args.holdout_top,
            "seed": args.seed,
            "method": args.method,
        }
        doc.update(val.to_dict())
        doc["surprises"] = int(val.table["surprise"].sum())
        doc["runs"] = _records(val.table, PREDICTIVE_COLUMNS)
        if diag is not None:
            doc["diagnostics"] = {k: v for k, v in diag.items() if k != "table"}
        doc["warnings"] = said  # the law's misfit and the table's oddities are not sampling problems
        _print_json(doc)
        return 0
    n = val.n_train + len(val.table)
    print(
        f"leave-largest-out: spec {spec.name!r} (id {spec.id}), law {spec.law.name}: {spec.law.formula}; "
        f"{n} runs, the top {_pct(args.holdout_top)} by compute held out\n"
    )
    print(val.summary())
    print()
    cov = [[_pct(k), f"{v:.2f}"] for k, v in val.coverage.items()]
    print(_table(cov, ["central interval", "held-out runs inside"]))
    print()
    print(_predictive_text(val.table))
    if diag is not None:
        print()
        print(_diagnostics_line(diag))  # its problems were warned about while fitting
    return 0


def cmd_loo(args: argparse.Namespace) -> int:
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    from bayescale.checks import PARETO_K_BAD, ComparisonWarning, approximation_note, coverage, loo, loo_pit

    fit = load_fit(args.fit)
    stage(f"PSIS-LOO and LOO-PIT over {len(fit.runs)} runs")
    with warnings.catch_warnings():  # said below, in the command's own words
        warnings.simplefilter("ignore", ComparisonWarning)
        res = loo(fit)
        pit = loo_pit(fit)
    cov = coverage(pit.to_numpy())
    note = approximation_note(fit.method, len(res.flagged), refit="--method nuts")
    problems = _say_fit_problems(fit)  # LOO scores the fit's own draws: it inherits every doubt about them
    if args.format == "json":
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "elpd_loo": res.elpd,
                "se": res.se,
                "p_loo": res.p_loo,
                "pareto_k_bad": PARETO_K_BAD,
                "flagged": list(res.flagged),
                "method": fit.method,
                "note": note,
                "problems": problems,
                "loo_pit_coverage": {str(k): v for k, v in cov.items()},
                "runs": [{"run_id": r, "pareto_k": res.pareto_k[r], "loo_pit": pit[r]} for r in res.pareto_k.index],
            }
        )
        return 0
    print(f"{_header(fit)}\n")
    print(f"PSIS-LOO: elpd_loo {res.elpd:.2f} (SE {res.se:.2f}), p_loo {res.p_loo:.2f}")
    if res.flagged:
        runs = f"{len(res.flagged)} run{'s' if len(res.flagged) != 1 else ''}"
        print(
            f"{runs} with Pareto k > {PARETO_K_BAD} (influential; LOO is unreliable for them): {join_names(res.flagged)}"
        )
    elif problems:
        print(
            f"all Pareto k <= {PARETO_K_BAD}, but the fit has the problems above, which LOO inherits: do not rely on it"
        )
    else:
        print(f"all Pareto k <= {PARETO_K_BAD}: the LOO estimate is reliable")
    if note:
        print(note)
    print()
    print(
        "LOO-PIT coverage (calibrated: each run falls inside the p central interval of its leave-one-out predictive with probability p):"
    )
    print(_table([[_pct(k), f"{v:.2f}"] for k, v in cov.items()], ["central interval", "runs inside"]))
    shown = list(pit.index) if args.all_runs else list(res.flagged)
    if shown:
        print()
        rows = [
            [r, f"{res.pareto_k[r]:.2f}", f"{pit[r]:.3f}", f"k > {PARETO_K_BAD:g}" if r in res.flagged else ""]
            for r in shown
        ]
        print(_table(rows, ["run_id", "pareto k", "LOO-PIT", ""], right=[False, True, True, False]))
    return 0


def _demo_csv() -> Path:
    import bayescale.cli  # its _data_dir, looked up when the demo runs so that it can be pointed elsewhere (tests do)

    return bayescale.cli._data_dir() / DEMO_RUNS


def cmd_demo(args: argparse.Namespace) -> int:
    csv = _demo_csv()
    if not csv.is_file():
        raise BayescaleError(
            f"the demo needs the bundled runs table {csv}, which is missing; run the demo from a source checkout of bayescale"
        )
    stage = _stages(args)
    stage(f"loading the spec {DEMO_SPEC!r} and the runs table {csv.name}")
    from bayescale.data import load_runs
    from bayescale.spec import load_spec

    spec = load_spec(DEMO_SPEC)
    runs = load_runs(csv)
    largest = runs.loc[runs["C"].idxmax()]
    print(
        f"demo: fitting bundled spec {spec.name!r} to {len(runs)} runs from {csv.name} "
        f"(N {_fmt(runs['N'].min(), 3)} to {_fmt(runs['N'].max(), 3)}; largest compute C = {_fmt(largest['C'], 3)} FLOPs)\n"
    )
    if "source" in runs and runs["source"].astype(str).str.contains("synthetic", case=False).any():
        print(
            f"note: these runs are a synthetic placeholder, not real training runs (see {csv.parent.name}/README.md)\n"
        )
    out = Path(args.out) / "demo_fit.nc"
    fit = _fit_and_report(spec, runs, args, out, stage)
    stage(f"extrapolating to {', '.join(f'{k:g}x' for k in DEMO_SCALES)} the largest run's compute")
    points, scales = [], []
    for k in DEMO_SCALES:
        c = k * float(largest["C"])
        n = math.sqrt(c / (6.0 * DEMO_TOKENS_PER_PARAM))
        points.append({"N": n, "D": DEMO_TOKENS_PER_PARAM * n})
        scales.append(f"{k:g}x")
    rows = _band(fit, points, 0.9, False, args.seed)
    for r, s in zip(rows, scales):
        r["compute"] = s
    print(f"\nextrapolation along D = {DEMO_TOKENS_PER_PARAM:g} N, in multiples of the largest run's compute:\n")
    print(_band_text(rows, 0.9, lead=("compute",)))
    print()
    print(_demo_ratio_note(fit, [k * float(largest["C"]) for k in DEMO_SCALES]))
    return 0


def _demo_ratio_note(fit: Fit, budgets: Sequence[float]) -> str:
    """One sentence that reconciles the demo's D = 20 N with the fit's compute-optimal split (the
    report's frontier and ``bayescale optimal``), which for small pilots is often far from 20."""
    from bayescale.decisions import frontier

    fr = frontier(fit, list(budgets), ci_probs=[0.9])
    med = fr["tokens_per_param_median"]
    lo, hi = fr["tokens_per_param_lo90"].min(), fr["tokens_per_param_hi90"].max()
    return (
        f"D = {DEMO_TOKENS_PER_PARAM:g} N is Chinchilla's rule of thumb for large models, not this fit's optimum: "
        f"the fitted law's compute-optimal split at these budgets is {_fmt(med.iloc[0], 2)} to {_fmt(med.iloc[-1], 2)} "
        f"tokens per parameter (posterior medians; 90% intervals {_fmt(lo, 2)} to {_fmt(hi, 2)}), which is what "
        '`bayescale optimal` and the report\'s frontier show. The table above answers "what if we keep the 20:1 rule", '
        'the frontier "what split is best".'
    )


# ------------------------------------------------------------------ parsers


def _fit_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Fit SPEC to the runs in RUNS, print the posterior summary and diagnostics, and write the fit to netCDF."
    )
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name (see `bayescale specs`)")
    p.add_argument("runs", metavar="RUNS", help="runs table CSV (columns N, D and/or C, loss; optional run_id)")
    p.add_argument("-o", "--output", required=True, metavar="FIT.nc", help="where to write the fit (netCDF)")
    _fit_options(p)
    p.set_defaults(func=cmd_fit)


def _summary_parser(p: argparse.ArgumentParser) -> None:
    p.description = "Posterior summary (mean, sd, median, equal-tailed interval, ESS, r-hat) and sampling diagnostics of a saved fit."
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.add_argument(
        "--at",
        action="append",
        metavar="N=7e10,D=1.4e12",
        help="also say whether the prior decides the predicted loss at this point (repeat for more points)",
    )
    p.set_defaults(func=cmd_summary)


def _predict_parser(p: argparse.ArgumentParser) -> None:
    p.description = "Median and equal-tailed credible interval of the loss at each --at point."
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument(
        "--at",
        action="append",
        required=True,
        metavar="N=7e9,D=1.4e12",
        help="a point, as law inputs NAME=VALUE separated by commas (C = 6ND fills in the third); repeat for more points",
    )
    p.add_argument("--noise", action="store_true", help="include observation noise: predict a new run's measured loss")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.add_argument("--seed", type=seed_argument, default=0, help="seed of the noise draws (default 0)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_predict)


def _validate_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Fit SPEC to the runs with the least compute, predict the held-out largest runs, and report "
        "interval coverage, predictive density and each held-out run's surprise."
    )
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name")
    p.add_argument("runs", metavar="RUNS", help="runs table CSV")
    p.add_argument(
        "--holdout-top",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="fraction of runs, by compute, held out (default 0.2)",
    )
    _fit_options(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_validate)


def _loo_parser(p: argparse.ArgumentParser) -> None:
    p.description = "PSIS leave-one-out expected log predictive density with Pareto-k flags, and LOO-PIT coverage of central intervals."
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument(
        "--all-runs", action="store_true", help="list every run's Pareto k and LOO-PIT, not only the flagged ones"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_loo)


def _demo_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        f"Fit the bundled {DEMO_SPEC!r} spec to data/{DEMO_RUNS}, print the summary and diagnostics, "
        f"and extrapolate to {', '.join(f'{k:g}x' for k in DEMO_SCALES)} the largest run's compute."
    )
    p.add_argument("--out", default="out", metavar="DIR", help="folder for demo_fit.nc (default out/)")
    _fit_options(p)
    p.set_defaults(func=cmd_demo)


#: Verb -> the function that fills in its parser (description, arguments, command).
PARSERS = {
    "fit": _fit_parser,
    "summary": _summary_parser,
    "predict": _predict_parser,
    "validate": _validate_parser,
    "loo": _loo_parser,
    "demo": _demo_parser,
}

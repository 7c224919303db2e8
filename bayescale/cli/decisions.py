"""``bayescale decide | optimal | check``: decisions from a fit, and checking it against new runs.

Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily: :mod:`bayescale.decisions`,
:mod:`bayescale.checks` and NumPy inside the command functions, so building these parsers stays cheap.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from bayescale.errors import BayescaleError, IdentifiabilityWarning, seed_argument

from ._common import (
    METHODS,
    PREDICTIVE_COLUMNS,
    _diagnostics_line,
    _flops,
    _fmt,
    _header,
    _interval,
    _one_line,
    _pct,
    _positive,
    _predictive_text,
    _print_json,
    _records,
    _say_cautions,
    _say_fit_problems,
    _stages,
    _table,
    _validate_ci_prob,
    _validate_output,
    _validate_point,
    _warn,
    _with_readable_warnings,
    load_fit,
    parse_option,
)

if TYPE_CHECKING:  # annotations only: no import at run time
    from bayescale.inference import Fit


def _options(fit: Fit, texts: Sequence[str]) -> dict[str, dict[str, float]]:
    """Named, checked points of ``--option`` texts, each completed to N, D and C where ``C = 6ND`` allows."""
    from bayescale.data import points_frame

    out: dict[str, dict[str, float]] = {}
    for text in texts:
        name, point = parse_option(text)
        if name in out:
            raise BayescaleError(
                f"--option {text!r}: option name {name!r} is given twice; give each option its own name"
            )
        _validate_point(fit, text, point, flag="--option")
        row = points_frame(point).iloc[0]
        out[name] = {k: float(v) for k, v in row.items()}
    return out


def _decision_text(dec: Any, risk: Any) -> str:
    t = dec.table
    q = getattr(risk, "q", 0.9)
    header = ["option", "N", "D", "C", "median", f"{_pct(dec.ci_prob)} interval"]
    if dec.threshold is not None:
        header.append(f"P(loss<={dec.threshold:g})")
    header += [f"VaR {_pct(q)}", f"CVaR {_pct(q)}"]
    extra_risk = dec.risk_label not in (f"q{100 * q:g}", f"cvar{100 * q:g}")
    if extra_risk:
        header.append(dec.risk_label)
    header.append("P(best)")
    if dec.expected_utility:
        header.append("E[utility]")
    header.append("")
    rows = []
    for name, r in t.iterrows():
        size = [_fmt(None if math.isnan(r[k]) else r[k], 3) for k in ("N", "D", "C")]  # "-": not given
        cells = [str(name), *size, f"{r['median']:.4f}", _interval(r["lo"], r["hi"])]
        if dec.threshold is not None:
            cells.append(f"{r['p_below']:.2f}")
        cells += [f"{r['var']:.4f}", f"{r['cvar']:.4f}"]
        if extra_risk:
            cells.append(f"{r['risk']:.4f}")
        cells.append(f"{r['p_best']:.2f}")
        if dec.expected_utility:
            cells.append(_fmt(dec.expected_utility[name]))
        tied = dec.tied_with is not None and name in (dec.best, dec.tied_with)
        cells.append("<- tied" if tied else ("<- best" if name == dec.best else ""))
        rows.append(cells)
    return _table(rows, header, right=[False] + [True] * (len(header) - 2) + [False])


def cmd_decide(args: argparse.Namespace) -> int:
    from bayescale.decisions import Utility, decide, parse_risk

    risk = parse_risk(args.risk)
    _validate_ci_prob(args.ci_prob)
    _positive(args.threshold, "--threshold")
    utility = None
    if args.price_per_flop is not None and args.value is None:
        raise BayescaleError("--price-per-flop needs --value (the value of reaching --threshold)")
    if args.value is not None:
        if not (math.isfinite(args.value) and args.value >= 0):
            raise BayescaleError(f"--value must be a finite number >= 0, got {args.value!r}")
        _positive(args.price_per_flop, "--price-per-flop", zero=True)
        if args.threshold is None:
            raise BayescaleError("--value needs --threshold (the loss whose reaching is worth --value)")
        utility = Utility(value=args.value, price_per_flop=args.price_per_flop or 0.0)
    for text in args.option:  # malformed options fail before the fit is read
        parse_option(text)
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    options = _options(fit, args.option)
    stage(f"drawing the loss of {len(options)} options and comparing them draw by draw")
    dec = decide(
        options,
        fit=fit,
        threshold=args.threshold,
        risk=risk,
        ci_prob=args.ci_prob,
        utility=utility,
        noise=not args.no_noise,
        seed=args.seed,
    )
    if args.format == "json":
        _print_json(dec.to_dict())
        return 0
    what = (
        "the law's loss (no observation noise)"
        if args.no_noise
        else "each option's measured loss (with observation noise)"
    )
    print(f"{_header(fit)}\ncomparing {what}; risk measure {dec.risk_label}\n")
    print(_decision_text(dec, risk))
    print()
    print(dec.verdict())
    return 0


def _quantiles(x: Any, ci_prob: float) -> dict[str, float]:
    import numpy as np

    x = np.asarray(x, dtype=float).reshape(-1)
    lo, med, hi = np.quantile(x, [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2])
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


def _band_cell(q: Mapping[str, float], digits: int = 3, fixed: bool = False) -> str:
    f = (lambda v: f"{v:.{digits + 1}f}") if fixed else (lambda v: _fmt(v, digits))
    return f"{f(q['median'])} [{f(q['lower'])}, {f(q['upper'])}]"


def cmd_optimal(args: argparse.Namespace) -> int:
    import pandas as pd

    _validate_ci_prob(args.ci_prob)
    for b in args.budget:
        _flops(b, "--budget")
    if not 0 < args.tolerance < 1:
        raise BayescaleError(f"--tolerance must be a fraction in (0, 1), got {args.tolerance!r}")
    _positive(args.unique_tokens, "--unique-tokens")
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    from bayescale.frontier import check_splits

    check_splits(fit)
    stage(f"compute-optimal allocation at {len(args.budget)} budget{'s' if len(args.budget) != 1 else ''}")
    method, rows, exps = _optimal_budgets(fit, list(args.budget), args.ci_prob, args.tolerance, args.unique_tokens)
    optima = {"N": [e["N_opt"]["median"] for e in rows], "D": [e["D_opt"]["median"] for e in rows]}
    problems = _say_fit_problems(fit)
    cautions = _say_cautions(fit, pd.DataFrame({**optima, "C": args.budget}, index=[f"C={c:.3g}" for c in args.budget]))
    for note in _unique_tokens_notes(fit, args.unique_tokens, max(optima["D"])) + _one_ratio_notes(fit):
        _warn(note)
        cautions.append(note)
    if args.format == "json":
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "problems": problems,
                "cautions": cautions,
                "ci_prob": args.ci_prob,
                "tolerance": args.tolerance,
                "unique_tokens": args.unique_tokens,
                "method": method,
                "budgets": rows,
                "exponents": exps,
            }
        )
        return 0
    _print_optimal(fit, method, rows, exps, args.ci_prob, args.tolerance)
    return 0


def _one_ratio_notes(fit: Fit) -> list[str]:
    """Runs at one tokens-per-parameter ratio cannot say how to split a budget between N and D."""
    from bayescale.checks import one_ratio

    ratio = one_ratio(fit)
    if ratio is None:
        return []
    return [
        f"every run trains about {ratio:.3g} tokens per parameter, so the runs cannot separate the size and data "
        "terms: the split of each budget between N and D comes from the priors (the posterior may hold one mode per "
        "split); add runs at other tokens-per-parameter ratios before trusting the allocation"
    ]


def _unique_tokens_notes(fit: Fit, unique_tokens: float | None, d_opt: float) -> list[str]:
    """What the allocation assumes about repeated data, where the runs or ``--unique-tokens`` make it matter."""
    from bayescale._runs_input import repeated_rows
    from bayescale.frontier import reads_unique_tokens

    runs, reads = fit.runs, reads_unique_tokens(fit)
    repeated = int(repeated_rows(runs).sum())
    if unique_tokens is not None and not reads:
        return [
            f"--unique-tokens {unique_tokens:g} changes nothing here: the law ({fit.spec.law.name}) does not read U, "
            "so the allocation assumes every token fresh; fit a law that reads U (data_constrained, or the recommended "
            "average) on runs with a U column"
        ]
    if unique_tokens is None and repeated:
        return [
            f"{repeated} of your {len(runs)} runs repeat data (U < D), but this allocation assumes fresh tokens at every "
            f"budget (U = D; D_opt up to {d_opt:.3g} tokens): if you have fewer unique tokens, give --unique-tokens "
            "with the number you have" + ("" if reads else " and fit a law that reads U (data_constrained)")
        ]
    return []


def _optimal_budgets(
    fit: Fit, budgets: list[float], ci_prob: float, tolerance: float, unique_tokens: float | None = None
) -> tuple[str, list, list]:
    """The compute-optimal method, one entry per budget (bands, edge fraction, near-optimal N) and the exponents."""
    from bayescale.decisions import allocation_exponents, compute_optimal, frontier, near_optimal_range

    pct = f"{100 * ci_prob:g}"  # frontier's column suffix
    band = frontier(fit, budgets, ci_probs=(ci_prob,), unique_tokens=unique_tokens)
    opt = compute_optimal(fit, budgets, unique_tokens=unique_tokens)
    exps, rows = [], []
    for i, c in enumerate(budgets):
        r = band.iloc[i]
        entry: dict[str, Any] = {"C": float(c)}
        for var in ("N_opt", "D_opt", "tokens_per_param", "loss_opt"):
            entry[var] = {
                "median": float(r[f"{var}_median"]),
                "lower": float(r[f"{var}_lo{pct}"]),
                "upper": float(r[f"{var}_hi{pct}"]),
            }
        at_bound = float(opt["at_bound"].isel(budget=i).mean())
        entry["at_bound"] = at_bound
        with warnings.catch_warnings(record=True) as caught:  # no N within the tolerance: said in the output
            warnings.simplefilter("always", IdentifiabilityWarning)
            lo, hi = near_optimal_range(fit, c, tolerance=tolerance, unique_tokens=unique_tokens)
        entry["near_optimal_N"] = [lo, hi]
        said = [str(w.message) for w in caught if issubclass(w.category, IdentifiabilityWarning)]
        if said:  # the least excess any N reaches, and what to do
            entry["near_optimal_note"] = said[0].removeprefix("near_optimal_range: ")
        for w in caught:  # any other warning is not this command's to keep
            if not issubclass(w.category, IdentifiabilityWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        rows.append(entry)
        if i == 0 or exps[0]["method"] != "closed form":
            ex = allocation_exponents(fit, budget=c)
            exps.append(
                {
                    "method": ex.attrs.get("method", ""),
                    "a": _quantiles(ex["a"].values, ci_prob),
                    "b": _quantiles(ex["b"].values, ci_prob),
                }
            )
    return opt.attrs.get("method", ""), rows, exps


def _print_optimal(fit: Fit, method: str, rows: list, exps: list, ci_prob: float, tolerance: float) -> None:
    from bayescale.discrepancy import calibration

    print(
        f"{_header(fit)}\ncompute-optimal allocation ({method}); median [{_pct(ci_prob)} interval] over the posterior\n"
    )
    body = [
        [
            _fmt(e["C"], 3),
            _band_cell(e["N_opt"]),
            _band_cell(e["D_opt"]),
            _band_cell(e["tokens_per_param"]),
            _band_cell(e["loss_opt"], fixed=True),
        ]
        for e in rows
    ]
    print(_table(body, ["budget C", "N_opt (params)", "D_opt (tokens)", "tokens per param", "loss at optimum"]))
    drift = "the extrapolation drift" + (" and the calibration" if calibration(fit) is not None else "")
    laws = " (each law's own optimum, mixed by the laws' weights)" if hasattr(fit, "members") else ""
    print(
        f"(the loss predicted at each draw's own optimum{laws}, {drift} included, as `bayescale predict` predicts a point)"
    )
    print()
    for ex in exps:
        a, b = ex["a"], ex["b"]
        print(
            f"allocation exponents ({ex['method']}): N_opt ~ C^a, a = {_band_cell(a, fixed=True)}; D_opt ~ C^b, b = {_band_cell(b, fixed=True)}"
        )
    print()
    for e in rows:
        lo, hi = e["near_optimal_N"]
        if math.isnan(lo):
            print(
                e.get("near_optimal_note")
                or f"at C = {_fmt(e['C'], 3)}: no N keeps the expected loss within {_pct(tolerance)} of each draw's optimum"
            )
        else:
            print(
                f"at C = {_fmt(e['C'], 3)}: any N in [{_fmt(lo, 3)}, {_fmt(hi, 3)}] is within {_pct(tolerance)} of optimal (expected relative excess loss)"
            )
        if e["at_bound"] > 0:
            _warn(
                f"at C = {_fmt(e['C'], 3)} the optimum of {100 * e['at_bound']:.0f}% of posterior draws lies on the edge of the "
                "searched tokens-per-parameter range (0.01 to 1e5): the law has no interior optimum there for them"
            )


def _shifts_text(shifts: Any) -> str:
    cols = ["median_before", "median_after", "sd_before", "sd_after", "sd_ratio"]
    rows = [[str(q), *(_fmt(r[c]) for c in cols)] for q, r in shifts.iterrows()]
    return _table(rows, ["quantity", "median before", "median after", "sd before", "sd after", "sd after/before"])


def _surprise_line(table: Any, what: str) -> str:
    """How many runs fell outside their 90% band, and how wide the bands are (a wide band holds a run that a
    narrow one would flag: the count alone reads as a fit that predicts well)."""
    n, n_surprise = len(table), int(table["surprise"].sum())
    width = float(((table["hi90"] - table["lo90"]) / table["median"]).median())
    wide = f"; the bands' median width {100 * width:.2g}% of the prediction"
    if n_surprise == 0:
        return f"no surprises: all {n} {what} inside the 90% predictive band{wide}"
    return f"{n_surprise} surprise{'s' if n_surprise != 1 else ''} among {n} {what} (outside the 90% predictive band{wide})"


def cmd_check(args: argparse.Namespace) -> int:
    from bayescale.checks import check, refit_method

    _flops(args.budget, "--budget")
    for flag, given in (("-o/--output writes the refitted fit", args.output), ("--method is the refit's", args.method)):
        if given is not None and not args.update:
            raise BayescaleError(f"{flag}; it needs --update")
    out = Path(args.output) if args.output is not None else None
    if out is not None:
        _validate_output(out, inputs={"the new runs table": args.new_runs})
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    method = args.method or refit_method(fit)
    stage(f"checking the new runs of {args.new_runs}" + (f" and refitting with them ({method})" if args.update else ""))
    result = _with_readable_warnings(
        lambda: check(fit, args.new_runs, update=args.update, seed=args.seed, budget=args.budget, method=method)
    )
    table = result.table
    n_surprise = int(table["surprise"].sum())
    problems = _say_fit_problems(fit)  # the bands the runs were checked against carry the fit's doubts
    cautions = _say_cautions(fit) + list(result.notes)
    if args.format == "json":  # the text below says them beside the table instead
        for note in result.notes:
            _warn(note)
    written = str(result.updated.save(out)) if (out is not None and result.updated is not None) else None
    if args.format == "json":
        shifts = None
        if result.shifts is not None:
            shifts = {str(q): {c: r[c] for c in result.shifts.columns} for q, r in result.shifts.iterrows()}
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "seed": args.seed,
                "runs": _records(table, PREDICTIVE_COLUMNS),
                "n_new": len(table),
                "surprises": n_surprise,
                "problems": problems,
                "cautions": cautions,
                "shifts": shifts,
                "updated_fit": written,
            }
        )
        return 0
    print(
        f"{_header(fit)}\n{len(table)} new run{'s' if len(table) != 1 else ''} against the predictive distribution of a new run's measured loss\n"
    )
    print(_predictive_text(table))
    if result.updated is not None:
        up = result.updated
        print(f"\nrefit with the new runs ({len(up.runs)} runs): how the posterior moved\n")
        print(_shifts_text(result.shifts))
        print()
        print(_diagnostics_line(up.diagnostics()))  # its problems were warned about while fitting
        if written:
            print(f"wrote {written}")
        else:  # a refit can take minutes: say it was not kept, and how to keep it
            print("the refit is not saved: give -o FIT.nc with --update to keep it")
    print()
    print(_surprise_line(table, "new runs" if len(table) != 1 else "new run"))
    for note in result.notes:
        print(f"- {_one_line(note)}")
    return 0


# ------------------------------------------------------------------ parsers


def _decide_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Compare named (N, D) options by their posterior loss, draw by draw: median and interval, "
        "P(loss <= threshold), value at risk, CVaR, the probability each is best, and a verdict in words."
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument(
        "--option",
        action="append",
        required=True,
        metavar="NAME:N=7e9,D=1.4e12",
        help="a named option: NAME, a colon, then a point as for `predict --at`; repeat for more options",
    )
    p.add_argument("--threshold", type=float, metavar="LOSS", help="target loss: report P(loss <= LOSS)")
    p.add_argument(
        "--risk",
        default="cvar:0.9",
        metavar="MEASURE",
        help="risk measure that picks the best option: mean, quantile:Q (or var:Q) or cvar:Q (default cvar:0.9)",
    )
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.add_argument(
        "--value",
        type=float,
        metavar="V",
        help="value of reaching --threshold, for expected utility and the expected value of perfect information",
    )
    p.add_argument(
        "--price-per-flop", type=float, metavar="P", help="price of one FLOP in the units of --value (default 0)"
    )
    p.add_argument(
        "--no-noise", action="store_true", help="compare the law's loss, without the seed-to-seed noise of one run"
    )
    p.add_argument("--seed", type=seed_argument, default=0, help="seed of the noise draws (default 0)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_decide)


def _optimal_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "The posterior of the compute-optimal model size N, tokens D, tokens per parameter and loss at each "
        "budget C = 6ND; the allocation exponents (N_opt ~ C^a, D_opt ~ C^b); and the range of N within a "
        "tolerance of optimal."
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument(
        "--budget",
        action="append",
        type=float,
        required=True,
        metavar="FLOPS",
        help="compute budget C in FLOPs, e.g. 5.76e23; repeat for more",
    )
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible intervals (default 0.9)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="relative excess loss of the near-optimal N range (default 0.005: 0.5%%)",
    )
    p.add_argument(
        "--unique-tokens",
        type=float,
        metavar="U",
        help="the unique tokens you have: a budget's D beyond them repeats them, as a law that reads U "
        "(data_constrained) prices it (default: fresh tokens at every budget)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_optimal)


def _validate_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Place each new run's observed loss in the fit's predictive distribution (median, 90% interval, z, "
        "two-sided p-value, band) and flag those outside the 90% band. Exits 0 whatever it finds."
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("new_runs", metavar="NEW_RUNS", help="runs table CSV of runs the fit has not seen")
    p.add_argument(
        "--update",
        action="store_true",
        help="refit with the new runs added (the fit's own method unless --method is given; the spec's sampler "
        "settings) and show how the posterior moved",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        help="with --update: the refit's method (default: the fit's own, so that the shifts are the new runs')",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="FLOPS",
        help="budget of the compute-optimal quantities in the --update table (default 1000x the largest run)",
    )
    p.add_argument("-o", "--output", metavar="FIT.nc", help="with --update: write the refitted fit here")
    p.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of the predictive draws and of the refit (default 0)"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_check)


#: Verb -> the function that fills in its parser (description, arguments, command).
PARSERS = {"decide": _decide_parser, "optimal": _optimal_parser, "check": _validate_parser}

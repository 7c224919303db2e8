"""The ``bayescale`` command: a thin shell over the Python API.

Subcommands::

    bayescale fit SPEC RUNS -o FIT.nc       fit a spec to a runs CSV, print the summary, save the fit
    bayescale summary FIT.nc                posterior summary and diagnostics of a saved fit
    bayescale predict FIT.nc --at N=7e9,D=1.4e12
                                            median and credible interval of the loss at new points
    bayescale decide FIT.nc --option 7B:N=7e9,D=1.4e12 --option 13B:N=13e9,D=7e11 --threshold 2.1
                                            compare scale-up options: P(loss <= threshold), VaR, CVaR, P(best)
    bayescale optimal FIT.nc --budget 5.76e23
                                            compute-optimal N, D, tokens per parameter and loss, with intervals
    bayescale check FIT.nc NEW_RUNS.csv [--update]
                                            was each new run a surprise? (optionally refit with them)
    bayescale validate SPEC RUNS --holdout-top 0.2
                                            leave-largest-out: fit the small runs, predict the largest
    bayescale loo FIT.nc                    PSIS-LOO with Pareto-k flags and LOO-PIT coverage
    bayescale report FIT.nc -o report.html [--decision NAME:N=..,D=..] [--threshold T]
                                            one self-contained HTML (or Markdown) report
    bayescale demo                          fit the bundled Chinchilla spec to the bundled demo runs
    bayescale laws                          the registered scaling laws
    bayescale specs                         the bundled model specs
    bayescale check-spec SPEC               validate a spec; print its canonical TOML and id

Bad input (a :class:`~bayescale.errors.BayescaleError`, a missing or unreadable
file) prints one line ``bayescale: error: <message>`` to stderr and exits with
status 2, as do usage errors. Any other exception is a bug and shows its traceback.
``ConvergenceWarning`` and ``IdentifiabilityWarning`` are printed as one line each,
``warning: <message>``, on stderr.

Examples
--------
>>> from bayescale.cli import main
>>> main(["specs"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import bayescale
from bayescale.errors import BayescaleError, ConvergenceWarning, IdentifiabilityWarning

#: Spec and runs file of ``bayescale demo``.
DEMO_SPEC = "chinchilla"
DEMO_RUNS = "pilot_runs.csv"
#: Multiples of the largest demo run's compute at which ``demo`` extrapolates.
DEMO_SCALES = (10.0, 100.0, 1000.0)
#: Tokens per parameter along which ``demo`` extrapolates (Chinchilla's rule of thumb).
DEMO_TOKENS_PER_PARAM = 20.0

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ------------------------------------------------------------------ helpers


def _data_dir() -> Path:
    """Bundled data: ``data/`` beside the package (a source checkout)."""
    return Path(bayescale.__file__).resolve().parent.parent / "data"


def _spec_source(text: str) -> str | Path:
    """A spec argument as :func:`load_spec` should see it.

    An existing file is passed as an absolute path, so the fit records where its
    spec lives and ``summary`` run from another folder can still check it.
    """
    path = Path(text)
    return path.resolve() if path.is_file() else text


def parse_point(text: str) -> dict[str, float]:
    """Parse ``--at`` text such as ``"N=7e9,D=1.4e12"`` into ``{"N": 7e9, "D": 1.4e12}``.

    Raises
    ------
    BayescaleError
        If the text is not comma-separated ``NAME=NUMBER`` pairs, repeats a name,
        or a number is not finite and > 0. The message quotes the text.

    Examples
    --------
    >>> parse_point("N=7e9,D=1.4e12")
    {'N': 7000000000.0, 'D': 1400000000000.0}
    """
    return _parse_point(text, f"--at {text!r}")


def _parse_point(text: str, where: str) -> dict[str, float]:
    """:func:`parse_point` with ``where`` (the flag and text as the user gave them) heading its errors."""
    point: dict[str, float] = {}
    if not text.strip():
        raise BayescaleError(f"{where}: empty; expected NAME=VALUE pairs separated by commas, e.g. N=7e9,D=1.4e12")
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not _NAME.match(name) or not value:
            raise BayescaleError(f"{where}: {item.strip()!r} is not NAME=VALUE; expected e.g. N=7e9,D=1.4e12")
        if name in point:
            raise BayescaleError(f"{where}: {name} is given twice")
        try:
            number = float(value)
        except ValueError:
            raise BayescaleError(f"{where}: {name}={value!r} is not a number") from None
        if not (math.isfinite(number) and number > 0):
            raise BayescaleError(f"{where}: {name} must be a finite number > 0, got {value}")
        point[name] = number
    return point


def _fmt(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; NaN as ``nan``."""
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """Rows of strings as an aligned text table."""
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    right = right or [i > 0 for i in range(len(header))]
    line = lambda cells: "  ".join(  # noqa: E731
        (c.rjust(w) if r else c.ljust(w)) for c, w, r in zip(cells, widths, right)
    ).rstrip()
    return "\n".join([line([str(h) for h in header])] + [line(r) for r in rows])


def _summary_text(summary: Any) -> str:
    """The summary DataFrame as a table: estimates in 4 figures, ESS whole, r-hat to 3 decimals."""
    header = ["variable", *summary.columns]
    rows = []
    for var, rec in summary.iterrows():
        cells = [str(var)]
        for col in summary.columns:
            v = rec[col]
            if col.startswith("ess"):
                cells.append("nan" if math.isnan(v) else f"{v:.0f}")
            elif col == "r_hat":
                cells.append("nan" if math.isnan(v) else f"{v:.3f}")
            else:
                cells.append(_fmt(v))
        rows.append(cells)
    return _table(rows, header)


def _diagnostics_line(d: Mapping[str, Any]) -> str:
    """One line: method, chains, draws, seconds, max r-hat, min ESS, divergences."""
    seconds = d.get("sampling_seconds", float("nan"))
    head = f"{d['method']}: {d['chains']} chains x {d['draws']} draws" + ("" if math.isnan(seconds) else f", {seconds:.1f} s")
    if "max_r_hat" not in d:  # no sampler statistics: Laplace, given draws
        if d["method"] == "laplace":
            return head + " (Laplace approximation: no MCMC diagnostics)"
        if d["method"] == "psis":
            return head + f" (Laplace + importance sampling: Pareto k {d.get('pareto_k', float('nan')):.2f}, reliable at 0.7 or below)"
        return head + " (no MCMC diagnostics: " + str(d.get("note", "no sampler statistics")).rstrip(".") + ")"
    return (
        f"{head}, max r-hat {d['max_r_hat']:.3f}, min ESS {d['min_ess_bulk']:.0f} (bulk) / "
        f"{d['min_ess_tail']:.0f} (tail), {d['divergences']} divergences"
    )


def _header(fit: Any) -> str:
    spec = fit.spec
    return f"spec {spec.name!r} (id {spec.id}), law {spec.law.name}: {spec.law.formula}; {len(fit.runs)} runs"


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def _with_readable_warnings(call: Callable[[], Any]) -> Any:
    """Run ``call``; print bayescale's warnings as ``warning: ...`` lines and re-issue others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", IdentifiabilityWarning)
        result = call()
    for w in caught:
        if issubclass(w.category, (ConvergenceWarning, IdentifiabilityWarning)):
            _warn(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _jsonable(x: Any) -> Any:
    """Plain JSON data: NumPy scalars to Python numbers, NaN and infinities to null."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if hasattr(x, "item") and not isinstance(x, (int, float)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _print_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), indent=2, allow_nan=False))


def load_fit(path: str | Path) -> Any:
    """Load a saved fit with :meth:`Fit.load <bayescale.Fit.load>`, which refuses a stale one.

    Raises
    ------
    StaleFitError
        If the spec file the fit was made from now defines a different model.
    BayescaleError
        If the file is missing or is not a bayescale fit.
    """
    from bayescale.inference import Fit

    return Fit.load(path)


def _band(fit: Any, points: Sequence[Mapping[str, float]], ci_prob: float, noise: bool, seed: int) -> list[dict[str, Any]]:
    """Median and equal-tailed ``ci_prob`` interval of the loss at each point."""
    import numpy as np

    if not 0 < ci_prob < 1:
        raise BayescaleError(f"--ci-prob must be in (0, 1), got {ci_prob!r}")
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    out = []
    for point in points:
        band = fit.predict(point, noise=noise, seed=seed)
        draws = band.values.reshape(-1, band.sizes["point"])[:, 0]
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
        body.append([*(str(r[k]) for k in lead), *(_fmt(r.get(k), 3) for k in inputs), f"{r['median']:.4f}", f"[{r['lower']:.4f}, {r['upper']:.4f}]"])
    return _table(body, header, right=[False] * len(lead) + [True] * (len(header) - len(lead)))


# ----------------------------------------------------------------- commands


def _check_output(out: Path) -> None:
    """Fail before fitting, not after, when the fit cannot be written to ``out``."""
    if out.is_dir():
        raise BayescaleError(f"cannot write the fit to {str(out)!r}: it is a folder; give a file name such as fit.nc")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BayescaleError(f"cannot write the fit to {str(out)!r}: {e.strerror or e}") from None
    if not os.access(out.parent, os.W_OK):
        raise BayescaleError(f"cannot write the fit to {str(out)!r}: folder {str(out.parent)!r} is not writable")


def _fit_and_report(spec: Any, runs: Any, args: argparse.Namespace, out: Path, ci_prob: float = 0.9) -> Any:
    from bayescale.inference import fit as run_fit

    _check_output(out)

    result = _with_readable_warnings(
        lambda: run_fit(
            spec, runs, seed=args.seed, method=args.method, chains=args.chains, warmup=args.warmup, draws=args.draws, progress=args.progress
        )
    )
    print(_header(result))
    print()
    print(_summary_text(result.summary(ci_prob=ci_prob)))
    print()
    print(_diagnostics_line(result.diagnostics()))
    path = result.save(out)
    print(f"wrote {path}")
    return result


def cmd_fit(args: argparse.Namespace) -> int:
    from bayescale.data import load_runs
    from bayescale.spec import load_spec

    spec = load_spec(_spec_source(args.spec))
    runs = load_runs(args.runs)
    _fit_and_report(spec, runs, args, Path(args.output))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    fit = load_fit(args.fit)
    table = fit.summary(ci_prob=args.ci_prob)
    diag = fit.diagnostics()
    if args.format == "json":
        summary = {var: {col: rec[col] for col in table.columns} for var, rec in table.iterrows()}
        diagnostics = {k: v for k, v in diag.items() if k != "table"}
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
            }
        )
        return 0
    print(_header(fit))
    print()
    print(_summary_text(table))
    print()
    print(_diagnostics_line(diag))
    for problem in diag.get("problems", []):
        _warn(problem)
    return 0


def _check_point(fit: Any, text: str, point: Mapping[str, float], flag: str = "--at") -> None:
    """Each ``--at`` point names only inputs of the fit's law and gives all it needs."""
    from bayescale.data import points_frame

    needed = list(fit.spec.columns)
    allowed = set(needed) | {"N", "D", "C"}
    unknown = [k for k in point if k not in allowed]
    if unknown:
        raise BayescaleError(f"{flag} {text!r}: {unknown} are not inputs of law {fit.spec.law.name!r}; it reads {needed} (and C = 6ND links N, D and C)")
    missing = [c for c in needed if c not in points_frame(point).columns]
    if missing:
        raise BayescaleError(f"{flag} {text!r}: law {fit.spec.law.name!r} needs {needed}; {missing} missing (give it, or two of N, D, C: C = 6ND gives the third)")


def cmd_predict(args: argparse.Namespace) -> int:
    points = [parse_point(text) for text in args.at]
    fit = load_fit(args.fit)
    for text, point in zip(args.at, points):
        _check_point(fit, text, point)
    rows = _band(fit, points, args.ci_prob, args.noise, args.seed)
    if args.format == "json":
        _print_json({"spec": fit.spec.name, "spec_id": fit.spec.id, "ci_prob": args.ci_prob, "noise": args.noise, "points": rows})
        return 0
    what = "a new run's measured loss (with observation noise)" if args.noise else "the law's loss"
    print(f"{_header(fit)}\npredicting {what}\n")
    print(_band_text(rows, args.ci_prob))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bayescale.data import load_runs
    from bayescale.spec import load_spec

    csv = _data_dir() / DEMO_RUNS
    if not csv.is_file():
        raise BayescaleError(f"the demo needs the bundled runs table {csv}, which is missing; run the demo from a source checkout of bayescale")
    spec = load_spec(DEMO_SPEC)
    runs = load_runs(csv)
    largest = runs.loc[runs["C"].idxmax()]
    print(
        f"demo: fitting bundled spec {spec.name!r} to {len(runs)} runs from {csv.name} "
        f"(N {_fmt(runs['N'].min(), 3)} to {_fmt(runs['N'].max(), 3)}; largest compute C = {_fmt(largest['C'], 3)} FLOPs)\n"
    )
    if "source" in runs and runs["source"].astype(str).str.contains("synthetic", case=False).any():
        print(f"note: these runs are a synthetic placeholder, not real training runs (see {csv.parent.name}/README.md)\n")
    out = Path(args.out) / "demo_fit.nc"
    fit = _fit_and_report(spec, runs, args, out)
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
    return 0


def cmd_laws(args: argparse.Namespace) -> int:
    from bayescale.laws import get_law, list_laws

    for i, name in enumerate(list_laws()):
        law = get_law(name)
        inputs = ", ".join(i if law.columns[i] == i else f"{i} (column {law.columns[i]})" for i in law.inputs)
        if i:
            print()
        print(f"{law.name}: {law.formula}")
        print(f"  params: {', '.join(law.params)}")
        print(f"  inputs: {inputs}")
        if law.description:
            print(f"  {law.description}")
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from bayescale.spec import bundled_specs, load_spec

    rows = []
    for name in bundled_specs():
        spec = load_spec(name)
        rows.append([name, spec.law.name, spec.likelihood.family, spec.id, spec.description])
    if not rows:
        print("no bundled specs found")
        return 0
    print(_table(rows, ["name", "law", "likelihood", "id", "description"], right=[False] * 5))
    return 0


def cmd_check_spec(args: argparse.Namespace) -> int:
    from bayescale.spec import load_spec

    spec = load_spec(_spec_source(args.spec))
    print(f"# spec {spec.name!r} is valid; id {spec.id}" + (f" ({spec.path})" if spec.path else ""))
    print(spec.to_toml(), end="")
    return 0


# ------------------------------------------------------ decisions and checks


def _positive(value: float | None, flag: str, *, zero: bool = False) -> None:
    """``value`` (when given) is a finite number > 0 (>= 0 with ``zero``)."""
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise BayescaleError(f"{flag} must be a finite number {'>= 0' if zero else '> 0'}, got {value!r}")


def _check_ci_prob(ci_prob: float) -> None:
    if not 0 < ci_prob < 1:
        raise BayescaleError(f"--ci-prob must be in (0, 1), got {ci_prob!r}")


def parse_option(text: str) -> tuple[str, dict[str, float]]:
    """Parse ``--option`` text such as ``"7B:N=7e9,D=1.4e12"`` into ``("7B", {"N": 7e9, "D": 1.4e12})``.

    The part after ``NAME:`` is read as ``--at`` is (see :func:`parse_point`).

    Raises
    ------
    BayescaleError
        If the name is missing or the point is malformed. The message quotes the text.

    Examples
    --------
    >>> parse_option("7B:N=7e9,D=1.4e12")
    ('7B', {'N': 7000000000.0, 'D': 1400000000000.0})
    """
    where = f"--option {text!r}"
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not colon or not name:
        raise BayescaleError(f"{where}: no option name; expected NAME:POINT, e.g. 7B:N=7e9,D=1.4e12")
    if "=" in name or "," in name:
        raise BayescaleError(f"{where}: option name {name!r} may not contain '=' or ','; expected NAME:POINT, e.g. 7B:N=7e9,D=1.4e12")
    return name, _parse_point(rest, where)


def _options(fit: Any, texts: Sequence[str]) -> dict[str, dict[str, float]]:
    """Named, checked points of ``--option`` texts, each completed to N, D and C where ``C = 6ND`` allows."""
    from bayescale.data import points_frame

    out: dict[str, dict[str, float]] = {}
    for text in texts:
        name, point = parse_option(text)
        if name in out:
            raise BayescaleError(f"--option {text!r}: option name {name!r} is given twice; give each option its own name")
        _check_point(fit, text, point, flag="--option")
        row = points_frame(point).iloc[0]
        out[name] = {k: float(v) for k, v in row.items()}
    return out


def _pct(p: float) -> str:
    return f"{100 * p:g}%"


def _interval(lo: float, hi: float, digits: int = 4) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


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
        cells.append("<- best" if name == dec.best else "")
        rows.append(cells)
    return _table(rows, header, right=[False] + [True] * (len(header) - 2) + [False])


def cmd_decide(args: argparse.Namespace) -> int:
    from bayescale.decisions import Utility, decide, parse_risk

    risk = parse_risk(args.risk)
    _check_ci_prob(args.ci_prob)
    _positive(args.threshold, "--threshold")
    utility = None
    if args.price_per_flop is not None and args.value is None:
        raise BayescaleError("--price-per-flop needs --value (the value of reaching --threshold)")
    if args.value is not None:
        if not math.isfinite(args.value):
            raise BayescaleError(f"--value must be a finite number, got {args.value!r}")
        _positive(args.price_per_flop, "--price-per-flop", zero=True)
        if args.threshold is None:
            raise BayescaleError("--value needs --threshold (the loss whose reaching is worth --value)")
        utility = Utility(value=args.value, price_per_flop=args.price_per_flop or 0.0)
    for text in args.option:  # malformed options fail before the fit is read
        parse_option(text)
    fit = load_fit(args.fit)
    options = _options(fit, args.option)
    dec = decide(options, fit=fit, threshold=args.threshold, risk=risk, ci_prob=args.ci_prob, utility=utility, noise=not args.no_noise, seed=args.seed)
    if args.format == "json":
        _print_json(dec.to_dict())
        return 0
    what = "the law's loss (no observation noise)" if args.no_noise else "each option's measured loss (with observation noise)"
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
    from bayescale.decisions import allocation_exponents, compute_optimal, frontier, near_optimal_range

    _check_ci_prob(args.ci_prob)
    for b in args.budget:
        _positive(b, "--budget")
    if not 0 < args.tolerance < 1:
        raise BayescaleError(f"--tolerance must be a fraction in (0, 1), got {args.tolerance!r}")
    fit = load_fit(args.fit)
    cols = list(fit.spec.columns)
    if not {"N", "D"} <= set(cols):
        raise BayescaleError(
            f"compute-optimal allocation splits a budget C = 6ND between N and D; law {fit.spec.law.name!r} of spec "
            f"{fit.spec.name!r} reads {cols}, so at fixed C its loss does not depend on the split"
        )
    budgets = list(args.budget)
    pct = f"{100 * args.ci_prob:g}"  # frontier's column suffix
    band = frontier(fit, budgets, ci_probs=(args.ci_prob,))
    opt = compute_optimal(fit, budgets)
    exps, rows = [], []
    for i, c in enumerate(budgets):
        r = band.iloc[i]
        entry: dict[str, Any] = {"C": float(c)}
        for var in ("N_opt", "D_opt", "tokens_per_param", "loss_opt"):
            entry[var] = {"median": float(r[f"{var}_median"]), "lower": float(r[f"{var}_lo{pct}"]), "upper": float(r[f"{var}_hi{pct}"])}
        at_bound = float(opt["at_bound"].isel(budget=i).mean())
        entry["at_bound"] = at_bound
        lo, hi = near_optimal_range(fit, c, tolerance=args.tolerance)
        entry["near_optimal_N"] = [lo, hi]
        rows.append(entry)
        if i == 0 or exps[0]["method"] != "closed form":
            ex = allocation_exponents(fit, budget=c)
            exps.append({"method": ex.attrs.get("method", ""), "a": _quantiles(ex["a"].values, args.ci_prob), "b": _quantiles(ex["b"].values, args.ci_prob)})
    method = opt.attrs.get("method", "")
    if args.format == "json":
        _print_json(
            {
                "spec": fit.spec.name,
                "spec_id": fit.spec.id,
                "ci_prob": args.ci_prob,
                "tolerance": args.tolerance,
                "method": method,
                "budgets": rows,
                "exponents": exps,
            }
        )
        return 0
    print(f"{_header(fit)}\ncompute-optimal allocation ({method}); median [{_pct(args.ci_prob)} interval] over the posterior\n")
    body = [
        [_fmt(e["C"], 3), _band_cell(e["N_opt"]), _band_cell(e["D_opt"]), _band_cell(e["tokens_per_param"]), _band_cell(e["loss_opt"], fixed=True)]
        for e in rows
    ]
    print(_table(body, ["budget C", "N_opt (params)", "D_opt (tokens)", "tokens per param", "loss at optimum"]))
    print()
    for ex in exps:
        a, b = ex["a"], ex["b"]
        print(f"allocation exponents ({ex['method']}): N_opt ~ C^a, a = {_band_cell(a, fixed=True)}; D_opt ~ C^b, b = {_band_cell(b, fixed=True)}")
    print()
    for e in rows:
        lo, hi = e["near_optimal_N"]
        if math.isnan(lo):
            print(f"at C = {_fmt(e['C'], 3)}: no N keeps the expected loss within {_pct(args.tolerance)} of each draw's optimum")
        else:
            print(f"at C = {_fmt(e['C'], 3)}: any N in [{_fmt(lo, 3)}, {_fmt(hi, 3)}] is within {_pct(args.tolerance)} of optimal (expected relative excess loss)")
        if e["at_bound"] > 0:
            _warn(
                f"at C = {_fmt(e['C'], 3)} the optimum of {100 * e['at_bound']:.0f}% of posterior draws lies on the edge of the "
                "searched tokens-per-parameter range (0.01 to 1e5): the law has no interior optimum there for them"
            )
    return 0


def _records(frame: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: _jsonable(rec[c]) for c in columns if c in rec} for rec in frame.to_dict(orient="records")]


PREDICTIVE_COLUMNS = ("run_id", "N", "D", "C", "observed", "median", "lo90", "hi90", "z", "p_value", "pit", "band", "surprise", "log_pred_density", "rel_error")


def _predictive_text(table: Any) -> str:
    header = ["run_id", "N", "D", "C", "observed", "median", "90% interval", "z", "p-value", "band", ""]
    rows = [
        [
            str(r["run_id"]),
            _fmt(r["N"], 3),
            _fmt(r["D"], 3),
            _fmt(r["C"], 3),
            f"{r['observed']:.4f}",
            f"{r['median']:.4f}",
            _interval(r["lo90"], r["hi90"]),
            f"{r['z']:+.2f}",
            f"{r['p_value']:.3f}",
            str(r["band"]),
            "SURPRISE" if r["surprise"] else "",
        ]
        for _, r in table.iterrows()
    ]
    return _table(rows, header, right=[False] + [True] * 8 + [False, False])


def _shifts_text(shifts: Any) -> str:
    cols = ["median_before", "median_after", "sd_before", "sd_after", "sd_ratio"]
    rows = [[str(q), *(_fmt(r[c]) for c in cols)] for q, r in shifts.iterrows()]
    return _table(rows, ["quantity", "median before", "median after", "sd before", "sd after", "sd after/before"])


def _surprise_line(n_surprise: int, n: int, what: str) -> str:
    if n_surprise == 0:
        return f"no surprises: all {n} {what} inside the 90% predictive band"
    return f"{n_surprise} surprise{'s' if n_surprise != 1 else ''} among {n} {what} (outside the 90% predictive band)"


def cmd_check(args: argparse.Namespace) -> int:
    from bayescale.checks import check

    _positive(args.budget, "--budget")
    if args.output is not None and not args.update:
        raise BayescaleError("-o/--output writes the refitted fit; it needs --update")
    out = Path(args.output) if args.output is not None else None
    if out is not None:
        _check_output(out)
    fit = load_fit(args.fit)
    result = _with_readable_warnings(lambda: check(fit, args.new_runs, update=args.update, seed=args.seed, budget=args.budget))
    table = result.table
    n_surprise = int(table["surprise"].sum())
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
                "shifts": shifts,
                "updated_fit": written,
            }
        )
        return 0
    print(f"{_header(fit)}\n{len(table)} new run{'s' if len(table) != 1 else ''} against the predictive distribution of a new run's measured loss\n")
    print(_predictive_text(table))
    if result.updated is not None:
        up = result.updated
        print(f"\nrefit with the new runs ({len(up.runs)} runs): how the posterior moved\n")
        print(_shifts_text(result.shifts))
        print()
        print(_diagnostics_line(up.diagnostics()))  # its problems were warned about while fitting
        if written:
            print(f"wrote {written}")
    print()
    print(_surprise_line(n_surprise, len(table), "new runs" if len(table) != 1 else "new run"))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bayescale.checks import leave_largest_out
    from bayescale.spec import load_spec

    if not 0 < args.holdout_top < 1:
        raise BayescaleError(f"--holdout-top must be a fraction in (0, 1), got {args.holdout_top!r}")
    spec = load_spec(_spec_source(args.spec))
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
        )
    )
    diag = val.fit.diagnostics() if val.fit is not None else None
    if args.format == "json":
        doc = {"spec": spec.name, "spec_id": spec.id, "holdout_top": args.holdout_top, "seed": args.seed, "method": args.method}
        doc.update(val.to_dict())
        doc["surprises"] = int(val.table["surprise"].sum())
        doc["runs"] = _records(val.table, PREDICTIVE_COLUMNS)
        if diag is not None:
            doc["diagnostics"] = {k: v for k, v in diag.items() if k != "table"}
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
    from bayescale.checks import PARETO_K_BAD, coverage, loo, loo_pit

    fit = load_fit(args.fit)
    res = loo(fit)
    pit = loo_pit(fit)
    cov = coverage(pit.to_numpy())
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
                "loo_pit_coverage": {str(k): v for k, v in cov.items()},
                "runs": [{"run_id": r, "pareto_k": res.pareto_k[r], "loo_pit": pit[r]} for r in res.pareto_k.index],
            }
        )
        return 0
    print(f"{_header(fit)}\n")
    print(f"PSIS-LOO: elpd_loo {res.elpd:.2f} (SE {res.se:.2f}), p_loo {res.p_loo:.2f}")
    if res.flagged:
        print(f"{len(res.flagged)} run{'s' if len(res.flagged) != 1 else ''} with Pareto k > {PARETO_K_BAD} (influential; LOO is unreliable for them): {', '.join(res.flagged)}")
    else:
        print(f"all Pareto k <= {PARETO_K_BAD}: the LOO estimate is reliable")
    print()
    print("LOO-PIT coverage (calibrated: each run falls inside the p central interval of its leave-one-out predictive with probability p):")
    print(_table([[_pct(k), f"{v:.2f}"] for k, v in cov.items()], ["central interval", "runs inside"]))
    shown = list(pit.index) if args.all_runs else list(res.flagged)
    if shown:
        print()
        rows = [[r, f"{res.pareto_k[r]:.2f}", f"{pit[r]:.3f}", f"k > {PARETO_K_BAD:g}" if r in res.flagged else ""] for r in shown]
        print(_table(rows, ["run_id", "pareto k", "LOO-PIT", ""], right=[False, True, True, False]))
    return 0


# ------------------------------------------------------------------ parser


def _fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the one seed for everything random in the fit (default 0)")
    p.add_argument("--method", choices=("nuts", "laplace", "psis"), default="nuts", help="NUTS sampling (default), the quick Laplace approximation, or Laplace corrected by importance sampling (psis)")
    p.add_argument("--chains", type=int, help="number of chains (default: the spec's)")
    p.add_argument("--warmup", type=int, help="warmup iterations per chain (default: the spec's)")
    p.add_argument("--draws", type=int, help="draws per chain (default: the spec's)")
    p.add_argument("--progress", action="store_true", help="show NumPyro's progress bar")


#: Modules that add subcommands with ``register(subparsers)``.
PLUGINS: tuple[str, ...] = ("bayescale.runner.cli", "bayescale.active_cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayescale`` command."""
    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Bayesian scaling laws: fit a law to small training runs and extrapolate with credible bands.",
    )
    parser.add_argument("--version", action="version", version=f"bayescale {bayescale.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Listed for --help; `main` hands `report` to bayescale.report.report_main before parsing.
    sub.add_parser("report", help="one self-contained HTML or Markdown report of a fit (see `bayescale report --help`)")

    p = sub.add_parser("fit", help="fit a spec to a runs table and save the fit", description="Fit SPEC to the runs in RUNS, print the posterior summary and diagnostics, and write the fit to netCDF.")
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name (see `bayescale specs`)")
    p.add_argument("runs", metavar="RUNS", help="runs table CSV (columns N, D and/or C, loss; optional run_id)")
    p.add_argument("-o", "--output", required=True, metavar="FIT.nc", help="where to write the fit (netCDF)")
    _fit_options(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("summary", help="posterior summary and diagnostics of a saved fit", description="Posterior summary (mean, sd, median, equal-tailed interval, ESS, r-hat) and sampling diagnostics of a saved fit.")
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("predict", help="loss band at new (N, D) points", description="Median and equal-tailed credible interval of the loss at each --at point.")
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--at", action="append", required=True, metavar="N=7e9,D=1.4e12", help="a point, as law inputs NAME=VALUE separated by commas (C = 6ND fills in the third); repeat for more points")
    p.add_argument("--noise", action="store_true", help="include observation noise: predict a new run's measured loss")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default 0)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "decide",
        help="compare scale-up options by risk: P(loss <= threshold), VaR, CVaR, P(best)",
        description="Compare named (N, D) options by their posterior loss, draw by draw: median and interval, "
        "P(loss <= threshold), value at risk, CVaR, the probability each is best, and a verdict in words.",
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--option", action="append", required=True, metavar="NAME:N=7e9,D=1.4e12", help="a named option: NAME, a colon, then a point as for `predict --at`; repeat for more options")
    p.add_argument("--threshold", type=float, metavar="LOSS", help="target loss: report P(loss <= LOSS)")
    p.add_argument("--risk", default="cvar:0.9", metavar="MEASURE", help="risk measure that picks the best option: mean, quantile:Q (or var:Q) or cvar:Q (default cvar:0.9)")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible interval (default 0.9)")
    p.add_argument("--value", type=float, metavar="V", help="value of reaching --threshold, for expected utility and the expected value of perfect information")
    p.add_argument("--price-per-flop", type=float, metavar="P", help="price of one FLOP in the units of --value (default 0)")
    p.add_argument("--no-noise", action="store_true", help="compare the law's loss, without the seed-to-seed noise of one run")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default 0)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser(
        "optimal",
        help="compute-optimal N and D at FLOP budgets, with intervals",
        description="The posterior of the compute-optimal model size N, tokens D, tokens per parameter and loss at each "
        "budget C = 6ND; the allocation exponents (N_opt ~ C^a, D_opt ~ C^b); and the range of N within a "
        "tolerance of optimal.",
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--budget", action="append", type=float, required=True, metavar="FLOPS", help="compute budget C in FLOPs, e.g. 5.76e23; repeat for more")
    p.add_argument("--ci-prob", type=float, default=0.9, help="probability of the credible intervals (default 0.9)")
    p.add_argument("--tolerance", type=float, default=0.005, help="relative excess loss of the near-optimal N range (default 0.005: 0.5%%)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_optimal)

    p = sub.add_parser(
        "check",
        help="was each new run a surprise? optionally refit with them",
        description="Place each new run's observed loss in the fit's predictive distribution (median, 90% interval, z, "
        "two-sided p-value, band) and flag those outside the 90% band. Exits 0 whatever it finds.",
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("new_runs", metavar="NEW_RUNS", help="runs table CSV of runs the fit has not seen")
    p.add_argument("--update", action="store_true", help="refit with the new runs added (NUTS, the spec's sampler settings) and show how the posterior moved")
    p.add_argument("--budget", type=float, metavar="FLOPS", help="budget of the compute-optimal quantities in the --update table (default 1000x the largest run)")
    p.add_argument("-o", "--output", metavar="FIT.nc", help="with --update: write the refitted fit here")
    p.add_argument("--seed", type=int, default=0, help="seed of the predictive draws and of the refit (default 0)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "validate",
        help="leave-largest-out: fit the small runs, predict the largest",
        description="Fit SPEC to the runs with the least compute, predict the held-out largest runs, and report "
        "interval coverage, predictive density and each held-out run's surprise.",
    )
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name")
    p.add_argument("runs", metavar="RUNS", help="runs table CSV")
    p.add_argument("--holdout-top", type=float, default=0.2, metavar="FRACTION", help="fraction of runs, by compute, held out (default 0.2)")
    _fit_options(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "loo",
        help="PSIS-LOO and LOO-PIT calibration of a saved fit",
        description="PSIS leave-one-out expected log predictive density with Pareto-k flags, and LOO-PIT coverage of central intervals.",
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument("--all-runs", action="store_true", help="list every run's Pareto k and LOO-PIT, not only the flagged ones")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_loo)

    p = sub.add_parser("demo", help="fit the bundled Chinchilla spec to the bundled demo runs", description=f"Fit the bundled {DEMO_SPEC!r} spec to data/{DEMO_RUNS}, print the summary and diagnostics, and extrapolate to {', '.join(f'{k:g}x' for k in DEMO_SCALES)} the largest run's compute.")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for demo_fit.nc (default out/)")
    _fit_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("laws", help="list the registered scaling laws", description="The registered scaling laws with their formula, parameters and inputs.")
    p.set_defaults(func=cmd_laws)

    p = sub.add_parser("specs", help="list the bundled model specs", description="The bundled model specs (models/*.toml).")
    p.set_defaults(func=cmd_specs)

    p = sub.add_parser("check-spec", help="validate a spec; print its canonical TOML and id", description="Validate SPEC and print its canonical TOML, headed by its id.")
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name")
    p.set_defaults(func=cmd_check_spec)

    # Subcommands that live beside their own modules: each module's ``register(sub)`` adds its parsers
    # and defers heavy imports (torch, transformers, ray) until its command runs.
    # A plugin command listed in the module's PASSTHROUGH gets the rest of the command line unparsed
    # (as ``args.rest``) and parses it itself.
    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    return parser


def _passthrough() -> set[str]:
    return {cmd for name in PLUGINS for cmd in getattr(importlib.import_module(name), "PASSTHROUGH", ())}


def _error(message: str) -> int:
    print(f"bayescale: error: {_one_line(message)}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayescale`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Returns 0 on success and 2 for bad input or usage (one line on stderr).

    Examples
    --------
    >>> main(["check-spec", "chinchilla"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        # `bayescale report FIT.nc -o report.html [--decision NAME:N=..,D=..] ...` (bayescale.report)
        from .report import report_main

        return report_main(argv[1:])
    parser = build_parser()
    try:
        if argv and argv[0] in _passthrough():
            args = parser.parse_args(argv[:1])
            args.rest = argv[1:]
        else:
            args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return args.func(args)
    except BayescaleError as e:
        return _error(str(e))
    except BrokenPipeError:  # e.g. `bayescale laws | head -1`: stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as e:  # a missing input, an unwritable output
        if e.filename is not None and e.strerror:
            return _error(f"{e.strerror}: {e.filename}")
        return _error(str(e))


def entry() -> None:
    """Console entry point: ``main`` with four host CPU devices (parallel chains) unless
    ``XLA_FLAGS`` chooses a count, and JAX's persistent compilation cache on, so repeated
    commands skip most compilation (set ``BAYESCALE_NO_JIT_CACHE=1`` to turn it off)."""
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        bayescale.set_host_device_count(4)  # four default chains in parallel, one thread each
    if not os.environ.get("BAYESCALE_NO_JIT_CACHE"):
        try:
            from .inference import enable_compilation_cache

            enable_compilation_cache()
        except OSError:
            pass  # an unwritable home: run without the cache
    sys.exit(main())


__all__ = ["build_parser", "entry", "load_fit", "main", "parse_option", "parse_point"]

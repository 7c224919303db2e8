"""The ``bayescale`` command: a thin shell over the Python API.

Subcommands::

    bayescale fit SPEC RUNS -o FIT.nc       fit a spec to a runs CSV, print the summary, save the fit
    bayescale summary FIT.nc                posterior summary and diagnostics of a saved fit
    bayescale predict FIT.nc --at N=7e9,D=1.4e12
                                            median and credible interval of the loss at new points
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
DEMO_RUNS = "demo_runs.csv"
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
    where = f"--at {text!r}"
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
    head = f"{d['method']}: {d['chains']} chains x {d['draws']} draws, {d.get('sampling_seconds', float('nan')):.1f} s"
    if d["method"] != "nuts":
        return head + " (Laplace approximation: no MCMC diagnostics)"
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


def _check_point(fit: Any, text: str, point: Mapping[str, float]) -> None:
    """Each ``--at`` point names only inputs of the fit's law and gives all it needs."""
    from bayescale.inference import points_frame

    needed = list(fit.spec.columns)
    allowed = set(needed) | {"N", "D", "C"}
    unknown = [k for k in point if k not in allowed]
    if unknown:
        raise BayescaleError(f"--at {text!r}: {unknown} are not inputs of law {fit.spec.law.name!r}; it reads {needed} (and C = 6ND links N, D and C)")
    missing = [c for c in needed if c not in points_frame(point).columns]
    if missing:
        raise BayescaleError(f"--at {text!r}: law {fit.spec.law.name!r} needs {needed}; {missing} missing (give it, or two of N, D, C: C = 6ND gives the third)")


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


# ------------------------------------------------------------------ parser


def _fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the one seed for everything random in the fit (default 0)")
    p.add_argument("--method", choices=("nuts", "laplace"), default="nuts", help="NUTS sampling (default) or the quick Laplace approximation")
    p.add_argument("--chains", type=int, help="number of chains (default: the spec's)")
    p.add_argument("--warmup", type=int, help="warmup iterations per chain (default: the spec's)")
    p.add_argument("--draws", type=int, help="draws per chain (default: the spec's)")
    p.add_argument("--progress", action="store_true", help="show NumPyro's progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayescale`` command."""
    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Bayesian scaling laws: fit a law to small training runs and extrapolate with credible bands.",
    )
    parser.add_argument("--version", action="version", version=f"bayescale {bayescale.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    return parser


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
    parser = build_parser()
    try:
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


__all__ = ["build_parser", "load_fit", "main", "parse_point"]

"""What the ``bayescale`` commands share: parsing of points and options, loading a fit,
text tables and number formats, warnings as one line, and ``--format json`` printing.

Light on purpose: it imports only the standard library and :mod:`bayescale.errors` at the
top, and imports the heavy stack lazily (the functions that need NumPy or a fit import it
when they run), so building the parsers never loads JAX, ArviZ or pandas (see :mod:`bayescale.cli`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import bayescale
from bayescale._io import jsonable as _jsonable  # NaN and infinities as null
from bayescale._io import read_only, special
from bayescale._stages import Stages
from bayescale._words import count, join_names, parse_pairs, restepped_words
from bayescale.errors import (
    BayescaleError,
    ConvergenceWarning,
    IdentifiabilityWarning,
    MisfitWarning,
    RunsTableWarning,
    seed_argument,
)

if TYPE_CHECKING:  # annotations only: no import at run time
    from bayescale.inference import Fit


# ------------------------------------------------------------------ inputs


#: The fit methods the CLI offers (``bayescale.inference.METHODS``, named here so that --help imports no JAX).
METHODS = ("nuts", "laplace", "psis")


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
    return parse_pairs(text, where)


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
        raise BayescaleError(
            f"{where}: option name {name!r} may not contain '=' or ','; expected NAME:POINT, e.g. 7B:N=7e9,D=1.4e12"
        )
    return name, _parse_point(rest, where)


def load_fit(path: str | Path) -> Any:
    """Load a saved fit with :meth:`Fit.load <bayescale.Fit.load>`, which refuses a stale one.

    Raises
    ------
    StaleFitError
        If the spec file the fit was made from now defines a different model.
    BayescaleError
        If the file is missing or is not a bayescale fit.
    """
    from bayescale.averaging import load_fit as load_any

    return load_any(path)


def _validate_output(
    out: Path, what: str = "the fit", example: str = "fit.nc", inputs: Mapping[str, Any] | None = None
) -> None:
    """Fail before the work, not after, when ``what`` cannot be written to ``out`` (a folder, or an
    unwritable folder: the file is replaced atomically, so only its folder must be writable), or would
    replace one of the command's ``inputs`` (``{"the runs table": path}``): nothing the user wrote is lost."""
    where = f"cannot write {what} to {str(out)!r}"
    if out.is_dir():
        raise BayescaleError(f"{where}: it is a folder; give a file name such as {example}")
    for name, path in (inputs or {}).items():
        if isinstance(path, (str, Path)) and out.exists() and Path(path).exists() and out.samefile(path):
            raise BayescaleError(f"{where}: it is {name}, which would be lost; give another name such as {example}")
    if example.endswith(".nc"):  # a fit: the format rule Fit.save applies, said before the fit, not after
        from bayescale._arviz import OTHER_FORMATS

        if out.suffix.lower() in OTHER_FORMATS:
            raise BayescaleError(
                f"{where}: fits are written as netCDF, not {out.suffix}; give a path such as {example}"
            )
    if read_only(out):
        raise BayescaleError(f"{where}: the file is read-only; make it writable or give another name such as {example}")
    if special(out):
        raise BayescaleError(
            f"{where}: {str(out)!r} is not a regular file (a folder, device or pipe); give a file name such as {example}"
        )
    for folder in out.parents:
        if folder.exists() and not folder.is_dir():
            raise BayescaleError(f"{where}: {str(folder)!r} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BayescaleError(f"{where}: {e.strerror or e}") from None
    try:  # a real probe: os.access says yes to root on a read-only file system
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise PermissionError
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError:
        raise BayescaleError(f"{where}: folder {str(out.parent)!r} is not writable") from None


def _validate_point(fit: Fit, text: str, point: Mapping[str, float], flag: str = "--at") -> None:
    """Each ``--at`` point names only inputs of the fit's law and gives all it needs."""
    from bayescale.data import points_frame

    needed = list(fit.spec.columns)
    allowed = set(needed) | {"N", "D", "C"}
    unknown = [k for k in point if k not in allowed]
    if unknown:
        raise BayescaleError(
            f"{flag} {text!r}: {join_names(unknown)} {'is' if len(unknown) == 1 else 'are'} not an input of law "
            f"{fit.spec.law.name!r}; it reads {join_names(needed)} (and C = 6ND links N, D and C)"
        )
    try:
        frame = points_frame(point)
    except BayescaleError as e:
        raise BayescaleError(f"{flag} {text!r}: {str(e).removeprefix('points: ')}") from None
    from bayescale.laws import FALLBACK_COLUMNS

    missing = [c for c in needed if c not in frame.columns and c not in FALLBACK_COLUMNS]  # U absent: U = D
    if missing:
        # a budget alone does not say how it is split; `optimal` finds the split that fits it best
        hint = ""
        if set(point) == {"C"} and {"N", "D"} <= set(needed):
            hint = f"; for the compute-optimal N and D at that budget: bayescale optimal FIT --budget {point['C']:g}"
        raise BayescaleError(
            f"{flag} {text!r}: law {fit.spec.law.name!r} needs {join_names(needed)}; {join_names(missing)} missing "
            f"(give it, or two of N, D, C: C = 6ND gives the third){hint}"
        )


def _positive(value: float | None, flag: str, *, zero: bool = False) -> None:
    """``value`` (when given) is a finite number > 0 (>= 0 with ``zero``)."""
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise BayescaleError(f"{flag} must be a finite number {'>= 0' if zero else '> 0'}, got {value!r}")


def _flops(value: float | None, flag: str) -> None:
    """``value`` (when given) a FLOP count a language model could be trained with: in the plausible
    range of C (:data:`bayescale.data.PLAUSIBLE`)."""
    from bayescale.data import PLAUSIBLE

    _positive(value, flag)
    lo, hi = PLAUSIBLE["C"]
    if value is not None and not lo <= value <= hi:
        raise BayescaleError(
            f"{flag} must be in [{lo:g}, {hi:g}] FLOPs (a plausible language model: C = 6 N D with N <= 1e15 "
            f"parameters, D <= 1e17 tokens), got {value:g}"
        )


def _validate_ci_prob(ci_prob: float) -> None:
    if not 0 < ci_prob < 1:
        raise BayescaleError(f"--ci-prob must be in (0, 1), got {ci_prob!r}")


def _fit_options(p: argparse.ArgumentParser) -> None:
    """The sampler flags of ``fit``, ``validate`` and ``demo``."""
    p.add_argument(
        "--seed", type=seed_argument, default=0, help="the one seed for everything random in the fit (default 0)"
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="nuts",
        help="NUTS sampling (default), the quick Laplace approximation, or Laplace corrected by importance sampling (psis)",
    )
    p.add_argument("--chains", type=int, help="number of chains (default: the spec's)")
    p.add_argument("--warmup", type=int, help="warmup iterations per chain (default: the spec's)")
    p.add_argument("--draws", type=int, help="draws per chain (default: the spec's)")
    p.add_argument("--progress", action="store_true", help="show NumPyro's progress bar")
    p.add_argument(
        "--calibrate",
        choices=("none", "conformal"),
        default="none",
        help="conformal: scale the bands so their 90%% intervals cover the runs held out by leave-future-out "
        "splits at the split-conformal rate (assumes those errors are exchangeable with your target's)",
    )


# ------------------------------------------------------------------ progress


def _quiet_option(p: argparse.ArgumentParser) -> None:
    """``-q``/``--quiet``, which every command's parser gets from :func:`bayescale.cli.build_parser`."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def _stages(args: argparse.Namespace) -> Stages:
    """The command's progress printer: one ``[ 3.1s] stage`` line on stderr per stage, none with ``-q``."""
    return Stages(quiet=bool(getattr(args, "quiet", False)))


def _fitting_words(spec: Any, args: argparse.Namespace, n_runs: int | None = None) -> str:
    """The fit a command is about to make, in words: method, chains x draws (NUTS: and warmup), runs."""
    members = getattr(spec, "members", None)  # a law average: leave-future-out splits, then each law
    s = members[0].sampler if members else spec.sampler
    chains, draws = args.chains or s.chains, args.draws or s.draws
    runs = f" on {count(n_runs, 'run')}" if n_runs is not None else ""
    if members:
        runs += f", {len(members)} laws weighed on leave-future-out splits first"
    if args.method == "nuts":
        return f"sampling: NUTS, {count(chains, 'chain')} x {count(draws, 'draw')} ({args.warmup or s.warmup} warmup){runs}"
    how = "MAP and Laplace approximation" + (", corrected by importance sampling" if args.method == "psis" else "")
    return f"fitting: {how}, {chains} x {draws} draws{runs}"


# ------------------------------------------------------------------ output


def _fmt(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; NaN as ``nan``."""
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}"


def _pct(p: float) -> str:
    return f"{100 * p:g}%"


def _interval(lo: float, hi: float, digits: int = 4) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


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
    head = f"{d['method']}: {count(d['chains'], 'chain')} x {count(d['draws'], 'draw')}" + (
        "" if math.isnan(seconds) else f", {seconds:.1f} s"
    )
    if "max_r_hat" not in d:  # no sampler statistics: Laplace, given draws
        if d["method"] == "laplace":
            return head + " (Laplace approximation: no MCMC diagnostics)"
        if d["method"] == "psis":
            return (
                head
                + f" (Laplace + importance sampling: Pareto k {d.get('pareto_k', float('nan')):.3g}, reliable at 0.7 or below)"
            )
        return head + " (no MCMC diagnostics: " + str(d.get("note", "no sampler statistics")).rstrip(".") + ")"
    return (
        f"{head}, max r-hat {d['max_r_hat']:.3f}".replace("r-hat nan", "r-hat n/a (one chain)")
        + f", min ESS {d['min_ess_bulk']:.0f} (bulk) / "
        f"{d['min_ess_tail']:.0f} (tail), {d['divergences']} divergences{restepped_words(d)}"
    )


def _header(fit: Fit) -> str:
    spec = fit.spec
    if hasattr(fit, "weights"):  # a law average: say which laws carry the weight
        lead = f"law {spec.law.name}: {spec.law.formula}"
        head = (
            f"spec {fit.spec_average.name!r} (id {fit.spec_average.id}), {fit.describe().rstrip('.')}; "
            f"{count(len(fit.runs), 'run')}. "
            f"Parameters shown are those of the leading {lead}"
        )
    else:
        head = (
            f"spec {spec.name!r} (id {spec.id}), law {spec.law.name}: {spec.law.formula}; {count(len(fit.runs), 'run')}"
        )
    return head + _calibrated(fit)


def _calibrated(fit: Any) -> str:
    """Words for a fit whose bands were scaled by split-conformal calibration (``--calibrate conformal``)."""
    from bayescale.discrepancy import calibration

    cal = calibration(fit)
    if cal is None:
        return ""
    tested = f" (held out up to {cal[1]:.2g} decades in N and D beyond their splits' runs)" if cal[1] else ""
    return (
        f"\nbands calibrated (--calibrate conformal): scaled {cal[0]:.2f}x about their median, so that 90% "
        f"intervals cover the runs held out by the leave-future-out splits{tested}"
    )


def _records(frame: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: _jsonable(rec[c]) for c in columns if c in rec} for rec in frame.to_dict(orient="records")]


PREDICTIVE_COLUMNS = (
    "run_id",
    "N",
    "D",
    "C",
    "observed",
    "median",
    "lo90",
    "hi90",
    "z",
    "p_value",
    "pit",
    "band",
    "surprise",
    "log_pred_density",
    "rel_error",
)


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


# --------------------------------------------------------- warnings and JSON


def _one_line(message: Any) -> str:
    """A message on one line, in the CLI's words: the library's ``method='nuts'`` is ``--method nuts`` here."""
    return re.sub(r"\bmethod='(\w+)'", r"--method \1", " ".join(str(message).split()))


def _warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def _warn_unless_printed(message: str) -> None:
    """Warn of what stdout has just said, unless stdout and stderr are one stream (a terminal, or
    ``2>&1``), where the warning would repeat it line for line; ``cmd > file`` still warns."""
    if not _one_stream():
        _warn(message)


def _one_stream() -> bool:
    try:
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # captured streams (tests, notebooks) have no file
        return False
    return (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino)


def _say_fit_problems(fit: Any) -> list[str]:
    """A loaded fit's problems (sampling, too few runs, a law that misfits its runs), warned again
    wherever its bands are used, so that no band leaves them behind; returned for the JSON output."""
    from bayescale.decisions import doubts

    problems, misfits, untested = doubts(fit)
    problems += [f"the law misfits its runs: {misfits}"] if misfits else []
    problems += [f"the law's fit could not be tested ({untested})"] if untested else []
    for problem in problems:
        _warn(f"the fit: {problem}")
    return problems


def _say_cautions(fit: Any, points: Any = None) -> list[str]:
    """What to keep in mind about the fit's bands (as ``decide``'s verdict says it): a quick Laplace fit, and at
    ``points`` (a frame named by its index) far beyond the runs or beyond what the splits tested; warned, and
    returned for the JSON output's ``cautions``."""
    from bayescale.decisions import LAPLACE_CAUTION, point_notes

    cautions = [LAPLACE_CAUTION] if fit.method == "laplace" else []
    cautions += [n.removeprefix("Caution: ") for n in point_notes(fit, points)] if points is not None else []
    for caution in cautions:
        _warn(caution)
    return cautions


def _with_readable_warnings(call: Callable[[], Any], said: list[str] | None = None) -> Any:
    """Run ``call``; print bayescale's warnings as ``warning: ...`` lines (and append them, in those words,
    to ``said`` for a JSON output) and re-issue others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", IdentifiabilityWarning)
        warnings.simplefilter("always", MisfitWarning)
        warnings.simplefilter("always", RunsTableWarning)
        result = call()
    for w in caught:
        if issubclass(w.category, (ConvergenceWarning, IdentifiabilityWarning, MisfitWarning, RunsTableWarning)):
            _warn(w.message)
            if said is not None:
                said.append(_one_line(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _print_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), indent=2, allow_nan=False))

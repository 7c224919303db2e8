"""``bayescale report``: one self-contained HTML (or Markdown) report of a saved fit.

The command line of :mod:`bayescale.report`, which renders the report and knows nothing
of the command line. Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily:
:mod:`bayescale.report`, :mod:`bayescale.decisions` and :mod:`bayescale.checks` inside
:func:`_run_report`, so building this parser stays cheap.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from bayescale.errors import BayescaleError, seed_argument

from ._common import _stages, _validate_output, _validate_point, load_fit, parse_option


def report_main(argv: Sequence[str] | None = None) -> int:
    """Run ``bayescale report`` with ``argv`` (the arguments after ``report``); return the exit status.

    ``bayescale report FIT.nc -o report.html [--decision "7B:N=7e9,D=1.4e12" ...]
    [--threshold LOSS] [--risk cvar:0.9] [--holdout-top 0.2] [--format html|md]``.
    The same as ``bayescale.cli.main(["report", *argv])``: 0 on success, 2 for bad input
    or usage (one line on stderr).

    Examples
    --------
    >>> report_main(["fit.nc", "-o", "report.html", "--decision", "7B:N=7e9,D=1.4e12", "--threshold", "2.1"])  # doctest: +SKIP
    0
    """
    from bayescale.cli import main  # the package this module belongs to: loaded already

    return main(["report", *(sys.argv[1:] if argv is None else argv)])


def _run_report(args: argparse.Namespace) -> int:
    from bayescale.comparison import is_saved_comparison
    from bayescale.decisions import decide, parse_risk
    from bayescale.report import write_html, write_markdown

    out = Path(args.output)
    fmt = _report_format(out, args.format)
    if args.threshold is not None and not (math.isfinite(args.threshold) and args.threshold > 0):
        raise BayescaleError(f"--threshold must be a finite number > 0, got {args.threshold!r}")
    if args.threshold is not None and not args.decision:
        raise BayescaleError("--threshold needs at least one --decision option")
    if args.holdout_top is not None and not 0 < args.holdout_top < 1:
        raise BayescaleError(f"--holdout-top must be a fraction in (0, 1), got {args.holdout_top!r}")
    risk = parse_risk(args.risk)
    options: dict[str, dict[str, float]] = {}
    for text in args.decision:  # malformed options fail before the fit is read
        try:
            name, point = parse_option(text)
        except BayescaleError as e:  # same syntax as `decide --option`; name the flag the user gave
            raise BayescaleError(str(e).replace("--option", "--decision", 1)) from None
        if name in options:
            raise BayescaleError(f"--decision {text!r}: option name {name!r} is given twice")
        options[name] = point
    _validate_output(out, "the report", f"report.{fmt}")
    stage = _stages(args)
    if is_saved_comparison(args.fit):
        return _comparison_report(args, out, fmt, stage)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    decision = None
    if options:
        for text, point in zip(args.decision, options.values()):
            _validate_point(fit, text, point, flag="--decision")
        stage(f"deciding between {len(options)} options")
        decision = decide(options, fit=fit, threshold=args.threshold, risk=risk, seed=args.seed)
    validation = None
    if args.holdout_top is not None:
        from bayescale.checks import leave_largest_out

        stage(f"leave-largest-out: refitting without the top {args.holdout_top:.0%} of runs by compute (NUTS)")
        validation = leave_largest_out(fit.spec, fit.runs, holdout_top=args.holdout_top, seed=args.seed)
    writer = write_markdown if fmt == "md" else write_html
    stage(f"writing {out}: checks, figures and tables")
    path = writer(fit, out, decision=decision, validation=validation, title=args.title, decision_seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return 0


def _comparison_report(args: argparse.Namespace, out: Path, fmt: str, stage: Any) -> int:
    """The report of a comparison saved by ``Comparison.save``: its verdict, curves and multiplier."""
    from bayescale.comparison import Comparison
    from bayescale.report import write_comparison_html

    given = [flag for flag, value in _FIT_ONLY.items() if getattr(args, value)]
    if given:
        raise BayescaleError(
            f"{args.fit} is a recipe comparison: {', '.join(given)} belong to a fit's report (the comparison "
            "already ranks its recipes at its target; compare again with `bayescale compare --at ...` for another)"
        )
    if fmt != "html":
        raise BayescaleError(f"{args.fit} is a recipe comparison, whose report is HTML only: give -o report.html")
    stage(f"loading the comparison {args.fit}")
    cmp = Comparison.load(args.fit)
    stage(f"writing {out}: verdict, curves and the multiplier")
    path = write_comparison_html(cmp, out, title=args.title)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return 0


#: A fit report's options that a comparison's report has no use for: flag -> its attribute.
_FIT_ONLY = {"--decision": "decision", "--threshold": "threshold", "--holdout-top": "holdout_top"}

_SUFFIXES = {"html": (".html", ".htm"), "md": (".md", ".markdown")}


def _report_format(out: Path, fmt: str | None) -> str:
    """The report's format: ``--format``, else the output's suffix; a suffix of another format
    (``-o r.pdf``, or ``--format md -o r.html``) is refused rather than written as HTML."""
    suffix = out.suffix.lower()
    by_suffix = next((f for f, sx in _SUFFIXES.items() if suffix in sx), None)
    if by_suffix is None:
        raise BayescaleError(
            f"-o {str(out)!r}: a report is HTML (.html) or Markdown (.md), not {suffix or 'a file without a suffix'!r}; "
            "give -o report.html or -o report.md"
        )
    if fmt is not None and fmt != by_suffix:
        raise BayescaleError(f"-o {str(out)!r} names a {by_suffix} file but --format is {fmt}; give one or the other")
    return by_suffix


# ------------------------------------------------------------------ parser


def _report_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write a self-contained HTML report (or Markdown with PNG files) of a saved fit: provenance, "
        "summary, diagnostics in plain words, plots, and optionally a decision and a leave-largest-out validation."
    )
    p.add_argument(
        "fit", metavar="FIT.nc", help="a fit saved by `bayescale fit` (or a comparison saved by Comparison.save)"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="REPORT",
        help="the report file to write (.html, or .md with --format md)",
    )
    p.add_argument(
        "--decision",
        action="append",
        default=[],
        metavar="NAME:N=7e9,D=1.4e12",
        help="a scale-up option to compare, as for `decide --option`; repeat for more",
    )
    p.add_argument(
        "--threshold", type=float, metavar="LOSS", help="target loss of the decision: report P(loss <= LOSS)"
    )
    p.add_argument(
        "--risk",
        default="cvar:0.9",
        metavar="MEASURE",
        help="risk measure of the decision: mean, quantile:Q or cvar:Q (default cvar:0.9)",
    )
    p.add_argument(
        "--holdout-top",
        type=float,
        metavar="FRACTION",
        help="also run leave-largest-out validation, holding out this fraction of runs by compute (refits with NUTS)",
    )
    p.add_argument("--title", help="title of the report")
    p.add_argument(
        "--seed",
        type=seed_argument,
        default=0,
        help="seed of the decision's noise draws and of the validation refit (default 0)",
    )
    p.add_argument("--format", choices=("html", "md"), help="html (default) or md; by default from the output's suffix")
    p.set_defaults(func=_run_report)


#: Verb -> the function that fills in its parser (description, arguments, command).
PARSERS = {"report": _report_parser}

"""The report of a recipe comparison (:func:`bayescale.compare`): the verdict, the table, the
curves and the multiplier (:func:`bayescale.plots.plot_comparison`), the pooling and the fit's
diagnostics. Rendering only: the numbers come from :class:`bayescale.comparison.Comparison`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._compare_verdict import multiplier_bounds
from ..plots import plot_comparison
from ._elements import _Answer, _Figure, _Heading, _List, _Para, _Table, figure_png

if TYPE_CHECKING:  # annotations only
    from ..comparison import Comparison


def _g(x: Any, digits: int = 3) -> str:
    return "-" if x != x else f"{x:.{digits}g}"  # NaN: not applicable (the baseline)


def _place(x: Any) -> str:
    """A crossing's compute: 0 is before the smallest run, inf beyond the target."""
    return "below the runs" if x == 0 else "beyond the target" if x == float("inf") else _g(x)


def comparison_blocks(cmp: Comparison) -> tuple[str, list[Any]]:
    """The title and blocks of a comparison's report."""
    t = cmp.table()
    pct = f"{100 * cmp.ci_prob:g}%"
    title = f"Which {cmp.by} to scale? {', '.join(cmp.groups)} at {cmp.target.describe()}"
    rows = tuple(
        (
            str(g),
            f"{r['median']:.4f}",
            f"{r['lo']:.4f}-{r['hi']:.4f}",
            f"{r['p_best']:.2f}",
            f"{r['regret']:.4f}",
            "baseline" if g == cmp.baseline else f"{_g(r['multiplier'])}x ({'-'.join(multiplier_bounds(r))})",
            _g(r["p_better"], 2),
            _g(r["p_cross"], 2),
            "-"
            if r["cross_C"] != r["cross_C"]
            else f"{_place(r['cross_C'])} ({_place(r['cross_lo'])} to {_place(r['cross_hi'])})",
        )
        for g, r in t.iterrows()
    )
    header = (
        cmp.by,
        "median loss",
        f"{pct} interval",
        "P(best)",
        "expected regret",
        f"compute multiplier ({pct})",
        "P(better)",
        "P(cross below target)",
        f"crossing C: median ({pct})",
    )
    # The verdict's answer, then each of its doubts and cautions whole, with its label.
    headline, *doubts = re.split(r" (?=(?:Doubt|Caution)(?:, [^:.]*)?: )", cmp.verdict)
    mult = cmp.multiplier()
    blocks: list[Any] = [
        _Answer(headline=headline, fitted=_fitted(cmp), warnings=tuple(doubts)),
        _Heading("The recipes at the target", "table"),
        _Table(header, rows, numeric=(False,) + (True,) * 8),
        _Heading("Curves, bands and the multiplier", "curves"),
        _Figure(
            "compare", "Compute-optimal loss and compute multiplier", _caption(cmp), figure_png(plot_comparison(cmp))
        ),
        _Table(
            ("recipe", "C", "median multiplier", f"{pct} interval", "P(> 1)", "draws beyond the searched range"),
            tuple(
                (
                    str(r["recipe"]),
                    f"{r['C']:.3g}",
                    _g(r["median"]),
                    f"{_g(r['lo'])}-{_g(r['hi'])}",
                    f"{r['p_gt_1']:.2f}",
                    f"{r['clipped']:.2f}",
                )
                for _, r in mult.iterrows()
            ),
            numeric=(False, True, True, True, True, True),
        ),
        _Heading("How the recipes were fitted", "model"),
        _Para(
            f"One joint fit ({cmp.fit.method}) of {cmp.spec.law.name} per {cmp.by}: {cmp.pooling.describe(cmp.spec.law)}. "
            f"Extrapolation drift: {cmp.drift_words()}."
            + (f" Law uncertainty: {cmp.describe_laws()}; the figures show the mixture." if cmp.laws else "")
        ),
    ]
    problems = cmp.fit.diagnostics()["problems"]
    blocks.append(_List(tuple(problems), cls="problem") if problems else _Para("Sampling found no problems.", cls="ok"))
    return title, blocks


def _fitted(cmp: Comparison) -> str:
    sizes = ", ".join(f"{g}: {len(f.runs)} runs" for g, f in cmp.recipes.items())
    return f"Fitted on {sizes}; the multiplier k: the baseline's loss at k times the compute equals the recipe's."


def _caption(cmp: Comparison) -> str:
    return (
        "Left: median and 50%/90% bands of each recipe's compute-optimal loss (drift included), its runs, the "
        "target (dashed) and the median crossing (dotted) where the curves cross with probability >= 0.05. Right: "
        f"the compute multiplier over {cmp.baseline} at each compute level (1: no difference)."
    )


__all__ = ["comparison_blocks"]

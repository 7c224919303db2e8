"""What a row-by-row table of new runs cannot show (:func:`bayescale.checks.check`'s notes): more surprises
than chance, the runs off the prediction together or only the largest of them, chance counted over the fit's
joint predictive draws; and new losses a change of logarithm's base away from the predictions (bits, nats)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._misfit_finding import TOP_FRACTION

#: Loss in bits over loss in nats (log2 over natural log): new runs in bits sit this factor above a fit in nats.
BITS_OVER_NATS = 1.0 / math.log(2.0)
#: How close (in log) the new runs' median observed over predicted loss must be to that factor to be read as
#: units; each run must also lie nearer the factor than 1 (its own prediction error scatters it: a held-out pilot
#: in bits sat 0.052 off the factor, in bands 29% wide).
UNITS_CLOSE = 0.05


def loss_unit_notes(table: pd.DataFrame) -> list[str]:
    """New runs (:func:`bayescale.checks.predictive_table`) whose losses sit the factor between bits and nats off their
    predictions (the median within :data:`UNITS_CLOSE`, each nearer it than its prediction): no regime moves every
    run by the same 44%, a change of logarithm's base does."""
    if len(table) < 2:
        return []
    log_ratio = np.log(table["observed"].to_numpy(float) / table["median"].to_numpy(float))
    for factor, said in (
        (BITS_OVER_NATS, "in bits (log2) and the fit's in nats"),
        (1 / BITS_OVER_NATS, "in nats and the fit's in bits (log2)"),
    ):
        off = np.abs(log_ratio - math.log(factor))
        if abs(np.median(log_ratio) - math.log(factor)) < UNITS_CLOSE and np.all(off < np.abs(log_ratio)):
            return [
                f"the new runs' losses are {math.exp(np.median(log_ratio)):.3g}x their predicted medians (the median ratio), the factor between "
                f"bits and nats: are the new losses {said}? bayescale reads every loss in nats (natural log); "
                "convert one table (nats = bits x 0.693)"
            ]
    return []


#: Surprises among new runs, or new runs off their medians together, are said when as many (as far) would
#: come by chance with this probability or less.
PATTERN_P = 0.01
_REFIT = "refit with them (update=True; `bayescale check --update`)"


def surprise_pattern(table: pd.DataFrame, rep: np.ndarray) -> list[str]:
    """More surprises than chance, or the new runs off the prediction together (their mean log offset), in
    words. Chance is the fit's own: the same statistics over its joint predictive draws ``rep`` (draws x
    runs), in which the runs share each draw's parameters, so that a posterior unsure of the law's level
    moves all runs together by itself."""
    n, k = len(table), int(table["surprise"].sum())
    lo, med, hi = np.quantile(rep, [0.05, 0.5, 0.95], axis=0)  # rep's own quantiles: chance counted on rep
    out = []
    p_many = float(np.mean(((rep < lo) | (rep > hi)).sum(axis=1) >= k))
    if k and p_many <= PATTERN_P:
        out.append(
            f"{k} of {n} new runs are surprises where about {0.1 * n:.2g} would be by chance ({_p(p_many, rep)}): "
            "the law's predictions do not hold for runs like these (another regime, other data or recipe, or a "
            f"law that bends beyond the fit's runs); {_REFIT} and look at the law's misfit, or fit a more "
            "flexible spec (recommended)"
        )
    offset = np.log(table["observed"].to_numpy(float)) - med  # log loss over the median prediction, per run
    p_level = float(np.mean(np.abs((rep - med).mean(axis=1)) >= abs(offset.mean())))
    if n >= 3 and p_level <= PATTERN_P:
        where, which = ("above", "too low") if offset.mean() > 0 else ("below", "too high")
        out.append(
            f"the {n} new runs sit {100 * abs(np.expm1(offset.mean())):.2g}% {where} the median prediction on average, "
            f"more than the fit's own uncertainty gives ({_p(p_level, rep)}): the fit predicts runs like these "
            f"{which}, a bias the bands do not cover; {_REFIT}, or fit a spec with more laws (recommended)"
        )
    elif n >= LARGEST_FROM and not out:  # runs scattered beyond chance already said; their top ones add nothing
        out += _largest_off(table, rep, med, offset)
    return out


#: New runs from which the largest of them (by compute) are tested apart for a shared offset.
LARGEST_FROM = 6


def _largest_off(table: pd.DataFrame, rep: np.ndarray, med: np.ndarray, offset: np.ndarray) -> list[str]:
    """The new runs at the largest compute (the top fifth, at least 3) off the prediction together, beyond the
    fit's own uncertainty: each may sit inside its band (wide with the runs' noise) while all miss one way,
    the sign of a law that drifts from the runs as compute grows."""
    c = table["C"].to_numpy(float)
    k = max(3, int(round(TOP_FRACTION * len(c))))
    top = c >= np.sort(c)[-k] * (1 - 1e-9)
    mean = float(offset[top].mean())
    p_top = float(np.mean(np.abs((rep[:, top] - med[top]).mean(axis=1)) >= abs(mean)))
    if p_top > PATTERN_P / 2:  # a second look at the same runs: half the level, so both together stay near it
        return []
    where, which = ("above", "too low") if mean > 0 else ("below", "too high")
    return [
        f"the {int(top.sum())} new runs at the largest compute (C >= {c[top].min():.3g}) sit "
        f"{100 * abs(np.expm1(mean)):.2g}% {where} the median prediction on average, more than the fit's own "
        f"uncertainty gives ({_p(p_top, rep)}), though each may lie inside its band: the law's extrapolation "
        f"predicts the largest runs {which}; {_REFIT}, or fit a spec with more laws (recommended)"
    ]


def _p(p: float, rep: np.ndarray) -> str:
    """A p-value counted over ``rep``'s draws, in words: none of them as extreme is p below one in their number."""
    return f"p = {p:.2g}" if p > 0 else f"p < {1 / len(rep):.2g}"

"""Do the residuals rise or fall with N, D or C at all? The misfit check's unprojected rank test.

The single-term tests of :mod:`bayescale.misfit` project out what the law could follow by moving its
parameters, as if it could move each either way. Where the fit holds one at the edge of what its
form and priors allow (losses that rise with N, under a law whose loss can only fall), that
projection removes the very trend the law cannot follow. At an interior fit the residuals are nearly
orthogonal to such trends, so a rank correlation of the residuals with each input stays quiet there
and speaks here. ``misfit`` words the result.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

#: Inputs the residuals are ranked against.
INPUTS = ("N", "D", "C")


@dataclass(frozen=True)
class DirectionTest:
    name: str  # the input with the strongest rank correlation
    rho: float  # Spearman's rank correlation of the posterior-median residuals with log(name)
    t: float
    p_value: float  # two-sided, Bonferroni over the inputs tested
    slope: np.ndarray  # per draw: least-squares slope of the residuals in log(name), with the noise's error


def testable_inputs(logs: dict, n: int) -> list[str]:
    """The inputs the test can rank the residuals against (3 distinct values, 5 runs)."""
    return [k for k in INPUTS if n >= 5 and np.unique(np.round(logs[k], 6)).size >= 3]


def distinct_inputs(logs: dict, n: int) -> list[str]:
    """The testable inputs, without one that orders the runs as an earlier one does (all runs at one N:
    log D and log C rank alike, and one trend must not count twice in the Bonferroni correction)."""
    out: list[str] = []
    for k in testable_inputs(logs, n):
        ranks = stats.rankdata(logs[k])
        if not any(np.array_equal(ranks, stats.rankdata(logs[o])) for o in out):
            out.append(k)
    return out


def direction_test(resid: np.ndarray, sd: np.ndarray, rng: Any, logs: dict) -> DirectionTest:
    """``resid`` (draws, runs) of log loss, ``sd`` the noise sd per draw, ``logs`` log N, D, C per run."""
    r = np.median(resid, axis=0)
    with warnings.catch_warnings():  # residuals that do not vary have no trend: rho 0, said without scipy's warning
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rhos = {k: float(np.nan_to_num(stats.spearmanr(logs[k], r).statistic)) for k in distinct_inputs(logs, r.size)}
    name = max(rhos, key=lambda k: abs(rhos[k]))
    rho, n = rhos[name], r.size
    t = rho * math.sqrt((n - 2) / max(1 - rho**2, 1e-12))
    p = min(1.0, len(rhos) * 2 * float(stats.t.sf(abs(t), n - 2)))
    xc = logs[name] - logs[name].mean()
    # the slope per draw, plus the noise's sampling error of a slope (as the other tests add theirs)
    slope = resid @ xc / float(xc @ xc) + sd * rng.standard_normal(sd.size) / math.sqrt(float(xc @ xc))
    return DirectionTest(name, rho, t, p, slope)


__all__ = ["DirectionTest", "direction_test", "distinct_inputs", "testable_inputs"]

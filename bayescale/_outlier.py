"""Is one run far off the law, alone? The misfit check's single-run test.

A failed, unfinished or mislabelled run sits far off any law, and the pattern tests of
:mod:`bayescale.misfit` read it as a trend or a bend of the runs around it (one run 30% high among
30 showed as "the 6 runs at the highest D sit 1.4% above the law", the run itself never named).
The run with the largest standardised residual (posterior median of residual over the noise's sd)
is tested against the largest a run of ``n`` reaches by chance: a two-sided tail of the fit's own
noise (Student-t where the likelihood is, whose runs far off are expected more often; normal
otherwise), Bonferroni over the runs. ``misfit`` words it, naming the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Fewest runs for the test: with fewer, one run off is as much the law's shape as the run.
MIN_RUNS = 8
#: Smallest offset (relative, in loss) of a run that fires: a few times the seed-to-seed scatter of a
#: training run's final loss (a few tenths of a percent), so that heavy-tailed noise alone rarely does.
MIN_OFFSET = 0.02


@dataclass(frozen=True)
class OutlierTest:
    index: int  # position of the run furthest off the law, in its own noise's units
    z: float  # its standardised residual (posterior median)
    p_value: float  # two-sided, Bonferroni over the runs
    next_z: float  # the largest |z| among the other runs
    offset: np.ndarray  # per draw: its residual as a relative difference in loss


def outlier_test(resid: np.ndarray, sd: np.ndarray, df: float | None = None) -> OutlierTest:
    """The test on residuals ``resid`` (draws, runs) of log loss with noise sd ``sd`` (draws,), the noise
    Student-t with ``df`` degrees of freedom (its sd ``scale * sqrt(df / (df - 2))``) or normal (None)."""
    z = np.median(resid / sd[:, None], axis=0)
    order = np.argsort(-np.abs(z))
    j = int(order[0])
    if df is None:
        tail = stats.norm.sf(abs(z[j]))
    else:  # in the t's own scale: the sd over sqrt(df / (df - 2)), as the likelihood caps it
        tail = stats.t.sf(abs(z[j]) * math.sqrt(df / (df - 2.0) if df > 2.2 else 5.5), df)
    p = min(1.0, float(len(z) * 2 * tail))
    rest = float(abs(z[order[1]])) if len(z) > 1 else 0.0
    return OutlierTest(j, float(z[j]), p, rest, np.expm1(resid[:, j]))

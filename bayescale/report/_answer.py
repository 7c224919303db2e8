"""The box at the top of a report: the answer first, then what it rests on, then what to distrust.

A reader opening a report wants the answer before the evidence: the decision's verdict, or the loss
the law predicts far beyond the runs, with its interval; what was fitted (law, runs, method); and
every reason to doubt it, in words. The details follow in the report's sections.

:func:`answer_warnings` is the one place that gathers those reasons. A new report section that can
find a problem (law averaging, prior sensitivity, several posterior modes) adds its sentences there,
and the box shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._words import count, join_names
from ..checks import PARETO_K_BAD, design_warnings
from ..decisions import point_notes
from ..discrepancy import calibration
from ..errors import BayescaleError
from ._elements import _Answer, _num
from ._honesty import average_sentence, is_average, prior_warnings

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit

_METHODS = {
    "nuts": "NUTS sampling",
    "laplace": "a Laplace approximation",
    "psis": "a Laplace approximation corrected by importance sampling",
}


def _fitted(fit: Fit) -> str:
    """What was fitted to what, and how, in one sentence."""
    runs, d = fit.runs, fit.diagnostics()
    span = ""
    if "N" in runs and len(runs):
        span = f" (N {_num(runs['N'].min(), 2)} to {_num(runs['N'].max(), 2)} parameters)"
    how = _METHODS.get(fit.method, fit.method)
    if is_average(fit):
        return f"{average_sentence(fit)} Fitted to {count(len(runs), 'run')}{span} by {how}, {d['chains']} chains x {d['draws']} draws."
    return (
        f"Law {fit.spec.law.name} ({fit.spec.law.formula}) fitted to {count(len(runs), 'run')}{span} by {how}, "
        f"{d['chains']} chains x {d['draws']} draws; spec {fit.spec.name}."
    )


def _headline(fit: Fit, decision: Any, extrapolation: Any) -> str:
    """The answer: the decision's verdict when there is one, else the farthest extrapolation with its interval."""
    if decision is not None:
        return decision.verdict()
    if extrapolation is not None:
        scale, f = extrapolation
        drift = " (with the spec's extrapolation drift)" if fit.spec.extrapolation is not None else ""
        return (
            f"At {scale:g}x the largest run's compute (C = {_num(f['C'], 3)} FLOPs), the compute-optimal model "
            f"(N = {_num(f['N_opt_median'], 3)}, D = {_num(f['D_opt_median'], 3)}) reaches loss "
            f"{f['loss_opt_median']:.3f}, 90% interval {f['loss_opt_lo90']:.3f}-{f['loss_opt_hi90']:.3f}{drift}."
        )
    s = fit.summary()
    medians = ", ".join(f"{p} = {_num(s.loc[p, 'median'], 3)}" for p in fit.spec.law.params if p in s.index)
    return f"Posterior medians: {medians} (this law has no compute-optimal frontier to extrapolate along)."


def _misfit_warnings(fit: Fit) -> list[str]:
    try:
        m = fit.misfit()
    except BayescaleError:  # too few runs to test: the diagnostics say so
        return []
    if not m.misfits:
        return []
    return [f"The law misfits its runs ({m.severity}): {msg}" for msg in m.messages] + [f"What to do: {m.advice}."]


def answer_warnings(fit: Fit, *, psis: Any = None, decision: Any = None, validation: Any = None) -> list[str]:
    """Every reason, in words, to distrust the answer at the top of the report.

    Sampling problems (convergence, several modes), residual patterns the law cannot follow (misfit),
    a prior that decides a parameter (power-scaling), what the runs
    cannot separate (design), influential runs (LOO), held-out runs outside their bands, and the quick
    method's overconfidence. Add new sources here: the summary box shows whatever this returns.

    Parameters
    ----------
    fit : Fit
    psis : LooResult, optional
        From :func:`bayescale.checks.loo`.
    decision : Decision, optional
    validation : Validation, optional
    """
    out = [f"Sampling: {p}" for p in fit.diagnostics().get("problems", [])]
    out += _misfit_warnings(fit)
    out += prior_warnings(fit)
    out += [f"Design: {w}" for w in design_warnings(fit)]
    if psis is not None and psis.flagged and fit.method in ("laplace", "psis"):
        out.append(
            f"Leave-one-out: Pareto k > {PARETO_K_BAD} for {len(psis.flagged)} of {len(fit.runs)} runs; with draws "
            "from a Laplace approximation this mostly reflects the approximation, not influential runs."
        )
    elif psis is not None and psis.flagged:
        out.append(
            f"Influential runs (Pareto k > {PARETO_K_BAD}): {join_names(psis.flagged, limit=5)}; the fit leans on "
            "them, and leave-one-out checks are unreliable for them."
        )
    if validation is not None:
        n_out = int(np.sum(validation.table["surprise"]))
        if n_out:
            out.append(
                f"Leave-largest-out: {n_out} of {len(validation.table)} held-out runs fell outside their 90% "
                "predictive band: the extrapolation may be off."
            )
    if fit.method == "laplace":
        out.append(
            "Quick method: a Laplace approximation (a Gaussian at the mode) can be narrower or wider than the "
            "posterior on a few dozen pilots; refit with NUTS (--method nuts) before deciding."
        )
    return out


def _calibrated(fit: Fit) -> str:
    cal = calibration(fit)
    if cal is None:
        return ""
    reach = f", scored up to {cal[1]:.2g} decades (in N and D) beyond the splits' runs" if cal[1] else ""
    return f" Bands calibrated (split-conformal): scaled {cal[0]:.2f}x about their median{reach}."


def _extrapolation_cautions(fit: Fit, extrapolation: Any) -> list[str]:
    """``decide``'s and ``predict``'s cautions for the headline's extrapolation point (a decision says its own)."""
    if extrapolation is None:
        return []
    _, f = extrapolation
    point = pd.DataFrame(
        {"N": [f["N_opt_median"]], "D": [f["D_opt_median"]], "C": [f["C"]]}, index=["the answer's point"]
    )
    return [f"Extrapolation: {n.removeprefix('Caution: ')}" for n in point_notes(fit, point)]


def answer_block(fit: Fit, *, psis: Any, decision: Any, validation: Any, extrapolation: Any) -> _Answer:
    """The summary box: headline, what was fitted, and :func:`answer_warnings`."""
    cautions = _extrapolation_cautions(fit, extrapolation) if decision is None else []
    return _Answer(
        headline=_headline(fit, decision, extrapolation),
        fitted=_fitted(fit) + _calibrated(fit),
        warnings=tuple(answer_warnings(fit, psis=psis, decision=decision, validation=validation) + cautions),
    )


__all__ = ["answer_block", "answer_warnings"]

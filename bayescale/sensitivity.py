"""Prior sensitivity by power-scaling: does the prior, or do the runs, decide a parameter or a prediction?

Power-scaling (Kallioinen et al. 2023, "Detecting and diagnosing prior and likelihood sensitivity
with power-scaling") raises the prior, or the likelihood, to a power near 1 and measures how much
the posterior moves, by importance-weighting the draws already made (no refit): ArviZ's
``psens``, on the ``log_prior`` and ``log_likelihood`` groups every fit carries. Per quantity:

* prior sensitivity >= 0.05 and likelihood sensitivity >= 0.05: both inform it. Where the posterior
  median lies in the prior's tail (outside its central 95%), that is a **prior-data conflict**: the
  prior and the runs pull it to different places (a prior on another scale than the runs, say);
  inside it, **the prior informs** it, an informative prior doing its job (not a finding), unless
  the prior moves it at least as much as the runs do (prior sensitivity >= likelihood's): then
  **the prior decides** it. A prediction has no prior of its own to place it in: one the prior
  moves is reported as decided by it;
* prior sensitivity >= 0.05 and likelihood sensitivity < 0.05: **the prior decides** it, the runs
  do not pin it (a weak likelihood);
* otherwise the runs decide it.

The same check applies to a prediction: the law's log loss at a point, per draw, is a derived
quantity of the posterior. When the prior decides an extrapolation, :func:`sensitivity` says so in
words, with how far the predicted loss moves when the prior's weight (its log density) is halved
or doubled. The spec's extrapolation drift is a prior on purpose (the runs cannot inform it) and is
left out of this check: it widens the band and does not move its median.

Example
-------
>>> s = fit.sensitivity(points={"N": 7e10, "D": 1.4e12})   # doctest: +SKIP
>>> print(s)                                               # doctest: +SKIP
>>> s.messages, s.to_dict()                                # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from . import _arviz
from ._words import join_names
from .data import law_inputs, points_frame
from .errors import BayescaleError
from .model import log_prior, noise_names, parameter_priors

#: Kallioinen et al.'s threshold on the power-scaling sensitivity (a distance per unit of log power).
THRESHOLD = 0.05
#: Powers of the prior at which a prediction's shift is reported: its weight halved and doubled.
POWERS = (0.5, 2.0)
#: Quantiles of a prediction whose move is reported: the median and the central 90% interval's ends
#: (a prior that decides a prediction symmetrically moves its interval, not its median).
QUANTILES = (0.05, 0.5, 0.95)
#: Reference quantities of pure noise (independent of everything) whose sensitivity measures what a
#: finite set of draws shows by chance, and the quantile of theirs a finding must exceed. With S draws
#: that floor is about sd(log density) / sqrt(S): 0.05-0.1 for a few hundred draws, so without it a
#: parameter the runs cannot see at all (its likelihood sensitivity is 0) could read as "in conflict".
NOISE_REFERENCES = 16
NOISE_QUANTILE = 0.95
#: Pareto k above which the importance-weighted shift is unreliable (Vehtari et al.).
K_MAX = 0.7
#: A parameter both the prior and the runs inform is in conflict with its prior when its posterior
#: median lies outside the prior's central 1 - 2 * CONFLICT_TAIL: on the bundled demo E, A, B and
#: alpha all had both sensitivities above 0.05 with their medians at the prior's 17-33% quantiles.
CONFLICT_TAIL = 0.025


@runtime_checkable
class FittedPosterior(Protocol):
    """What the check reads of a :class:`bayescale.Fit` (declared here: :mod:`bayescale.inference`
    imports this module for ``Fit.sensitivity``)."""

    spec: Any
    idata: Any
    runs: pd.DataFrame
    method: str


@dataclass(frozen=True)
class Sensitive:
    """Power-scaling sensitivity of one quantity: a parameter, or the predicted loss at a point."""

    name: str
    prior: float
    likelihood: float
    diagnosis: str  # "prior-data conflict", "prior decides", "prior informs" (not a finding) or ""
    shift: float | None = None  # predictions: largest relative move of a QUANTILES loss (POWERS)
    pareto_k: float | None = None
    advice: str = ""
    prior_quantile: float | None = None  # parameters: the prior's CDF at the posterior median

    @property
    def flagged(self) -> bool:
        return self.diagnosis in ("prior-data conflict", "prior decides")

    def message(self) -> str:
        """The finding in words ("" when the runs decide it)."""
        nums = f"prior sensitivity {self.prior:.2f}, likelihood {self.likelihood:.2f}"
        moved = ""
        if self.shift is not None:
            moved = (
                f"; its median and 90% interval move by up to {100 * self.shift:.1f}% when the prior's weight "
                "is halved or doubled"
            )
            if self.pareto_k is not None and not self.pareto_k <= K_MAX:
                moved += f" (a rough figure: Pareto k {self.pareto_k:.2f})"
        if self.diagnosis == "prior decides":
            return f"The prior decides {self.name} ({nums}): the runs do not pin it{moved}; {self.advice}."
        if self.diagnosis == "prior-data conflict" and self.shift is not None:
            # A prediction has no prior of its own to tell a conflict from an informative prior: the prior moves
            # the answer, with the runs.
            return f"The prior decides {self.name} in part ({nums}: the runs inform it too){moved}; {self.advice}."
        if self.diagnosis == "prior-data conflict":
            where = (
                ""
                if self.prior_quantile is None
                else f"; its posterior median sits at the prior's {_pct(self.prior_quantile)} quantile"
            )
            return (
                f"Prior and runs disagree about {self.name} ({nums}{where}): prior-data conflict{moved}; check that the "
                'prior is on the runs\' scale (units, [priors] scale = "runs") or that the runs are what you think.'
            )
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prior": self.prior,
            "likelihood": self.likelihood,
            "diagnosis": self.diagnosis,
            "shift": self.shift,
            "pareto_k": self.pareto_k,
            "prior_quantile": self.prior_quantile,
            "message": self.message(),
        }


@dataclass(frozen=True)
class Sensitivity:
    """Result of :func:`sensitivity`: one :class:`Sensitive` per parameter, and per prediction point."""

    params: tuple[Sensitive, ...]
    predictions: tuple[Sensitive, ...]
    method: str
    threshold: float = THRESHOLD
    noise_floor: tuple[float, float] = (0.0, 0.0)  # (prior, likelihood) sensitivity of pure noise
    #: The irreducible loss's prior, stated in a unit (not placed from the runs), informs the answer:
    #: losses in another unit than the prior's (bits against the bundled specs' nats) shift it unseen.
    unit_hint: str = ""

    @property
    def messages(self) -> list[str]:
        return [s.message() for s in (*self.params, *self.predictions) if s.flagged]

    @property
    def informed(self) -> list[str]:
        """Names of the parameters both the prior and the runs inform, without conflict."""
        return [s.name for s in self.params if s.diagnosis == "prior informs"]

    @property
    def prior_decides(self) -> list[str]:
        """Names of the parameters and predictions the prior decides (with or without conflict)."""
        return [s.name for s in (*self.params, *self.predictions) if s.flagged]

    def table(self) -> pd.DataFrame:
        rows = [r for s in (*self.params, *self.predictions) for r in _row(s)]
        return pd.DataFrame(rows).set_index("quantity")

    def summary(self) -> str:
        floor = f"noise floor {self.noise_floor[0]:.2f} prior, {self.noise_floor[1]:.2f} likelihood"
        head = f"prior sensitivity (power-scaling, threshold {self.threshold:g}; {floor}): "
        if not self.messages:
            decided = "inform" if self.informed else "decide"
            head += f"the runs {decided} every parameter{' and prediction' if self.predictions else ''}"
        else:
            head += "\n- " + "\n- ".join(self.messages)
        if self.informed:
            head += (
                f"\n(the prior also informs {join_names(self.informed)}: each inside the prior's central "
                f"{1 - 2 * CONFLICT_TAIL:.0%}, not in conflict with it; fit with wider priors to see how much)"
            )
        if self.unit_hint in (*self.informed, *self.prior_decides):
            head += (
                f"\n(the prior of {self.unit_hint} is stated in a unit of loss, nats per token in the bundled specs: "
                'losses in bits or bits per byte need their own priors, or [priors] scale = "runs")'
            )
        if self.method in ("laplace", "fixed"):
            head += f"\n(from {self.method} draws: a rough check; refit with method='nuts' to rely on it)"
        return head

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "noise_floor": {"prior": self.noise_floor[0], "likelihood": self.noise_floor[1]},
            "method": self.method,
            "params": [s.to_dict() for s in self.params],
            "predictions": [s.to_dict() for s in self.predictions],
            "messages": self.messages,
        }


def _row(s: Sensitive) -> list[dict[str, Any]]:
    return [{"quantity": s.name, "prior": s.prior, "likelihood": s.likelihood, "diagnosis": s.diagnosis or "-"}]


def sensitivity(fit: FittedPosterior, points: Any = None, *, threshold: float = THRESHOLD) -> Sensitivity:
    """Power-scaling prior and likelihood sensitivity of each parameter and of the loss at ``points``.

    Parameters
    ----------
    fit : Fit
    points : mapping, DataFrame or list of mappings, optional
        Where to check whether the prior decides the predicted loss (e.g. ``{"N": 7e10, "D": 1.4e12}``).
    threshold : float
        Sensitivity at which the prior counts (Kallioinen et al.: 0.05).

    Returns
    -------
    Sensitivity
    """
    if not isinstance(fit, FittedPosterior):
        raise BayescaleError(f"sensitivity needs a Fit (from bayescale.fit), got {type(fit).__name__}")
    if not 0 < threshold < 1:
        raise BayescaleError(f"sensitivity: threshold must be in (0, 1), got {threshold!r}")
    lp = _log_prior(fit)
    ll = fit.idata.log_likelihood["log_loss"].values
    names = list(fit.spec.law.params) + noise_names(fit.spec)
    names += json.loads(_arviz.attrs(fit.idata).get("identified", "[]"))
    draws = {n: fit.idata.posterior[n].values for n in names}
    sens, floor = _power_scaling(draws, lp, ll)
    cut = (max(threshold, floor[0]), max(threshold, floor[1]))
    where = _prior_quantiles(fit.spec, draws)
    params = tuple(
        Sensitive(
            n,
            pr,
            li,
            _diagnosis(pr, li, cut, where.get(n)),
            advice="state a prior you believe, or add runs that inform it",
            prior_quantile=where.get(n),
        )
        for n, (pr, li) in sens.items()
    )
    predictions = () if points is None else _predictions(fit, points, lp, ll, cut)
    stated = fit.spec.prior_scale != "runs" or fit.spec.law.irreducible not in fit.spec.from_runs
    unit = (fit.spec.law.irreducible or "") if stated else ""
    return Sensitivity(params, predictions, fit.method, threshold, floor, unit)


def _power_scaling(
    draws: dict[str, np.ndarray], lp: np.ndarray, ll: np.ndarray
) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """Sensitivities of ``draws`` and the noise floor: the :data:`NOISE_QUANTILE` quantile of the
    sensitivities of :data:`NOISE_REFERENCES` standard-normal quantities independent of the fit
    (seeded, so the check is reproducible)."""
    rng = np.random.default_rng(0)
    refs = {f"__noise{i}": rng.standard_normal(lp.shape) for i in range(NOISE_REFERENCES)}
    sens = _arviz.power_scaling({**draws, **refs}, lp, ll)
    ref = np.array([sens.pop(k) for k in refs])
    floor = np.quantile(ref, NOISE_QUANTILE, axis=0)
    return sens, (float(floor[0]), float(floor[1]))


def _diagnosis(prior: float, likelihood: float, cut: tuple[float, float], quantile: float | None = None) -> str:
    """Kallioinen et al.'s reading, with each threshold raised to the noise floor where that is higher;
    when both are sensitive, a conflict is told from an informative prior by where the posterior
    median sits in the prior (``quantile``; ``None`` for a quantity without a prior of its own: a
    conflict), and an informative prior from a deciding one by which of the two moves it more
    (single-epoch runs leave R_D to its prior: sensitivities 0.28 to the prior, 0.06 to the runs)."""
    if not prior >= cut[0]:
        return ""
    if not likelihood >= cut[1]:
        return "prior decides"
    if quantile is None or not CONFLICT_TAIL <= quantile <= 1.0 - CONFLICT_TAIL:
        return "prior-data conflict"
    return "prior decides" if prior >= likelihood else "prior informs"


def _prior_quantiles(spec: Any, draws: dict[str, np.ndarray]) -> dict[str, float]:
    """The prior's CDF at each parameter's posterior median, for parameters with a prior whose
    distribution has a CDF (derived quantities and priors without one are left out)."""
    priors = parameter_priors(spec)
    out = {}
    for name, pr in priors.items():
        if name not in draws:
            continue
        try:
            q = float(pr.to_numpyro(validate_args=False).cdf(float(np.median(draws[name]))))
        except NotImplementedError:
            continue
        if np.isfinite(q):
            out[name] = q
    return out


def _pct(q: float) -> str:
    return f"{100 * q:.1f}%" if 0.001 <= q <= 0.999 else ("<0.1%" if q < 0.001 else ">99.9%")


def _log_prior(fit: FittedPosterior) -> np.ndarray:
    """The joint log prior per draw, (chain, draw): the fit's ``log_prior`` group, or computed from
    the spec for fits saved before fits carried one."""
    group = _arviz.group(fit.idata, "log_prior")
    if group is not None:
        terms = [group[v].values for v in group.data_vars]
    else:
        post = fit.idata.posterior
        terms = list(log_prior(fit.spec, {v: post[v].values for v in post.data_vars}).values())
    return np.sum(terms, axis=0)


def _predictions(
    fit: FittedPosterior, points: Any, lp: np.ndarray, ll: np.ndarray, cut: tuple[float, float]
) -> tuple[Sensitive, ...]:
    frame = points_frame(points)
    spec = fit.spec
    logx = law_inputs(spec, frame, np.float64)
    theta = {p: fit.idata.posterior[p].values[..., None] for p in spec.law.params}
    # The law's log loss per draw, without the extrapolation drift (a prior by design, see above).
    log_mu = np.asarray(spec.law.log_loss(theta, {k: v[None, None, :] for k, v in logx.items()}, np), dtype=float)
    labels = [_point_label(spec, frame.iloc[i]) for i in range(len(frame))]
    sens, _ = _power_scaling({lab: log_mu[..., i] for i, lab in enumerate(labels)}, lp, ll)
    out = []
    for i, lab in enumerate(labels):
        shift, k = _shift(log_mu[..., i].reshape(-1), lp.reshape(-1))
        pr, li = sens[lab]
        advice = "state a prior you believe, or " + _more_runs(spec, fit.runs, frame.iloc[i])
        out.append(Sensitive(f"the loss at {lab}", pr, li, _diagnosis(pr, li, cut), shift, k, advice))
    return tuple(out)


def _shift(values: np.ndarray, lp: np.ndarray) -> tuple[float, float]:
    """Largest relative move of a :data:`QUANTILES` quantile of ``exp(values)`` when the prior is raised
    to each of :data:`POWERS` (Pareto-smoothed importance weights ``(power - 1) * log prior``), and the
    largest Pareto k."""
    base = np.quantile(values, QUANTILES)
    log_w, k = _arviz.psis_smooth(np.stack([(a - 1.0) * (lp - lp.max()) for a in POWERS]))
    moves = [np.abs(np.exp(_weighted_quantiles(values, np.exp(w)) - base) - 1.0).max() for w in log_w]
    return float(max(moves)), float(np.max(k))


def _weighted_quantiles(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    cum = np.cumsum(w[order])
    idx = np.searchsorted(cum, np.asarray(QUANTILES) * cum[-1])
    return x[order][np.minimum(idx, x.size - 1)]


def _point_label(spec: Any, row: pd.Series) -> str:
    # A blank optional input (U) takes its stand-in's value and is not named.
    return ", ".join(f"{c}={float(row[c]):.3g}" for c in dict.fromkeys(spec.columns) if c in row and row[c] == row[c])


def _more_runs(spec: Any, runs: pd.DataFrame, row: pd.Series) -> str:
    """Where runs would inform the point: the input it lies furthest beyond the runs in."""
    beyond = {c: np.log10(float(row[c]) / float(runs[c].max())) for c in dict.fromkeys(spec.columns) if c in runs}
    col = max(beyond, key=beyond.get) if beyond else None
    if col is None or beyond[col] <= 0:
        return "add runs near it"
    return f"add runs at larger {col}"


def sensitivity_section(fit: FittedPosterior, points: Any = None) -> dict[str, Any]:
    """What a report shows: a title, a lead sentence, the table rows and the findings in words.

    Plain data, no markup: ``{"title", "lead", "columns", "rows", "messages", "note"}``, ``rows``
    being lists of strings in the order of ``columns``.
    """
    s = sensitivity(fit, points)
    rows = [
        [q.name, f"{q.prior:.3f}", f"{q.likelihood:.3f}", q.diagnosis or "the runs decide"]
        for q in (*s.params, *s.predictions)
    ]
    lead = (
        "Power-scaling (Kallioinen et al. 2023): how much the posterior moves when the prior, or the "
        f"likelihood, is raised to a power near 1. A prior sensitivity of {s.threshold:g} or more means the "
        "prior matters; with a low likelihood sensitivity the runs do not pin the quantity and the prior decides it."
    )
    note = s.summary().split("\n")[-1] if s.method in ("laplace", "fixed") else ""
    return {
        "title": "Does the prior decide?",
        "lead": lead,
        "columns": ["quantity", "prior sensitivity", "likelihood sensitivity", "diagnosis"],
        "rows": rows,
        "messages": s.messages,
        "note": note,
    }


__all__ = ["THRESHOLD", "Sensitive", "Sensitivity", "sensitivity", "sensitivity_section"]

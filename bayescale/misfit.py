"""Misfit diagnostics in words: does the law bend differently from the runs it was fitted to?

A law that cannot follow the runs leaves a pattern in the training residuals: the largest runs
sit below (or above) the fitted curve, or the residuals trend with model size, data size or
tokens per parameter. Such a pattern is the warning that a confident extrapolation is not to be
trusted, and it is visible before any larger run comes back.

:func:`misfit` tests for these patterns after a fit, without refitting. Each pattern is a term
``z`` added to the law: observed log loss ``= law(theta) + gamma z + noise``. Linearised at the
posterior median, the part of ``z`` the law itself can express (its tangent space, plus a
constant) is projected out, and ``gamma`` is estimated per posterior draw from that draw's
residuals, with the fitted noise's sampling error added. Its posterior gives the effect in loss on
the runs the term concerns (e.g. "the largest runs sit 1.2% below the law") with an interval,
and a two-sided tail probability; a term fires when that is below ``alpha`` divided by the number
of terms tested (Bonferroni) and its effect is at least ``min_effect`` (0.25% in loss), so data
drawn from the law itself fire less than ``alpha`` of the time (default 0.1; measured 5 false alarms
in 160 well-specified synthetic fits, see ``benchmarks/bench_misfit.py``). Where runs share a model size,
an F test of their common offsets against the scatter within groups (lack of fit against pure
error) catches misfits that are not smooth in the inputs, and a test of whether runs close in
(log N, log D) share their offsets (:mod:`bayescale._neighbours`) catches a shape the law misses
that no named pattern describes.

Example
-------
>>> m = bs.misfit.misfit(fit)            # doctest: +SKIP
>>> m.misfits, m.severity, m.messages, m.advice    # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from ._direction import direction_test, testable_inputs
from ._misfit_finding import TOP_FRACTION, Finding
from ._misfit_finding import ends as _ends
from ._misfit_finding import finding as _finding
from ._misfit_finding import value_groups as _value_groups
from ._misfit_words import LABEL as _LABEL
from ._misfit_words import interval as _interval
from ._misfit_words import pct as _pct
from ._misfit_words import side as _side
from ._misfit_words import where as _where
from ._neighbours import K_NEIGHBOURS, MIN_RUNS, neighbour_graph, neighbour_test
from ._outlier import MIN_OFFSET, OutlierTest, outlier_test
from ._outlier import MIN_RUNS as OUTLIER_MIN_RUNS
from ._words import join_names
from .data import law_inputs
from .errors import BayescaleError, MisfitWarning, user_stacklevel
from .likelihoods import get_family, noise_value, predictive_variance


@runtime_checkable
class FittedLaw(Protocol):
    """What the diagnostics read of a :class:`bayescale.Fit` (declared here, not imported:
    :mod:`bayescale.inference` imports this module to check every fit)."""

    spec: Any
    runs: pd.DataFrame
    posterior: Any

    def log_loss(self, points: Any) -> np.ndarray: ...

    def noise_params(self, points: Any = None) -> dict[str, np.ndarray]: ...


#: A finding that fires with an effect at least this large (relative, in loss) makes the misfit severe.
SEVERE_EFFECT = 0.01
#: Smallest effect (relative, in loss) that fires: a pattern may be significant in hundreds of runs and
#: still smaller than the seed-to-seed scatter of a training run's final loss (a few tenths of a percent).
MIN_EFFECT = 0.0025
#: Residual degrees of freedom a term needs (runs minus the law's parameters, the constant and the term).
MIN_DOF = 3


#: How a misfit warning begins (a comparison's verdict recognises it by this).
WARNING_HEAD = "the law misfits the runs it was fitted to"


@dataclass(frozen=True)
class Misfit:
    """Result of :func:`misfit`.

    Attributes
    ----------
    misfits : bool
        Whether any tested pattern fired.
    severity : str
        ``"none"``, ``"warning"`` (a pattern fired, effects under 1% in loss, or only group offsets)
        or ``"severe"`` (the largest runs miss the law, or a trend or curvature of 1% or more).
    findings : tuple of Finding
        Every tested pattern, fired or not.
    untested : tuple of str
        Patterns that could not be tested, and why.
    residuals : pandas.DataFrame
        Per run: ``run_id, N, D, C, loss``, the residual of log loss (observed minus law) as
        posterior median and interval, the same as a relative difference in loss (``rel``), and
        standardised by the fitted noise scale (``z``).
    """

    misfits: bool
    severity: str
    findings: tuple[Finding, ...]
    untested: tuple[str, ...]
    level: float
    alpha: float
    min_effect: float
    n_runs: int
    residuals: pd.DataFrame = field(repr=False, compare=False)
    #: What to do about the fired findings ("" when none fired): said wherever the findings are.
    advice: str = ""

    @property
    def messages(self) -> list[str]:
        """The fired findings in words, most important first; empty when the law fits."""
        fired = [f for f in self.findings if f.fires]
        fired.sort(key=lambda f: (f.kind != "outlier", f.kind != "largest", -abs(f.effect)))
        return [f.message for f in fired]

    def summary(self) -> str:
        if not self.misfits:
            tested = ", ".join(f"{f.kind} in {f.input}" for f in self.findings)
            head = f"no misfit found in {self.n_runs} runs (tested: {tested}; family-wise level {self.alpha:g})"
        else:
            head = f"{self.severity}: {WARNING_HEAD}.\n- " + "\n- ".join(self.messages) + f"\nWhat to do: {self.advice}"
        small = [
            f"{f.kind} in {f.input} ({100 * f.effect:+.2f}%)" for f in self.findings if f.significant and not f.fires
        ]
        if small:
            head += f"\nsignificant but under {100 * self.min_effect:g}% in loss (not flagged): " + ", ".join(small)
        if self.untested:
            head += "\nnot tested: " + "; ".join(self.untested)
        return head

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: flags, messages, every finding, and what was not tested."""
        return {
            "misfits": bool(self.misfits),
            "severity": self.severity,
            "messages": self.messages,
            "advice": self.advice,
            "level": float(self.level),
            "alpha": float(self.alpha),
            "min_effect": float(self.min_effect),
            "n_runs": int(self.n_runs),
            "findings": [f.to_dict() for f in self.findings],
            "untested": list(self.untested),
        }


# ----------------------------------------------------------------- helpers


def _flat_draws(fit: FittedLaw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed log loss ``y`` (n,), the law's log loss per draw (S, n), the noise sd per draw (S,)."""
    runs = fit.runs
    y = np.log(runs["loss"].to_numpy(dtype=float))
    mu = np.asarray(fit.log_loss(runs), dtype=float)
    mu = mu.reshape(-1, mu.shape[-1])
    noise = {k: np.asarray(v, dtype=float).reshape(-1) for k, v in fit.noise_params().items()}
    sd = np.sqrt(np.asarray(predictive_variance(fit.spec.likelihood, noise), dtype=float)).reshape(-1)
    return y, mu, np.broadcast_to(sd, (mu.shape[0],)).copy()


def _jacobian(fit: FittedLaw) -> np.ndarray:
    """Derivatives of the law's log loss at each run with respect to each parameter, at the posterior median."""
    law = fit.spec.law
    logx = law_inputs(fit.spec, fit.runs, np.float64)
    theta = {p: float(np.median(fit.posterior[p].values)) for p in law.params}
    cols = []
    for p in law.params:
        h = 1e-5 * max(abs(theta[p]), 1e-3)
        hi, lo = dict(theta), dict(theta)
        hi[p] += h
        lo[p] -= h
        d = np.asarray(law.log_loss(hi, logx, np), dtype=float) - np.asarray(law.log_loss(lo, logx, np), dtype=float)
        cols.append(d / (2 * h))
    return np.column_stack(cols) if cols else np.zeros((len(fit.runs), 0))


def leverage(fit: FittedLaw) -> np.ndarray:
    """Each run's leverage: the diagonal of the hat matrix of a constant and the law's Jacobian at
    the posterior median. A group of runs keeps ``n - leverage.sum()`` degrees of freedom of residual."""
    q0 = _basis(np.column_stack([np.ones(len(fit.runs)), _jacobian(fit)]))
    return (q0**2).sum(axis=1)


def _basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column span of ``x`` (columns scaled first; near-null directions dropped)."""
    x = x[:, np.isfinite(x).all(axis=0)]
    norms = np.linalg.norm(x, axis=0)
    x = x[:, norms > 0] / norms[norms > 0]
    if x.shape[1] == 0:
        return np.zeros((x.shape[0], 0))
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, s > 1e-8 * s[0]]


def _candidates(runs: pd.DataFrame) -> tuple[list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]], list[str]]:
    """Terms to test: (kind, input, regressor, extra nuisance columns, mask of the runs described)."""
    n = len(runs)
    k = max(2, int(round(TOP_FRACTION * n)))
    logs = {
        "C": np.log(runs["C"].to_numpy(dtype=float)),
        "N": np.log(runs["N"].to_numpy(dtype=float)),
        "D": np.log(runs["D"].to_numpy(dtype=float)),
    }
    logs["D/N"] = logs["D"] - logs["N"]
    out, untested = [], []
    order = np.argsort(logs["C"], kind="stable")
    top = np.zeros(n, bool)
    top[order[-k:]] = True
    if np.unique(np.round(logs["C"], 6)).size > 1:
        out.append(("largest", "C", top.astype(float), np.zeros((n, 0)), top))
    else:  # every run at one compute: none is larger than the others
        untested.append("the largest runs off the law: 1 distinct compute value (need 2)")
    for name in ("N", "D", "D/N"):
        x = logs[name]
        distinct = np.unique(np.round(x, 6)).size
        if distinct < 3:
            untested.append(f"trend and curvature in {name}: {distinct} distinct value{'s' * (distinct != 1)} (need 3)")
            continue
        xc = x - x.mean()
        out.append(("trend", name, xc, np.zeros((n, 0)), None))
        if name != "D":
            groups = _value_groups(x)
            onehot = (groups[:, None] == np.arange(groups.max() + 1)[None, :]).astype(float)
            onehot = onehot[:, onehot.sum(axis=0) >= 2]  # runs alone at their value carry no pure error
            if onehot.shape[1] >= 2:
                out.append(("groups", name, onehot, np.zeros((n, 0)), None))
        if name != "D":
            out.append(("curvature", name, xc**2, xc[:, None], None))
    return out, untested


# --------------------------------------------------------------------- API


def misfit(
    fit: FittedLaw, *, level: float = 0.9, alpha: float = 0.1, min_effect: float = MIN_EFFECT, seed: int = 0
) -> Misfit:
    """Test the runs' residuals for patterns the law cannot follow, and say what they mean.

    Parameters
    ----------
    fit : Fit
        A fitted law (any method). Nothing is refitted; it takes milliseconds.
    level : float
        Probability of the central intervals reported with each effect.
    alpha : float
        Family-wise level (the tests are conservative: on data from the law itself about 3% of
        fits fire at the default 0.1, 0-5% per scenario): each of the ``k`` tested patterns fires when its two-sided
        tail probability is below ``alpha / k`` and its effect is at least ``min_effect``.
    min_effect : float
        Smallest effect that fires, relative in loss (0.0025 = 0.25%); significant smaller ones
        are kept in ``findings`` with ``fires=False``.
    seed : int
        Seed of the noise draws added to each draw's estimate (results are reproducible).

    Returns
    -------
    Misfit

    Raises
    ------
    BayescaleError
        When ``fit`` is not a fit, ``level`` or ``alpha`` is outside (0, 1), or there are too few
        runs for any test (the law's parameters use up the degrees of freedom).

    Notes
    -----
    Patterns tested: the largest fifth of the runs by compute sit off the law; linear trends of
    the residuals in log N, log D and log D/N; curvature (a quadratic term) in log N and log D/N;
    and, where several runs share a model size (or a tokens-per-parameter ratio), whether they
    share an offset from the law (an F test of lack of fit against the scatter within groups,
    which does not rely on the fitted noise scale); and whether runs close in (log N, log D) share
    their offsets (Moran's I over nearest neighbours, :mod:`bayescale._neighbours`: a shape the law
    misses that no single trend describes, e.g. isoFLOP curves of another shape); and whether the
    residuals rise or fall with N, D or C at all (a rank correlation, unprojected: a fit held at the
    edge of its parameters, such as losses that rise with N under a law whose loss can only fall,
    leaves a trend no projected test sees). Each single-term test is the posterior of one
    added term's effect on the runs it concerns, after projecting out what the law itself can
    express, so a trend the law absorbs by moving its parameters is not reported as a misfit. A
    term that could not be tested (too few runs or distinct values, or the same test as another)
    is listed in ``untested``; when none can be, a BayescaleError says so.
    """
    _validate_arguments(fit, level, alpha, min_effect)
    runs = fit.runs
    n = len(runs)
    y, mu, sd = _flat_draws(fit)
    resid = y[None, :] - mu  # (S, n)
    q0 = _basis(np.column_stack([np.ones(n), _jacobian(fit)]))  # what the law (and a constant) can express
    tested, untested = _testable(runs, q0)
    neighbours = n >= MIN_RUNS and n - q0.shape[1] >= MIN_DOF
    if not neighbours:
        untested.append(f"neighbouring runs off the law together: {n} runs (need {MIN_RUNS})")
    if not tested:
        raise BayescaleError(
            f"misfit: too few runs to test the law's fit: {n} runs for a law with {len(fit.spec.law.params)} "
            f"parameters; no residual pattern can be told from noise ({_grouped(untested)}). Add runs."
        )
    rng = np.random.default_rng(seed)
    logs = _log_inputs(runs)
    direction, single = _global_tests(logs, n, untested)
    thr = alpha / (len(tested) + neighbours + direction + single)
    findings = [
        _group_finding(name, b, q, dof, resid, sd, rng, logs[name], level, thr, min_effect)
        if kind == "groups"
        else _finding(kind, name, b, resid, sd, rng, logs, level, thr, min_effect)
        for kind, name, b, q, dof in tested
    ]
    far = outlier_test(resid, sd, _student_df(fit)) if single else None  # the run furthest off, found once
    if far is not None:
        findings = _attributed(findings, tested, runs, far, resid, sd, logs, level, thr, min_effect, seed)
    if neighbours:
        findings.append(_neighbour_finding(runs, resid, q0, rng, level, thr, min_effect))
    if direction:
        findings.append(_direction_finding(resid, sd, rng, logs, level, thr, min_effect))
    if far is not None:
        findings.append(_outlier_finding(runs, far, level, thr))
    fired = [f for f in findings if f.fires]
    # Offsets shared by one model size (groups) may be that size's own tuning; alone they only warn.
    severe = any(f.kind == "largest" or (f.kind != "groups" and abs(f.effect) >= SEVERE_EFFECT) for f in fired)
    return Misfit(
        misfits=bool(fired),
        severity="none" if not fired else ("severe" if severe else "warning"),
        findings=tuple(findings),
        untested=tuple(untested),
        level=float(level),
        alpha=float(alpha),
        min_effect=float(min_effect),
        n_runs=n,
        residuals=_residual_table(runs, resid, sd, level),
        advice=_advice(fit, fired) if fired else "",
    )


def _log_inputs(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """log N, log D, log C and log D/N of each run."""
    logs = {c: np.log(runs[c].to_numpy(dtype=float)) for c in ("N", "D", "C")}
    logs["D/N"] = logs["D"] - logs["N"]
    return logs


def _global_tests(logs: dict[str, np.ndarray], n: int, untested: list[str]) -> tuple[bool, bool]:
    """Whether the direction test and the single-run test can run; each that cannot is added to ``untested``."""
    direction, single = bool(testable_inputs(logs, n)), n >= OUTLIER_MIN_RUNS
    if not direction:
        untested.append("a direction the law cannot follow: too few runs or distinct values")
    if not single:
        untested.append(f"one run far off the law: {n} runs (need {OUTLIER_MIN_RUNS})")
    return direction, single


def _grouped(untested: list[str]) -> str:
    """``label: reason`` items with one reason said once, after the labels that share it."""
    by_reason: dict[str, list[str]] = {}
    for item in untested:
        label, _, reason = item.partition(": ")
        by_reason.setdefault(reason, []).append(label)
    return "; ".join(f"{join_names(labels)}: {reason}" for reason, labels in by_reason.items())


def _validate_arguments(fit: Any, level: Any, alpha: Any, min_effect: Any) -> None:
    if not isinstance(fit, FittedLaw):
        raise BayescaleError(f"misfit needs a Fit (from bayescale.fit), got {type(fit).__name__}")
    for name, v in (("level", level), ("alpha", alpha)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise BayescaleError(f"misfit: {name} must be in (0, 1), got {v!r}")
    if isinstance(min_effect, bool) or not isinstance(min_effect, (int, float)) or not 0 <= min_effect < 1:
        raise BayescaleError(f"misfit: min_effect must be in [0, 1), got {min_effect!r}")


def _testable(runs: pd.DataFrame, q0: np.ndarray) -> tuple[list[tuple], list[str]]:
    """The candidate patterns with what the law can express (orthonormal columns ``q0``) projected
    out: those that can be tested, and in words why the others cannot."""
    n = len(runs)
    candidates, untested = _candidates(runs)
    tested: list[tuple] = []
    for kind, name, z, extra, _ in candidates:
        q = _basis(np.column_stack([q0, extra])) if extra.shape[1] else q0
        label = "largest runs" if kind == "largest" else f"{kind} in {name}"
        zt = z - q @ (q.T @ z)
        if kind == "groups":
            zt = _basis(zt) if np.linalg.norm(zt) > 1e-6 * np.linalg.norm(z) else zt[:, :0]
            width = zt.shape[1]
        else:
            scale = np.linalg.norm(z - z.mean())
            width = int(scale > 0 and np.linalg.norm(zt) > 1e-6 * scale)
            zt = zt / np.linalg.norm(zt) if width else zt
        dof = n - q.shape[1] - max(width, 1)
        if dof < MIN_DOF:
            untested.append(
                f"{label}: {n} runs leave {max(dof, 0)} degrees of freedom beside the {q0.shape[1]} directions the "
                f"law and a constant can follow (need {MIN_DOF})"
            )
        elif width == 0:
            untested.append(f"{label}: the law itself can follow it exactly")
        else:
            same = [t for t in tested if t[0] == kind != "groups" and abs(float(t[2] @ zt)) > 0.999]
            if same:
                untested.append(f"{label}: the same test as {kind} in {same[0][1]} (the inputs move together)")
            else:
                tested.append((kind, name, zt, q, dof))
    return tested, untested


def _group_finding(
    name: str,
    b: np.ndarray,
    q: np.ndarray,
    dof: int,
    resid: np.ndarray,
    sd: np.ndarray,
    rng: Any,
    x: np.ndarray,
    level: float,
    thr: float,
    floor: float,
) -> Finding:
    """Lack of fit against pure error: do runs sharing a value of ``name`` share an offset from the law?

    An F test of the group offsets (the part the law cannot express) against the scatter within
    groups, so it does not trust the fitted noise scale (which a misfit inflates)."""
    r = np.median(resid, axis=0)
    r = r - q @ (q.T @ r)
    coef = b.T @ r
    pure = r - b @ coef
    f_stat = (coef @ coef / b.shape[1]) / max(pure @ pure / dof, 1e-300)
    p = float(stats.f.sf(f_stat, b.shape[1], dof))
    groups = _value_groups(x)
    member = (groups[:, None] == np.arange(groups.max() + 1)[None, :]).astype(float)
    member = member[:, member.sum(axis=0) >= 2]
    a = (b @ (b.T @ member)) / member.sum(axis=0)  # (n, groups): each group's mean offset as weights on the runs
    draws = resid @ a + sd[:, None] * np.linalg.norm(a, axis=0)[None, :] * rng.standard_normal((sd.size, a.shape[1]))
    eff = np.expm1(draws)
    med = np.median(eff, axis=0)
    j = int(np.argmax(np.abs(med)))
    other = med[np.sign(med) != np.sign(med[j])]
    qq = (1 - level) / 2
    lo, hi = (float(v) for v in np.quantile(eff[:, j], [qq, 1 - qq]))
    fires = p < thr and abs(med[j]) >= floor
    k = int(member[:, j].sum())
    where = f"the {k} runs at {name} = {float(np.exp(x[member[:, j] > 0][0])):.3g}"
    zstat = float(stats.norm.isf(max(p, 1e-300) / 2))
    msg = (
        f"runs that share a value of {name} share an offset from the law, beyond the noise (F = {f_stat:.3g}, "
        f"p = {p:.2g}): {where} sit {_pct(med[j])} {_side(med[j])} it ({_interval(lo, hi, level)}); "
        f"the law's shape in {name} does not match the runs"
    )
    if fires:
        msg += "; extrapolation in this direction is unreliable"
    low = float(other[np.argmax(np.abs(other))]) if other.size else 0.0
    return Finding(
        "groups", name, where, float(med[j]), lo, hi, low, zstat, p, float(thr), bool(p < thr), bool(fires), msg
    )


def _neighbour_finding(
    runs: pd.DataFrame, resid: np.ndarray, q0: np.ndarray, rng: Any, level: float, thr: float, floor: float
) -> Finding:
    """Do runs close in (N, D) share their offsets from the law (:mod:`bayescale._neighbours`)?"""
    n_, d_ = (runs[c].to_numpy(dtype=float) for c in ("N", "D"))
    adj = neighbour_graph(np.log(n_), np.log(d_))
    t = neighbour_test(np.median(resid, axis=0), resid, q0, adj, rng)
    q = (1 - level) / 2
    eff = np.expm1(t.shared)
    med, lo, hi = (float(v) for v in np.quantile(eff, [0.5, q, 1 - q]))
    worst = float(np.expm1(t.local[t.worst]))
    where = f"the runs near N = {n_[t.worst]:.3g}, D = {d_[t.worst]:.3g}"
    fires = t.p_value < thr and med >= floor
    msg = (
        f"neighbouring runs sit off the law together (Moran's I over each run's {K_NEIGHBOURS} nearest in N and "
        f"D, p = {t.p_value:.2g}): the law misses the shape of the runs by about {_pct(med)}, most at {where}, "
        f"which sit {_pct(worst)} {_side(worst)} it"
    )
    if fires:
        msg += "; extrapolation is unreliable"
    zstat = float(stats.norm.isf(t.p_value))
    return Finding(
        "neighbours", "N, D", where, med, lo, hi, worst, zstat, t.p_value, float(thr), t.p_value < thr, fires, msg
    )


def _direction_finding(
    resid: np.ndarray, sd: np.ndarray, rng: Any, logs: dict, level: float, thr: float, floor: float
) -> Finding:
    """The residuals' rise or fall with N, D or C, unprojected (:mod:`bayescale._direction`), in words."""
    d = direction_test(resid, sd, rng, logs)
    x = logs[d.name]
    hi, lo = _ends(x)
    xc = x - x.mean()
    eff = np.expm1(d.slope * xc[hi].mean())
    low = float(np.median(np.expm1(d.slope * xc[lo].mean())))
    q = (1 - level) / 2
    med, a, b = (float(v) for v in np.quantile(eff, [0.5, q, 1 - q]))
    where = _where("trend", d.name, hi, x)
    # fires only where the rank test, the size and the sign of the runs' offset agree
    fires = bool(d.p_value < thr and abs(med) >= floor and med * d.rho > 0)
    words = f"rank correlation {d.rho:+.2f}, p = {d.p_value:.2g}"
    msg = f"no clear rise or fall of the residuals with {_LABEL[d.name]} ({words})"
    if fires:  # a well-fitted law leaves no such trend: its form (or its priors) cannot follow the runs
        msg = (
            f"the residuals {'rise' if d.rho > 0 else 'fall'} with {_LABEL[d.name]} ({words}): {where} sit "
            f"{_pct(med)} {_side(med)} the law ({_interval(a, b, level)}), the lowest {_pct(low)} {_side(low)}; "
            "the law cannot follow the runs in this direction: check that the losses are final losses in nats per "
            "token of one recipe, or fit a law that can follow them"
        )
    p, t = d.p_value, float(d.t)
    return Finding("direction", d.name, where, med, a, b, low, t, p, float(thr), p < thr, fires, msg)


def _residual_table(runs: pd.DataFrame, resid: np.ndarray, sd: np.ndarray, level: float) -> pd.DataFrame:
    q = (1 - level) / 2
    lo, med, hi = np.quantile(resid, [q, 0.5, 1 - q], axis=0)
    out = runs[["run_id", "N", "D", "C", "loss"]].copy().reset_index(drop=True)
    out["resid"] = med
    out["resid_lower"] = lo
    out["resid_upper"] = hi
    out["rel"] = np.expm1(med)
    out["z"] = np.median(resid / sd[:, None], axis=0)
    return out


ADVICE_HEAD = ". What to do: "  # how a warning's advice begins (a comparison's verdict cuts it: it says its own)


def _student_df(fit: FittedLaw) -> float | None:
    """A Student-t noise's degrees of freedom (the median draw, or the spec's fixed value); None for others."""
    if "df" not in {p.name for p in get_family(fit.spec.likelihood.family).noise}:
        return None
    return float(np.median(fit.noise_params().get("df", noise_value(fit.spec.likelihood, "df"))))


#: A run carries a pattern alone only if it stands alone: its standardised residual at least this many
#: times the next run's (the pilots' 50% outlier: 8.7 against 1.8; a bend's largest run: 3.0 against 2.4).
ALONE_RATIO = 2.0


def _attributed(
    findings: list[Finding],
    tested: list[tuple],
    runs: pd.DataFrame,
    o: OutlierTest,
    resid: np.ndarray,
    sd: np.ndarray,
    logs: dict,
    level: float,
    thr: float,
    floor: float,
    seed: int,
) -> list[Finding]:
    """Fired trends, bends and largest-run offsets that the run furthest off the law carries alone: with
    that run's residual set to 0 they no longer fire. One run 50% high among 29 read as "the 6 largest
    runs sit 3.7% above the law", while the heavy-tailed noise it pulled the fit to made the single-run
    test miss it (p 0.013 against 0.01); the run is named instead, with what to check."""
    offset = float(np.median(o.offset))
    if abs(offset) < MIN_OFFSET or abs(o.z) < ALONE_RATIO * o.next_z:  # not far off, or not alone
        return findings
    without = resid.copy()
    without[:, o.index] = 0.0
    out = []
    for f, (kind, name, b, _, _) in zip(findings, tested):
        # the run pushes the pattern's coefficient its way (at either end of the pattern's input)
        if f.fires and kind != "groups" and np.sign(b[o.index] * offset) == np.sign(float(np.mean(resid @ b))):
            alone = _finding(kind, name, b, without, sd, np.random.default_rng(seed + 1), logs, level, thr, floor)
            if not alone.fires:
                run = f"run {str(runs['run_id'].iloc[o.index])!r}"
                f = replace(f, carried_by=run, message=f"{f.message}; {_carried(run, o, alone)}")
        out.append(f)
    return out


def _carried(run: str, o: Any, alone: Finding) -> str:
    med = float(np.median(o.offset))
    return (
        f"one run carries this alone: {run}, {_pct(med)} {_side(med)} the law (without its offset the pattern is "
        f"{_pct(alone.effect)}, p = {alone.p_value:.2g}); check that run (its log, its final loss) before the law"
    )


def _outlier_finding(runs: pd.DataFrame, o: OutlierTest, level: float, thr: float) -> Finding:
    """The run furthest off the law, alone (:mod:`bayescale._outlier`), named by its id."""
    q = (1 - level) / 2
    med, a, b = (float(v) for v in np.quantile(o.offset, [0.5, q, 1 - q]))
    where = f"run {str(runs['run_id'].iloc[o.index])!r}"
    fires = bool(o.p_value < thr and abs(med) >= MIN_OFFSET)
    msg = f"no run far off the law alone (largest |z| {abs(o.z):.2g}, p = {o.p_value:.2g})"
    if fires:  # one run this far off is more often a broken run than the law's shape
        msg = (
            f"{where} sits {_pct(med)} {_side(med)} the law ({_interval(a, b, level)}; {abs(o.z):.2g} noise sd, the "
            f"next run {o.next_z:.2g}, p = {o.p_value:.2g}): a run this far off alone is more often failed, unfinished "
            "or mislabelled than the law's shape, and it pulls the fit (the other findings may be its pull)"
        )
    return Finding("outlier", "run", where, med, a, b, 0.0, o.z, o.p_value, float(thr), o.p_value < thr, fires, msg)


def _advice(fit: FittedLaw, fired: list[Finding]) -> str:
    """What to do: check the runs where they go a way no bundled law goes (losses fall with N and D), else average laws."""
    if odd := [f.where for f in fired if f.kind == "outlier"] + [f.carried_by for f in fired if f.carried_by]:
        return f"check {odd[0]} (its log, its final loss, its units and recipe), and refit without it if it is wrong"
    if any(f.kind == "direction" for f in fired):
        return (
            "check the runs before any law (final losses, in nats per token, of one recipe, each on its own row); "
            "if they are right, the law's form cannot follow them: do not extrapolate it"
        )
    if getattr(fit, "weights", None) is not None:  # a law average already weighs other laws
        return "add runs where the pattern is, or read each run's residual in `bayescale summary`"
    return (
        "fit the law average (spec 'recommended'), whose bands widen where its laws disagree, or add runs where "
        "the pattern is"
    )


def warn_if_misfit(
    fit: FittedLaw, *, category: type[Warning] = MisfitWarning, stacklevel: int | None = None, **kwargs: Any
) -> Misfit | None:
    """Run :func:`misfit` and warn, in words, when the law misfits its runs; for ``fit``'s warnings.

    Returns the result, or ``None`` when there are too few runs to test (that is not a misfit, and
    says nothing). The warning is put on the caller's line outside bayescale, or ``stacklevel`` frames
    above the caller when given. ``kwargs`` go to :func:`misfit`.
    """
    try:
        result = misfit(fit, **kwargs)
    except BayescaleError:
        return None
    if result.misfits:
        warnings.warn(
            f"{WARNING_HEAD}; its bands may miss on one side: "
            + " | ".join(result.messages)
            + ADVICE_HEAD
            + result.advice,
            category,
            stacklevel=user_stacklevel() if stacklevel is None else stacklevel + 1,
        )
    return result


__all__ = ["ADVICE_HEAD", "WARNING_HEAD", "Finding", "Misfit", "leverage", "misfit", "warn_if_misfit"]

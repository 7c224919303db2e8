"""Which pilot should we train next? Active selection of runs, and the closed loop.

Every pilot costs FLOPs. :func:`suggest` picks the runs that most reduce the uncertainty
about a *target* (the loss of a planned run, the loss on the compute-optimal frontier at a
budget, the compute-optimal model size, or the decision P(loss <= threshold)) per unit
of cost, planning over the whole remaining budget. :func:`run_loop` closes the loop:
suggest, train, check the new runs, refit, re-plan, until the budget is spent or the
target is known well enough; it resumes where it stopped.

How a candidate is scored (all from posterior draws, vectorised in JAX over candidates x draws):

* **Outcome and target per draw.** For each draw ``s`` the law gives the candidate's log
  loss ``f_s(x)`` and the target ``t_s``; a new run observes ``y = f(x) + noise + delta(x)``.
* **Gaussian EPIG.** Treat ``(y(x), t)`` as jointly Gaussian with the draws' moments: the
  expected information about ``t`` from observing ``y`` is ``-1/2 log(1 - rho^2)`` nats.
  A batch is planned greedily, conditioning the joint covariance on the runs already
  chosen (so a second run like the first is worth less).
* **Importance-reweighting refinement.** Posteriors of scaling laws are often curved or
  multimodal, where a correlation misleads. For the best few candidates at each greedy
  step, outcomes are simulated from the draws and the draws reweighted by the likelihood
  of each simulated outcome; the expected log posterior variance (or, for a decision,
  the expected entropy of ``[loss <= threshold]``) under those weights replaces the
  Gaussian value.
* **Model discrepancy.** A law fitted at small scale is less trustworthy far from the
  target, so each candidate's outcome can carry an extra error ``delta(x)`` with sd
  ``discrepancy * |log10(C(x) / C_target)|``, correlated between candidates of similar
  compute (length scale one decade): it does not average away by repeating small runs.
  The greedy planner uses the spec's drift scale by default; the allocation uses 0 by
  default (as independent extra variance it would leave only the largest run worth buying,
  and the target's own drift term already charges for distance) and takes it when given.
* **Extrapolation drift.** With an ``[extrapolation]`` prior in the spec, the target's
  uncertainty includes the drift beyond the largest run; a larger pilot moves that edge
  closer to the target and removes part of it.
* **The plan: a whole-budget allocation (default).** Greedy selection one run at a time
  misses designs whose value lies in the combination (a few large runs near the target's
  compute plus many small ones at extreme tokens-per-parameter ratios, which separate alpha,
  beta and E). The default planner linearises the law around each of 64 posterior draws and
  splits the whole remaining budget over the candidates to minimise the target's expected
  posterior variance (a pseudo-Bayesian c-optimal design, convex, solved by Frank-Wolfe and
  rounded to whole runs; ``bayescale._design``). The batch is the plan's most expensive runs.
  In the simulation study this halved the target's error against the greedy
  planner and the best fixed design in well-specified worlds (BENCHMARKS.md).
* **Guards against known failure modes.** Plain gain per cost keeps buying the cheapest
  run: the allocation weighs every run against the whole budget, and the greedy planner
  (``planner="greedy"``) fills the budget twice, by gain per cost and by gain alone, keeping
  the plan that leaves the target less uncertain; no point is repeated more than
  ``max_replicates`` times (counting runs done and pending); the greedy planner gives runs at
  tokens-per-parameter ratios not yet covered a bonus (the allocation's criterion values
  ratio diversity by itself).

The stopping rule is in words: the next pilot's cost against how much it is expected to
shrink the target's 90% interval (or, with a :class:`~bayescale.decisions.Utility`, its
expected value of sample information against its price).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import likelihoods
from ._io import atomic_write_bytes
from .errors import BayescaleError

#: Kinds of target: loss at a point, loss on the compute-optimal frontier, log N_opt.
TARGET_KINDS = ("loss", "frontier", "nopt")
Z90 = 1.6448536269514722
_SAME = 0.01  # two runs are the same point when log N and log D agree within this


# ------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """What the pilots should pin down.

    Parameters
    ----------
    kind : {"loss", "frontier", "nopt"}
        ``"loss"``: the loss of a planned run at ``(N, D)``; ``"frontier"``: the loss of the
        compute-optimal run at budget ``C``; ``"nopt"``: the compute-optimal model size at ``C``.
    N, D, C : float, optional
        The point (``loss``) or the budget (``frontier``, ``nopt``).
    threshold : float, optional
        For a loss target: the decision "will the loss be <= threshold?" becomes the
        target (its probability, including the target run's seed-to-seed noise).

    Examples
    --------
    >>> Target("loss", N=7e9, D=1.4e12).label
    'loss at N=7e+09, D=1.4e+12'
    >>> parse_target("nopt:C=1e21").kind
    'nopt'
    """

    kind: str
    N: float | None = None
    D: float | None = None
    C: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise BayescaleError(f"target kind {self.kind!r} is not one of {list(TARGET_KINDS)}")
        for name in ("N", "D", "C", "threshold"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float, np.floating)) and math.isfinite(float(v)) and float(v) > 0):
                raise BayescaleError(f"target {name} must be a finite number > 0, got {v!r}")
        if self.kind == "loss":
            n, d, c = self.N, self.D, self.C
            if sum(v is not None for v in (n, d, c)) < 2:
                raise BayescaleError("a loss target needs two of N, D and C (C = 6 N D), e.g. N=7e9,D=1.4e12")
            if n is None:
                object.__setattr__(self, "N", float(c) / (6.0 * float(d)))
            elif d is None:
                object.__setattr__(self, "D", float(c) / (6.0 * float(n)))
            object.__setattr__(self, "C", 6.0 * float(self.N) * float(self.D))
        else:
            if self.C is None:
                raise BayescaleError(f"a {self.kind} target needs a compute budget C, e.g. {self.kind}:C=1e21")
            if self.threshold is not None and self.kind == "nopt":
                raise BayescaleError("threshold applies to loss targets (a point or the frontier), not to nopt")

    @property
    def label(self) -> str:
        if self.kind == "loss":
            s = f"loss at N={self.N:.3g}, D={self.D:.3g}"
        elif self.kind == "frontier":
            s = f"compute-optimal loss at C={self.C:.3g}"
        else:
            s = f"log N_opt at C={self.C:.3g}"
        if self.threshold is not None:
            s = f"P({s} <= {self.threshold:g})"
        return s

    @property
    def is_decision(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "N", "D", "C", "threshold") if getattr(self, k) is not None}


def parse_target(target: Any, threshold: float | None = None) -> Target:
    """A :class:`Target` from text, a mapping or a Target.

    Text forms: ``"N=7e9,D=1.4e12"`` (loss at a point), ``"C=1e21"`` or
    ``"frontier:C=1e21"`` (loss on the compute-optimal frontier), ``"nopt:C=1e21"``
    (log N_opt), and any loss target with ``,threshold=2.1`` added (the decision).

    Examples
    --------
    >>> parse_target("N=7e9,D=1.4e12,threshold=2.1").threshold
    2.1
    >>> parse_target({"C": 1e21}).kind
    'frontier'
    """
    if isinstance(target, Target):
        if threshold is not None:
            return Target(target.kind, target.N, target.D, target.C, float(threshold))
        return target
    if isinstance(target, str):
        text = target.strip()
        kind = None
        head, sep, rest = text.partition(":")
        if sep and "=" not in head:
            kind, text = head.strip().lower(), rest
            if kind not in ("loss", "frontier", "nopt", "point"):
                raise BayescaleError(f"target {target!r}: unknown kind {kind!r}; use N=..,D=.., C=.., frontier:C=.., nopt:C=..")
        values: dict[str, float] = {}
        for item in text.split(","):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or not name:
                raise BayescaleError(f"target {target!r}: {item.strip()!r} is not NAME=VALUE; e.g. N=7e9,D=1.4e12 or nopt:C=1e21")
            try:
                values[name] = float(value)
            except ValueError:
                raise BayescaleError(f"target {target!r}: {name}={value.strip()!r} is not a number") from None
        target = dict(values)
        if kind is not None:
            target["kind"] = "loss" if kind == "point" else kind
    if not isinstance(target, Mapping):
        raise BayescaleError(f"target must be text, a mapping or a Target, got {type(target).__name__}")
    d = dict(target)
    unknown = sorted(set(d) - {"kind", "N", "D", "C", "threshold"})
    if unknown:
        raise BayescaleError(f"target: unknown fields {unknown}; allowed kind, N, D, C, threshold")
    kind = d.pop("kind", None)
    if kind is None:
        kind = "loss" if ("N" in d or "D" in d) else "frontier"
    if threshold is not None:
        d["threshold"] = float(threshold)
    return Target(str(kind), **{k: float(v) for k, v in d.items()})


# ------------------------------------------------------------------ draws


def _theta(fit: Any) -> dict[str, np.ndarray]:
    return {p: np.asarray(fit.posterior[p].values, dtype=float).reshape(-1) for p in fit.spec.law.params}


def _noise_var(fit: Any) -> np.ndarray:
    """Per-draw variance of one run's log loss around the law (flattened draws)."""
    post = fit.posterior
    if "sigma" not in post:
        return np.full(1, 0.01**2)
    params = {k: np.asarray(post[k].values, dtype=float).reshape(-1) for k in likelihoods.noise_priors(fit.spec.likelihood) if k in post}
    return likelihoods.predictive_variance(fit.spec.likelihood, params)


_LAW_FNS: dict[str, Any] = {}


def _law_matrix(fit: Any, theta: Mapping[str, np.ndarray], frame: pd.DataFrame) -> np.ndarray:
    """Log loss of the law per draw and point, shape (S, M), computed in JAX (float64)."""
    import jax
    import jax.numpy as jnp

    from .data import law_inputs

    law = fit.spec.law
    logx = law_inputs(fit.spec, frame, np.float64)
    key = law.name + ":" + ",".join(law.params) + ":" + str(id(law.log_loss))
    if key not in _LAW_FNS:
        _LAW_FNS[key] = jax.jit(lambda th, lx: law.log_loss({k: v[:, None] for k, v in th.items()}, {k: v[None, :] for k, v in lx.items()}, jnp))
    with jax.enable_x64(True):
        out = _LAW_FNS[key]({k: jnp.asarray(v) for k, v in theta.items()}, {k: jnp.asarray(v) for k, v in logx.items()})
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class TargetDraws:
    """Draws of the target (log scale) and what adds to them.

    ``law``: per-draw value from the law alone (log loss or log N_opt); ``drift2``: the
    expected squared extrapolation drift per decade squared (0 without an
    ``[extrapolation]`` prior, and for ``nopt``); ``compute``: the target's compute, for
    distances and for the drift; ``noise_var``: one run's noise variance (the decision
    includes it).
    """

    law: np.ndarray
    drift2: float
    compute: float
    noise_var: float
    target: Target

    def drift_var(self, c_max: float) -> float:
        d = max(0.0, math.log10(self.compute / c_max))
        return self.drift2 * d * d


def target_draws(fit: Any, target: Target | str | Mapping[str, Any]) -> TargetDraws:
    """Posterior draws of ``target`` from ``fit`` (see :class:`TargetDraws`).

    Examples
    --------
    >>> td = target_draws(fit, "N=7e9,D=1.4e12")   # doctest: +SKIP
    >>> float(np.exp(np.median(td.law)))            # doctest: +SKIP
    """
    target = parse_target(target)
    theta = _theta(fit)
    if target.kind == "loss":
        frame = pd.DataFrame({"N": [target.N], "D": [target.D], "C": [target.C]})
        law = _law_matrix(fit, theta, frame)[:, 0]
    else:
        from .decisions import compute_optimal

        opt = compute_optimal(fit, [target.C])
        var = "N_opt" if target.kind == "nopt" else "loss_opt"
        law = np.log(np.asarray(opt[var].values, dtype=float).reshape(-1))
    drift2 = 0.0
    if "drift" in fit.posterior and target.kind != "nopt":
        drift2 = float(np.mean(np.asarray(fit.posterior["drift"].values, dtype=float) ** 2))
    if not np.all(np.isfinite(law)):
        raise BayescaleError(f"target {target.label}: the law gives non-finite values for some draws")
    return TargetDraws(law=law, drift2=drift2, compute=float(target.C), noise_var=float(np.mean(_noise_var(fit))), target=target)


def _band_from(td: TargetDraws, c_max: float) -> dict[str, float]:
    """Median and 90% interval of the target on its natural scale, with the drift."""
    sd_d = math.sqrt(td.drift_var(c_max))
    rng = np.random.default_rng(0)
    x = td.law + sd_d * rng.standard_normal(td.law.size)
    lo, med, hi = np.quantile(x, [0.05, 0.5, 0.95])
    lo_l, hi_l = np.quantile(td.law, [0.05, 0.95])
    out = {"median": float(np.exp(med)), "lo90": float(np.exp(lo)), "hi90": float(np.exp(hi)), "log_width90": float(hi - lo), "sd_log": float(np.std(x)),
           "lo90_law": float(np.exp(lo_l)), "hi90_law": float(np.exp(hi_l))}
    if td.target.is_decision:
        from scipy.stats import norm

        p = float(np.mean(norm.cdf((math.log(td.target.threshold) - td.law) / math.sqrt(td.drift_var(c_max) + td.noise_var))))
        out["p_below"] = p
    return out


def target_band(fit: Any, target: Target | str | Mapping[str, Any]) -> dict[str, float]:
    """Median and 90% interval of the target now (natural scale), its log-width and sd of log,
    the 90% interval of the law alone (``lo90_law``, ``hi90_law``: without the extrapolation
    drift), and P(loss <= threshold) for a decision target.

    Examples
    --------
    >>> target_band(fit, "N=7e9,D=1.4e12")["log_width90"]   # doctest: +SKIP
    """
    td = target_draws(fit, target)
    return _band_from(td, float(fit.runs["C"].max()))


# ------------------------------------------------------------------ candidates


def flops_cost(frame: pd.DataFrame) -> np.ndarray:
    """Training FLOPs ``6 N D`` of each candidate (the default cost)."""
    return 6.0 * frame["N"].to_numpy(float) * frame["D"].to_numpy(float)


def candidate_grid(
    N: Sequence[float] | tuple[float, float] = (1e7, 1e9),
    tokens_per_param: Sequence[float] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
    *,
    n_sizes: int = 9,
) -> pd.DataFrame:
    """Candidates on a grid in (log N, log tokens-per-parameter).

    Parameters
    ----------
    N : (low, high) or sequence of float
        Two numbers give ``n_sizes`` log-spaced sizes between them; more are used as given.
    tokens_per_param : sequence of float
        Ratios ``D / N``.

    Returns
    -------
    pandas.DataFrame
        Columns ``N, D, C, ratio`` (``C = 6 N D``).

    Examples
    --------
    >>> len(candidate_grid((1e7, 1e9), (10, 20, 40), n_sizes=5))
    15
    """
    n = np.asarray(N, dtype=float)
    if n.size == 2:
        n = np.geomspace(n[0], n[1], int(n_sizes))
    r = np.asarray(tokens_per_param, dtype=float)
    if n.size == 0 or r.size == 0 or not (np.all(n > 0) and np.all(r > 0) and np.all(np.isfinite(n)) and np.all(np.isfinite(r))):
        raise BayescaleError("candidate_grid: N and tokens_per_param must be non-empty, finite and > 0")
    nn, rr = np.meshgrid(n, r, indexing="ij")
    nn, rr = nn.reshape(-1), rr.reshape(-1)
    return pd.DataFrame({"N": nn, "D": nn * rr, "C": 6.0 * nn * nn * rr, "ratio": rr})


def _as_points(x: Any, what: str) -> pd.DataFrame:
    if x is None:
        return pd.DataFrame({"N": [], "D": []}, dtype=float)
    if isinstance(x, pd.DataFrame):
        frame = x.copy()
    elif isinstance(x, Mapping):
        frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in x.items()})
    else:
        frame = pd.DataFrame([dict(r) for r in x])
    if len(frame) == 0:
        return pd.DataFrame({"N": [], "D": []}, dtype=float)
    if "D" not in frame and "C" in frame and "N" in frame:
        frame["D"] = frame["C"].astype(float) / (6.0 * frame["N"].astype(float))
    if "N" not in frame or "D" not in frame:
        raise BayescaleError(f"{what}: each entry needs N and D (or N and C)")
    frame["N"] = frame["N"].astype(float)
    frame["D"] = frame["D"].astype(float)
    bad = ~(np.isfinite(frame["N"]) & np.isfinite(frame["D"]) & (frame["N"] > 0) & (frame["D"] > 0))
    if bad.any():
        raise BayescaleError(f"{what}: N and D must be finite and > 0; rows {list(np.flatnonzero(bad))[:10]} are not")
    frame["C"] = 6.0 * frame["N"] * frame["D"]
    frame["ratio"] = frame["D"] / frame["N"]
    return frame.reset_index(drop=True)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """(len(a), len(b)) boolean: the same (N, D) point within 1% in each."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=bool)
    ln = np.abs(np.log(a["N"].to_numpy(float))[:, None] - np.log(b["N"].to_numpy(float))[None, :])
    ld = np.abs(np.log(a["D"].to_numpy(float))[:, None] - np.log(b["D"].to_numpy(float))[None, :])
    return (ln < _SAME) & (ld < _SAME)


def default_candidates(fit: Any, budget: float | None = None, *, tokens_per_param: Sequence[float] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
                       below: float = 3.0, per_decade: int = 8) -> pd.DataFrame:
    """The default pool: a grid from ``below`` times smaller than the smallest run's N up to
    the largest N the budget affords at the smallest ratio (or 30x the largest run's N), with
    ``per_decade`` sizes per decade (at least 10), over ``tokens_per_param``.

    Small runs at extreme ratios pin the exponents down for their cost, so the pool reaches a
    little below the runs done (in the simulation study, half a decade below the seed pilots
    cut the target's error by a fifth: BENCHMARKS.md, "Active selection")."""
    n_lo = float(fit.runs["N"].min()) / float(below)
    n_hi = 30.0 * float(fit.runs["N"].max())
    if budget is not None and math.isfinite(budget):
        n_hi = min(n_hi, math.sqrt(budget / (6.0 * min(tokens_per_param))))
    n_hi = max(n_hi, n_lo * 1.5)
    n_sizes = max(10, math.ceil(per_decade * math.log10(n_hi / n_lo)) + 1)
    return candidate_grid((n_lo, n_hi), tokens_per_param, n_sizes=n_sizes)


# ------------------------------------------------------------------ scoring core


def default_discrepancy(fit: Any) -> float:
    """Model-discrepancy sd per decade of compute: the spec's extrapolation-drift scale (the
    root mean square of the fit's ``drift`` draws per decade) when it has one, else 0.01."""
    if "drift" in fit.posterior:
        return float(np.sqrt(np.mean(np.asarray(fit.posterior["drift"].values, dtype=float) ** 2)))
    return 0.01


def _discrepancy_cov(logc_a: np.ndarray, logc_b: np.ndarray, dist_a: np.ndarray, dist_b: np.ndarray, scale: float, length: float = 1.0) -> np.ndarray:
    """Covariance of the model-discrepancy term between candidates a and b (log10 compute)."""
    if scale <= 0:
        return np.zeros((logc_a.size, logc_b.size))
    k = np.exp(-0.5 * ((logc_a[:, None] - logc_b[None, :]) / length) ** 2)
    return (scale * dist_a)[:, None] * (scale * dist_b)[None, :] * k


_IS_FNS: dict[str, Any] = {}


def _is_fn() -> Any:
    """Jitted: for candidates J (chunked), expected log posterior variance of t (or expected
    binary entropy of [t <= thr]) after observing simulated outcomes, with base log weights LA."""
    if "is" in _IS_FNS:
        return _IS_FNS["is"]
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import ndtr

    def one(f_s, v_s, y_m, base, t, smooth, lthr, decision):
        # f_s (S,), v_s (S,), y_m (Mo,), base (Mo, S), t (S,)
        lw = base - 0.5 * (y_m[:, None] - f_s[None, :]) ** 2 / v_s[None, :] - 0.5 * jnp.log(v_s)[None, :]
        lw = lw - jnp.max(lw, axis=1, keepdims=True)
        w = jnp.exp(lw)
        w = w / jnp.sum(w, axis=1, keepdims=True)
        ess = 1.0 / jnp.sum(w * w, axis=1)
        m = w @ t
        var = jnp.maximum(w @ (t * t) - m * m, 1e-30)
        p = w @ ndtr((lthr - t) / smooth)
        p = jnp.clip(p, 1e-6, 1 - 1e-6)  # float32
        h = -(p * jnp.log(p) + (1 - p) * jnp.log1p(-p))
        return jnp.where(decision, h, var), ess

    def run(F, V, Y, base, t, smooth, lthr, decision):
        # F, V (c, S); Y (c, Mo); smooth (c,) -> values (c, Mo), ess (c, Mo)
        return jax.vmap(one, in_axes=(0, 0, 0, None, None, 0, None, None))(F, V, Y, base, t, smooth, lthr, decision)

    _IS_FNS["is"] = jax.jit(run)
    return _IS_FNS["is"]


class _Scorer:
    """The joint of candidate outcomes and the target from posterior draws, with the
    Gaussian and importance-reweighting gains of adding candidates to a chosen set."""

    def __init__(self, fit: Any, td: TargetDraws, frame: pd.DataFrame, *, discrepancy: float, n_outcomes: int, seed: int, max_draws: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        theta = _theta(fit)
        S = next(iter(theta.values())).size
        idx = np.arange(S)
        if max_draws is not None and S > max_draws:
            idx = np.sort(rng.choice(S, max_draws, replace=False))
        theta = {k: v[idx] for k, v in theta.items()}
        self.t = td.law[idx]
        self.td = td
        self.S = idx.size
        self.F = _law_matrix(fit, theta, frame) if len(frame) else np.zeros((self.S, 0))  # (S, M)
        self.nv = _noise_var(fit)[idx] if _noise_var(fit).size == S else np.full(self.S, float(np.mean(_noise_var(fit))))
        self.frame = frame
        self.c_max0 = float(fit.runs["C"].max())
        self.C = frame["C"].to_numpy(float) if len(frame) else np.zeros(0)
        self.logc = np.log10(self.C) if len(frame) else np.zeros(0)
        self.dist = np.abs(self.logc - math.log10(td.compute))
        self.disc = float(discrepancy)
        self.dvar = (self.disc * self.dist) ** 2
        Fm = self.F.mean(axis=0)
        self.Fc = self.F - Fm
        tc = self.t - self.t.mean()
        self.tc = tc
        self.var_f = np.mean(self.Fc**2, axis=0)
        self.cov_ft = self.Fc.T @ tc / self.S
        self.var_t = float(np.mean(tc**2))
        self.rn = float(np.mean(self.nv))
        self.decision = td.target.is_decision
        self.lthr = math.log(td.target.threshold) if self.decision else 0.0
        self.mean_t = float(self.t.mean())
        # Simulated outcomes for the importance-reweighting refinement.
        mo = int(min(n_outcomes, self.S))
        self.m_idx = rng.choice(self.S, mo, replace=False)
        self.Y = (self.F[self.m_idx, :] + np.sqrt(self.nv[self.m_idx])[:, None] * rng.standard_normal((mo, self.F.shape[1]))
                  + np.sqrt(self.dvar)[None, :] * rng.standard_normal((mo, self.F.shape[1])))
        self.Yc = self.Y - Fm[None, :]
        self._cols: dict[int, np.ndarray] = {}
        self._bases: dict[tuple, np.ndarray] = {}

    # -- Gaussian ---------------------------------------------------------
    def col(self, a: int) -> np.ndarray:
        if a not in self._cols:
            self._cols[a] = self.Fc.T @ self.Fc[:, a] / self.S
        return self._cols[a]

    def drift_var(self, chosen: Sequence[int]) -> float:
        cmax = self.c_max0
        if len(chosen):
            cmax = max(cmax, float(self.C[list(chosen)].max()))
        return self.td.drift_var(cmax)

    def drift_var_each(self, chosen: Sequence[int], idx: np.ndarray) -> np.ndarray:
        """drift_var(chosen + [j]) for every j in idx, vectorised."""
        cmax = max(self.c_max0, float(self.C[list(chosen)].max())) if len(chosen) else self.c_max0
        d = np.maximum(0.0, np.log10(self.td.compute / np.maximum(cmax, self.C[idx])))
        return self.td.drift2 * d * d

    def gaussian(self, chosen: Sequence[int]) -> dict[str, np.ndarray | float]:
        """For every candidate j: the target's law variance given chosen and given chosen + j."""
        A = list(chosen)
        var_y = self.var_f + self.rn + self.dvar
        cov_yt = self.cov_ft.copy()
        var_tA = self.var_t
        if A:
            SA = np.stack([self.col(a) for a in A], axis=1)  # (M, k)
            KA = _discrepancy_cov(self.logc, self.logc[A], self.dist, self.dist[A], self.disc)
            Q = SA + KA
            MA = SA[A, :] + KA[A, :] + self.rn * np.eye(len(A))
            MA = 0.5 * (MA + MA.T)
            G = np.linalg.solve(MA, Q.T)  # (k, M)
            var_y = var_y - np.sum(Q.T * G, axis=0)
            s_At = self.cov_ft[A]
            cov_yt = cov_yt - s_At @ G
            var_tA = float(self.var_t - s_At @ np.linalg.solve(MA, s_At))
        var_y = np.maximum(var_y, 1e-300)
        var_tAj = np.maximum(var_tA - cov_yt**2 / var_y, 1e-300)
        return {"var_tA": max(var_tA, 1e-300), "var_tAj": var_tAj, "rho2": np.clip(cov_yt**2 / (var_y * max(var_tA, 1e-300)), 0, 1)}

    def _entropy_after(self, var_law_after: np.ndarray | float, dvar: np.ndarray | float) -> np.ndarray:
        """Expected binary entropy of [target <= threshold] once the law variance is
        ``var_law_after`` (preposterior mean spread = the variance removed), by Gauss-Hermite."""
        x, w = np.polynomial.hermite_e.hermegauss(24)
        w = w / w.sum()
        v_after = np.atleast_1d(np.asarray(var_law_after, dtype=float))
        spread = np.sqrt(np.maximum(self.var_t - v_after, 0.0))
        smooth = np.sqrt(v_after + np.asarray(dvar, dtype=float) + self.td.noise_var) * np.ones_like(v_after)
        from scipy.special import ndtr

        p = ndtr((self.lthr - (self.mean_t + spread[:, None] * x[None, :])) / smooth[:, None])
        p = np.clip(p, 1e-12, 1 - 1e-12)
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
        return h @ w

    def crit_gauss(self, var_law: np.ndarray | float, dvar: np.ndarray | float) -> np.ndarray:
        """Uncertainty criterion (lower is better): log total variance, or expected entropy."""
        if self.decision:
            return self._entropy_after(var_law, dvar)
        return np.log(np.asarray(var_law, dtype=float) + dvar)

    # -- importance reweighting ----------------------------------------------
    def loglik(self, a: int) -> np.ndarray:
        """Log likelihood of the simulated outcomes of candidate a under each draw, (Mo, S)."""
        v = self.nv + self.dvar[a]
        return -0.5 * (self.Y[:, a][:, None] - self.F[:, a][None, :]) ** 2 / v[None, :] - 0.5 * np.log(v)[None, :]

    def base_logw(self, chosen: Sequence[int]) -> np.ndarray:
        key = tuple(chosen)
        if key in self._bases:
            return self._bases[key]
        base = self.base_logw(key[:-1]) + self.loglik(key[-1]) if key else np.zeros((self.m_idx.size, self.S))
        if len(self._bases) > 256:
            self._bases.clear()
        self._bases[key] = base
        return base

    def crit_is(self, chosen: Sequence[int], J: Sequence[int], chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Expected criterion after adding each j in J to ``chosen`` (importance reweighting), and
        the mean effective sample size of the weights. Candidates go in padded chunks of a fixed
        size so the jitted kernel compiles once."""
        import jax.numpy as jnp

        J = np.asarray(list(J), dtype=int)
        chunk = chunk or (64 if J.size >= 64 else 16)
        base = self.base_logw(chosen)
        fn = _is_fn()
        vals, esss = [], []
        f32 = jnp.float32
        tc = self.t - self.t.mean()
        base_j = jnp.asarray(base, dtype=f32)
        t_j = jnp.asarray(tc, dtype=f32)
        lthr = self.lthr - float(self.t.mean())
        Fc, Yc = self.Fc, self.Yc  # centred per candidate, so float32 keeps the differences accurate
        for start in range(0, J.size, chunk):
            jj = J[start : start + chunk]
            jp = np.concatenate([jj, np.repeat(jj[-1:], chunk - jj.size)])
            dv = self.drift_var_each(chosen, jp)
            smooth = np.sqrt(np.maximum(self.td.noise_var + (dv if self.decision else 0.0), 1e-12)) * np.ones(jp.size)
            v, e = fn(
                jnp.asarray(Fc[:, jp].T, dtype=f32),
                jnp.asarray((self.nv[:, None] + self.dvar[jp][None, :]).T, dtype=f32),
                jnp.asarray(Yc[:, jp].T, dtype=f32),
                base_j,
                t_j,
                jnp.asarray(smooth, dtype=f32),
                lthr,
                self.decision,
            )
            v, e = np.asarray(v, dtype=float)[: jj.size], np.asarray(e, dtype=float)[: jj.size]
            crit = v.mean(axis=1) if self.decision else np.mean(np.log(v + dv[: jj.size, None]), axis=1)
            vals.append(crit)
            esss.append(e.mean(axis=1))
        return np.concatenate(vals) if vals else np.zeros(0), np.concatenate(esss) if esss else np.zeros(0)

    def crit_is_set(self, chosen: Sequence[int]) -> float:
        """Expected criterion after the chosen set (importance reweighting)."""
        if not len(chosen):
            if self.decision:
                from scipy.special import ndtr

                p = float(np.mean(ndtr((self.lthr - self.t) / math.sqrt(self.td.noise_var + self.drift_var([])))))
                p = min(max(p, 1e-6), 1 - 1e-6)
                return -(p * math.log(p) + (1 - p) * math.log1p(-p))
            return math.log(self.var_t + self.drift_var([]))
        c, _ = self.crit_is(list(chosen)[:-1], [list(chosen)[-1]])
        return float(c[0])


def score(
    fit: Any,
    candidates: Any,
    target: Target | str | Mapping[str, Any],
    *,
    cost: Callable[[pd.DataFrame], np.ndarray] | None = None,
    discrepancy: float | None = None,
    refine: bool = True,
    n_outcomes: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected information about ``target`` from one more run at each candidate.

    Parameters
    ----------
    fit : Fit
    candidates : DataFrame, mapping or list of mappings with N and D
    target : Target or its text (see :func:`parse_target`)
    cost : callable, optional
        ``cost(frame) -> array`` in any unit (e.g. GPU-hours); default ``6 N D`` FLOPs.
    discrepancy : float, optional
        Sd of the model-discrepancy term per decade of compute between a candidate and the
        target, on log loss (default :func:`default_discrepancy`).
    refine : bool
        Also compute the importance-reweighting gain (``gain_is``) for every candidate.
    n_outcomes : int
        Simulated outcomes per candidate for the refinement.

    Returns
    -------
    pandas.DataFrame
        Per candidate: ``N, D, C, ratio, cost``, ``rho`` (correlation of its outcome with the
        target), ``decades`` (log10 compute distance to the target), ``discrepancy_sd``,
        ``gain`` (Gaussian EPIG, nats), ``gain_is`` (importance-reweighted, nats; NaN when
        ``refine`` is False), ``ess`` (mean effective sample size of the weights) and
        ``gain_per_cost``.

    Examples
    --------
    >>> s = score(fit, candidate_grid(), "N=7e9,D=1.4e12")   # doctest: +SKIP
    >>> s.sort_values("gain_per_cost").tail(3)               # doctest: +SKIP
    """
    td = target_draws(fit, target)
    frame = _as_points(candidates, "candidates")
    if len(frame) == 0:
        raise BayescaleError("score: no candidates")
    costs = _costs(frame, cost)
    if discrepancy is None:
        discrepancy = default_discrepancy(fit)
    sc = _Scorer(fit, td, frame, discrepancy=discrepancy, n_outcomes=n_outcomes, seed=seed)
    g = sc.gaussian([])
    dv0 = sc.drift_var([])
    before = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], dv0))[0])
    dvj = sc.drift_var_each([], np.arange(len(frame)))
    after = sc.crit_gauss(g["var_tAj"], dvj)
    gain = (before - after) * (1.0 if sc.decision else 0.5)
    out = frame[["N", "D", "C", "ratio"]].copy()
    out["cost"] = costs
    out["rho"] = np.sign(sc.cov_ft) * np.sqrt(g["rho2"])
    out["decades"] = sc.dist
    out["discrepancy_sd"] = np.sqrt(sc.dvar)
    out["gain"] = gain
    if refine:
        crit, ess = sc.crit_is([], range(len(frame)))
        b = sc.crit_is_set([])
        out["gain_is"] = (b - crit) * (1.0 if sc.decision else 0.5)
        out["ess"] = ess
    else:
        out["gain_is"] = np.nan
        out["ess"] = np.nan
    best = out["gain_is"].where(out["gain_is"].notna(), out["gain"])
    out["gain_per_cost"] = best / out["cost"]
    return out


def _costs(frame: pd.DataFrame, cost: Callable[[pd.DataFrame], np.ndarray] | None) -> np.ndarray:
    if cost is None:
        return flops_cost(frame)
    c = np.asarray(cost(frame.copy()), dtype=float).reshape(-1)
    if c.size != len(frame) or not np.all(np.isfinite(c) & (c > 0)):
        raise BayescaleError("cost(candidates) must return one finite cost > 0 per candidate")
    return c


# ------------------------------------------------------------------ the planner


@dataclass(frozen=True)
class Stopping:
    """Is the next pilot worth its cost? Read :attr:`text`.

    Attributes
    ----------
    stop : bool
    reason : str
    next_cost : float
        Cost of the next pilot (the plan's first run).
    width_now, width_after_next, width_after_plan : float
        Width of the target's 90% interval of log(target) now, expected after the next
        pilot, and after the whole plan (for a decision target: P(loss <= threshold) now).
    evsi : float or None
        Expected value of sample information of the next pilot, with a utility.
    text : str
    """

    stop: bool
    reason: str
    next_cost: float
    width_now: float
    width_after_next: float
    width_after_plan: float
    evsi: float | None
    text: str


@dataclass(frozen=True)
class Suggestion:
    """A ranked batch of pilots to train next, planned over the whole remaining budget.

    Attributes
    ----------
    table : pandas.DataFrame
        The batch: ``rank, N, D, ratio, cost, expected_gain`` (nats of information about the
        target, given the runs ranked above it), ``sd_after`` (expected sd of log target after
        this run and those above it) and ``why`` (in words).
    plan : pandas.DataFrame
        The whole-budget plan the batch starts (same columns).
    plan_kind : str
        ``"allocation"`` (the linearised whole-budget allocation), or ``"cost-weighted"`` /
        ``"unweighted"``: which greedy plan left the target less uncertain.
    target : Target
    band : dict
        The target now: median, 90% interval, log-width, sd of log (and p_below).
    stopping : Stopping
    budget : float
    notes : tuple of str
    """

    table: pd.DataFrame
    plan: pd.DataFrame
    plan_kind: str
    target: Target
    band: Mapping[str, float]
    stopping: Stopping
    budget: float
    alternatives: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """The batch as text: the target now, the table, and the stopping rule."""
        b = self.band
        lines = [f"target: {self.target.label}"]
        if self.target.is_decision:
            lines.append(f"  now: P = {b['p_below']:.3f}; median {b['median']:.4g}, 90% interval {b['lo90']:.4g}-{b['hi90']:.4g}")
        else:
            lines.append(f"  now: median {b['median']:.4g}, 90% interval {b['lo90']:.4g}-{b['hi90']:.4g} (width of log: {b['log_width90']:.4f})")
        lines.append(f"budget {self.budget:.3g}; plan ({self.plan_kind if self.plan_kind == 'allocation' else self.plan_kind + ' greedy'}, {len(self.plan)} runs, cost {self.plan['cost'].sum() if len(self.plan) else 0:.3g})")
        lines.append("")
        t = self.table
        if len(t):
            head = f"{'rank':>4}  {'N':>9}  {'D':>9}  {'ratio':>6}  {'cost':>9}  {'gain':>7}  why"
            lines.append(head)
            for _, r in t.iterrows():
                lines.append(f"{int(r['rank']):>4}  {r['N']:>9.3g}  {r['D']:>9.3g}  {r['ratio']:>6.3g}  {r['cost']:>9.3g}  {r['expected_gain']:>7.4f}  {r['why']}")
        else:
            lines.append("no affordable candidate")
        lines.append("")
        lines.append(self.stopping.text)
        lines += list(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        rec = lambda f: [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in f.to_dict(orient="records")]
        return {
            "target": self.target.to_dict(),
            "target_label": self.target.label,
            "band": dict(self.band),
            "budget": self.budget,
            "plan_kind": self.plan_kind,
            "batch": rec(self.table),
            "plan": rec(self.plan),
            "alternatives": dict(self.alternatives),
            "stopping": {k: getattr(self.stopping, k) for k in ("stop", "reason", "next_cost", "width_now", "width_after_next", "width_after_plan", "evsi", "text")},
            "notes": list(self.notes),
        }


def _greedy(sc: _Scorer, costs: np.ndarray, selectable: np.ndarray, budget: float, pre: list[int], counts: np.ndarray, *,
            weighted: bool, max_replicates: int, diversity: float, ratios_seen: np.ndarray, refine: bool, n_refine: int, max_steps: int, refine_steps: int = 6,
            batch_k: int = 0, batch_budget: float = math.inf) -> dict[str, Any]:
    """One greedy plan over the budget; returns picks with their gains and the final criterion."""
    chosen = list(pre)
    counts = counts.copy()
    spent = 0.0
    picks: list[dict[str, Any]] = []
    lr = np.log10(sc.frame["ratio"].to_numpy(float))
    seen = list(ratios_seen)
    half = 1.0 if sc.decision else 0.5
    use_is = refine
    crit_now_is = sc.crit_is_set(chosen) if (use_is and chosen) else None
    for step in range(max_steps):
        if step >= refine_steps:
            use_is = False
        room = budget - spent if step >= batch_k else min(budget, batch_budget) - spent
        ok = selectable & (costs <= room + 1e-9 * budget) & (counts < max_replicates)
        if not ok.any():
            break
        g = sc.gaussian(chosen)
        dv_now = sc.drift_var(chosen)
        crit_now = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], dv_now))[0])
        idx = np.flatnonzero(ok)
        dvj = sc.drift_var_each(chosen, idx)
        crit_after = sc.crit_gauss(g["var_tAj"][idx], dvj)
        gain = half * (crit_now - crit_after)
        if seen:
            nov = np.min(np.abs(lr[idx][:, None] - np.asarray(seen)[None, :]), axis=1)
        else:
            nov = np.ones(idx.size)
        bonus = 1.0 + diversity * np.minimum(1.0, nov / 0.3)
        metric = gain * bonus / (costs[idx] if weighted else 1.0)
        order = np.argsort(-metric)
        best_pos = order[0]
        value = gain[best_pos]
        gain_kind = "gaussian"
        ess = float("nan")
        if use_is:
            top = order[: max(1, n_refine)]
            crit_is, esss = sc.crit_is(chosen, idx[top])
            base = crit_now_is if crit_now_is is not None else sc.crit_is_set(chosen)
            g_is = half * (base - crit_is)
            reliable = (esss >= 20.0) & (g_is > 0)
            if reliable.any():  # else keep the Gaussian choice (weights too degenerate to trust)
                m_is = np.where(reliable, g_is * bonus[top] / (costs[idx[top]] if weighted else 1.0), -np.inf)
                k = int(np.argmax(m_is))
                best_pos, value, gain_kind, ess = top[k], float(g_is[k]), "reweighted", float(esss[k])
                crit_now_is = float(crit_is[k])
            else:
                use_is = False  # the reweighted baseline no longer matches the chosen set
        if not value > 1e-9:
            break
        j = int(idx[best_pos])
        chosen.append(j)
        counts[j] += 1
        spent += float(costs[j])
        seen.append(lr[j])
        after = sc.gaussian(chosen)
        picks.append({"index": j, "gain": float(value), "gain_gauss": float(gain[best_pos]), "gain_kind": gain_kind, "ess": ess,
                      "novelty": float(nov[best_pos]), "rho2": float(g["rho2"][j]), "var_law_after": float(after["var_tA"]),
                      "drift_var_after": float(sc.drift_var(chosen)), "replicate": int(counts[j])})
    g = sc.gaussian(chosen)
    final = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], sc.drift_var(chosen)))[0])
    return {"picks": picks, "crit": final, "spent": spent, "crit_is": crit_now_is}


def _why(p: Mapping[str, Any], row: pd.Series, first_ratio: bool, dist: float, cmax: float) -> str:
    parts = [f"outcome correlates {math.sqrt(max(p['rho2'], 0)):.2f} with the target"]
    if first_ratio:
        parts.append(f"new tokens/param ratio ({row['ratio']:.3g}) separates alpha and beta")
    if row["C"] > cmax:
        parts.append(f"{math.log10(row['C'] / cmax):.2g} decades beyond the largest run: less extrapolation")
    parts.append(f"{dist:.2g} decades of compute below the target")
    if p["replicate"] > 1:
        parts.append(f"replicate {p['replicate']} (seed noise)")
    if p["gain_kind"] == "reweighted":
        parts.append("ranked by importance reweighting")
    return "; ".join(parts)


def _rows(sc: _Scorer, frame: pd.DataFrame, costs: np.ndarray, picks: Sequence[Mapping[str, Any]], pre: list[int], ratios_seen: np.ndarray, cmax: float) -> pd.DataFrame:
    """Runs in the given order with their Gaussian gain given the runs before them (and pending ones)."""
    cols = ["rank", "N", "D", "ratio", "C", "cost", "expected_gain", "sd_after", "why"]
    half = 1.0 if sc.decision else 0.5
    chosen = list(pre)
    seen0 = set(np.round(ratios_seen, 1))
    rows = []
    for i, p in enumerate(picks):
        j = p["index"]
        g = sc.gaussian(chosen)
        before = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], sc.drift_var(chosen)))[0])
        after_var = float(g["var_tAj"][j])
        dv = sc.drift_var(chosen + [j])
        after = float(np.atleast_1d(sc.crit_gauss(after_var, dv))[0])
        gain = half * (before - after) if p.get("gain_kind") != "reweighted" or i > 0 else float(p["gain"])
        chosen.append(j)
        r = frame.iloc[j]
        lr = round(math.log10(r["ratio"]), 1)
        first = p["novelty"] >= 0.15 and lr not in seen0
        seen0.add(lr)
        q = dict(p)
        q["replicate"] = int(p["replicate"])
        rows.append({"rank": i + 1, "N": float(r["N"]), "D": float(r["D"]), "ratio": float(r["ratio"]), "C": float(r["C"]), "cost": float(costs[j]),
                     "expected_gain": gain, "sd_after": math.sqrt(after_var + dv), "why": _why(q, r, first, float(sc.dist[j]), cmax)})
    return pd.DataFrame(rows, columns=cols)


#: How :func:`suggest` plans the remaining budget.
PLANNERS = ("allocation", "greedy")


class _Lin:
    """The linearised design criterion on the scorer's scale: variances of log target."""

    def __init__(self, lin: Any, sc: _Scorer, base: float) -> None:
        self.lin, self.sc = lin, sc
        self.scale = sc.var_t / base if base > 0 else 1.0

    def var_after(self, chosen: Sequence[int]) -> float:
        n = np.bincount(np.asarray(chosen, dtype=int), minlength=self.lin.M).astype(float)
        return self.scale * self.lin.value(n)[0]


def _allocation_plan(fit: Any, sc: _Scorer, frame: pd.DataFrame, costs: np.ndarray, selectable: np.ndarray, budget: float, counts: np.ndarray, pre: list[int],
                     target: Target, *, max_replicates: int, n_draws: int, seed: int) -> tuple[_Lin, dict[str, Any]]:
    """The whole-budget plan from the linearised allocation (see ``bayescale._design``)."""
    from ._design import Linearised, allocate, round_runs

    lin = Linearised(fit, frame, target, noise_var=sc.nv, extra_var=sc.dvar, n_draws=n_draws, seed=seed)
    base, _ = lin.value(np.zeros(lin.M))
    wrap = _Lin(lin, sc, base)
    if pre:  # pending runs will report: fold them into what is known
        lin.I0 = lin.I0 + np.einsum("smi,smj->sij", lin.G[:, pre, :], lin.G[:, pre, :])
    caps = np.where(selectable & np.isfinite(costs), np.maximum(max_replicates - counts, 0), 0).astype(float)
    safe = np.where(np.isfinite(costs), costs, 1.0)
    w, _, _ = allocate(lin, safe, caps, budget)
    n = round_runs(lin, w, safe, caps, budget)
    # The plan's runs, most expensive first (the batch takes them in this order).
    idx = [int(j) for j in np.argsort(-safe, kind="stable") for _ in range(int(n[j]))]
    picks, chosen, reps = [], list(pre), counts.copy()
    for j in idx:
        chosen.append(j)
        reps[j] += 1
        picks.append({"index": j, "replicate": int(reps[j]), "var_law_after": wrap.var_after(chosen), "drift_var_after": float(sc.drift_var(chosen))})
    var_law, drift = wrap.var_after(chosen), sc.drift_var(chosen)
    crit = float(np.atleast_1d(sc.crit_gauss(var_law, drift))[0])
    return wrap, {"picks": picks, "crit": crit, "spent": float(sum(safe[j] for j in idx)), "crit_is": None}


def _lin_rows(wrap: _Lin, sc: _Scorer, frame: pd.DataFrame, costs: np.ndarray, picks: Sequence[Mapping[str, Any]], pre: list[int], cmax: float) -> pd.DataFrame:
    """Runs in the given order with their linearised gain given the runs before them."""
    cols = ["rank", "N", "D", "ratio", "C", "cost", "expected_gain", "sd_after", "why"]
    half = 1.0 if sc.decision else 0.5
    chosen = list(pre)
    before_var, before_dv = wrap.var_after(chosen), sc.drift_var(chosen)
    rows = []
    for i, p in enumerate(picks):
        j = p["index"]
        chosen.append(j)
        after_var, dv = wrap.var_after(chosen), sc.drift_var(chosen)
        b = float(np.atleast_1d(sc.crit_gauss(before_var, before_dv))[0])
        a = float(np.atleast_1d(sc.crit_gauss(after_var, dv))[0])
        r = frame.iloc[j]
        parts = [f"{float(sc.dist[j]):.2g} decades of compute below the target"]
        if r["C"] > cmax:
            parts.insert(0, f"{math.log10(r['C'] / cmax):.2g} decades beyond the largest run: less extrapolation")
        if p["replicate"] > 1:
            parts.append(f"replicate {p['replicate']} (seed noise)")
        parts.append("planned jointly with the rest of the budget (linearised design)")
        rows.append({"rank": i + 1, "N": float(r["N"]), "D": float(r["D"]), "ratio": float(r["ratio"]), "C": float(r["C"]), "cost": float(costs[j]),
                     "expected_gain": half * (b - a), "sd_after": math.sqrt(after_var + dv), "why": "; ".join(parts)})
        before_var, before_dv = after_var, dv
    return pd.DataFrame(rows, columns=cols)


def suggest(
    fit: Any,
    target: Target | str | Mapping[str, Any],
    *,
    budget_flops: float,
    k: int = 4,
    candidates: Any = None,
    pending: Any = None,
    cost: Callable[[pd.DataFrame], np.ndarray] | None = None,
    threshold: float | None = None,
    max_replicates: int = 2,
    discrepancy: float | None = None,
    diversity: float = 0.1,
    refine: bool = True,
    n_refine: int = 8,
    n_outcomes: int = 64,
    max_draws: int | None = 4000,
    min_improvement: float = 0.01,
    tolerance: float | None = None,
    utility: Any = None,
    seed: int = 0,
    max_steps: int = 256,
    batch_fraction: float = 0.5,
    planner: str = "allocation",
    design_draws: int = 64,
) -> Suggestion:
    """The next ``k`` pilots to train, from a plan over the whole remaining budget.

    Parameters
    ----------
    fit : Fit
        The current posterior.
    target : Target, text or mapping
        ``"N=7e9,D=1.4e12"``, ``"C=1e21"`` (frontier), ``"nopt:C=1e21"``, ``..., threshold=2.1``;
        see :func:`parse_target`.
    budget_flops : float
        The budget left for pilots, in the units of ``cost`` (FLOPs by default).
    k : int
        How many runs to return: the plan's most expensive runs first, within ``batch_fraction``
        of the budget (the whole plan is in :attr:`Suggestion.plan`).
    candidates : DataFrame or list of mappings, optional
        The pool (columns N, D); default :func:`default_candidates`.
    pending : DataFrame or list of mappings, optional
        Runs launched but not finished: excluded from the pool and treated as already in the
        plan (their outcomes will come), so the batch does not repeat them.
    cost : callable, optional
        ``cost(frame) -> array``; default ``6 N D``.
    threshold : float, optional
        Make the target the decision P(loss <= threshold).
    max_replicates : int
        At most this many runs at one (N, D) point, counting runs done, pending and planned.
    discrepancy : float, optional
        Model-discrepancy sd per decade of compute between a candidate and the target (log
        loss). Default for the greedy planner: the spec's extrapolation-drift scale (root mean
        square of its ``per_decade`` prior draws) when it has one, else 0.01; for the
        allocation planner 0 (the target's own drift term charges for distance).
    diversity : float
        Bonus (fraction of gain) for a run at a tokens-per-parameter ratio at least 0.3
        decades from every ratio already run or planned.
    refine : bool
        Re-rank the best ``n_refine`` candidates at each greedy step by importance reweighting.
    max_draws : int, optional
        Use at most this many posterior draws.
    min_improvement : float
        The stopping rule advises stopping when the next pilot is expected to shrink the
        target's 90% interval by less than this fraction.
    tolerance : float, optional
        Stop when the 90% interval of log(target) is narrower than this (for a decision
        target: when P(loss <= threshold) is below it or above 1 - it).
    utility : Utility, optional
        With a decision target: value of reaching the threshold and price per FLOP; the
        stopping rule then compares the next pilot's expected value of sample information
        with its price.
    batch_fraction : float
        The batch (first ``k`` runs of the plan) may spend at most this fraction of the budget,
        so the loop learns from it before committing the rest (1 lets one run take it all).
    planner : {"allocation", "greedy"}
        How the whole remaining budget is planned. ``"allocation"`` (default; loss and frontier
        targets): the law is linearised around each of ``design_draws`` posterior draws and the
        budget is split over the candidates to minimise the target's expected posterior variance
        (a pseudo-Bayesian c-optimal design, solved jointly, then rounded to whole runs; see
        ``bayescale._design``). ``"greedy"``: one run at a time by the Gaussian EPIG with
        conditioning and importance reweighting, cost-weighted and unweighted, keeping the
        better plan (always used for ``nopt`` targets). In the simulation study the allocation
        needed far fewer FLOPs (BENCHMARKS.md, "Active selection").
    design_draws : int
        Posterior draws the allocation averages over.

    Returns
    -------
    Suggestion

    Examples
    --------
    >>> sug = suggest(fit, "N=7e9,D=1.4e12", budget_flops=1e19, k=4)   # doctest: +SKIP
    >>> print(sug.summary())                                          # doctest: +SKIP
    """
    target = parse_target(target, threshold)
    if not (isinstance(budget_flops, (int, float, np.floating)) and math.isfinite(float(budget_flops)) and budget_flops > 0):
        raise BayescaleError(f"budget_flops must be a finite number > 0, got {budget_flops!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise BayescaleError(f"k must be a positive integer, got {k!r}")
    if not (isinstance(batch_fraction, (int, float)) and 0 < batch_fraction <= 1):
        raise BayescaleError(f"batch_fraction must be in (0, 1], got {batch_fraction!r}")
    if isinstance(max_replicates, bool) or not isinstance(max_replicates, (int, np.integer)) or max_replicates < 1:
        raise BayescaleError(f"max_replicates must be a positive integer, got {max_replicates!r}")
    if planner not in PLANNERS:
        raise BayescaleError(f"planner must be one of {list(PLANNERS)}, got {planner!r}")
    budget = float(budget_flops)
    pool = _as_points(candidates, "candidates") if candidates is not None else default_candidates(fit, budget if cost is None else None)
    pend = _as_points(pending, "pending")
    runs = _as_points(fit.runs[["N", "D"]], "runs")
    # Exclude pending runs from the pool; add them as pre-chosen columns.
    if len(pend):
        pool = pool[~_same(pool, pend).any(axis=1)].reset_index(drop=True)
    frame = pd.concat([pool, pend], ignore_index=True)
    n_pool = len(pool)
    selectable = np.zeros(len(frame), dtype=bool)
    selectable[:n_pool] = True
    costs = np.full(len(frame), np.inf)
    if n_pool:
        costs[:n_pool] = _costs(pool, cost)
    counts = _same(frame, pd.concat([runs, pend], ignore_index=True)).sum(axis=1).astype(int)
    pre = list(range(n_pool, len(frame)))
    td = target_draws(fit, target)
    allocation = planner == "allocation" and target.kind != "nopt"  # nopt has no law gradient: greedy
    if discrepancy is None:
        # The allocation counts every run's information; a discrepancy at the drift scale
        # (0.08-0.1 sd for a pilot 4-5 decades below the target, against 0.01 of run noise)
        # would leave only the largest run worth buying. The target's drift still charges for
        # distance. See BENCHMARKS.md, "Active selection: ablations".
        discrepancy = 0.0 if allocation else default_discrepancy(fit)
    band = _band_from(td, float(fit.runs["C"].max()))
    sc = _Scorer(fit, td, frame, discrepancy=discrepancy, n_outcomes=n_outcomes, seed=seed, max_draws=max_draws)
    ratios_seen = np.log10(pd.concat([runs, pend])["ratio"].to_numpy(float)) if len(runs) + len(pend) else np.zeros(0)
    kw = {"max_replicates": int(max_replicates), "diversity": float(diversity), "ratios_seen": ratios_seen, "refine": bool(refine), "n_refine": int(n_refine),
          "max_steps": int(max_steps), "batch_k": int(k), "batch_budget": float(batch_fraction) * budget}
    cmax = float(fit.runs["C"].max())
    notes = []
    lin = None
    if allocation:
        # no single run above the batch's share, so the plan's biggest runs can go first
        small = selectable & (costs <= float(batch_fraction) * budget * (1 + 1e-9))
        lin, best = _allocation_plan(fit, sc, frame, costs, small, budget, counts, pre, target, max_replicates=int(max_replicates), n_draws=int(design_draws), seed=seed)
        plans = {"allocation": best}
        kind = "allocation"
    else:
        if planner == "allocation":
            notes.append("The allocation planner needs a loss or frontier target; nopt targets are planned greedily.")
        plans = {
            "cost-weighted": _greedy(sc, costs, selectable, budget, pre, counts, weighted=True, **kw),
            "unweighted": _greedy(sc, costs, selectable, budget, pre, counts, weighted=False, **kw),
        }
        kind = min(plans, key=lambda n: (plans[n]["crit"], n != "cost-weighted"))
        best = plans[kind]
    cols = ["rank", "N", "D", "ratio", "C", "cost", "expected_gain", "sd_after", "why"]
    rows = (lambda picks: _lin_rows(lin, sc, frame, costs, picks, pre, cmax)) if lin is not None else (lambda picks: _rows(sc, frame, costs, picks, pre, ratios_seen, cmax))
    plan = rows(best["picks"])
    # The batch: the plan's most expensive runs first, within batch_fraction of the budget. The whole
    # plan is the design; launching its big runs first spends the budget in few rounds and lets their
    # outcomes re-shape the rest (cheap runs picked first by gain per cost would be bought round after
    # round while the budget stays unspent).
    order = sorted(range(len(best["picks"])), key=lambda i: (-costs[best["picks"][i]["index"]], i))
    batch, used = [], 0.0
    cap = float(batch_fraction) * budget
    for i in order:
        c = float(costs[best["picks"][i]["index"]])
        if len(batch) < k and used + c <= cap * (1 + 1e-9):
            batch.append(i)
            used += c
    batch_picks = [best["picks"][i] for i in sorted(batch, key=lambda i: (-costs[best["picks"][i]["index"]], i))]
    table = rows(batch_picks) if batch_picks else pd.DataFrame(columns=cols)
    if len(table) < k:
        notes.append(f"Only {len(table)} runs fit the budget or add information (asked for {k}).")
    stopping = _stopping(sc, best, band, table, target, tolerance, min_improvement, utility, budget)
    alts = {n: float(math.exp(0.5 * p["crit"])) if not sc.decision else float(p["crit"]) for n, p in plans.items()}
    return Suggestion(table=table, plan=plan, plan_kind=kind, target=target, band=band, stopping=stopping, budget=budget, alternatives=alts, notes=tuple(notes))


def _stopping(sc: _Scorer, best: Mapping[str, Any], band: Mapping[str, float], table: pd.DataFrame, target: Target, tolerance: float | None, min_improvement: float, utility: Any, budget: float) -> Stopping:
    width_now = float(band["log_width90"])
    picks = best["picks"]
    if picks and len(table):
        w_next = 2 * Z90 * float(table["sd_after"].iloc[0])  # after the batch's first run
        last = picks[-1]
        w_plan = 2 * Z90 * math.sqrt(last["var_law_after"] + last["drift_var_after"])
        # scale the Gaussian widths to the band's measured width (non-Gaussian draws)
        w0 = 2 * Z90 * math.sqrt(sc.var_t + sc.drift_var([]))
        f = width_now / w0 if w0 > 0 else 1.0
        w_next, w_plan = w_next * f, w_plan * f
    else:
        w_next = w_plan = width_now
        picks = []
    next_cost = float(table["cost"].iloc[0]) if len(table) else float("nan")
    evsi = None
    if target.is_decision:
        p = band["p_below"]
        done = tolerance is not None and (p <= tolerance or p >= 1 - tolerance)
        if utility is not None and picks:
            evsi = _evsi(sc, int(best["picks"][0]["index"]) if not len(table) else _index_of(sc, table), utility, target)
            price = float(getattr(utility, "price_per_flop", 0.0)) * next_cost
            stop = done or evsi < price
            reason = "tolerance" if done else ("value" if evsi < price else "")
            text = (f"Stopping rule: the next pilot costs {next_cost:.3g} FLOPs (price {price:.4g}); its expected value of "
                    f"sample information for the decision is {evsi:.4g}. " + ("Stop: it is not worth its price." if stop else "Worth training."))
        else:
            stop = done or not picks
            reason = "tolerance" if done else ("budget" if not picks else "")
            text = (f"Stopping rule: P({target.label.split('P(', 1)[-1]} is {p:.3f} now"
                    + (f"; tolerance {tolerance:g}" if tolerance is not None else "") + ". "
                    + ("Stop." if stop else f"The next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left)."))
        return Stopping(stop=bool(stop), reason=reason, next_cost=next_cost, width_now=float(p), width_after_next=float("nan"), width_after_plan=float("nan"), evsi=evsi, text=text)
    shrink = 1.0 - w_next / width_now if width_now > 0 else 0.0
    if tolerance is not None and width_now <= tolerance:
        stop, reason = True, "tolerance"
    elif not picks:
        stop, reason = True, "budget"
    elif 1.0 - w_plan / width_now < min_improvement:
        stop, reason = True, "value"
    else:
        stop, reason = False, ""
    what = "log N_opt" if target.kind == "nopt" else "the target's log loss"
    if picks:
        text = (f"Stopping rule: the next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left, "
                f"{100 * next_cost / target.C:.2g}% of the target's compute) and is expected to shrink the 90% interval of "
                f"{what} from {width_now:.4f} to {w_next:.4f} ({100 * shrink:.1f}%); the whole plan to {w_plan:.4f}. ")
    else:
        text = "Stopping rule: no affordable pilot adds information. "
    if stop and reason == "tolerance":
        text += f"Stop: the interval is already narrower than the tolerance {tolerance:g}."
    elif stop and reason == "budget":
        text += "Stop: the budget is spent."
    elif stop:
        text += f"Stop: the whole remaining budget would shrink the interval by less than {100 * min_improvement:g}%, not worth its cost."
    else:
        text += "Worth training."
    return Stopping(stop=stop, reason=reason, next_cost=next_cost, width_now=width_now, width_after_next=w_next, width_after_plan=w_plan, evsi=None, text=text)


def _index_of(sc: _Scorer, table: pd.DataFrame) -> int:
    """Column of the scorer's frame holding the batch's first run."""
    r = table.iloc[0]
    d = np.abs(np.log(sc.frame["N"].to_numpy(float) / r["N"])) + np.abs(np.log(sc.frame["D"].to_numpy(float) / r["D"]))
    return int(np.argmin(d))


def _evsi(sc: _Scorer, j: int, utility: Any, target: Target) -> float:
    """Expected value of sample information of one run at candidate j for the decision
    "train the target run (value if loss <= threshold, minus its price) or not"."""
    from scipy.special import ndtr

    base = sc.base_logw([j])
    lw = base - base.max(axis=1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=1, keepdims=True)
    smooth = math.sqrt(sc.td.noise_var + sc.drift_var([j]))
    q = ndtr((sc.lthr - sc.t) / smooth)
    p_m = w @ q
    p0 = float(np.mean(ndtr((sc.lthr - sc.t) / math.sqrt(sc.td.noise_var + sc.drift_var([])))))
    value = float(utility.value)
    price = float(getattr(utility, "price_per_flop", 0.0)) * float(target.C)
    return float(np.mean(np.maximum(0.0, value * p_m - price)) - max(0.0, value * p0 - price))


# ------------------------------------------------------------------ simulated worlds


def simulated_trainer(params: Mapping[str, float], *, law: str = "chinchilla", sigma: float = 0.01, df: float | None = None, seed: int = 0,
                      loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
    """A trainer for :func:`run_loop` that returns losses from a known world instead of training.

    The loss of candidate ``(N, D)`` is the law's loss with ``params`` (or ``loss_fn(N, D)``)
    times ``exp(sigma * eps)``, ``eps`` standard normal (Student-t with ``df``), seeded by
    ``seed`` and the run's id so a resumed loop sees the same outcomes.

    Examples
    --------
    >>> train = simulated_trainer({"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36})
    >>> rows = train(pd.DataFrame({"run_id": ["a"], "N": [1e8], "D": [2e9]}))
    >>> round(rows[0]["loss"], 1)
    3.0
    """
    from .laws import get_law

    lw = get_law(law)

    def truth(N: np.ndarray, D: np.ndarray) -> np.ndarray:
        if loss_fn is not None:
            return np.asarray(loss_fn(N, D), dtype=float)
        values = {"N": N, "D": D, "C": 6.0 * N * D}
        logx = {i: np.log(values[lw.columns[i]]) for i in lw.inputs}
        return np.exp(np.asarray(lw.log_loss({p: float(params[p]) for p in lw.params}, logx, np), dtype=float))

    def train(candidates: pd.DataFrame) -> list[dict[str, Any]]:
        out = []
        for _, r in candidates.iterrows():
            rid = str(r.get("run_id", f"sim-{r['N']:.4g}-{r['D']:.4g}"))
            rng = np.random.default_rng([int(seed), zlib.crc32(rid.encode())])
            eps = rng.standard_t(df) if df is not None else rng.standard_normal()
            true = float(truth(np.asarray([float(r["N"])]), np.asarray([float(r["D"])]))[0])
            out.append({"run_id": rid, "N": float(r["N"]), "D": float(r["D"]), "loss": true * math.exp(sigma * eps), "source": f"simulated world (seed {seed})"})
        return out

    train.truth = truth  # type: ignore[attr-defined]
    return train


def pilot_trainer(runs_path: str | os.PathLike, *, arch: str | None = None, seed: int = 0, **options: Any) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
    """The default trainer: :func:`bayescale.runner.run_pilot` for each candidate, appending
    each finished run to the runs table itself (so a killed batch keeps what it finished)."""

    def train(candidates: pd.DataFrame) -> list[dict[str, Any]]:
        from .runner import run_pilot  # torch is imported only here

        rows = []
        for _, r in candidates.iterrows():
            kw = dict(options)
            if arch is not None:
                kw["arch"] = arch
            # one seed per candidate, the same when a killed loop trains it again
            run_seed = int(seed) + zlib.crc32(str(r.get("run_id", "")).encode()) % 100_000
            row = run_pilot(n_params=float(r["N"]), tokens=float(r["D"]), seed=run_seed, append=str(runs_path), **kw)
            rows.append(dict(row))
        return rows

    return train


# ------------------------------------------------------------------ the closed loop


@dataclass(frozen=True)
class LoopPlan:
    """What :func:`run_loop` does. Load one from TOML with :func:`load_plan`.

    Attributes
    ----------
    runs : path
        The runs table (CSV); new runs are appended to it. The loop's state is written
        beside it (``<runs>.loop.json``, and the latest fit ``<runs>.loop-fit.nc``).
    spec : str or path
        The model spec.
    target : Target
    budget : float
        Total FLOPs (or cost units) the loop may spend on new pilots.
    tolerance : float, optional
        Stop when the 90% interval of log(target) is narrower (decision: P within tol of 0 or 1).
    k : int
        Runs per round.
    method : str
        ``"laplace"`` (seconds), ``"psis"`` (Laplace corrected by importance sampling) or ``"nuts"`` for the refits; ``fit_options`` go to :func:`bayescale.fit`.
    trainer : mapping
        Settings for the pilot runner (e.g. ``arch``, ``seed``).
    simulate : mapping, optional
        A known world instead of training (law parameters, ``sigma``, ``seed``; see
        :func:`simulated_trainer`), for demos and studies.
    max_rounds : int
        At most this many rounds in all (a resumed loop counts the rounds already done).
    suggest_options : mapping
        Passed to :func:`suggest` (``discrepancy``, ``max_replicates``, ``candidates`` ...).
    """

    runs: Path
    spec: Any
    target: Target
    budget: float
    tolerance: float | None = None
    k: int = 2
    method: str = "laplace"
    seed: int = 0
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    trainer: Mapping[str, Any] = field(default_factory=dict)
    simulate: Mapping[str, Any] | None = None
    max_rounds: int = 50
    suggest_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.runs.with_name(self.runs.name + ".loop.json")

    @property
    def fit_path(self) -> Path:
        return self.runs.with_name(self.runs.name + ".loop-fit.nc")


_PLAN_KEYS = ("runs", "spec", "target", "threshold", "budget", "budget_flops", "tolerance", "k", "method", "seed", "fit", "trainer", "simulate", "max_rounds", "suggest")


def load_plan(source: str | os.PathLike | Mapping[str, Any] | LoopPlan) -> LoopPlan:
    """A :class:`LoopPlan` from a TOML file or a mapping.

    Example ``plan.toml``::

        runs = "runs.csv"                 # relative to the plan file
        spec = "chinchilla"
        target = "N=7e9,D=1.4e12"         # or "nopt:C=1e21", "C=1e21", "...,threshold=2.1"
        budget = 1e19                     # FLOPs for new pilots
        tolerance = 0.02                  # stop when the 90% interval of log(target) is this narrow
        k = 2
        method = "laplace"
        [trainer]                         # bayescale.runner.run_pilot settings
        arch = "llama"
        seed = 0
        # [simulate]                      # or a known world, for demos
        # E = 1.8; A = 480; B = 2000; alpha = 0.35; beta = 0.36; sigma = 0.01; seed = 0
    """
    if isinstance(source, LoopPlan):
        return source
    base = Path(".")
    if isinstance(source, Mapping):
        d = dict(source)
    else:
        import tomllib

        path = Path(source)
        if not path.is_file():
            raise BayescaleError(f"plan file {str(path)!r} not found")
        try:
            d = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise BayescaleError(f"plan {path}: not valid TOML ({e})") from None
        base = path.resolve().parent
    unknown = sorted(set(d) - set(_PLAN_KEYS))
    if unknown:
        raise BayescaleError(f"plan: unknown keys {unknown}; allowed {list(_PLAN_KEYS)}")
    for key in ("runs", "spec", "target"):
        if key not in d:
            raise BayescaleError(f"plan: missing {key!r}")
    budget = d.get("budget", d.get("budget_flops"))
    if budget is None:
        raise BayescaleError("plan: missing 'budget' (FLOPs for new pilots)")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise BayescaleError(f"plan: budget must be a number, got {budget!r}") from None
    if not (math.isfinite(budget) and budget > 0):
        raise BayescaleError(f"plan: budget must be finite and > 0, got {budget!r}")
    runs = Path(d["runs"])
    if not runs.is_absolute():
        runs = base / runs
    spec = d["spec"]
    if isinstance(spec, str) and not Path(spec).is_absolute() and (base / spec).is_file():
        spec = str(base / spec)
    method = str(d.get("method", "laplace"))
    if method not in ("laplace", "psis", "nuts"):
        raise BayescaleError(f"plan: method must be 'laplace', 'psis' or 'nuts', got {method!r}")
    tol = d.get("tolerance")
    k = d.get("k", 2)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BayescaleError(f"plan: k must be a positive integer, got {k!r}")
    return LoopPlan(
        runs=runs,
        spec=spec,
        target=parse_target(d["target"], d.get("threshold")),
        budget=budget,
        tolerance=None if tol is None else float(tol),
        k=k,
        method=method,
        seed=int(d.get("seed", 0)),
        fit_options=dict(d.get("fit", {})),
        trainer=dict(d.get("trainer", {})),
        simulate=dict(d["simulate"]) if d.get("simulate") is not None else None,
        max_rounds=int(d.get("max_rounds", 50)),
        suggest_options=dict(d.get("suggest", {})),
    )


@dataclass(frozen=True)
class LoopResult:
    """What the loop did: one row per round in :attr:`history`, why it stopped, and the last fit."""

    history: pd.DataFrame
    reason: str
    fit: Any = field(repr=False)
    spent: float
    state_path: Path
    surprises: tuple[str, ...] = ()

    def summary(self) -> str:
        h = self.history
        lines = [f"{len(h)} rounds, spent {self.spent:.3g}; stopped: {self.reason}"]
        for _, r in h.iterrows():
            lines.append(f"  round {int(r['round'])}: {int(r['n_runs'])} runs, spent {r['spent']:.3g}, target median {r['median']:.4g} "
                         f"(90% {r['lo90']:.4g}-{r['hi90']:.4g}, width of log {r['log_width90']:.4f})")
        if self.surprises:
            lines.append(f"surprising new runs (outside their 90% predictive band): {list(self.surprises)}")
        return "\n".join(lines)


def _write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, default=lambda x: x.item() if hasattr(x, "item") else str(x))
    atomic_write_bytes(path, text.encode("utf-8"))


def _match(pending: pd.DataFrame, new: pd.DataFrame) -> np.ndarray:
    """Which pending candidates the new rows fulfil (nearest in log N, log D within a factor 1.5)."""
    done = np.zeros(len(pending), dtype=bool)
    if len(pending) == 0 or len(new) == 0:
        return done
    lp = np.log(pending[["N", "D"]].to_numpy(float))
    for ln in np.log(new[["N", "D"]].to_numpy(float)):
        d = np.abs(lp - ln[None, :]).max(axis=1)
        d[done] = np.inf
        i = int(np.argmin(d))
        if d[i] < math.log(1.5):
            done[i] = True
    return done


def run_loop(plan: LoopPlan | str | os.PathLike | Mapping[str, Any], *, train: Callable[[pd.DataFrame], Any] | None = None,
             log: Callable[[str], None] | None = None, max_rounds: int | None = None) -> LoopResult:
    """Suggest, train, check the new runs, refit, re-plan, until the budget is spent or the
    target's 90% interval is narrower than the tolerance. Resumable.

    The state (spent budget, the batch in flight, the history) is written atomically to
    ``<runs>.loop.json`` beside the runs table after each step, and the latest fit to
    ``<runs>.loop-fit.nc``. A killed loop, run again with the same plan, trains only the
    pending candidates the runs table does not have yet, then goes on.

    Parameters
    ----------
    plan : LoopPlan, TOML path or mapping
        See :func:`load_plan`.
    train : callable, optional
        ``train(candidates) -> rows``: ``candidates`` is a DataFrame (``run_id, N, D, C``);
        it returns the finished runs (mappings or a DataFrame with at least N, D or C, and
        loss). Rows it already appended to the runs table are not appended twice. Default:
        the plan's ``simulate`` world, else :func:`pilot_trainer` (the pilot runner).
    log : callable, optional
        Receives one line per step (e.g. ``print``).
    max_rounds : int, optional
        Override the plan's limit on rounds (``max_rounds=1`` runs one round and returns: a
        later call resumes).

    Returns
    -------
    LoopResult

    Examples
    --------
    >>> res = run_loop("plan.toml", log=print)   # doctest: +SKIP
    >>> print(res.summary())                     # doctest: +SKIP
    """
    from .checks import check
    from .data import append_run, load_runs
    from .inference import Fit
    from .inference import fit as do_fit
    from .spec import load_spec

    plan = load_plan(plan)
    say = log or (lambda s: None)
    spec = load_spec(plan.spec)
    if train is None:
        if plan.simulate is not None:
            sim = dict(plan.simulate)
            sigma = float(sim.pop("sigma", 0.01))
            sseed = int(sim.pop("seed", 0))
            df = sim.pop("df", None)
            train = simulated_trainer(sim, law=spec.law.name, sigma=sigma, df=None if df is None else float(df), seed=sseed)
        else:
            tr = dict(plan.trainer)
            train = pilot_trainer(plan.runs, arch=tr.pop("arch", None), seed=int(tr.pop("seed", plan.seed)), **tr)
    if not plan.runs.is_file():
        raise BayescaleError(f"runs table {str(plan.runs)!r} not found: the loop starts from existing pilot runs")
    state_path = plan.state_path
    key = {"target": plan.target.to_dict(), "budget": plan.budget, "spec": str(plan.spec)}
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("key") != json.loads(json.dumps(key)):
            raise BayescaleError(f"{state_path} belongs to a loop with another target, budget or spec ({state.get('key')}); "
                                 "delete it to start afresh")
        say(f"resuming from {state_path} (round {state['round']}, spent {state['spent']:.3g})")
    else:
        state = {"key": key, "round": 0, "spent": 0.0, "pending": [], "known_ids": None, "history": [], "surprises": [], "done": None}
    fit_kw = {"method": plan.method, "seed": plan.seed, **dict(plan.fit_options)}
    sopts = dict(plan.suggest_options)
    rounds_left = math.inf if max_rounds is None else int(max_rounds)

    def save() -> None:
        _write_json_atomic(state_path, state)

    def refit(table: pd.DataFrame) -> Any:
        f = do_fit(spec, table, **fit_kw)
        f.save(plan.fit_path)
        return f

    cost_fn = sopts.get("cost")
    current = None
    while True:
        runs = load_runs(plan.runs)
        ids = set(runs["run_id"].astype(str))
        if state["pending"]:
            pend = pd.DataFrame(state["pending"])
            known = set(state["known_ids"] or [])
            new = runs[~runs["run_id"].astype(str).isin(known)]
            done = _match(pend, new)
            todo = pend[~done & ~pend["run_id"].astype(str).isin(ids)]
            if len(todo):
                say(f"round {state['round']}: training {len(todo)} run(s): " + ", ".join(f"N={r.N:.3g} D={r.D:.3g}" for r in todo.itertuples()))
                rows = train(todo.reset_index(drop=True))
                rows = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
                runs = load_runs(plan.runs)
                ids = set(runs["run_id"].astype(str))
                if len(rows):
                    if "run_id" in rows:
                        rows = rows[~rows["run_id"].astype(str).isin(ids)]
                    if len(rows):
                        append_run(plan.runs, rows)
                runs = load_runs(plan.runs)
            new = runs[~runs["run_id"].astype(str).isin(known)].reset_index(drop=True)
            # Check the new runs against the fit they were planned with, then refit with them.
            if len(new):
                before = Fit.load(plan.fit_path, spec=spec, check_spec=False) if plan.fit_path.is_file() else do_fit(spec, runs[runs["run_id"].astype(str).isin(known)], **fit_kw)
                chk = check(before, new, seed=plan.seed)
                sur = chk.table.loc[chk.table["surprise"], "run_id"].astype(str).tolist()
                if sur:
                    say(f"round {state['round']}: surprising runs (outside the 90% predictive band): {sur}")
                state["surprises"] = list(dict.fromkeys(state["surprises"] + sur))
                spent_new = float(np.sum(_costs(new, cost_fn)))
                state["spent"] = float(state["spent"]) + spent_new
            state["pending"] = []
            state["known_ids"] = None
            save()
            current = None
            ids = set(runs["run_id"].astype(str))
        if current is None:
            current = refit(runs)
        band = target_band(current, plan.target)
        hist = {"round": state["round"], "n_runs": len(runs), "spent": state["spent"], **{k: band[k] for k in ("median", "lo90", "hi90", "log_width90", "sd_log", "lo90_law", "hi90_law")}}
        if "p_below" in band:
            hist["p_below"] = band["p_below"]
        if not state["history"] or state["history"][-1]["round"] != state["round"]:
            state["history"].append(hist)
        say(f"round {state['round']}: {len(runs)} runs, spent {state['spent']:.3g} of {plan.budget:.3g}; {plan.target.label}: "
            + (f"P = {band['p_below']:.3f}" if "p_below" in band else f"median {band['median']:.4g} (90% {band['lo90']:.4g}-{band['hi90']:.4g})"))
        left = plan.budget - float(state["spent"])
        reason = None
        if plan.tolerance is not None:
            if plan.target.is_decision:
                if band["p_below"] <= plan.tolerance or band["p_below"] >= 1 - plan.tolerance:
                    reason = f"P(loss <= threshold) = {band['p_below']:.3f} is within the tolerance {plan.tolerance:g} of certain"
            elif band["log_width90"] <= plan.tolerance:
                reason = f"the 90% interval of log(target) ({band['log_width90']:.4f}) is narrower than the tolerance {plan.tolerance:g}"
        if reason is None and left <= 0:
            reason = "budget spent"
        if reason is None and int(state["round"]) >= plan.max_rounds:
            reason = f"max_rounds ({plan.max_rounds}) reached"
        if reason is None and rounds_left <= 0:
            state["done"] = None
            save()
            return LoopResult(history=pd.DataFrame(state["history"]), reason="paused (max_rounds)", fit=current, spent=float(state["spent"]), state_path=state_path, surprises=tuple(state["surprises"]))
        sug = None
        if reason is None:
            sug = suggest(current, plan.target, budget_flops=left, k=plan.k, seed=plan.seed + int(state["round"]), tolerance=plan.tolerance, **sopts)
            if not len(sug.table):
                reason = f"no affordable pilot adds information (budget left {left:.3g})"
            elif sug.stopping.stop and sug.stopping.reason == "value":
                reason = "stopping rule: " + sug.stopping.text
        if reason is not None:
            state["done"] = reason
            save()
            say(f"stop: {reason}")
            return LoopResult(history=pd.DataFrame(state["history"]), reason=reason, fit=current, spent=float(state["spent"]), state_path=state_path, surprises=tuple(state["surprises"]))
        state["round"] = int(state["round"]) + 1
        batch = sug.table
        state["pending"] = [{"run_id": f"loop-r{state['round']:03d}-{i}", "N": float(r.N), "D": float(r.D), "C": float(r.C), "cost": float(r.cost)} for i, r in enumerate(batch.itertuples())]
        state["known_ids"] = sorted(ids)
        state["done"] = None
        save()
        rounds_left -= 1


__all__ = [
    "LoopPlan",
    "LoopResult",
    "Stopping",
    "Suggestion",
    "Target",
    "TargetDraws",
    "candidate_grid",
    "default_candidates",
    "default_discrepancy",
    "flops_cost",
    "load_plan",
    "parse_target",
    "pilot_trainer",
    "run_loop",
    "score",
    "simulated_trainer",
    "suggest",
    "target_band",
    "target_draws",
]

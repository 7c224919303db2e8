"""How wrong the law gets away from the runs, learned from the runs themselves.

A law fitted to small runs is exact at none of them and drifts from the truth as it
extrapolates. The fit alone cannot see that drift (every run lies at distance 0 from itself),
so bayescale *re-enacts* extrapolation inside the runs: **leave-future-out splits** fit the law
on the runs below a compute cut and score it on the runs above (never on the user's targets).
Three things are learned from the held-out residuals:

* the **drift scale** ``tau`` (log loss per decade of distance from the runs, in
  ``(log10 N, log10 D)``): the model of the truth's departure is ``tau * z * distance`` with
  ``z ~ Normal(0, 1)`` shared by all points of one extrapolation, so a law that bends away on
  one side shows up as a large ``tau``. Each split's residuals give one generalised-least-squares
  slope ``b_k`` on distance with standard error ``s_k``, and ``b_k ~ Normal(0, tau^2 + s_k^2)``;
  the spec's ``extrapolation.per_decade`` is the hyperprior, updated on a grid;
* the **leave-future-out predictive density** of each held-out run, from which
  :mod:`bayescale.averaging` weighs several laws (stacking);
* an optional **split-conformal** width factor (:func:`conformal_factor`).

Each split's parameter spread comes from the posterior the final fit uses: its Laplace approximation for
``method="laplace"``, Laplace draws corrected by importance sampling for NUTS and PSIS (a drift learned
against a wider spread than the fit's own is too small for it).

Splits are masks over one table (padded to its table-size bucket), fitted by two vectorised
Newton runs, one over every split and start and one restarting each split from the others' modes
(:func:`bayescale._engine.map_units` with ``solver="newton"``): compiled once per law, bucket
and number of splits, whatever the number of runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import special, stats

from . import likelihoods
from ._engine import map_units, padded, psis
from .data import law_inputs
from .errors import BayescaleError
from .model import distance_from_runs, posterior
from .priors import Prior
from .spec import ModelSpec

#: Fractions of the runs (ordered by compute) each split trains on.
CUTS = (0.4, 0.5, 0.6, 0.7, 0.8)
#: Draws from each split's posterior (Laplace, or importance-corrected) that give its predictive location and spread.
PREDICTIVE_DRAWS = 256
#: Fit methods whose splits are scored with importance-corrected draws (:func:`holdouts`).
EXACT_METHODS = ("nuts", "psis")
#: The hyperprior of the gap's scale (:func:`learn_gap`) unless the spec states its own
#: (``extrapolation.gap_per_decade``). Log-uniform: the order of magnitude is unknown, and most
#: recipe pairs bend alike (runs a law generated show no gap) while some bend apart by 0.01-0.075
#: per decade (Porian et al.'s settings): a scale-free prior lets the splits place it, where a
#: half-normal pulled both towards its own scale (BENCHMARKS.md, "The gap's hyperprior").
GAP_HYPERPRIOR = Prior("LogUniform", {"low": 1e-4, "high": 0.1})
#: The prior probability that the recipes drift alike: a gap of exactly 0 beside the hyperprior's slab
#: (a spike and slab), unless the spec states its own (``extrapolation.gap_alike``). "No gap" is a
#: hypothesis of its own, not the slab's lowest decade: under the slab alone, runs that show no gap
#: still left half the gap's mass above 0.005 per decade, which two decades beyond the runs widened
#: the multiplier's interval past what law-true worlds need (100x: 0.97-0.98 coverage against 0.94
#: with the spike), while pairs whose splits show a gap reject the spike (BENCHMARKS.md, "No gap as a
#: hypothesis of its own").
GAP_ALIKE = 0.5
#: The drift-scale grid (log loss per decade): 0 to 0.5 is 0 to 65% in loss per decade.
TAU_GRID = np.linspace(0.0, 0.5, 2001)


@dataclass(frozen=True)
class Holdout:
    """The runs one split held out, and what the law fitted below the cut said of them.

    ``residual``: observed minus predicted log loss (predictive median); ``param_sd``: the
    spread of the law's prediction from its parameter uncertainty; ``noise_sd``: the run-to-run
    noise sd (on log loss); ``distance``: decades from the split's training runs.
    """

    cut: float
    index: np.ndarray
    residual: np.ndarray
    param_sd: np.ndarray
    noise_sd: float
    df: float
    distance: np.ndarray

    def subset(self, keep: np.ndarray) -> Holdout:
        """The same split, scored on the held-out runs ``keep`` (a boolean mask over them) only."""
        return Holdout(
            self.cut,
            self.index[keep],
            self.residual[keep],
            self.param_sd[keep],
            self.noise_sd,
            self.df,
            self.distance[keep],
        )

    def scale(self, tau: float | np.ndarray = 0.0) -> np.ndarray:
        """Predictive sd of each held-out log loss with drift scale ``tau``."""
        return np.sqrt(self.param_sd**2 + self.noise_sd**2 + (np.asarray(tau) * self.distance) ** 2)


@dataclass(frozen=True)
class DriftScale:
    """The learned drift scale: a distribution on :data:`TAU_GRID`, with the evidence behind it."""

    grid: np.ndarray
    probs: np.ndarray
    splits: int
    slopes: tuple[float, ...] = field(default=())
    #: The prior probability of a scale of exactly 0 (a learned gap's spike, :func:`learn_gap`); None
    #: for a scale without one (the law's own drift).
    spike: float | None = None

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Draws of ``tau`` (uniform within each grid cell, so the draws are continuous; exactly 0 for
        the draws of a spike at 0)."""
        idx = rng.choice(len(self.grid), size=shape, p=self.probs)
        step = float(self.grid[1] - self.grid[0])
        tau = np.clip(self.grid[idx] + step * (rng.random(shape) - 0.5), 0.0, None)
        return np.where(idx == 0, 0.0, tau) if self.spike else tau

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        cdf = np.cumsum(self.probs)
        return np.asarray(self.grid[np.minimum(np.searchsorted(cdf, q), len(self.grid) - 1)])

    @property
    def p_zero(self) -> float:
        """The posterior probability of a scale of exactly 0: a learned gap's spike (0 without one)."""
        return float(self.probs[0]) if self.spike else 0.0

    def to_dict(self) -> dict[str, float]:
        """Median, 5% and 95% quantiles and splits; with a spike, also its prior (``alike_prior``) and
        posterior (``p_zero``) probability."""
        lo, med, hi = (float(v) for v in self.quantile([0.05, 0.5, 0.95]))
        out = {"median": med, "q05": lo, "q95": hi, "splits": self.splits}
        if self.spike is not None:
            out |= {"p_zero": self.p_zero, "alike_prior": float(self.spike)}
        return out

    def words(self) -> str:
        return drift_words(self.to_dict())


def drift_words(d: Mapping[str, float]) -> str:
    """A learned drift scale (:meth:`DriftScale.to_dict`, as a fit keeps it) in words."""
    if not d["splits"]:
        return (
            f"drift scale from its prior alone (median {d['median']:.3f} log loss per decade): too few runs for "
            "leave-future-out splits"
        )
    return (
        f"drift scale learned from {int(d['splits'])} leave-future-out splits: median {d['median']:.3f} log loss per "
        f"decade of distance from the runs (90% {d['q05']:.3f}-{d['q95']:.3f})"
    )


# ------------------------------------------------------------------ splits


def _order(spec: ModelSpec, table: pd.DataFrame) -> np.ndarray:
    """Each run's size for the splits: log compute, or the sum of the law's log inputs without C."""
    if "C" in table and np.all(np.isfinite(table["C"].to_numpy(float))):
        return np.log(table["C"].to_numpy(float))
    return np.sum(list(law_inputs(spec, table).values()), axis=0)


def split_masks(
    specs: Sequence[ModelSpec], table: pd.DataFrame, cuts: Sequence[float] = CUTS
) -> list[tuple[float, np.ndarray]]:
    """``(cut, training mask)`` of each usable split: the runs below the ``cut`` quantile of compute.

    A split is usable when every law can be fitted on its training runs (two more than the law's
    parameters and noise terms, and at least 6) and at least 2 runs lie above it; duplicates
    (ties in compute) are dropped.
    """
    order = _order(specs[0], table)
    need = max(6, *(len(s.law.params) + 3 for s in specs))
    out, seen = [], set()
    for cut in cuts:
        train = order <= np.quantile(order, cut)
        key = train.tobytes()
        if train.sum() < need or (~train).sum() < 2 or key in seen:
            continue
        seen.add(key)
        out.append((float(cut), train))
    return out


def holdouts(
    spec: ModelSpec,
    table: pd.DataFrame,
    splits: Sequence[tuple[float, np.ndarray]],
    rng: np.random.Generator,
    method: str = "laplace",
) -> list[Holdout]:
    """Fit ``spec`` below each split's cut (MAP + Laplace, all splits at once) and score the runs above.

    The splits stand in for the final fit, so they use its posterior: for ``method`` ``"nuts"`` or
    ``"psis"`` the Laplace draws are corrected by importance sampling (:func:`bayescale._engine.psis`).
    A Gaussian in the unconstrained space spreads along the tangent of a curved ridge: on Porian's
    isoFLOP sweeps it made the bending law's predictions 1.5 decades out three times as wide as
    the posterior's, so a drift learned against it was too small for a fit sampled by NUTS."""
    if not splits:
        return []
    post = posterior(spec, np.float64)
    logx = law_inputs(spec, table, np.float64)
    y = np.log(table["loss"].to_numpy(float))
    U = len(splits)
    # Padded to the table-size bucket (the padding's mask is 0 in every split): one compilation
    # per law and bucket, whatever the number of runs.
    # In float64 on the CPU, as every MAP: the splits' modes decide the weights and the drift.
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        plogx, py, pad_mask, n = padded(logx, y, np.float64)
        masks = np.zeros((U, py.size))
        masks[:, :n] = np.stack([m for _, m in splits])
        masks *= np.asarray(pad_mask)[None, :]
        data = (
            {k: jnp.broadcast_to(v, (U, v.size)) for k, v in plogx.items()},
            jnp.broadcast_to(py, (U, py.size)),
            masks,
        )
        modes, covs = map_units(post, data, rng, n_starts=3, max_sd=5.0, gtol=1e-6, solver="newton")
        flats = _split_draws(post, data, np.asarray(modes), np.asarray(covs), rng, method in EXACT_METHODS)
    out = []
    for (cut, train), mode, flat in zip(splits, modes, flats):
        test = np.flatnonzero(~train)
        values = post.constrain_many(jnp.asarray(flat[None]))
        theta = {p: np.asarray(values[p])[0][:, None] for p in spec.law.params}
        log_mu = np.asarray(spec.law.log_loss(theta, {k: v[test][None, :] for k, v in logx.items()}, np))
        lo, med, hi = np.quantile(log_mu, [0.16, 0.5, 0.84], axis=0)
        at_mode = {k: float(v) for k, v in post.constrain_one(jnp.asarray(mode)).items()}
        noise = {k: at_mode[k] for k in at_mode if k not in spec.law.params}
        var = float(np.asarray(likelihoods.predictive_variance(spec.likelihood, noise)))
        df = _degrees_of_freedom(spec, noise)
        out.append(
            Holdout(
                cut=cut,
                index=test,
                residual=y[test] - med,
                param_sd=np.maximum((hi - lo) / 2.0, 0.0),
                noise_sd=math.sqrt(var),
                df=df,
                distance=distance_from_runs(spec, table[train], table.iloc[test]),
            )
        )
    return out


def _split_draws(
    post: Any, data: tuple, modes: np.ndarray, covs: np.ndarray, rng: np.random.Generator, exact: bool
) -> np.ndarray:
    """:data:`PREDICTIVE_DRAWS` unconstrained draws per split (U, n, dim): from each split's Laplace
    approximation, or (``exact``) importance-corrected towards its posterior."""
    sym = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    if not exact:
        return np.stack(
            [rng.multivariate_normal(m, c, size=PREDICTIVE_DRAWS, method="eigh") for m, c in zip(modes, sym)]
        )
    chols = np.linalg.cholesky(sym + 1e-12 * np.eye(modes.shape[1]))
    flats, _ = psis(post, data, modes, chols, rng, PREDICTIVE_DRAWS, units=True)
    return flats


def _degrees_of_freedom(spec: ModelSpec, noise: dict[str, float]) -> float:
    """The Student-t likelihood's df (fitted or fixed); infinite (normal) for other families."""
    if spec.likelihood.family != "StudentT":
        return math.inf
    df = noise.get("df", spec.likelihood.value("df"))
    return float(df) if isinstance(df, (int, float)) else math.inf


# ------------------------------------------------------------ drift scale


def _slope(h: Holdout) -> tuple[float, float]:
    """Generalised-least-squares slope of the residuals on distance (through 0), and its sd.

    The residuals are weighted as independent. Their parameter error is in fact shared (an
    error in the fitted exponents moves every held-out run, most the farthest), so this reads
    part of it as drift: on runs a law generated, 24-run ladders learn 0.02-0.03 per decade,
    where the full covariance learns 0.005-0.02. The full covariance was measured and not kept:
    on the public-data table it lowered the 50% coverage and the worst row's (BENCHMARKS.md).
    """
    w = 1.0 / h.scale(0.0) ** 2
    info = float(np.sum(w * h.distance**2))
    if info <= 0:
        return 0.0, math.inf
    return float(np.sum(w * h.distance * h.residual) / info), 1.0 / math.sqrt(info)


def _hyperprior_log(hyperprior: Prior) -> np.ndarray:
    """The drift-scale hyperprior's log density on :data:`TAU_GRID`."""
    dist = hyperprior.to_numpyro(validate_args=False)
    grid = jnp.asarray(TAU_GRID)
    inside = np.asarray(dist.support(grid), dtype=bool)  # e.g. a log-uniform's excludes 0
    with np.errstate(divide="ignore"):
        log_p = np.asarray(dist.log_prob(jnp.where(inside, grid, grid[np.argmax(inside)])), dtype=float)
    log_p = np.where(inside & np.isfinite(log_p), log_p, -np.inf)
    if not np.isfinite(log_p).any():
        raise BayescaleError(f"extrapolation: {hyperprior} puts no mass on 0-{TAU_GRID[-1]} log loss per decade")
    return log_p


def _spike_and_slab(slab: np.ndarray, alike: float) -> np.ndarray:
    """Log prior on :data:`TAU_GRID` with mass ``alike`` at exactly 0 (its first point) and the rest as
    ``slab`` (a log density on the grid), whatever mass the slab itself puts at 0."""
    if not 0 <= alike < 1:
        raise BayescaleError(f"gap_alike must be a probability from 0 up to (not including) 1, got {alike!r}")
    slab = np.where(np.arange(slab.size) == 0, -np.inf, slab)  # 0 is the spike's alone
    if alike == 0:
        return slab
    top = float(np.max(slab))
    mass = np.exp(slab - top)
    mass = (1 - alike) * mass / mass.sum()
    mass[0] = alike
    with np.errstate(divide="ignore"):
        return np.log(mass)


def _on_grid(log_p: np.ndarray, splits: int, slopes: Sequence[float] = (), spike: float | None = None) -> DriftScale:
    probs = np.exp(log_p - log_p.max())
    return DriftScale(grid=TAU_GRID, probs=probs / probs.sum(), splits=splits, slopes=tuple(slopes), spike=spike)


def learn_drift(splits: Sequence[Holdout], hyperprior: Prior) -> DriftScale:
    """The drift scale's distribution given the splits: ``hyperprior(tau) * prod_k N(b_k; 0, tau^2 + s_k^2)``."""
    log_p = _hyperprior_log(hyperprior)
    slopes = []
    for h in splits:
        b, s = _slope(h)
        if not np.isfinite(s):
            continue
        slopes.append(b)
        log_p = log_p + stats.norm.logpdf(b, scale=np.sqrt(TAU_GRID**2 + s**2))
    return _on_grid(log_p, len(slopes), slopes)


# ------------------------------------------------- drift between groups


def group_slopes(splits: Sequence[Holdout], groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per split, each group's residual slope on distance and its sd (``_slope`` on the group's
    held-out runs; ``groups`` labels every run of the table). Splits where fewer than two groups
    have two or more held-out runs say nothing about how groups differ and are left out."""
    groups = np.asarray(groups)
    out = []
    for h in splits:
        pairs = []
        for g in np.unique(groups[h.index]):
            keep = groups[h.index] == g
            if keep.sum() >= 2:
                b, s = _slope(h.subset(keep))
                if np.isfinite(s):
                    pairs.append((b, s))
        if len(pairs) >= 2:
            out.append((np.array([b for b, _ in pairs]), np.array([s for _, s in pairs])))
    return out


def learn_gap(
    slopes: Sequence[tuple[np.ndarray, np.ndarray]], hyperprior: Prior, alike: float = GAP_ALIKE
) -> DriftScale:
    """The scale of the drift that is each group's own, on top of one drift all groups share.

    In split ``k`` group ``g``'s slope is ``b_kg = c_k + u_kg + e_kg``: ``c_k`` the shared drift
    (any value: a flat prior integrates it out, so only the slopes' differences count),
    ``u_kg ~ Normal(0, tau^2)`` the group's own drift and ``e_kg ~ Normal(0, s_kg^2)`` the
    slope's error. The likelihood of ``tau`` is the restricted (contrast) likelihood of the
    slopes. The prior of ``tau`` is a spike and slab: ``tau = 0`` (the groups drift alike) with
    probability ``alike``, else ``hyperprior`` (the spec's ``gap_per_decade``); the posterior mass
    at 0 is :attr:`DriftScale.p_zero`.
    """
    log_p = _spike_and_slab(_hyperprior_log(hyperprior), alike)
    for b, s in slopes:
        var = TAU_GRID[:, None] ** 2 + np.asarray(s)[None, :] ** 2  # (grid, group)
        w = 1.0 / var
        mean = (w * b).sum(axis=1) / w.sum(axis=1)
        resid = (w * (b[None, :] - mean[:, None]) ** 2).sum(axis=1)
        log_p = log_p - 0.5 * (np.log(var).sum(axis=1) + np.log(w.sum(axis=1)) + resid)
    return _on_grid(log_p, len(slopes), spike=alike)


# --------------------------------------------------- predictive densities


def log_density(splits: Sequence[Holdout], drift: DriftScale | None) -> np.ndarray:
    """Leave-future-out log predictive density of every held-out run of every split (concatenated).

    The predictive is Student-t (the likelihood's df; normal for other families) with the
    split's scale, averaged over the drift scale's distribution when there is one.
    """
    out = []
    for h in splits:
        if drift is None:
            taus, w = np.zeros(1), np.ones(1)
        else:
            keep = drift.probs > 1e-6 * drift.probs.max()
            taus, w = drift.grid[keep], drift.probs[keep] / drift.probs[keep].sum()
        scale = h.scale(taus[:, None])  # (tau, run)
        dens = (
            stats.t.logpdf(h.residual, df=h.df, scale=scale)
            if np.isfinite(h.df)
            else stats.norm.logpdf(h.residual, scale=scale)
        )
        out.append(special.logsumexp(dens, b=w[:, None], axis=0))
    return np.concatenate(out) if out else np.zeros(0)


def conformity_scores(splits: Sequence[Holdout], drift: DriftScale | None) -> np.ndarray:
    """``|residual| / predictive sd`` of every held-out run (the drift at its median)."""
    tau = float(drift.quantile(0.5)) if drift is not None else 0.0
    return np.concatenate([np.abs(h.residual) / h.scale(tau) for h in splits]) if splits else np.zeros(0)


def conformal_factor(scores: np.ndarray, level: float, reference: float) -> float | None:
    """Split-conformal width factor: the ``level`` quantile of the scores (with the finite-sample
    correction ``ceil((n + 1) level) / n``) over ``reference``, the same quantile of the model's own
    predictive (e.g. 1.645 for a normal at 90%). ``None`` when there are too few scores for the level.

    The guarantee holds if the normalised held-out residuals are exchangeable with the target's:
    extrapolating further than the splits did, or into a new regime, breaks it.
    """
    n = len(scores)
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return None
    return float(np.sort(scores)[rank - 1] / reference)


def conformal_scaled(log_mu: np.ndarray, factor: float | None) -> np.ndarray:
    """Draws (chain, draw, point) scaled about each point's median by a conformal ``factor``."""
    if factor is None:
        return log_mu
    median = np.median(log_mu, axis=(0, 1), keepdims=True)
    return median + float(factor) * (log_mu - median)


# ------------------------------------------------------------ for a fit


@dataclass(frozen=True)
class Learned:
    """What one fit takes from its leave-future-out splits: the drift scale (when the spec learns
    it) and the conformal factor (when asked for), with the evidence in words."""

    drift: DriftScale | None = None
    conformal: float | None = None
    level: float = 0.9
    scores: int = 0
    reach: float | None = None  # decades (in N, D) from their training runs of the farthest run scored

    def attrs(self) -> dict[str, str | float]:
        out: dict[str, str | float] = {}
        if self.drift is not None:
            out["drift_scale"] = json.dumps(self.drift.to_dict())
        if self.conformal is not None:
            out["conformal_factor"] = float(self.conformal)
            out["conformal"] = json.dumps(
                {"level": self.level, "scores": self.scores, "factor": self.conformal, "reach": self.reach}
            )
        return out


def splits_reach(splits: Sequence[Holdout]) -> float | None:
    """How far beyond its training runs the farthest held-out run of ``splits`` lies (decades of (N, D)):
    what the splits learned (law weights, a conformal factor) was tested that far out, and no farther."""
    reach = max((float(h.distance.max()) for h in splits if h.distance.size), default=0.0)
    return reach if reach > 0 else None


def calibration(fit: Any) -> tuple[float, float | None] | None:
    """A fit's conformal factor and the reach it was scored at (``None`` for fits saved before the reach
    was recorded), or ``None`` when the fit was not calibrated. Reads one law's fit and a law average."""
    if hasattr(fit, "weights"):  # a law average (saved before its conformal reach was: the weights' reach)
        return None if fit.conformal is None else (float(fit.conformal), fit.conformal_reach or fit.weights_reach)
    attrs = fit.idata.attrs
    if attrs.get("conformal_factor") is None:
        return None
    return float(attrs["conformal_factor"]), json.loads(attrs.get("conformal", "{}")).get("reach")


CALIBRATIONS = (None, "conformal")


def reference_quantile(splits: Sequence[Holdout], level: float) -> float:
    """The model's own central ``level`` quantile of ``|residual| / sd`` (Student-t with the splits' df)."""
    df = splits[0].df if splits else math.inf
    q = 0.5 + level / 2.0
    return float(stats.t.ppf(q, df) if np.isfinite(df) else stats.norm.ppf(q))


def learn(
    spec: ModelSpec,
    table: pd.DataFrame,
    rng: np.random.Generator,
    *,
    calibrate: str | None = None,
    level: float = 0.9,
    method: str = "laplace",
) -> Learned:
    """Run the leave-future-out splits a fit of ``spec`` needs (none when it learns nothing) and learn
    the drift scale (``spec.learn_drift``) and the conformal factor (``calibrate="conformal"``)."""
    if calibrate not in CALIBRATIONS:
        raise BayescaleError(f"calibrate must be one of {[c for c in CALIBRATIONS if c]} or None, got {calibrate!r}")
    if not (0.0 < level < 1.0):
        raise BayescaleError(f"calibration level must be between 0 and 1, got {level!r}")
    if not spec.learn_drift and calibrate is None:
        return Learned()
    splits = holdouts(spec, table, split_masks([spec], table), rng, method)
    drift = learn_drift(splits, spec.extrapolation) if spec.learn_drift else None
    return calibrated(Learned(drift=drift, level=level), splits, calibrate)


def calibrated(learned: Learned, splits: Sequence[Holdout], calibrate: str | None) -> Learned:
    """``learned`` with its conformal factor from ``splits`` (when ``calibrate="conformal"``)."""
    if calibrate != "conformal":
        return learned
    scores = conformity_scores(splits, learned.drift)
    factor = conformal_factor(scores, learned.level, reference_quantile(splits, learned.level))
    if factor is None:
        need = math.ceil(learned.level / (1.0 - learned.level))
        raise BayescaleError(
            f"calibrate='conformal' at level {learned.level:g} needs at least {need} held-out runs in the "
            f"leave-future-out splits; these runs give {len(scores)}. Add runs, lower the level, or fit without it"
        )
    return Learned(
        drift=learned.drift, conformal=factor, level=learned.level, scores=len(scores), reach=splits_reach(splits)
    )


__all__ = [
    "CALIBRATIONS",
    "CUTS",
    "DriftScale",
    "Holdout",
    "Learned",
    "calibrated",
    "calibration",
    "splits_reach",
    "conformal_scaled",
    "learn",
    "reference_quantile",
    "conformal_factor",
    "conformity_scores",
    "holdouts",
    "group_slopes",
    "learn_drift",
    "GAP_ALIKE",
    "GAP_HYPERPRIOR",
    "learn_gap",
    "log_density",
    "split_masks",
]

"""Several modes of one posterior: found by the MAP search, sampled from each, mixed by weight, said in words.

A scaling law can explain the same runs in two ways (a low asymptote ``E`` with a shallow exponent,
or a higher ``E`` with a steeper one; two power-law terms that swap roles). NUTS chains started
near one mode stay there, so chains in different modes give an r-hat far above 1.01 that no
amount of extra sampling cures. This module

1. **clusters** the end points of the MAP search (:func:`cluster`, called by
   :func:`bayescale._engine.laplace`): end points within :data:`MERGE_SD` Laplace standard
   deviations of each other, or joined by a straight path that never climbs :data:`MIN_BARRIER`
   nats above the shallower of them, are one mode. Each mode's Laplace mass is
   ``log p(mode) + 0.5 log det cov``; modes under :data:`MIN_WEIGHT` of the total are dropped
   (they would not move a band, and a chain started there would mostly report noise);
2. **spreads the chains** over the modes (:func:`allocate`: one chain per mode, the rest by weight);
3. after sampling, **assigns** every draw to the mode whose Laplace Gaussian explains it best and
   each chain to the mode holding most of its draws (:func:`settle`). Chains that move between
   modes already mix them. Chains that each stay in one mode ("split") are **mixed by weight**:
   each mode's mass is estimated from its own chains' draws by bridge sampling (Meng and Wong's
   optimal bridge between the draws and a Gaussian fitted to them), which corrects the Laplace
   mass of a mode that is skewed or wider than its curvature says; with fewer than
   :data:`MIN_DRAWS_PER_DIM` draws per dimension in a mode the
   Laplace mass is used. The draws are then thinned (never duplicated) so that each mode's share
   of them equals its weight; the chains are re-formed so that each holds the mixture.
   Limits: the weights are only as good as each mode's draws (a mode the chains did not explore
   fully gets the mass of the part they saw), and a mode the MAP search never reached is missing;
4. **says in words** (:func:`describe`) which modes exist, their parameter values, their weights
   and their predictions at :data:`PREDICT_SCALE` times the largest run's compute, and what would
   tell them apart. r-hat across modes is never answered with "run longer".

The result travels with the fit as JSON in ``idata.attrs["modes"]``, so a saved and loaded fit
says the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from ._words import join_names
from .data import law_inputs
from .errors import BayescaleError
from .model import Posterior

#: End points closer than this many Laplace standard deviations (in the metric of either) are one mode.
MERGE_SD = 3.0
#: Nats the straight path between two end points must climb above the shallower one for them to be two modes.
MIN_BARRIER = 1.0
#: A mode with less than this share of the Laplace mass is dropped (the best one never is).
MIN_WEIGHT = 0.01
#: A chain with at least this share of its draws in another mode crosses between modes.
CROSS_SHARE = 0.05
#: Draws per dimension a mode needs for the bridge-sampling estimate of its mass (else: Laplace).
MIN_DRAWS_PER_DIM = 20
#: Iterations of the bridge-sampling fixed point (it converges in a handful).
BRIDGE_ITERATIONS = 30
#: Seed of the bridge's own Gaussian draws (a fixed stream apart from the fit's, which stays as it was).
BRIDGE_SEED = 15
#: Each mode's prediction is at this multiple of the largest run's compute.
PREDICT_SCALE = 10.0
#: r-hat above this within one mode is slow mixing (the same threshold as :mod:`bayescale.inference`).
RHAT_MAX = 1.01
#: Predictions closer than this (relative) agree: more runs at scale would not tell the modes apart.
AGREE = 0.005
_COUNT = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


@dataclass(frozen=True)
class Mode:
    """One local mode of the posterior in the unconstrained space, with its Laplace approximation."""

    x: np.ndarray
    cov: np.ndarray
    value: Mapping[str, float]  # on the natural scale
    log_density: float
    log_mass: float  # log density + 0.5 log det cov + d/2 log 2 pi: the Laplace estimate of its mass
    weight: float  # share of the kept modes' Laplace mass


# ------------------------------------------------------------- clustering


def _log_mass(f: float, cov: np.ndarray) -> float:
    return -f + 0.5 * float(np.linalg.slogdet(cov)[1]) + 0.5 * cov.shape[0] * math.log(2 * math.pi)


def _distance(dx: np.ndarray, cov: np.ndarray) -> float:
    """Mahalanobis distance of ``dx`` in the metric of ``cov``."""
    return float(np.sqrt(max(dx @ np.linalg.solve(cov, dx), 0.0)))


def _one_basin(a: tuple, b: tuple, potential: Callable[[np.ndarray], float]) -> bool:
    """Whether end points ``a`` and ``b`` (``(x, potential, cov)``) lie in one basin: close in the
    Laplace metric of either, or joined by a straight path with no barrier of :data:`MIN_BARRIER` nats."""
    dx = a[0] - b[0]
    if min(_distance(dx, a[2]), _distance(dx, b[2])) < MERGE_SD:
        return True
    top = max(potential(b[0] + t * dx) for t in np.linspace(0.0, 1.0, 12)[1:-1])
    return top - max(a[1], b[1]) < MIN_BARRIER


def cluster(
    ends: Sequence[tuple[np.ndarray, float]],
    local: Callable[[np.ndarray], tuple[np.ndarray, bool]],
    potential: Callable[[np.ndarray], float],
    constrain: Callable[[np.ndarray], Mapping[str, float]],
    best_cov: np.ndarray,
) -> tuple[Mode, ...]:
    """The distinct local modes among the MAP search's end points ``(x, potential)``, best first.

    ``ends[0]`` is the best end point (its covariance ``best_cov``, kept whatever its Hessian);
    ``local(x)`` gives the covariance at another end point and whether its Hessian is positive
    definite (an end point where it is not is a saddle or an unfinished search, not a mode).
    Modes under :data:`MIN_WEIGHT` of the Laplace mass are dropped; weights sum to one."""
    kept = [(np.asarray(ends[0][0], dtype=np.float64), float(ends[0][1]), best_cov)]
    for x, f in ends[1:]:
        x = np.asarray(x, dtype=np.float64)
        # Cheap test first: most end points are the best mode found again.
        if _distance(x - kept[0][0], kept[0][2]) < MERGE_SD:
            continue
        cov, positive = local(x)
        if positive and not any(_one_basin((x, float(f), cov), k, potential) for k in kept):
            kept.append((x, float(f), cov))
    mass = np.array([_log_mass(f, cov) for _, f, cov in kept])
    w = np.exp(mass - logsumexp(mass))
    keep = [i for i in range(len(kept)) if i == 0 or w[i] >= MIN_WEIGHT]
    w = w[keep] / w[keep].sum()
    return tuple(
        Mode(x=kept[i][0], cov=kept[i][2], value=dict(constrain(kept[i][0])), log_density=-kept[i][1],
             log_mass=float(mass[i]), weight=float(wi))
        for i, wi in zip(keep, w)
    )  # fmt: skip


def allocate(weights: Sequence[float], chains: int) -> list[int]:
    """The mode each chain starts in: one chain per mode (heaviest first, as far as chains go), the
    rest by weight (largest remainders), chains in mode order."""
    w = np.asarray(weights, dtype=float)
    k = min(len(w), chains)
    order = np.argsort(-w, kind="stable")[:k]
    n = np.zeros(len(w), dtype=int)
    n[order] = 1
    target = np.zeros(len(w))
    target[order] = w[order] / w[order].sum() * chains
    for _ in range(chains - k):
        n[int(np.argmax(np.where(n > 0, target - n, -np.inf)))] += 1
    return [i for i in range(len(w)) for _ in range(n[i])]


# ------------------------------------------------------------ after NUTS


def _labels(flat: np.ndarray, modes: Sequence[Mode]) -> np.ndarray:
    """Each draw's mode (chain, draw): the largest weight x Laplace Gaussian density."""
    scores = []
    for m in modes:
        chol = np.linalg.cholesky(0.5 * (m.cov + m.cov.T))
        z = np.linalg.solve(chol, (flat - m.x).reshape(-1, m.x.size).T)
        scores.append(-0.5 * (z * z).sum(axis=0) - np.log(np.diag(chol)).sum() + math.log(m.weight))
    return np.argmax(np.stack(scores), axis=0).reshape(flat.shape[:2])


def _bridge(x: np.ndarray, log_p: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator) -> float:
    """log of a mode's mass by bridge sampling (Meng and Wong 1996, the optimal bridge, iterated)
    between its draws ``x`` (n, d) and as many draws of ``g``, the Gaussian fitted to them.

    It uses both directions (``p/g`` at draws of ``g``, ``g/p`` at draws of ``p``), so it stays
    stable where either importance sampler alone has heavy-tailed weights; the draws are treated
    as independent (autocorrelation only makes the estimate noisier)."""
    n, d = x.shape
    mu = x.mean(axis=0)
    chol = np.linalg.cholesky(np.atleast_2d(np.cov(x.T)) + 1e-12 * np.eye(d))
    y = mu + rng.standard_normal((n, d)) @ chol.T

    def log_g(v: np.ndarray) -> np.ndarray:
        z = np.linalg.solve(chol, (v - mu).T)
        return -0.5 * (z * z).sum(axis=0) - np.log(np.diag(chol)).sum() - 0.5 * d * math.log(2 * math.pi)

    l1, l2 = log_p(x) - log_g(x), log_p(y) - log_g(y)  # log p/g at the mode's draws and at g's
    shift = float(np.median(l1))
    l1, l2 = l1 - shift, np.where(np.isfinite(l2), l2 - shift, -np.inf)
    log_r = 0.0
    for _ in range(BRIDGE_ITERATIONS):
        # Z = E_g[p / (p + Z g)] / E_p[g / (p + Z g)] (the optimal bridge, equal sample sizes), with l = log p/g.
        num = logsumexp(l2 - np.logaddexp(l2, log_r))
        den = logsumexp(-np.logaddexp(l1, log_r))
        log_r = float(num - den)
    return log_r + shift


def _split_rhat(x: np.ndarray) -> float:
    """Largest split r-hat over coordinates of draws (chain, draw, d) of one mode's chains."""
    c, n, _ = x.shape
    if c * (n // 2) < 4 or n < 4:
        return float("nan")
    h = n // 2
    s = np.concatenate([x[:, :h], x[:, h : 2 * h]], axis=0)
    within = s.var(axis=1, ddof=1).mean(axis=0)
    between = h * s.mean(axis=1).var(axis=0, ddof=1)
    var = (h - 1) / h * within + between / h
    return float(np.max(np.sqrt(var / np.maximum(within, 1e-300))))


def _thin_and_mix(flat: np.ndarray, stats: Mapping[str, np.ndarray], pools: list[np.ndarray], w: np.ndarray) -> tuple:
    """Draws (chain, draw', d) in which each mode's share is its weight: every mode's draws (``pools``:
    flat indices into chain x draw) thinned evenly, none repeated, then interleaved evenly so that
    every chain holds the mixture."""
    C, D = flat.shape[:2]
    total = min(len(p) / wi for p, wi in zip(pools, w))
    per_chain = max(1, int(total // C))
    n = np.floor(w * C * per_chain).astype(int)
    frac = w * C * per_chain - n
    for j in np.argsort(-frac, kind="stable")[: C * per_chain - n.sum()]:
        n[j] += 1
    picks = [p[np.floor((np.arange(k) + 0.5) * len(p) / k).astype(int)] for p, k in zip(pools, n) if k]
    keys = np.concatenate([(np.arange(k) + 0.5) / k for k in n if k])
    idx = np.concatenate(picks)[np.argsort(keys, kind="stable")].reshape(C, per_chain)
    ci, di = np.divmod(idx, D)
    return flat[ci, di], {k: np.asarray(v)[ci, di] for k, v in stats.items()}


def _log_density(post: Posterior, flat: np.ndarray, logx: Mapping[str, Any], y: Any) -> np.ndarray:
    if "modes_potential" not in post.batched:
        post.batched["modes_potential"] = post._stored(
            jax.vmap(post.potential, in_axes=(0, None, None)), "modes_potential"
        )
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        v = post.batched["modes_potential"](
            jnp.asarray(flat, dtype=np.float64),
            {k: jnp.asarray(a, dtype=np.float64) for k, a in logx.items()},
            jnp.asarray(y, dtype=np.float64),
        )
    return -np.asarray(v, dtype=np.float64)


def _weights(post: Posterior, flat: np.ndarray, home: np.ndarray, modes: Sequence[Mode], data: tuple) -> tuple:
    """Mass share of each mode that has chains, and how it was estimated."""
    visited = sorted(set(home.tolist()))
    d = flat.shape[-1]
    # The bridge's Gaussian draws have their own fixed stream: the fit's seeded stream is not touched.
    rng = np.random.default_rng(BRIDGE_SEED)
    if all((home == k).sum() * flat.shape[1] >= MIN_DRAWS_PER_DIM * d for k in visited):
        log_z = []
        for k in visited:
            x = flat[home == k].reshape(-1, d)
            log_z.append(_bridge(x, lambda v: _log_density(post, v, *data), rng))
        how = "each mode's mass estimated by bridge sampling from its chains' draws"
    else:
        log_z, how = [modes[k].log_mass for k in visited], "the Laplace mass of each mode"
    log_z = np.asarray(log_z)
    return visited, np.exp(log_z - logsumexp(log_z)), how


#: A chain with mean acceptance under this share of ``target_accept`` has a step size too large for where it
#: sits and barely moves (issue-15 table: two at 0.09 and 0.22, target 0.9, gave r-hat 1.36 and 1.32); the
#: engine re-steps such chains (:func:`bayescale._engine.nuts`), and one still stuck is never a mode.
STUCK_ACCEPT = 0.6


def stuck(mean_acceptance: Any, target: float) -> np.ndarray:
    """Which chains barely move: mean acceptance under :data:`STUCK_ACCEPT` x the target (the one rule)."""
    return np.asarray(mean_acceptance, dtype=float) < STUCK_ACCEPT * target


def stuck_chains(stats: Mapping[str, np.ndarray], target: float) -> list[int]:
    """The NUTS chains whose mean acceptance is under :data:`STUCK_ACCEPT` x the
    target (none for Laplace and PSIS draws, which have no acceptance)."""
    if "acceptance_rate" not in stats:
        return []
    return np.flatnonzero(stuck(np.asarray(stats["acceptance_rate"]).mean(axis=1), target)).tolist()


def stuck_words(acceptance: Sequence[float], target: float) -> list[str]:
    """Chains that barely moved (:data:`STUCK_ACCEPT`), even after the sampler gave them
    a healthy chain's step size, in words."""
    chains = np.flatnonzero(stuck(acceptance, target)).tolist() if len(acceptance) else []
    rates = ", ".join(f"{acceptance[c]:.2f}" for c in chains)
    many = len(chains) > 1
    return [
        f"chain{'s' * many} {join_names([str(c) for c in chains])} barely moved (mean acceptance {rates} "
        f"against the target {target}): a step size too large for where {'they sit keeps their' if many else 'it sits keeps its'} "
        "draws in one spot. Raise target_accept in the spec's [sampler] table (e.g. 0.99), or tighten the priors."
    ] * bool(chains)


def _chain_groups(flat: np.ndarray, stuck: Sequence[int] = ()) -> np.ndarray:
    """Chains grouped by the mode they sit in, from the draws alone (for modes the MAP search
    missed): two chains share a group unless their means are :data:`MERGE_SD` standard deviations
    of their pooled within-chain spread apart and their central 95% do not overlap in some
    coordinate. Only where r-hat is above :data:`RHAT_MAX` (chains that agree are one group).

    ``stuck`` chains (barely moving: their tiny spread would set them apart from any other chain)
    are not modes: they are grouped among the moving chains only, each joining its nearest one's
    group, and are named as stuck elsewhere."""
    moving = np.setdiff1d(np.arange(flat.shape[0]), np.asarray(stuck, dtype=int))
    if len(stuck) == 0 or len(moving) == 0:
        return _groups_of(flat)
    groups = np.zeros(flat.shape[0], dtype=int)
    groups[moving] = _groups_of(flat[moving])
    mean, scale = flat.mean(axis=1), flat[moving].reshape(-1, flat.shape[-1]).std(axis=0) + 1e-12
    for c in stuck:
        nearest = moving[np.argmin((((mean[moving] - mean[c]) / scale) ** 2).sum(axis=1))]
        groups[c] = groups[nearest]
    return groups


def _groups_of(flat: np.ndarray) -> np.ndarray:
    """:func:`_chain_groups` of chains that all move."""
    C = flat.shape[0]
    groups = np.arange(C)
    if C < 2 or not _split_rhat(flat) > RHAT_MAX:
        return np.zeros(C, dtype=int)
    mean = flat.mean(axis=1)
    cov = [np.atleast_2d(np.cov(flat[c].T)) for c in range(C)]
    lo, hi = np.quantile(flat, [0.025, 0.975], axis=1)  # (chain, d)
    for i in range(C):
        for j in range(i + 1, C):
            pooled = 0.5 * (cov[i] + cov[j]) + 1e-12 * np.eye(flat.shape[-1])
            # Far apart in the chains' own metric and, in some coordinate, no overlap of their
            # central 95%: a chain that is merely slow (or stuck inside the others' range) is not a mode.
            apart = bool(np.any((hi[i] < lo[j]) | (hi[j] < lo[i])))
            if not apart or _distance(mean[i] - mean[j], pooled) < MERGE_SD:
                groups[groups == groups[j]] = groups[i]
    return np.unique(groups, return_inverse=True)[1].reshape(-1)


def chains_agree(flat: np.ndarray) -> bool:
    """Whether the chains of draws (chain, draw, d) sit in one mode (:func:`_chain_groups`)."""
    return bool(_chain_groups(flat).max() == 0)


def _chain_modes(post: Posterior, flat: np.ndarray, groups: np.ndarray, data: tuple) -> list[Mode]:
    """A :class:`Mode` per group of chains: the draws' mean, covariance and Gaussian mass."""
    out = []
    for k in range(int(groups.max()) + 1):
        x = flat[groups == k].reshape(-1, flat.shape[-1])
        mu, cov = x.mean(axis=0), np.atleast_2d(np.cov(x.T))
        f = -float(_log_density(post, mu[None], *data)[0])
        with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
            value = {n: float(v) for n, v in post.constrain_one(jnp.asarray(mu, dtype=np.float64)).items()}
        out.append(Mode(x=mu, cov=cov, value=value, log_density=-f, log_mass=_log_mass(f, cov), weight=0.0))
    return out


def _split(
    post: Posterior, modes: Sequence[Mode], home: np.ndarray, flat: np.ndarray, stats: Mapping, data: tuple, runs: Any
) -> tuple[np.ndarray, Mapping[str, np.ndarray], dict[str, Any]]:
    """Chains each in one mode (``home``, per chain): the draws mixed by each mode's weight."""
    visited, w, how = _weights(post, flat, home, modes, data)
    r_hat = [_split_rhat(flat[home == k]) for k in visited]
    pools = [np.flatnonzero(np.repeat(home == k, flat.shape[1])) for k in visited]
    mixed, mixed_stats = _thin_and_mix(flat, stats, pools, w)
    entries = []
    for k, m in enumerate(modes):
        j = visited.index(k) if k in visited else None
        weight = float(w[j]) if j is not None else 0.0
        entry = _entry(post.spec, runs, m.value, weight, np.flatnonzero(home == k).tolist(), m.weight)
        entry["r_hat_within"] = r_hat[j] if j is not None else None
        entries.append(entry)
    return mixed, mixed_stats, {"state": "split", "weights_from": how, "modes": entries}


def settle(
    post: Posterior,
    modes: Sequence[Mode],
    flat: np.ndarray,
    stats: Mapping[str, np.ndarray],
    data: tuple,
    runs: pd.DataFrame,
    method: str,
    stuck: Sequence[int] = (),
) -> tuple[np.ndarray, Mapping[str, np.ndarray], str]:
    """Which mode each chain sat in, the draws mixed by weight when chains sat in different modes,
    and the modes as JSON for the fit's attributes. One mode: the draws come back untouched.

    ``modes`` are the MAP search's (``Laplace.modes``). With one, NUTS chains that still sit far
    apart (:func:`_chain_groups`) are modes the search missed, found by the chains.
    ``flat`` are unconstrained draws (chain, draw, d), ``stats`` the sampler's statistics (same
    leading shape; resampled with the draws), ``data`` the potential's ``(logx, y)``, ``stuck`` the
    chains that barely moved (never a mode of their own: see :func:`_chain_groups`)."""
    spec = post.spec
    chains = flat.shape[0]
    if len(modes) < 2:
        groups = _chain_groups(flat, stuck) if method == "nuts" else np.zeros(chains, dtype=int)
        if groups.max() > 0:
            mixed, mixed_stats, info = _split(
                post, _chain_modes(post, flat, groups, data), groups, flat, stats, data, runs
            )
            return mixed, mixed_stats, json.dumps({**info, "found_by": "the chains"})
        info = {"state": "single", "modes": [_entry(spec, runs, modes[0].value, 1.0, list(range(chains)))]}
        return flat, stats, json.dumps(info)
    if method != "nuts":
        # Laplace and PSIS draw around the best mode only: the words say what they leave out.
        entries = [_entry(spec, runs, m.value, m.weight, [], m.weight) for m in modes]
        entries[0]["chains"] = list(range(chains))
        return flat, stats, json.dumps({"state": "best only", "weights_from": "Laplace", "modes": entries})
    labels = _labels(flat, modes)
    counts = np.stack([(labels == k).sum(axis=1) for k in range(len(modes))], axis=1)  # (chain, mode)
    home = counts.argmax(axis=1)
    crossing = bool(((counts.sum(axis=1) - counts.max(axis=1)) >= CROSS_SHARE * flat.shape[1]).any())
    if crossing or len(set(home.tolist())) < 2:
        # The chains move between modes (their draws already mix them), or all sit in one.
        share = counts.sum(axis=0) / counts.sum()
        entries = [
            _entry(spec, runs, m.value, float(share[k]), np.flatnonzero(counts[:, k]).tolist(), m.weight)
            for k, m in enumerate(modes)
        ]
        state = "crossing" if crossing else "one visited"
        return flat, stats, json.dumps({"state": state, "weights_from": "the draws", "modes": entries})
    mixed, mixed_stats, info = _split(post, modes, home, flat, stats, data, runs)
    return mixed, mixed_stats, json.dumps({**info, "found_by": "the MAP search"})


# ----------------------------------------------------------------- words


def prediction_point(runs: pd.DataFrame) -> dict[str, float]:
    """Where the modes' predictions are compared: :data:`PREDICT_SCALE` x the largest run's compute,
    at the runs' median tokens per parameter (``C = 6 N D``)."""
    c = (
        PREDICT_SCALE * float(runs["C"].max())
        if "C" in runs
        else PREDICT_SCALE * 6 * float((runs["N"] * runs["D"]).max())
    )
    r = float(np.median(runs["D"].to_numpy(float) / runs["N"].to_numpy(float)))
    n = math.sqrt(c / (6 * r))
    return {"N": n, "D": r * n, "C": c, "U": r * n}


def _point_frame(spec: Any, runs: pd.DataFrame, point: Mapping[str, float]) -> pd.DataFrame:
    """The prediction point as a one-row table; a law input the point does not set (a recipe
    comparison's group column) takes the largest-compute run's value, so the law can evaluate it."""
    frame = pd.DataFrame({k: [v] for k, v in point.items()})
    top = int(np.argmax(runs["N"].to_numpy(float) * runs["D"].to_numpy(float)))
    for column in dict(spec.inputs).values():
        if column not in frame and column in runs:
            frame[column] = [runs[column].iloc[top]]
    return frame


def _entry(
    spec: Any,
    runs: pd.DataFrame,
    value: Mapping[str, float],
    weight: float,
    chains: list[int],
    laplace_weight: float = 1.0,
) -> dict[str, Any]:
    point = prediction_point(runs)
    params = {p: float(value[p]) for p in spec.law.params}
    try:
        logx = law_inputs(spec, _point_frame(spec, runs, point), np.float64)
        loss = float(np.exp(np.asarray(spec.law.log_loss(params, logx, np), dtype=float).reshape(-1)[0]))
    except BayescaleError:
        loss = float("nan")
    return {
        "params": params,
        "weight": float(weight),
        "laplace_weight": float(laplace_weight),
        "chains": [int(c) for c in chains],
        "prediction": {"loss": loss, **point},
    }


def modes_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The modes a fit recorded (``{"state": ..., "modes": [...]}``); empty for fits made without them."""
    raw = attrs.get("modes")
    return json.loads(raw) if raw else {"state": "unknown", "modes": []}


def _params_text(params: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())


def _mode_text(i: int, m: Mapping[str, Any]) -> str:
    p = m["prediction"]
    chains = f", chains {', '.join(map(str, m['chains']))}" if m["chains"] else ", no chain"
    return (
        f"mode {i + 1} (weight {m['weight']:.2f}{chains}): {_params_text(m['params'])}; predicts loss "
        f"{p['loss']:.4g} at C = {p['C']:.3g} (N = {p['N']:.3g}, D = {p['D']:.3g})"
    )


def prediction_gap(modes: Sequence[Mapping[str, Any]]) -> float:
    """How far apart the two heaviest modes' predictions lie (relative; NaN where not comparable)."""
    a, b = sorted(modes, key=lambda m: -m["weight"])[:2]
    la, lb = a["prediction"]["loss"], b["prediction"]["loss"]
    return abs(la - lb) / min(la, lb) if min(la, lb) > 0 else float("nan")


def agreeing_modes(attrs: Mapping[str, Any]) -> str | None:
    """The modes a fit recorded, in words (:func:`describe`), where their two heaviest predict within :data:`AGREE`
    of each other, so that which holds barely moves the bands; ``None`` otherwise."""
    info = modes_of(attrs)
    agree = len(info["modes"]) > 1 and prediction_gap(info["modes"]) < AGREE
    return describe(info) if agree else None


def _advice(modes: Sequence[Mapping[str, Any]]) -> str:
    """What would tell the two heaviest modes apart: where their predictions differ, and the
    parameter they disagree on most (relative difference)."""
    a, b = sorted(modes, key=lambda m: -m["weight"])[:2]
    gap = prediction_gap(modes)
    rel = {
        k: abs(a["params"][k] - b["params"][k]) / max(abs(a["params"][k]), abs(b["params"][k]), 1e-300)
        for k in a["params"]
    }
    key = max(rel, key=rel.get)
    prior = f"tighten the prior on {key} ({a['params'][key]:.3g} against {b['params'][key]:.3g})"
    at = f"{a['prediction']['C']:.2g} FLOPs"
    if not gap >= AGREE:
        return f"Their predictions agree within {100 * AGREE:g}% at {at}, so the choice barely moves the bands; to choose between them, {prior}."
    return f"To choose between them, add runs at larger compute (at {at} their predictions differ by {100 * gap:.1f}%), or {prior}."


def describe(info: Mapping[str, Any]) -> str | None:
    """The modes in words, with what the draws do about them; ``None`` for one mode."""
    modes = info.get("modes", [])
    if len(modes) < 2:
        return None
    count = _COUNT.get(len(modes), str(len(modes)))
    listed = "; ".join(_mode_text(i, m) for i, m in enumerate(modes))
    state = info.get("state")
    if state == "split":
        missed = (
            " (the MAP search found one; the chains found the others)" if info.get("found_by") == "the chains" else ""
        )
        head = f"the posterior has {count} modes the chains do not cross{missed}: {listed}."
        tail = (
            f" The draws mix them by weight ({info.get('weights_from', '')}), so bands cover every mode; "
            "r-hat across modes is not slow mixing: no length of run moves the chains between them."
        )
        slow = [f"mode {i + 1} (r-hat {m['r_hat_within']:.3f})" for i, m in enumerate(modes)
                if m.get("r_hat_within") is not None and m["r_hat_within"] > RHAT_MAX]  # fmt: skip
        if slow:
            tail += f" Within {', '.join(slow)} the chains still disagree: run more warmup and draws there."
    elif state == "crossing":
        head = f"the posterior has {count} modes and the chains move between them: {listed}."
        tail = " The draws mix them in proportion to the time the chains spend in each."
    elif state == "one visited":
        head = f"the MAP search found {count} modes, but every chain settled in one: {listed}."
        tail = " The bands come from that mode; the others hold little posterior mass."
    else:
        head = f"the posterior has {count} modes: {listed}."
        tail = (
            " These draws come from mode 1 only, so its bands leave the others out; fit with method='nuts' to mix them."
        )
    return head + tail + " " + _advice(modes)


__all__ = [
    "agreeing_modes",
    "CROSS_SHARE",
    "MERGE_SD",
    "MIN_BARRIER",
    "MIN_WEIGHT",
    "Mode",
    "allocate",
    "cluster",
    "describe",
    "modes_of",
    "prediction_gap",
    "prediction_point",
    "settle",
]

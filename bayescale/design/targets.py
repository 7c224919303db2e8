"""Targets of active selection and the candidate pool.

A :class:`Target` names what the pilots should pin down (the loss of a planned run, the loss
on the compute-optimal frontier at a budget, log N_opt, or the decision P(loss <= threshold));
:func:`target_draws` gives its posterior draws and :func:`target_band` its interval now.
The pool of candidate runs is a grid in (log N, log tokens per parameter).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import likelihoods
from .._runs_input import read_points_csv
from .._words import join_names, parse_pairs
from ..averaging import AveragedFit
from ..data import law_inputs, points_frame
from ..errors import BayescaleError
from ..frontier import check_splits, compute_optimal, law_draws
from ..model import DRIFT, distance_from_runs

if TYPE_CHECKING:
    from ..inference import Fit

#: Kinds of target: loss at a point, loss on the compute-optimal frontier, log N_opt.
TARGET_KINDS = ("loss", "frontier", "nopt")
SAME = 0.01  # two runs are the same point when log N and log D agree within this
Z90 = 1.6448536269514722  # a 90% central interval of a normal is +- Z90 sd


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
    U : float, optional
        For a loss target: the planned run's unique tokens (``D / U`` epochs), read by laws of
        repeated data; without it the run sees each token once.

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
    U: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise BayescaleError(f"target kind {self.kind!r} is not one of {list(TARGET_KINDS)}")
        for name in ("N", "D", "C", "threshold", "U"):
            v = getattr(self, name)
            if v is not None and not (
                isinstance(v, (int, float, np.floating)) and math.isfinite(float(v)) and float(v) > 0
            ):
                raise BayescaleError(f"target {name} must be a finite number > 0, got {v!r}")
        given = {k: float(getattr(self, k)) for k in ("N", "D", "C") if getattr(self, k) is not None}
        try:  # plausible sizes, and a C given with N and D near 6 N D
            if given:
                points_frame(given)
        except BayescaleError as e:
            raise BayescaleError(
                f"target {', '.join(f'{k}={v:g}' for k, v in given.items())}: {str(e).removeprefix('points: ')}"
            ) from None
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
            if self.U is not None:
                raise BayescaleError(f"U (unique tokens) applies to a loss target at a point, not to {self.kind}")
        if self.U is not None:  # U <= D, checked as in a runs table
            try:
                points_frame({"N": self.N, "D": self.D, "U": self.U})
            except BayescaleError as e:
                raise BayescaleError(f"target: {str(e).removeprefix('points: ')}") from None

    @property
    def label(self) -> str:
        if self.kind == "loss":
            s = f"loss at N={self.N:.3g}, D={self.D:.3g}" + ("" if self.U is None else f", U={self.U:.3g}")
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
        return {k: getattr(self, k) for k in ("kind", "N", "D", "C", "threshold", "U") if getattr(self, k) is not None}

    def point(self) -> pd.DataFrame:
        """A loss target's point as a one-row table (``N, D, C`` and ``U`` when given)."""
        return pd.DataFrame({k: [getattr(self, k)] for k in ("N", "D", "C", "U") if getattr(self, k) is not None})


def parse_target(target: Any, threshold: float | None = None) -> Target:
    """One :class:`Target` from text, a mapping or a Target (``bayescale.design.parse_target``,
    :func:`bayescale.design.regions.parse_target`, also reads target regions).

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
        _threshold_once(target.label, target.threshold, threshold)
        if threshold is not None:
            return Target(target.kind, target.N, target.D, target.C, float(threshold), target.U)
        return target
    if isinstance(target, str):
        text = target.strip()
        kind = None
        head, sep, rest = text.partition(":")
        if sep and "=" not in head:
            kind, text = head.strip().lower(), rest
            if kind not in ("loss", "frontier", "nopt", "point"):
                raise BayescaleError(
                    f"target {target!r}: unknown kind {kind!r}; use N=..,D=.., C=.., frontier:C=.., nopt:C=.."
                )
        target = dict(parse_pairs(text, f"target {target!r}"))
        if kind is not None:
            target["kind"] = "loss" if kind == "point" else kind
    if not isinstance(target, Mapping):
        raise BayescaleError(f"target must be text, a mapping or a Target, got {type(target).__name__}")
    d = dict(target)
    unknown = sorted(set(d) - {"kind", "N", "D", "C", "threshold", "U"})
    if unknown:
        raise BayescaleError(
            f"target: unknown fields {join_names(unknown, quoted=True)}; allowed kind, N, D, C, threshold, U"
        )
    kind = d.pop("kind", None)
    if kind is None:
        kind = "loss" if ("N" in d or "D" in d) else "frontier"
    if threshold is not None:
        _threshold_once(", ".join(f"{k}={v}" for k, v in dict(target).items()), d.get("threshold"), threshold)
        d["threshold"] = float(threshold)
    return Target(str(kind), **{k: float(v) for k, v in d.items()})


def _threshold_once(label: str, in_target: Any, given: Any) -> None:
    """A threshold in the target and another beside it: refused, not one silently kept."""
    if given is not None and in_target is not None and float(in_target) != float(given):
        raise BayescaleError(
            f"target {label}: threshold given twice ({float(in_target):g} in the target, {float(given):g} beside it); "
            "give it once"
        )


# ------------------------------------------------------------------ draws


def mixed(fit: Fit | AveragedFit, per_law: Callable[[Fit], np.ndarray]) -> np.ndarray:
    """Per-draw values (flattened draws first) of ``per_law(fit)``; for an
    :class:`~bayescale.averaging.AveragedFit`, of the mixture: each draw slot takes the value of
    the law that slot belongs to (the slots the average's own predictions use), so a design
    weighs what a run tells about the target under every law in proportion to its weight."""
    if not isinstance(fit, AveragedFit):
        return np.asarray(per_law(fit))
    shaped = []
    for m in fit.members.values():
        values = np.asarray(per_law(m))
        shaped.append(values.reshape((m.posterior.sizes["chain"], m.posterior.sizes["draw"]) + values.shape[1:]))
    out = fit.mix(shaped)
    return out.reshape((-1,) + out.shape[2:])


def law_weights(fit: Fit | AveragedFit) -> dict[str, float]:
    """Each law's weight: one law with weight 1, or an average's stacking weights."""
    return dict(fit.weights) if isinstance(fit, AveragedFit) else {fit.spec.name: 1.0}


def law_fits(fit: Fit | AveragedFit) -> list[tuple[Fit, float]]:
    """The fitted laws and their weights (one law: itself, weight 1)."""
    if isinstance(fit, AveragedFit):
        return [(m, float(fit.weights[name])) for name, m in fit.members.items()]
    return [(fit, 1.0)]


def noise_var(fit: Fit | AveragedFit) -> np.ndarray:
    """Per-draw variance of one run's log loss around the law (flattened draws; mixed for an average)."""
    return mixed(
        fit, lambda m: np.broadcast_to(_noise_var_one(m), (m.posterior.sizes["chain"] * m.posterior.sizes["draw"],))
    )


def _noise_var_one(fit: Fit) -> np.ndarray:
    post = fit.posterior
    if "sigma" not in post:
        return np.full(1, 0.01**2)
    params = {
        k: np.asarray(post[k].values, dtype=float).reshape(-1)
        for k in likelihoods.noise_priors(fit.spec.likelihood)
        if k in post
    }
    return likelihoods.predictive_variance(fit.spec.likelihood, params)


_LAW_FNS: dict[str, Any] = {}


def mixed_law_matrix(fit: Fit | AveragedFit, frame: pd.DataFrame, idx: np.ndarray | None = None) -> np.ndarray:
    """Log loss of the law (of each draw's law, for an average) per draw and point, (S, M);
    ``idx`` keeps those flattened draws only."""
    if not isinstance(fit, AveragedFit):
        theta = law_draws(fit)
        return law_matrix(fit, theta if idx is None else {k: v[idx] for k, v in theta.items()}, frame)
    slots, index = fit.slot_draws()
    if idx is not None:
        slots, index = slots[idx], index[idx]
    out = np.empty((slots.size, len(frame)))
    for k, m in enumerate(fit.members.values()):
        if (where := slots == k).any():  # only the draws that fill a slot: a minor law's are fewer
            out[where] = law_matrix(m, {p: v[index[where]] for p, v in law_draws(m).items()}, frame)
    return out


def law_matrix(fit: Fit, theta: Mapping[str, np.ndarray], frame: pd.DataFrame) -> np.ndarray:
    """Log loss of the law per draw and point, shape (S, M), computed in JAX (float64)."""
    law = fit.spec.law
    logx = law_inputs(fit.spec, frame, np.float64)
    key = law.name + ":" + ",".join(law.params) + ":" + str(id(law.log_loss))
    if key not in _LAW_FNS:
        _LAW_FNS[key] = jax.jit(
            lambda th, lx: law.log_loss(
                {k: v[:, None] for k, v in th.items()}, {k: v[None, :] for k, v in lx.items()}, jnp
            )
        )
    with jax.enable_x64(True):
        out = _LAW_FNS[key]({k: jnp.asarray(v) for k, v in theta.items()}, {k: jnp.asarray(v) for k, v in logx.items()})
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class TargetDraws:
    """Draws of the target (log scale) and what adds to them.

    ``law``: per-draw value from the law alone (log loss or log N_opt); ``drift``: each draw's
    extrapolation drift in log loss per decade of (N, D), aligned with ``law`` (None without an
    ``[extrapolation]`` prior, and for ``nopt``); ``point``: where the target lies in (N, D) (a
    frontier target's posterior-median optimum), from which the drift's distance is measured;
    ``reach``: that point's distance from the fit's nearest run in decades of (N, D), as
    :func:`bayescale.model.distance_from_runs` (and so ``predict``) measures it; ``noise_var``: one
    run's noise variance (the decision includes it).
    """

    law: np.ndarray
    drift: np.ndarray | None
    point: tuple[float, float]
    reach: float
    noise_var: float
    target: Target

    @property
    def drift2(self) -> float:
        """The expected squared drift per decade squared (0 without a drift)."""
        return 0.0 if self.drift is None else float(np.mean(self.drift**2))

    def drift_var(self, *, reach: float | None = None) -> float:
        """The expected squared drift at ``reach`` decades from the nearest run (default: the fit's)."""
        r = self.reach if reach is None else float(reach)
        return self.drift2 * r * r


def _check_reads_u(fit: Fit | AveragedFit, target: Target) -> None:
    """A target's unique tokens ``U`` must be read by some law of the fit: ignored, the plan would look
    priced for repeated data while it is not (``predict`` refuses the same point)."""
    if target.U is None or any("U" in m.spec.columns for m, _ in law_fits(fit)):
        return
    names = join_names(sorted({m.spec.law.name for m, _ in law_fits(fit)}), quoted=True)
    raise BayescaleError(
        f"target {target.label}: U (unique tokens) is not an input of law {names}, which reads "
        f"{join_names(fit.spec.columns)}; drop U, or fit a law that reads it (e.g. models/data_constrained.toml "
        "or the recommended law average)"
    )


def target_draws(fit: Fit, target: Target | str | Mapping[str, Any]) -> TargetDraws:
    """Posterior draws of ``target`` from ``fit`` (see :class:`TargetDraws`).

    Examples
    --------
    >>> td = target_draws(fit, "N=7e9,D=1.4e12")   # doctest: +SKIP
    >>> float(np.exp(np.median(td.law)))            # doctest: +SKIP
    """
    target = parse_target(target)
    _check_reads_u(fit, target)
    if target.kind != "loss":
        check_splits(fit, target.label)
    if target.kind == "loss":
        point = (float(target.N), float(target.D))
        law = mixed_law_matrix(fit, target.point())[:, 0]
    else:
        var = "N_opt" if target.kind == "nopt" else "law_loss_opt"  # the drift is added by the planner
        both = mixed(fit, lambda m: _optimal_logs(m, float(target.C), var))
        law, n = both[:, 0], float(np.exp(np.median(both[:, 1])))
        point = (n, float(target.C) / (6.0 * n))
    drift = None
    if target.kind != "nopt" and all(DRIFT in m.posterior for m, _ in law_fits(fit)):
        drift = mixed(fit, lambda m: np.asarray(m.posterior[DRIFT].values, dtype=float).reshape(-1))
    if not np.all(np.isfinite(law)):
        raise BayescaleError(f"target {target.label}: the law gives non-finite values for some draws")
    reach = float(distance_from_runs(fit.spec, fit.runs, pd.DataFrame({"N": [point[0]], "D": [point[1]]}))[0])
    return TargetDraws(
        law=law,
        drift=drift,
        point=point,
        reach=reach,
        noise_var=float(np.mean(noise_var(fit))),
        target=target,
    )


def _optimal_logs(fit: Fit, compute: float, var: str) -> np.ndarray:
    """Per draw: log of ``var`` at the compute-optimal allocation of ``compute``, and log N_opt."""
    opt = compute_optimal(fit, [compute])
    return np.stack([np.log(np.asarray(opt[v].values, dtype=float).reshape(-1)) for v in (var, "N_opt")], axis=-1)


def band_from(td: TargetDraws, *, reach: float | None = None) -> dict[str, float]:
    """Median and 90% interval of the target on its natural scale, with each draw's drift at
    ``reach`` decades (default: the target's distance from the fit's runs): ``predict``'s band."""
    drift_now = 0.0 if td.drift is None else td.drift * (td.reach if reach is None else float(reach))
    x = td.law + drift_now
    lo, med, hi = np.quantile(x, [0.05, 0.5, 0.95])
    lo_l, hi_l = np.quantile(td.law, [0.05, 0.95])
    out = {
        "median": float(np.exp(med)),
        "lo90": float(np.exp(lo)),
        "hi90": float(np.exp(hi)),
        "log_width90": float(hi - lo),
        "sd_log": float(np.std(x)),
        "lo90_law": float(np.exp(lo_l)),
        "hi90_law": float(np.exp(hi_l)),
    }
    if td.target.is_decision:
        p = float(
            np.mean(
                norm.cdf((math.log(td.target.threshold) - td.law) / math.sqrt(td.drift_var(reach=reach) + td.noise_var))
            )
        )
        out["p_below"] = p
    return out


def target_band(fit: Fit, target: Target | str | Mapping[str, Any]) -> dict[str, float]:
    """Median and 90% interval of the target now (natural scale), its log-width and sd of log,
    the 90% interval of the law alone (``lo90_law``, ``hi90_law``: without the extrapolation
    drift), and P(loss <= threshold) for a decision target.

    Examples
    --------
    >>> target_band(fit, "N=7e9,D=1.4e12")["log_width90"]   # doctest: +SKIP
    """
    return band_from(target_draws(fit, target))


# ------------------------------------------------------------------ candidates


def flops_cost(frame: pd.DataFrame) -> np.ndarray:
    """Training FLOPs ``6 N D`` of each candidate (the default cost)."""
    return 6.0 * frame["N"].to_numpy(float) * frame["D"].to_numpy(float)


def trunks_of(runs: pd.DataFrame) -> pd.DataFrame:
    """The WSD trunks of a runs table (rows with ``trunk_id`` and ``C_branch``, as
    :func:`bayescale.runner.train_wsd` writes them): one row per trunk with its ``N``, ``trained``
    (the tokens it was trained at constant rate: its furthest branch's start,
    ``D - C_branch / (6 N)``) and ``cooldown`` (the share of a branch's tokens spent cooling down).
    Empty when the table has no trunk columns."""
    empty = pd.DataFrame({"trunk_id": [], "N": [], "trained": [], "cooldown": []})
    if "trunk_id" not in runs or "C_branch" not in runs:
        return empty
    ids = _trunk_ids(runs)
    c_branch = pd.to_numeric(runs["C_branch"], errors="coerce")
    rows = runs[(ids != "").to_numpy() & (c_branch > 0).to_numpy()]
    if len(rows) == 0:
        return empty
    n, d = rows["N"].astype(float), rows["D"].astype(float)
    cool = c_branch[rows.index] / (6.0 * n)  # a branch's own (cooldown) tokens
    parts = pd.DataFrame({"trunk_id": ids[rows.index], "N": n, "trained": d - cool, "cooldown": cool / d})
    # the least share: a branch trained later off a kept checkpoint counts the trunk steps it trained again
    # in its C_branch (`pilot --branch-of`), so its share is its cooldown's and more
    out = parts.groupby("trunk_id", sort=True).agg(
        N=("N", "median"), trained=("trained", "max"), cooldown=("cooldown", "min")
    )
    return out.reset_index()


def _trunk_ids(runs: pd.DataFrame) -> pd.Series:
    """Each row's trunk id, "" where it has none."""
    return runs["trunk_id"].astype("string").str.strip().fillna("").astype(str)


def branch_flops(frame: pd.DataFrame, runs: pd.DataFrame) -> np.ndarray:
    """Training FLOPs of each candidate given the WSD trunks already in ``runs`` (:func:`trunks_of`).

    A candidate at a trunk's N (within 1%) whose branch would leave the trunk where it has already
    been trained (``(1 - c) D <= trained``, ``c`` the trunk's cooldown share) costs only its cooldown,
    ``6 N c D``; any other candidate costs ``6 N D`` (:func:`flops_cost`), as it does when the table
    has no trunks. Such a branch is trained off the trunk's kept checkpoint by ``bayescale pilot
    --branch-of TRUNK_ID --tokens D`` (:func:`bayescale.runner.train_branch`; its row's ``C_branch`` is
    this price); a candidate past the trunk's end is priced ``6 N D``, not counting on extending it."""
    costs = flops_cost(frame)
    n, d = frame["N"].to_numpy(float), frame["D"].to_numpy(float)
    for t in trunks_of(runs).itertuples():
        off_trunk = (np.abs(np.log(n) - math.log(t.N)) < SAME) & ((1.0 - t.cooldown) * d <= t.trained * (1 + 1e-9))
        costs = np.where(off_trunk, np.minimum(costs, t.cooldown * 6.0 * n * d), costs)
    return costs


def runs_flops(new: pd.DataFrame, before: pd.DataFrame) -> np.ndarray:
    """FLOPs each new run cost, given the runs ``before`` it: ``6 N D``, except a WSD branch (a row
    with ``trunk_id`` and ``C_branch``), which costs its cooldown ``C_branch`` plus its share of any
    trunk training beyond what the table's earlier branches of that trunk paid for (so a new trunk
    with its branches costs the trunk once and each cooldown once)."""
    costs = flops_cost(new)
    trunks = trunks_of(new)
    if len(trunks) == 0:
        return costs
    ids = _trunk_ids(new).to_numpy()
    c_branch = pd.to_numeric(new["C_branch"], errors="coerce").to_numpy(float)
    old = trunks_of(before).set_index("trunk_id")["trained"]
    for t in trunks.itertuples():
        rows = np.flatnonzero((ids == t.trunk_id) & (c_branch > 0))
        extra = 6.0 * t.N * max(0.0, t.trained - float(old.get(t.trunk_id, 0.0)))
        costs[rows] = c_branch[rows]
        costs[rows[0]] += extra
    return costs


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
    if (
        n.size == 0
        or r.size == 0
        or not (np.all(n > 0) and np.all(r > 0) and np.all(np.isfinite(n)) and np.all(np.isfinite(r)))
    ):
        raise BayescaleError("candidate_grid: N and tokens_per_param must be non-empty, finite and > 0")
    nn, rr = np.meshgrid(n, r, indexing="ij")
    nn, rr = nn.reshape(-1), rr.reshape(-1)
    return pd.DataFrame({"N": nn, "D": nn * rr, "C": 6.0 * nn * nn * rr, "ratio": rr})


def as_points(x: Any, what: str) -> pd.DataFrame:
    x = () if x is None else x
    if isinstance(x, (str, os.PathLike)):  # a CSV of points, as the CLI's --pending and --candidates read
        frame = read_points_csv(x, what)
    elif isinstance(x, pd.DataFrame):
        frame = x.copy()
    elif isinstance(x, Mapping):
        frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in x.items()})
    else:
        try:
            frame = pd.DataFrame([dict(r) for r in x])
        except (TypeError, ValueError):
            kinds = "a DataFrame, a mapping of columns, a list of points (mappings with N and D) or a CSV path"
            raise BayescaleError(f"{what}: give {kinds}, got {type(x).__name__}") from None
    cols = [c for c in ("N", "D", "C") if c in frame]
    if len(frame.columns) and ("N" not in cols or len(cols) < 2):  # other columns: a mistake even without rows
        got = join_names([str(c) for c in frame.columns], quoted=True)
        raise BayescaleError(f"{what}: each entry needs N and D (or N and C); the columns are {got}")
    if len(frame) == 0:
        return pd.DataFrame({"N": [], "D": []}, dtype=float)
    for col in cols:  # blank cells stay NaN: points_frame derives them from the other two, as in a runs table
        blank = frame[col].map(lambda v: pd.isna(v) or (isinstance(v, str) and not v.strip())).astype(bool)
        values = pd.to_numeric(frame[col].mask(blank), errors="coerce").astype(float)
        bad = ~blank & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            rows = join_names([int(i) for i in np.flatnonzero(bad)[:10]])
            raise BayescaleError(f"{what}: {col} must be a finite number > 0; rows {rows} (0-based) are not")
        frame[col] = values
    try:  # the gaps filled by C = 6 N D, and the same plausible range and consistency check as every point
        filled = points_frame(frame[cols])
    except BayescaleError as e:
        raise BayescaleError(f"{what}: {str(e).removeprefix('points: ')}") from None
    frame[["N", "D"]] = filled[["N", "D"]].to_numpy()
    frame["C"] = 6.0 * frame["N"] * frame["D"]
    frame["ratio"] = frame["D"] / frame["N"]
    return frame.reset_index(drop=True)


def same_point(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """(len(a), len(b)) boolean: the same (N, D) point within 1% in each."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=bool)
    ln = np.abs(np.log(a["N"].to_numpy(float))[:, None] - np.log(b["N"].to_numpy(float))[None, :])
    ld = np.abs(np.log(a["D"].to_numpy(float))[:, None] - np.log(b["D"].to_numpy(float))[None, :])
    return (ln < SAME) & (ld < SAME)


#: The default pool reaches this factor below the smallest run's N.
POOL_BELOW = 3.0


def pool_floor(seed_runs: pd.DataFrame) -> float:
    """The smallest N of a loop's pool, fixed when it starts: :data:`POOL_BELOW` below the seed runs'."""
    return float(seed_runs["N"].min()) / POOL_BELOW


def default_candidates(
    fit: Fit,
    budget: float | None = None,
    *,
    tokens_per_param: Sequence[float] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
    below: float = POOL_BELOW,
    per_decade: int = 8,
    smallest: float | None = None,
) -> pd.DataFrame:
    """The default pool: a grid from ``below`` times smaller than the smallest run's N (or from
    ``smallest``) up to the largest N the budget affords at the smallest ratio (or 30x the largest
    run's N), with ``per_decade`` sizes per decade (at least 10), over ``tokens_per_param``.

    A loop passes ``smallest`` fixed at its start (:func:`bayescale.loop.run_loop`): planned from
    each round's runs, the pool's floor fell 3x a round and a loop seeded at 1e7 parameters trained
    runs of 8e4, far from its 4e9 target, where a law that drifts with size is most wrong
    (BENCHMARKS.md, "A loop's pool that does not walk down").

    Small runs at extreme ratios pin the exponents down for their cost, so the pool reaches a
    little below the runs done (in the simulation study, half a decade below the seed pilots
    cut the target's error by a fifth: BENCHMARKS.md, "Active selection"). When the runs hold
    WSD trunks (:func:`trunks_of`), the pool adds each trunk's N over the same ratios: branches off
    it cost only their cooldown (:func:`branch_flops`)."""
    n_lo = float(fit.runs["N"].min()) / float(below) if smallest is None else float(smallest)
    n_hi = 30.0 * float(fit.runs["N"].max())
    if budget is not None and math.isfinite(budget):
        n_hi = min(n_hi, math.sqrt(budget / (6.0 * min(tokens_per_param))))
    n_hi = max(n_hi, n_lo * 1.5)
    n_sizes = max(10, math.ceil(per_decade * math.log10(n_hi / n_lo)) + 1)
    grid = candidate_grid((n_lo, n_hi), tokens_per_param, n_sizes=n_sizes)
    trunk_n = trunks_of(fit.runs)["N"].to_numpy(float)
    if trunk_n.size == 0:
        return grid
    # The trunks' own sizes, where a branch costs only its cooldown (branch_flops). One grid per size:
    # candidate_grid reads exactly two sizes as a range.
    at_trunks = [candidate_grid([n], tokens_per_param) for n in np.unique(trunk_n)]
    return pd.concat([grid, *at_trunks], ignore_index=True)


def runs_cost(new: pd.DataFrame, before: pd.DataFrame, cost: Callable[[pd.DataFrame], np.ndarray] | None) -> float:
    """What the new runs cost in all: ``cost(new)`` summed, or their FLOPs (:func:`runs_flops`)."""
    return float(np.sum(runs_flops(new, before) if cost is None else costs_of(new, cost)))


def costs_of(
    frame: pd.DataFrame, cost: Callable[[pd.DataFrame], np.ndarray] | None, runs: pd.DataFrame | None = None
) -> np.ndarray:
    """Each candidate's cost: ``cost(frame)`` checked, or FLOPs when ``cost`` is None (a branch off a
    WSD trunk in ``runs`` priced at its cooldown, :func:`branch_flops`)."""
    if cost is None:
        return flops_cost(frame) if runs is None else branch_flops(frame, runs)
    c = np.asarray(cost(frame.copy()), dtype=float).reshape(-1)
    if c.size != len(frame) or not np.all(np.isfinite(c) & (c > 0)):
        raise BayescaleError("cost(candidates) must return one finite cost > 0 per candidate")
    return c


__all__ = [
    "TARGET_KINDS",
    "Target",
    "TargetDraws",
    "branch_flops",
    "candidate_grid",
    "default_candidates",
    "pool_floor",
    "flops_cost",
    "parse_target",
    "runs_cost",
    "runs_flops",
    "target_band",
    "target_draws",
    "trunks_of",
]

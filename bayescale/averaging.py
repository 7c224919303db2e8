"""Law uncertainty: several laws fitted to the same runs and averaged by how well each predicted
the runs' own future.

No single law is right everywhere: Chinchilla's bends on large grids, Kaplan's has no floor,
repeated data needs a data-constrained term. An :class:`~bayescale.spec.AverageSpec` names the
laws; :func:`fit_average` fits each on **leave-future-out splits** of the runs (below a compute
cut, scored above it, :mod:`bayescale.discrepancy`), learns each law's drift scale there, weighs
the laws by **stacking** those held-out predictive densities (Yao et al. 2018: the weights that
make the mixture predict the held-out runs best), then fits every law with weight on all the
runs. Predictions mix the laws' draws in proportion to their weights, so where the laws agree
the band is theirs and where they disagree beyond the runs it widens; beyond the reach the splits
tested, the weights fade towards equal (:mod:`bayescale._slots`).

:func:`fit` is ``bayescale.fit``: one law or an average, by the spec it is given.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from . import _arviz, _slots
from . import inference as _inference
from ._optimise import minimise
from ._runs_input import warn_about_table
from ._words import count, join_names
from .data import load_runs, points_frame
from .discrepancy import (
    Holdout,
    Learned,
    conformal_factor,
    conformal_scaled,
    holdouts,
    learn_drift,
    log_density,
    split_masks,
    splits_reach,
)
from .errors import BayescaleError, StaleFitError, user_stacklevel
from .inference import AVERAGE_ATTR, Fit
from .laws import FALLBACK_COLUMNS
from .misfit import Misfit, misfit, warn_if_misfit
from .model import distance_from_runs, noise_names
from .modes import agreeing_modes
from .spec import AverageSpec, ModelSpec, load_spec

#: Laws whose stacking weight falls below this are left out of the final fits (and said so).
MIN_WEIGHT = 0.01
#: Unless ``method="laplace"``, a law carrying less than this weight is drawn by PSIS (Laplace and
#: Pareto-smoothed importance sampling) instead: it supplies under a quarter of the draws, and a
#: minor law is often the badly identified one whose NUTS fit costs most (Farseer's on Chinchilla's
#: runs: about 55 of the average's 64 s; with the recommended prior on the weights it carries 0.10
#: there, and NUTS for it made the average 23x one law's time: BENCHMARKS.md, "The recommended law
#: average"). PSIS checks itself (Pareto k) and says when its draws are unreliable.
MINOR_WEIGHT = 0.25
#: ... with this fraction of the draws (at least ``MINOR_MIN_DRAWS`` per chain): its weight gives it
#: under a quarter of the average's draws, so a quarter of the draws still gives each of its slots a
#: distinct draw, at a quarter of the importance sampling's cost.
MINOR_DRAWS = 0.25
MINOR_MIN_DRAWS = 100


@dataclass(frozen=True)
class LawScore:
    """One law's leave-future-out record: mean log predictive density of the held-out runs, its
    learned drift scale in words, and its weight."""

    law: str
    elpd: float
    weight: float
    drift: str = ""


@dataclass
class AveragedFit:
    """Several fitted laws and their weights, used like one :class:`~bayescale.Fit`.

    ``predict``, ``log_loss`` and ``noise_params`` mix the members' draws: each (chain, draw) slot
    holds the draw of one law, chosen with probability equal to its weight (fixed by the seed), so
    every consumer of draws (bands, ``decide``, ``check``, the report) sees the average. ``spec``,
    ``posterior`` and ``idata`` are those of the law with the most weight: parameter summaries and
    pair plots describe that law (its parameters are not shared with the others); the compute-optimal
    allocation (:func:`bayescale.compute_optimal`) mixes each law's own optimum as ``mix`` does.
    """

    spec_average: AverageSpec
    members: dict[str, Fit]
    weights: dict[str, float]
    scores: list[LawScore]
    runs: pd.DataFrame = field(repr=False)
    method: str = "nuts"
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    conformal: float | None = None
    slots: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    #: Farthest held-out run the weights were scored on, in decades of (N, D) beyond its split's runs.
    weights_reach: float | None = None
    #: The same for the conformal factor (scored on the splits even when a single law leaves no weights to score).
    conformal_reach: float | None = None

    def __post_init__(self) -> None:
        if self.members is not None and list(self.weights) != list(self.members):  # slots index members in order
            self.weights = {k: self.weights[k] for k in self.members}
        if self.slots is None:
            shape = (self.leading.posterior.sizes["chain"], self.leading.posterior.sizes["draw"])
            self.slots = _slots.slots(shape, list(self.weights.values()), self.seed)

    # ------------------------------------------------------------ like a Fit
    @property
    def leading(self) -> Fit:
        """The member with the most weight."""
        return self.members[max(self.weights, key=self.weights.get)]

    @property
    def spec(self) -> ModelSpec:
        return self.leading.spec

    @property
    def idata(self) -> Any:
        return self.leading.idata

    @property
    def posterior(self) -> xr.Dataset:
        return self.leading.posterior

    @property
    def var_names(self) -> list[str]:
        return self.leading.var_names

    @property
    def identified_names(self) -> list[str]:
        return self.leading.identified_names

    def slot_draws(self) -> tuple[np.ndarray, np.ndarray]:
        """For each flattened draw slot, its member (position in ``members``) and the flattened draw of that
        member that fills it (:func:`bayescale._slots.draw_index`)."""
        flat = self.slots.reshape(-1)
        return flat, _slots.draw_index(flat, self._member_shapes(), self.slots.shape)

    def _member_shapes(self) -> list[tuple[int, int]]:
        return [(m.posterior.sizes["chain"], m.posterior.sizes["draw"]) for m in self.members.values()]

    def point_weights(self, points: Any) -> np.ndarray | None:
        """Each law's weight at each of ``points`` (point, law): the stacking weights within the reach they
        were tested at, fading towards equal beyond it (:mod:`bayescale._slots`); ``None`` where no point
        lies beyond the reach."""
        frame = points_frame(points)
        distance = distance_from_runs(self.leading.spec, self.runs, frame)
        return _slots.faded_weights(list(self.weights.values()), self.weights_reach, distance)

    def mix(self, per_member: list[np.ndarray], points: Any = None) -> np.ndarray:
        """One array shaped like the leading member's draws (chain, draw, ...), each slot taken from the
        member it belongs to (:meth:`slot_draws`). With ``points`` (the third axis of the arrays), each point
        beyond the weights' reach is mixed by its own faded weights (:meth:`point_weights`)."""
        arrays = [np.asarray(v, dtype=float) for v in per_member]
        faded = None if points is None else self.point_weights(points)
        if faded is None:
            out = _slots.mixed(arrays, self.slots.reshape(-1), self.slots.shape)
        else:
            out = _slots.mixed_per_point(arrays, _slots.point_slots(self.slots, faded, self.seed), self.slots.shape)
        return out.reshape(self.slots.shape + out.shape[1:])

    def log_loss(self, points: Any) -> np.ndarray:
        """Mixed draws of the log loss at ``points`` (chain, draw, point), each law with its own drift."""
        frame = points_frame(points)
        mixed = self.mix([m.log_loss(frame) for m in self.members.values()], frame)
        return conformal_scaled(mixed, self.conformal)

    def noise_params(self, points: Any = None) -> dict[str, np.ndarray]:
        """The mixed noise parameters (chain, draw, 1); with ``points``, (chain, draw, point) where a point lies
        beyond the weights' reach, each slot's from the law that fills it at that point (as :meth:`log_loss`)."""
        per = [m.noise_params() for m in self.members.values()]
        return {k: self.mix([p[k] for p in per], points) for k in noise_names(self.spec)}

    def predict(self, points: Any, *, noise: bool = False, seed: int = 0) -> xr.DataArray:
        """Draws of the loss at ``points`` from the average (see :meth:`bayescale.Fit.predict`)."""
        return _inference.predictive_draws(self, points, noise=noise, seed=seed)

    def draws(self, var_names: Any = None) -> dict[str, np.ndarray]:
        return self.leading.draws(var_names)

    def summary(self, **kwargs: Any) -> pd.DataFrame:
        """The leading law's parameter summary, its columns named after it and its weight (printed
        above the table; see :meth:`weights_table` for the laws)."""
        table = self.leading.summary(**kwargs)
        name = self.leading.spec.name
        table.columns.name = f"{name} (weight {self.weights.get(name, 1.0):.2f} of {len(self.weights)} laws)"
        return table

    @property
    def drift_scale(self) -> dict[str, dict[str, float]] | None:
        """Each refitted law's learned drift scale (:attr:`bayescale.Fit.drift_scale`), by law; None when none learned one."""
        learned = {name: m.drift_scale for name, m in self.members.items() if m.drift_scale}
        return learned or None

    def weights_table(self) -> pd.DataFrame:
        """Each law's weight, leave-future-out log predictive density and learned drift scale."""
        rows = [{"law": s.law, "weight": s.weight, "elpd_lfo": s.elpd, "drift": s.drift} for s in self.scores]
        return pd.DataFrame(rows).set_index("law")

    def diagnostics(self) -> dict[str, Any]:
        """The members' diagnostics, each problem prefixed with its law; ``max_r_hat`` over the members."""
        per = {name: m.diagnostics() for name, m in self.members.items()}
        out = dict(per[self.leading.spec.name])
        out["members"] = per
        rhats = [d["max_r_hat"] for d in per.values() if "max_r_hat" in d]
        if rhats:  # MCMC members: the worst of them (Laplace fits have none)
            out["max_r_hat"] = float(np.max(rhats))
        # A law's modes whose predictions agree barely move the average's bands: they are said as a note.
        agree = {n: text for n, m in self.members.items() if (text := agreeing_modes(_arviz.attrs(m.idata)))}
        out["problems"] = [
            f"{n}: {self._advice(n, p)}" for n, d in per.items() for p in d.get("problems", []) if p != agree.get(n)
        ]
        out["weights"] = dict(self.weights)
        out["notes"] = self.all_notes() + [f"{n} (weight {self.weights[n]:.2f}): {text}" for n, text in agree.items()]
        return out

    def _advice(self, name: str, problem: str) -> str:
        """A member's problem as the average's user should read it: a minor law that the average drew by PSIS
        was not the user's choice of method, so "refit with NUTS" becomes why it was drawn that way."""
        if self.members[name].method != "psis" or self.method == "psis":
            return problem
        return _drawn_by_psis(problem)

    def sensitivity(self, points: Any = None, **kwargs: Any) -> Any:
        """Prior sensitivity of the leading law (:meth:`bayescale.Fit.sensitivity`)."""
        return self.leading.sensitivity(points, **kwargs)

    def misfit(self, **kwargs: Any) -> Misfit:
        """Residual patterns of the average's predictions at the runs (see :func:`bayescale.misfit.misfit`)."""
        return misfit(self, **kwargs)

    def describe(self) -> str:
        """Which laws carry the weight, in words."""
        parts = [f"{name} {w:.2f}" for name, w in sorted(self.weights.items(), key=lambda kv: -kv[1])]
        how = "leave-future-out stacking"
        if self.spec_average.concentration != 1:
            how += f" with a Dirichlet({self.spec_average.concentration:g}) prior on the weights"
        text = f"average of {count(len(self.weights), 'law')} weighted by {how}: " + ", ".join(parts)
        if self.spec_average.weights == "equal":
            text = f"average of {len(self.weights)} laws, equal weights: " + ", ".join(parts)
        notes = self.all_notes()
        return text + ("" if not notes else ". " + "; ".join(n.rstrip(".") for n in notes)) + "."

    def all_notes(self) -> list[str]:
        """The fit's notes, and how far out its weights were tested (said from ``weights_reach``)."""
        return [*self.notes, *_reach_words(self.weights_reach)]

    # ----------------------------------------------------------- save / load
    def save(self, path: str | Path) -> Path:
        """Write the average to one netCDF file (each member's groups, suffixed ``__<law>``)."""
        lead = self.leading.spec.name
        others = {name: m for name, m in self.members.items() if name != lead}
        groups = {f"{g}__{name}": m.idata[g] for name, m in others.items() for g in m.idata.groups()}
        meta = {
            "spec": self.spec_average.to_dict(),
            "weights": self.weights,
            "scores": [s.__dict__ for s in self.scores],
            "notes": self.notes,
            "conformal": self.conformal,
            "weights_reach": self.weights_reach,
            "conformal_reach": self.conformal_reach,
            "order": list(self.members),
            "lead": lead,
            "seed": self.seed,
            "method": self.method,  # the user's: the leading law may be a minor one drawn by PSIS
            "spec_path": self.spec_average.path or "",
            "member_attrs": {name: _arviz.attrs(m.idata) for name, m in others.items()},
        }
        combined = _arviz.with_groups(
            self.leading.idata, groups, {**_arviz.attrs(self.leading.idata), AVERAGE_ATTR: json.dumps(meta)}
        )
        return _arviz.save(combined, path)


# ------------------------------------------------------------------- fitting


def _stack(lpd: np.ndarray, point_weights: np.ndarray, concentration: float = 1.0) -> np.ndarray:
    """Weights ``w`` (simplex) maximising ``sum_i p_i log sum_k w_k exp(lpd[i, k])`` plus the log
    density of a symmetric Dirichlet(``concentration``) prior, ``(concentration - 1) sum_k log w_k``."""
    K = lpd.shape[1]
    prior = float(concentration) - 1.0

    def loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        # Plain NumPy (not scipy.special.logsumexp, whose array-API dispatch dominates at this size).
        w = np.exp(z - z.max())
        w /= w.sum()
        joint = lpd_shifted * w[None, :]
        per_run = joint.sum(axis=1)
        # d/dlogw_k = -sum_i p_i r_ik (r: each run's responsibilities); logw = z - logsumexp(z).
        g = -(point_weights / per_run) @ joint
        value = -float(point_weights @ (np.log(per_run) + shift)) - prior * float(np.sum(np.log(w)))
        # d/dz_k of sum_j log w_j is 1 - K w_k
        return value, g - w * g.sum() - prior * (1.0 - K * w)

    shift = lpd.max(axis=1)
    lpd_shifted = np.exp(lpd - shift[:, None])

    res = minimise(loss, np.zeros(K))
    w = np.exp(res.x - special.logsumexp(res.x))
    return w / w.sum()


#: Bayesian-bootstrap draws over the splits behind the stacking weights.
BOOTSTRAP_DRAWS = 64


def stacking_weights(
    lpd: np.ndarray,
    splits: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    concentration: float = 1.0,
) -> np.ndarray:
    """Stacking weights (Yao et al. 2018) of the columns of ``lpd`` (held-out run x law).

    With ``splits`` (the split each held-out run came from), the weights are averaged over a
    Bayesian bootstrap of the splits (Dirichlet weights per split, as in Yao et al.'s BB-stacking):
    nested leave-future-out splits share their largest runs, so a handful of splits is all the
    independent evidence there is, and a law that wins by a little on them should not take all
    the weight.

    ``concentration`` > 1 adds a symmetric Dirichlet prior on the weights (a penalised, MAP form of
    stacking): with the splits' evidence counted as one unit per split, it keeps every law in the
    mixture and pulls the weights towards equal where the splits cannot tell the laws apart.
    """
    if splits is None:
        return _stack(lpd, np.ones(len(lpd)), concentration)
    labels, index, counts = np.unique(splits, return_inverse=True, return_counts=True)
    rng = rng if rng is not None else np.random.default_rng(0)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS):
        per_split = rng.dirichlet(np.ones(len(labels))) * len(labels)
        draws.append(_stack(lpd, (per_split / counts)[index], concentration))
    return np.mean(draws, axis=0)


def uninformed(spec: ModelSpec, table: pd.DataFrame) -> str | None:
    """Why ``spec``'s law says nothing new on these runs (an optional input it reads is absent or
    equals its stand-in everywhere: no repeated data for the data-constrained law), or None."""
    for col in spec.columns:
        standin = FALLBACK_COLUMNS.get(col)
        if standin is None:
            continue
        if col not in table or np.allclose(table[col].fillna(table[standin]), table[standin]):
            return (
                f"{spec.name} left out: it reads {col!r}, which these runs lack or which equals {standin!r} in every "
                "run, so it adds nothing another law lacks"
            )
    return None


def _mixture_scores(splits: dict[str, list[Holdout]], w: dict[str, float]) -> tuple[np.ndarray, float]:
    """Conformity scores of the weighted mixture's held-out predictions: |observed - mean| / sd."""
    names = list(w)
    ref = splits[names[0]]
    scores = []
    for j in range(len(ref)):
        means = np.stack([-splits[n][j].residual for n in names])  # prediction minus observation
        sds = np.stack([splits[n][j].scale() for n in names])
        ws = np.asarray([w[n] for n in names])[:, None]
        mean = np.sum(ws * means, axis=0)
        var = np.sum(ws * (sds**2 + means**2), axis=0) - mean**2
        scores.append(np.abs(mean) / np.sqrt(var))
    return (np.concatenate(scores) if scores else np.zeros(0)), float(stats.norm.ppf(0.95))


def weigh_members(
    spec: AverageSpec, members: list[ModelSpec], table: pd.DataFrame, rng: np.random.Generator, method: str = "laplace"
) -> tuple[dict[str, float], list[LawScore], dict[str, Learned], dict[str, list[Holdout]], list[str]]:
    """Leave-future-out splits for every member: weights, scores, learned drift scales.

    A law with more parameters than the runs can test out of sample (fewer than two usable splits)
    is left out, and said so: unvalidated, it would get weight by default. If no law can be
    tested, the first one listed is used alone."""
    notes = []
    testable = [m for m in members if len(split_masks([m], table)) >= 2]
    for m in members:
        if m not in testable:
            notes.append(
                f"{m.name} left out: {len(table)} runs are too few to test its {len(m.law.params)} parameters "
                "on runs beyond those it is fitted to"
            )
    if not testable:
        notes.append(f"no law could be tested on leave-future-out splits: {members[0].name} is used alone")
        testable = members[:1]
    members = testable
    masks = split_masks(members, table)
    splits = {m.name: holdouts(m, table, masks, rng, method) for m in members}
    learned = {
        m.name: Learned(drift=learn_drift(splits[m.name], m.extrapolation) if m.learn_drift else None) for m in members
    }
    lpd = np.column_stack([log_density(splits[m.name], learned[m.name].drift) for m in members])
    if spec.weights == "equal" or len(masks) < 2:
        w = np.full(len(members), 1.0 / len(members))
    else:
        which = np.concatenate([np.full(len(h.index), j) for j, h in enumerate(splits[members[0].name])])
        w = stacking_weights(lpd, which, rng, spec.concentration)
    elpd = lpd.mean(axis=0) if len(lpd) else np.full(len(members), np.nan)
    scores = [
        LawScore(
            law=m.name,
            elpd=float(e),
            weight=float(wk),
            drift=learned[m.name].drift.words() if learned[m.name].drift is not None else "",
        )
        for m, e, wk in zip(members, elpd, w)
    ]
    weights = {m.name: float(wk) for m, wk in zip(members, w) if wk >= MIN_WEIGHT}
    dropped = [m.name for m, wk in zip(members, w) if wk < MIN_WEIGHT]
    if dropped:
        notes.append(f"{', '.join(dropped)} carried under {MIN_WEIGHT:g} of the weight and were not refitted")
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}, scores, learned, splits, notes


def weights_reach(splits: dict[str, list[Holdout]]) -> float | None:
    """How far beyond their training runs the weights were scored (decades of (N, D)): stacking only
    tells which law predicts best that far out, and a law can win there and fail farther (one
    without a floor, say); a target well beyond it rests on the laws' agreement, not on a test."""
    return splits_reach(next(iter(splits.values()))) if len(splits) >= 2 else None


def _reach_words(reach: float | None) -> list[str]:
    if reach is None:
        return []
    return [
        f"the weights were scored on runs up to {reach:.2g} decades (in N and D) beyond the runs each "
        "leave-future-out split was fitted to; which law holds farther out is untested, so there the weights "
        "fade towards equal (half way at twice that distance)"
    ]


def _drawn_by_psis(problem: str) -> str:
    """A minor law's problem with its "refit with NUTS" advice replaced by why it was drawn by PSIS: the
    average chose that method, not the user, whose own choice may already be NUTS."""
    why = f"(it carries under {MINOR_WEIGHT:g} of the weight, so the average drew it by PSIS to save time)"
    return re.sub(r";? ?(re)?fit with method='nuts'[^.]*\.", f" {why}.", problem)


def _fit_member(
    spec: ModelSpec, table: pd.DataFrame, weight: float, learned: Learned, *, minor: bool = False, **kwargs: Any
) -> Fit:
    """One member's fit on all runs; its warnings are re-raised naming the law and its weight (its
    misfit is not checked: the average's own misfit check, on the predictions it makes, speaks for it), but
    not modes whose predictions agree (:func:`bayescale.modes.agreeing_modes`), which its diagnostics note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _inference.fit_quietly(spec, table, learned=learned, **kwargs)
    agree = agreeing_modes(_arviz.attrs(result.idata))  # said as a note of the average's diagnostics instead
    for w in (w for w in caught if not agree or str(w.message) != _inference.unconverged_message([agree])):
        said = _drawn_by_psis(str(w.message)) if minor else str(w.message)
        warnings.warn(f"law {spec.name} (weight {weight:.2f}): {said}", w.category, stacklevel=user_stacklevel())
    return result


def _law_band(member: Fit, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Median log loss of a law at each point and the half-width of its 90% interval (its parameter
    draws alone: no drift, no noise)."""
    log_mu = member.law_log_loss(frame).reshape(-1, len(frame))
    lo, med, hi = np.quantile(log_mu, [0.05, 0.5, 0.95], axis=0)
    return med, 0.5 * (hi - lo)


#: Laws that disagree are named only when each carries at least this share of the weight: the
#: Dirichlet prior keeps every law above 1%, and a law at a few percent barely moves the median.
DISAGREE_WEIGHT = 0.1


def law_disagreement(
    fit: Fit | AveragedFit, points: Any, min_weight: float = DISAGREE_WEIGHT
) -> tuple[str, str, int, float, float] | None:
    """The two laws of an average (weight >= ``min_weight`` each) whose medians at one of
    ``points`` lie furthest apart beyond the mean half-width of their own 90% intervals:
    ``(law a, law b, point index, median a, median b)``, medians in log loss; None for one law or
    when every pair agrees within its own bands. Where laws disagree like this, the average's median
    is set by the weights, not by the runs."""
    if not isinstance(fit, AveragedFit):
        return None
    frame = points_frame(points)
    bands = {name: _law_band(m, frame) for name, m in fit.members.items() if fit.weights.get(name, 0.0) >= min_weight}
    worst: tuple[float, str, str, int, float, float] | None = None
    for (a, (ma, ha)), (b, (mb, hb)) in itertools.combinations(bands.items(), 2):
        gap = np.abs(ma - mb) - 0.5 * (ha + hb)
        i = int(np.argmax(gap))
        if gap[i] > 0 and (worst is None or gap[i] > worst[0]):
            worst = (float(gap[i]), a, b, i, float(ma[i]), float(mb[i]))
    return None if worst is None else worst[1:]


def fit_average(
    spec: AverageSpec,
    runs: Any,
    *,
    seed: int = 0,
    method: str = "nuts",
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    progress: bool = False,
    calibrate: str | None = None,
) -> AveragedFit:
    """Fit the laws of ``spec`` and average them (see the module's docstring)."""
    table = load_runs(runs)
    rng = np.random.default_rng(seed)
    notes, members = [], []
    for m in spec.members:
        reason = uninformed(m, table)
        notes += [reason] if reason else []
        members += [] if reason else [m]
    if not members:
        raise BayescaleError(f"average {spec.name!r}: no law applies to these runs ({' '.join(notes)})")
    weights, scores, learned, splits, more = weigh_members(spec, members, table, rng, method)
    reach = weights_reach(splits)
    first = members[0].sampler
    sampler = {"chains": chains or first.chains, "draws": draws or first.draws, "warmup": warmup}
    minor = [m.name for m in members if method != "laplace" and weights.get(m.name, 1.0) < MINOR_WEIGHT]
    if minor:
        notes.append(
            f"{join_names(minor)} (weight below {MINOR_WEIGHT:g}) drawn by PSIS, with {MINOR_DRAWS:.0%} of the draws"
        )
    minor_sampler = {**sampler, "draws": max(MINOR_MIN_DRAWS, round(MINOR_DRAWS * sampler["draws"]))}
    fits = {
        m.name: _fit_member(
            m,
            table,
            weights[m.name],
            learned[m.name],
            seed=seed,
            method="psis" if m.name in minor else method,
            minor=m.name in minor and method != "psis",
            progress=progress,
            **(minor_sampler if m.name in minor else sampler),
        )  # fmt: skip
        for m in members
        if m.name in weights
    }
    calibrate = calibrate or spec.calibrate
    factor = None
    if calibrate == "conformal":
        scores_mix, reference = _mixture_scores({k: splits[k] for k in weights}, weights)
        factor = conformal_factor(scores_mix, 0.9, reference)
        if factor is None:
            raise BayescaleError(
                f"calibrate='conformal' needs at least 9 held-out runs in the leave-future-out splits; "
                f"these runs give {len(scores_mix)}"
            )
    result = AveragedFit(
        spec_average=spec,
        members=fits,
        weights=weights,
        scores=scores,
        runs=table,
        method=method,
        seed=int(seed),
        notes=notes + more,
        conformal=factor,
        weights_reach=reach,
        conformal_reach=splits_reach(next(iter(splits.values()))) if factor is not None else None,
    )
    warn_if_misfit(result)
    return result


def fit(spec: Any, runs: Any, **kwargs: Any) -> Fit | AveragedFit:
    """Fit one law (a :class:`~bayescale.spec.ModelSpec`) or an average of several (an
    :class:`~bayescale.spec.AverageSpec`, e.g. the bundled ``"recommended"``): this is
    ``bayescale.fit``. Keyword arguments are those of :func:`bayescale.inference.fit`."""
    spec = load_spec(spec)
    table = load_runs(runs)  # read once: the fits below take the loaded table
    warn_about_table(table, law_columns=sorted(spec.columns), law=f"spec {spec.name!r}")
    if isinstance(spec, AverageSpec):
        return fit_average(spec, table, **kwargs)
    return _inference.fit(spec, table, **kwargs)


# ---------------------------------------------------------------------- load


def load_fit(path: str | Path, *, spec: Any = None, check_spec: bool = True) -> Fit | AveragedFit:
    """Read a fit written by ``save``: one law (:meth:`bayescale.Fit.load`) or an average.

    Like :meth:`bayescale.Fit.load`, it refuses (``StaleFitError``) a fit whose spec file (or the
    given ``spec``) now defines a different model, unless ``check_spec=False``.
    """
    with warnings.catch_warnings():  # its leading law: the average is read below
        warnings.simplefilter("ignore", UserWarning)
        lead = Fit.load(path, check_spec=False)
    raw = _arviz.attrs(lead.idata).get(AVERAGE_ATTR)
    if not raw:
        return Fit.load(path, spec=spec, check_spec=check_spec) if check_spec else lead
    meta = json.loads(raw)
    saved = load_spec(meta["spec"])
    if check_spec:
        _refuse_stale(path, saved, spec if spec is not None else meta.get("spec_path"))
    return AveragedFit(
        spec_average=saved,
        members=_members(lead, saved, meta),
        weights=meta["weights"],
        scores=[LawScore(**s) for s in meta["scores"]],
        runs=lead.runs,
        method=meta.get("method", lead.method),
        seed=int(meta["seed"]),
        notes=meta["notes"],
        conformal=meta["conformal"],
        weights_reach=meta.get("weights_reach"),
        conformal_reach=meta.get("conformal_reach"),
    )


def _refuse_stale(path: str | Path, saved: AverageSpec, current: Any) -> None:
    if current is None or (isinstance(current, (str, Path)) and not Path(current).is_file()):
        return
    now = load_spec(current)
    if now.model_id != saved.model_id:
        raise StaleFitError(
            f"{path} was fitted with average {saved.name!r} (model id {saved.model_id}) but "
            f"{getattr(now, 'path', None) or 'the given spec'} now has model id {now.model_id}: refit it, or load "
            "with check_spec=False"
        )


def _members(lead: Fit, spec: AverageSpec, meta: dict[str, Any]) -> dict[str, Fit]:
    """Each member's Fit, rebuilt from its suffixed groups (the leading one is the file's own)."""
    members = {}
    for name in meta["order"]:
        if name == meta["lead"]:
            members[name] = lead
            continue
        groups = {g.split("__")[0]: lead.idata[g] for g in lead.idata.groups() if g.endswith(f"__{name}")}
        idata = _arviz.from_groups(groups, meta["member_attrs"][name])
        member_spec = next(m for m in spec.members if m.name == name)
        method = meta["member_attrs"][name].get("method", lead.method)  # a minor law may have been drawn by PSIS
        members[name] = Fit(spec=member_spec, idata=idata, runs=lead.runs, method=method, seed=lead.seed)
    return members


__all__ = ["AveragedFit", "LawScore", "fit", "fit_average", "law_disagreement", "load_fit", "stacking_weights"]

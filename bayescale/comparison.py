"""Which recipe should we scale? Compare training recipes by their scaling laws.

:func:`compare` fits one law per recipe (a grouping column of the runs table) jointly, through
the project's one model and engine: the grouped spec of :mod:`bayescale._compare_model` is an
ordinary spec, fitted by :func:`bayescale.inference.fit`. From that one posterior it derives,
draw by draw, at a target compute ``C*`` (or a target ``N, D``):

* the **effective compute multiplier** ``k`` of each recipe over the baseline: the baseline's
  compute-optimal loss at ``k C*`` equals the recipe's at ``C*`` (at an ``(N, D)`` target: the
  baseline's loss at ``(sqrt(k) N, sqrt(k) D)``, the same tokens per parameter, equals the
  recipe's at ``(N, D)``), and ``k`` at a few compute levels up to the target (does the gap
  widen or narrow with scale?);
* ``P(recipe better than baseline)``, the loss difference and its interval;
* whether the two compute-optimal curves cross between the smallest run and the target, and
  where (median and interval over all draws; where the interval runs past the target, the verdict
  says the runs cannot place the crossing);
* for all recipes: ``P(best)``, risk (the measures of :func:`bayescale.decide`) and the expected
  selection regret ``E[L_pick - min L]``;
* a verdict in words that carries the fit's warnings (convergence, modes, misfit) and says how
  far the target lies beyond the runs.

The extrapolation drift applies to every recipe at its distance from its own runs; how much of
it is each recipe's own is learned from the runs by default (:mod:`bayescale._compare_fit`).
A law average (``spec="recommended"``) compares the recipes under every law it holds, weighted by
leave-future-out stacking on the grouped runs (:mod:`bayescale._compare_average`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _arviz
from . import _compare_average as ca
from . import _compare_fit as cf
from . import _compare_quantities as cq
from ._compare_model import Pooling, base_spec, grouped_spec, safe_group_name
from ._compare_verdict import jsonable, table_of, verdict_of
from ._idata import runs_from_idata
from ._io import atomic_write_bytes
from ._words import join_names, parse_pairs, quote
from .data import PLAUSIBLE, load_runs
from .decisions import parse_risk
from .discrepancy import Learned, group_slopes, learn_drift
from .errors import BayescaleError
from .frontier import check_prob
from .inference import Fit
from .scaled_priors import place_priors
from .spec import AverageSpec, ModelSpec, load_spec

#: The attribute of a saved comparison's file that holds what was compared.
COMPARISON_ATTR = _arviz.COMPARISON_ATTR
#: Default correlation of two recipes' extrapolation drifts: learned from the runs (see the module notes).
DRIFT_CORRELATION = "learned"
#: Compute levels (besides the target) at which the multiplier's trend is reported.
N_LEVELS = 4
#: Points of the compute grid the curves and their crossing are drawn on.
N_CURVE = 49


@dataclass(frozen=True)
class Target:
    """Where the comparison is made: a compute budget ``C`` (compute-optimal allocation) or a
    model size and token count ``N, D``."""

    C: float
    N: float | None = None
    D: float | None = None

    @property
    def at_point(self) -> bool:
        return self.N is not None

    def describe(self) -> str:
        if self.at_point:
            return f"N={self.N:.3g}, D={self.D:.3g} (C={self.C:.3g})"
        return f"C={self.C:.3g} FLOPs (compute-optimal)"

    def to_dict(self) -> dict[str, float]:
        return {"N": self.N, "D": self.D} if self.at_point else {"C": self.C}


def _risk_text(risk: Any) -> str:
    """A risk measure as the text :func:`bayescale.decisions.parse_risk` reads."""
    kind = type(risk).__name__
    if kind == "Expectation":
        return "mean"
    return f"{'cvar' if kind == 'CVaR' else 'quantile'}:{risk.q}"


def parse_target(at: Any) -> Target:
    """A :class:`Target` from ``{"C": 1e23}``, ``{"N": 7e9, "D": 1.4e12}``, a number (``C``) or text
    (``"C=1e23"``, as the CLI's ``--at``)."""
    if isinstance(at, Target):
        return at
    if isinstance(at, str):
        at = parse_pairs(at, f"at {at!r}")
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        at = {"C": at}
    if not isinstance(at, Mapping) or set(at) not in ({"C"}, {"N", "D"}):
        raise BayescaleError(f"at must be {{'C': FLOPs}} or {{'N': params, 'D': tokens}}, got {at!r}")
    try:
        values = {k: float(v) for k, v in at.items()}
    except (TypeError, ValueError):
        raise BayescaleError(f"at: values must be numbers, got {at!r}") from None
    bad = [k for k, v in values.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise BayescaleError(f"at: {join_names(bad)} must be finite and > 0, got {at!r}")
    if "N" in values:
        values["C"] = 6.0 * values["N"] * values["D"]
    for k, v in values.items():  # as every point bayescale predicts at
        lo, hi = PLAUSIBLE[k]
        if not lo <= v <= hi:
            raise BayescaleError(f"at: {k}={v:g} is outside {lo:g}-{hi:g}, the range of a plausible language model")
    if "N" not in values:
        return Target(C=values["C"])
    return Target(C=values["C"], N=values["N"], D=values["D"])


# ------------------------------------------------------------------ inputs


#: Columns that measure a run rather than name its recipe: grouping by one would make each size (or
#: loss) a "recipe" of its own, whose law its single value cannot identify.
NOT_GROUPS = ("N", "D", "C", "U", "loss", "epochs", "run_id")


def _groups(table: pd.DataFrame, by: str) -> list[str]:
    if by not in table.columns or by == "derived":
        named = [c for c in table.columns if c != "derived"]
        raise BayescaleError(
            f"grouping column {by!r} is not in the runs table; its columns are {join_names(named, quoted=True)}"
        )
    if by in NOT_GROUPS:
        raise BayescaleError(
            f"grouping column {by!r} measures each run (one of {join_names(NOT_GROUPS, 'or', quoted=True)}), it does "
            "not name its recipe; group by a column that names the recipe (e.g. 'recipe')"
        )
    if table[by].isna().any():
        rows = table.loc[table[by].isna(), "run_id"].astype(str)
        raise BayescaleError(
            f"grouping column {by!r} is blank in the rows with run_id {join_names(rows, quoted=True)}; name each "
            "run's recipe, or leave those runs out"
        )
    groups = [safe_group_name(g) for g in pd.unique(table[by].astype(str))]
    if len(groups) < 2:
        raise BayescaleError(
            f"grouping column {by!r} has one group ({quote(groups[0])}); a comparison needs at least two"
        )
    return groups


def _check_sizes(table: pd.DataFrame, by: str, groups: Sequence[str], spec: ModelSpec, pooling: Pooling) -> None:
    free = pooling.free(spec.law)
    counts = table[by].astype(str).value_counts()
    small = [f"{quote(g)} has {int(counts[g])}" for g in groups if counts[g] < len(free)]
    if small:
        raise BayescaleError(
            f"each recipe needs at least as many runs as its free parameters ({len(free)}: {join_names(free)}); "
            f"{join_names(small)} runs. Add runs, or share or pool parameters (pooling=... in Python; --share or --pool in the CLI)"
        )


def _baseline(groups: Sequence[str], baseline: str | None) -> str:
    if baseline is None:
        return groups[0]
    if str(baseline) not in groups:
        raise BayescaleError(f"baseline {quote(baseline)} is not a group; the groups are {join_names(groups, 'and')}")
    return str(baseline)


def _spec(spec: Any, table: pd.DataFrame) -> ModelSpec | AverageSpec:
    """The spec with its priors placed on the runs; a law average as it is (each law is placed
    by :func:`bayescale._compare_average.members_for`)."""
    spec = load_spec(spec)
    return spec if isinstance(spec, AverageSpec) else base_spec(place_priors(spec, table))


# ------------------------------------------------------------------ the result


@dataclass(frozen=True)
class Comparison:
    """Recipes compared by their scaling laws at a target; :attr:`verdict` says it in words.

    Attributes
    ----------
    fit : Fit
        The joint fit of every recipe (the grouped spec; parameter ``A_g1`` is recipe 1's ``A``).
    recipes : dict of str to Fit
        Each recipe's law as a fit of the base spec, drawn from the joint posterior (aligned
        draw by draw), with its own runs and drift.
    baseline, by, target, pooling, ci_prob, risk
        What was compared, and how.
    losses : dict of str to ndarray
        Draws of each recipe's loss at the target (compute-optimal at ``C*``, or at ``N, D``).
    levels : ndarray
        Compute levels of the multiplier trend (the last is the target's compute).
    multipliers : dict of str to ndarray
        Draws (draw, level) of each other recipe's compute multiplier over the baseline.
    warnings : tuple of str
        What the fit warned about, carried into the verdict.
    laws, law_weights
        With a law average: each law's own comparison and its weight. The draws above are then
        their mixture (each slot one law's draw, by weight); ``fit``, ``recipes`` and
        ``pooling`` are those of the law with the most weight.
    """

    fit: Fit
    recipes: dict[str, Fit]
    baseline: str
    by: str
    target: Target
    pooling: Pooling
    ci_prob: float
    risk: Any
    losses: dict[str, np.ndarray]
    levels: np.ndarray
    multipliers: dict[str, np.ndarray]
    clipped: dict[str, np.ndarray]
    curve_C: np.ndarray
    curves: dict[str, np.ndarray]
    warnings: tuple[str, ...] = ()
    drift_correlation: float | str = DRIFT_CORRELATION
    gap_slopes: tuple = ()
    laws: dict[str, "Comparison"] = field(default_factory=dict)
    law_weights: dict[str, float] = field(default_factory=dict)
    law_notes: tuple[str, ...] = ()
    slots: np.ndarray | None = field(default=None, repr=False, compare=False)
    _table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def spec(self) -> ModelSpec:
        """The spec every recipe's law follows."""
        return self.recipes[self.baseline].spec

    @property
    def groups(self) -> list[str]:
        return list(self.recipes)

    @property
    def others(self) -> list[str]:
        return [g for g in self.recipes if g != self.baseline]

    def gap_drift(self) -> dict[str, float] | None:
        """The learned scale of each recipe's own drift (log loss per decade; median, 5% and 95%
        quantiles, splits, and ``p_zero``: how probable the runs make "no gap", the recipes drifting
        alike, from its prior ``alike_prior``), or None where the drift correlation was stated or
        there is no drift."""
        if self.drift_correlation != cf.LEARNED:
            return None
        gap = cf.gap_scale(self.spec, self.gap_slopes)
        return None if gap is None else gap.to_dict()

    def drift_words(self) -> str:
        """How the recipes' drifts relate, in words (the verdict and the report say it)."""
        gap = self.gap_drift()
        if self.drift_correlation != cf.LEARNED:
            return f"the recipes' extrapolation drifts have a stated correlation of {self.drift_correlation:g}"
        if gap is None:
            return "the spec has no extrapolation drift"
        source = (
            f"learned from {gap['splits']} leave-future-out splits"
            if gap["splits"]
            else "from its prior alone (too few runs above a cut for leave-future-out splits)"
        )
        return (
            f"on top of a drift all recipes share, each recipe's own drift has scale {gap['median']:.3f} log loss per "
            f"decade (90% {gap['q05']:.3f}-{gap['q95']:.3f}), {source}{cf.alike_words(gap)}"
            + cf.gap_at_bound(self.spec, gap)
        )

    def multiplier(self, recipe: str | None = None, *, C: Any = None) -> pd.DataFrame:
        """The compute multiplier of ``recipe`` (default: every other recipe) over the baseline at
        compute levels ``C`` (default: :attr:`levels`): median, interval, and the share of draws
        outside the searched range (:data:`bayescale._compare_quantities.K_RANGE`), one row per level."""
        names = self.others if recipe is None else [self._known(recipe)]
        if recipe is not None and names[0] == self.baseline:
            raise BayescaleError(
                f"{quote(recipe)} is the baseline: a multiplier is another recipe's over it; the others are "
                f"{join_names(self.others)} (choose the baseline with baseline=...)"
            )
        rows = []
        for name in names:
            if C is None:
                k, clipped, levels = self.multipliers[name], self.clipped[name], self.levels
            else:
                levels = cq.check_levels(C)
                k, clipped = self._multiplier_at(name, levels)
            for i, c in enumerate(levels):
                med, lo, hi = cq.interval(k[:, i], self.ci_prob)
                rows.append(
                    {
                        "recipe": name,
                        "C": float(c),
                        "median": med,
                        "lo": lo,
                        "hi": hi,
                        "p_gt_1": float(np.mean(k[:, i] > 1)),
                        "clipped": float(np.mean(clipped[:, i])),
                    }
                )
        return pd.DataFrame(rows)

    def _multiplier_at(self, name: str, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.laws:
            return cq.multiplier_at_compute(self.recipes[self.baseline], self.recipes[name], levels)
        per = [law._multiplier_at(name, levels) for law in self.laws.values()]
        return ca.mix([k for k, _ in per], self.slots), ca.mix([c for _, c in per], self.slots) > 0.5

    def describe_laws(self) -> str:
        """Which laws carry the weight, in words ("" for one law)."""
        if not self.laws:
            return ""
        parts = [f"{name} {w:.2f}" for name, w in sorted(self.law_weights.items(), key=lambda kv: -kv[1])]
        notes = "" if not self.law_notes else " (" + "; ".join(self.law_notes) + ")"
        if len(self.laws) == 1:
            return f"{next(iter(self.laws))} carries all the weight of the leave-future-out stacking{notes}"
        return f"{len(self.laws)} laws weighted by leave-future-out stacking on every recipe's runs: {', '.join(parts)}{notes}"

    def summary(self, *, ci_prob: float | None = None) -> pd.DataFrame:
        """Each recipe's law parameters (shared ones repeat), rows ``(recipe, parameter)``: as
        :meth:`bayescale.Fit.summary`, with the recipes' names instead of the joint fit's ``A_g1``.
        With a law average, rows ``(law, recipe, parameter)``."""
        if self.laws:
            parts = {name: law.summary(ci_prob=ci_prob) for name, law in self.laws.items()}
            return pd.concat(parts, names=["law"])
        prob = self.ci_prob if ci_prob is None else ci_prob
        parts = {g: f.summary(var_names=list(self.spec.law.params), ci_prob=prob) for g, f in self.recipes.items()}
        return pd.concat(parts, names=[self.by, "variable"])

    def _known(self, recipe: str) -> str:
        if str(recipe) not in self.recipes:
            raise BayescaleError(f"recipe {quote(recipe)} is not a group; the groups are {join_names(self.groups)}")
        return str(recipe)

    def table(self) -> pd.DataFrame:
        """One row per recipe: loss at the target (median, interval), risk, ``p_best``, expected
        regret; for the others also the multiplier over the baseline at the target (with
        ``mult_clipped``, the share of draws beyond the searched range, whose interval edge is then
        that range's bound), ``p_better``,
        the loss difference (``diff`` its median, ``diff_lo``-``diff_hi`` its interval, ``diff_mean`` the
        expected difference), ``p_cross`` (the curves cross between the smallest
        run and the target) and the crossing's compute over all draws, median ``cross_C`` and
        interval ``cross_lo``-``cross_hi``: ``inf`` where it lies beyond the target, ``0`` before
        the smallest run (a median of the crossing draws alone would sit early, see
        :func:`bayescale._compare_quantities.crossing_location`)."""
        if self._table is None:  # computed once (the verdict and the JSON read it several times)
            object.__setattr__(self, "_table", table_of(self))
        return self._table.copy()

    @property
    def best(self) -> str:
        return str(self.table()["risk"].idxmin())

    @property
    def verdict(self) -> str:
        """The comparison in words, with the reasons to doubt it."""
        return verdict_of(self)

    def to_dict(self) -> dict[str, Any]:
        t = self.table()
        return {
            "by": self.by,
            "groups": self.groups,
            "baseline": self.baseline,
            "target": self.target.to_dict(),
            "pooling": self.pooling.to_dict(self.spec.law),
            "method": self.fit.method,
            "drift_correlation": self.drift_correlation,
            "gap_drift": self.gap_drift(),
            "laws": dict(self.law_weights),
            "ci_prob": self.ci_prob,
            "risk": getattr(self.risk, "label", str(self.risk)),
            "best": self.best,
            "recipes": {g: {c: jsonable(v) for c, v in row.items()} for g, row in t.iterrows()},
            "multiplier": [{k: jsonable(v) for k, v in r.items()} for r in self.multiplier().to_dict("records")],
            "warnings": list(self.warnings),
            "verdict": self.verdict,
        }

    def save(self, path: str | Path) -> Path:
        """Write the comparison to netCDF (atomically): the joint fit (every law's, with a law
        average), and what was compared in its attributes. :meth:`load` reads it back and
        recomputes the same numbers."""
        setup = {
            "by": self.by,
            "groups": self.groups,
            "baseline": self.baseline,
            "target": self.target.to_dict(),
            "ci_prob": self.ci_prob,
            "risk": _risk_text(self.risk),
            "levels": [float(c) for c in self.levels],
            **ca.law_setup(self),
        }
        groups = {}
        if self.laws:
            lead = next(name for name, law in self.laws.items() if law.fit is self.fit)
            others = {name: law for name, law in self.laws.items() if name != lead}
            groups = {f"{g}__{name}": law.fit.idata[g] for name, law in others.items() for g in law.fit.idata.groups()}
            setup["laws"] = {
                name: {**ca.law_setup(law), "weight": self.law_weights[name]} for name, law in self.laws.items()
            }
            setup |= {"lead": lead, "law_notes": list(self.law_notes)}
            setup["law_attrs"] = {name: _arviz.attrs(law.fit.idata) for name, law in others.items()}
        attrs = {**_arviz.attrs(self.fit.idata), COMPARISON_ATTR: json.dumps(setup)}
        return _arviz.save(_arviz.with_groups(self.fit.idata, groups, attrs), path)

    @classmethod
    def load(cls, path: str | Path) -> "Comparison":
        """Read a comparison written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise BayescaleError(f"comparison file {str(path)!r} not found")
        try:
            idata = _arviz.load(path)
            setup = json.loads(_arviz.attrs(idata)[COMPARISON_ATTR])
            if "laws" not in setup:
                return _rebuild(idata, setup, setup)
            per = {}
            for name, law in setup["laws"].items():
                data = idata
                if name != setup["lead"]:
                    own = {g.split("__")[0]: idata[g] for g in idata.groups() if g.endswith(f"__{name}")}
                    data = _arviz.from_groups(own, setup["law_attrs"][name])
                per[name] = _rebuild(data, setup, law)
        except (KeyError, OSError, ValueError) as e:
            raise BayescaleError(f"{path} is not a bayescale comparison file ({type(e).__name__}: {e})") from None
        weights = {name: law["weight"] for name, law in setup["laws"].items()}
        return ca.average(per, weights, setup["law_notes"], per[setup["lead"]].fit.seed)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_bytes(Path(path), (text + "\n").encode())
        return text


def is_saved_comparison(path: str | Path) -> bool:
    """Whether ``path`` holds a comparison written by :meth:`Comparison.save` (False for a fit,
    a missing file or anything else)."""
    try:
        return COMPARISON_ATTR in _arviz.attrs(_arviz.load(path))
    except (OSError, ValueError):
        return False


def _rebuild(idata: Any, setup: Mapping[str, Any], law: Mapping[str, Any]) -> Comparison:
    """One law's comparison from its saved joint fit: what :func:`compare` assembled."""
    a = _arviz.attrs(idata)
    base = ca.saved_spec(law["spec"])
    pool = Pooling(share=tuple(law["pooling"]["share"]), pool=tuple(law["pooling"]["pool"]))
    gspec = grouped_spec(base, setup["groups"], pool)
    gfit = Fit(spec=gspec, idata=idata, runs=runs_from_idata(idata), method=a["method"], seed=int(a["seed"]))
    rho = law["drift_correlation"]
    slopes = tuple(tuple(np.asarray(v, dtype=float) for v in pair) for pair in law.get("gap_slopes", []))
    recipes = cf.recipe_fits(gfit, base, pool, setup["groups"], rho, gfit.seed, slopes)
    target = parse_target(setup["target"])
    risk = parse_risk(setup["risk"])
    args = (setup["baseline"], setup["by"], target, pool, setup["ci_prob"], risk, setup["levels"])
    return _assemble(gfit, recipes, *args, tuple(law["warnings"]), rho, slopes)


# ------------------------------------------------------------------ compare


def compare(
    runs: Any,
    by: str = "recipe",
    *,
    spec: Any = "chinchilla",
    at: Any,
    baseline: str | None = None,
    pooling: Any = None,
    method: str = "nuts",
    seed: int = 0,
    risk: Any = "cvar:0.9",
    ci_prob: float = 0.9,
    levels: Sequence[float] | None = None,
    drift_correlation: float | str = DRIFT_CORRELATION,
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
) -> Comparison:
    """Compare training recipes by their scaling laws at a target compute or size.

    Parameters
    ----------
    runs : DataFrame or path
        One runs table with a grouping column ``by`` naming each run's recipe.
    by : str
        The grouping column (default ``"recipe"``).
    spec : ModelSpec, path or bundled name
        The law and priors every recipe follows (default the bundled Chinchilla spec), or a law
        average (e.g. ``"recommended"``): every law of it compared, weighted by leave-future-out
        stacking on all recipes' runs, and the draws mixed by weight (default pooling only).
    at : mapping or float
        ``{"C": FLOPs}`` (compute-optimal loss at that budget) or ``{"N": params, "D": tokens}``.
    baseline : str, optional
        The recipe the others are measured against (default: the first group in the table).
    pooling : mapping or Pooling, optional
        ``{"share": [...], "pool": [...], "free": [...]}``: parameters with one value for all
        recipes, pooled hierarchically (non-centred, LogNormal priors only), or free per recipe
        (the rest). Default (:meth:`Pooling.default`): share the irreducible loss ``E``; coefficients
        and exponents free per recipe. A mapping without ``share`` keeps ``E`` shared unless it
        pools or frees it.
    method : {"nuts", "laplace", "psis"}
        As :func:`bayescale.fit`. ``"laplace"`` takes seconds (for loops over many datasets);
        its Gaussian is rough in the funnel of pooled exponents, so decide with NUTS.
    seed, risk, ci_prob
        One seed; the risk measure ranking recipes (as :func:`bayescale.decide`); interval probability.
    levels : sequence of float, optional
        Compute levels of the multiplier trend (default: the largest run's compute up to the target).
    drift_correlation : "learned" or float
        How much of each recipe's extrapolation drift is its own: ``"learned"`` (the default)
        from the recipes' leave-future-out splits, or a stated correlation in [0, 1] of the
        recipes' drifts (see the module notes).
    chains, warmup, draws : int, optional
        Sampler overrides.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> cmp = compare(runs, by="recipe", at={"C": 1e23}, method="laplace")   # doctest: +SKIP
    >>> print(cmp.verdict)                                                  # doctest: +SKIP
    """
    target = parse_target(at)
    check_prob(ci_prob, "ci_prob")
    risk = parse_risk(risk)
    drift_correlation = _check_drift_correlation(drift_correlation)
    table = load_runs(runs)
    groups = _groups(table, by)
    baseline = _baseline(groups, baseline)
    spec = _spec(spec, table)
    kw = dict(method=method, chains=chains, warmup=warmup, draws=draws)
    shape = (baseline, by, target)
    rest = (ci_prob, risk, levels)
    if isinstance(spec, AverageSpec):
        if pooling is not None:
            raise BayescaleError(
                f"pooling: with a law average ({spec.name!r}) each law shares its irreducible loss and keeps the rest "
                "free per recipe; to choose the pooling, compare with a single-law spec"
            )
        members, notes = ca.members_for(spec, table, by, groups)
        laws, weights, more = ca.fit_laws(spec, members, table, by, groups, drift_correlation, seed, **kw)
        per = {
            name: _assemble(
                p["gfit"], p["recipes"], *shape, p["pooling"], *rest, p["warnings"], drift_correlation, p["slopes"]
            )
            for name, p in laws.items()
        }
        return ca.average(per, weights, notes + more, seed)
    pool = Pooling.parse(pooling, spec.law)
    _check_sizes(table, by, groups, spec, pool)
    gspec, gtable = grouped_spec(spec, groups, pool), cf.grouped_table(table, by, groups)
    learn_gap = drift_correlation == cf.LEARNED and spec.extrapolation is not None
    held = cf.held_out(gspec, gtable, seed, method) if learn_gap or gspec.learn_drift else []
    learned = Learned(drift=learn_drift(held, gspec.extrapolation)) if gspec.learn_drift else None
    gfit, caught = cf.fit_grouped(spec, table, groups, pool, by=by, seed=seed, learned=learned, **kw)
    slopes = tuple(group_slopes(held, gtable[by].astype(str).to_numpy())) if learn_gap else ()
    recipes = cf.recipe_fits(gfit, spec, pool, groups, drift_correlation, seed, slopes)
    return _assemble(gfit, recipes, *shape, pool, *rest, caught, drift_correlation, slopes)


def _check_drift_correlation(value: Any) -> float | str:
    if value == cf.LEARNED:
        return cf.LEARNED
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1):
        raise BayescaleError(f"drift_correlation must be {cf.LEARNED!r} or a number in [0, 1], got {value!r}")
    return float(value)


def _default_levels(recipes: Mapping[str, Fit], target: Target) -> np.ndarray:
    c_max = max(float(f.runs["C"].max()) for f in recipes.values())
    if target.C <= c_max:
        return np.asarray([target.C])
    return np.geomspace(c_max, target.C, N_LEVELS + 1)


def _assemble(
    gfit: Fit,
    recipes: dict[str, Fit],
    baseline: str,
    by: str,
    target: Target,
    pool: Pooling,
    ci_prob: float,
    risk: Any,
    levels: Sequence[float] | None,
    caught: tuple[str, ...],
    drift_correlation: float | str,
    gap_slopes: tuple = (),
) -> Comparison:
    """The comparison's draws: losses at the target, multipliers, compute-optimal curves."""
    cq.align(recipes)
    levels = _default_levels(recipes, target) if levels is None else cq.check_levels(levels)
    if not np.isclose(levels[-1], target.C):  # the trend ends at the target
        levels = np.append(levels[levels < target.C], target.C)
    c_min = min(float(f.runs["C"].min()) for f in recipes.values())
    curve_C = np.geomspace(c_min, max(target.C, c_min * 10) * 10, N_CURVE)
    curves = {g: cq.frontier_log_loss(f, curve_C) for g, f in recipes.items()}
    if target.at_point:
        point = pd.DataFrame({"N": [target.N], "D": [target.D]})
        losses = {g: np.exp(cq.point_log_loss(f, point)[:, 0]) for g, f in recipes.items()}
    else:
        losses = {g: np.exp(cq.frontier_log_loss(f, [target.C])[:, 0]) for g, f in recipes.items()}
    mult, clipped = {}, {}
    for g in recipes:
        if g == baseline:
            continue
        k, e = cq.multiplier_at_compute(recipes[baseline], recipes[g], levels)
        if target.at_point:  # the last level is the target: its multiplier at the point's allocation
            k[:, -1:], e[:, -1:] = cq.multiplier_at_point(recipes[baseline], recipes[g], target.N, target.D)
        mult[g], clipped[g] = k, e
    return Comparison(
        fit=gfit,
        recipes=recipes,
        baseline=baseline,
        by=by,
        target=target,
        pooling=pool,
        ci_prob=ci_prob,
        risk=risk,
        losses=losses,
        levels=np.asarray(levels, dtype=float),
        multipliers=mult,
        clipped=clipped,
        curve_C=curve_C,
        curves=curves,
        warnings=caught,
        drift_correlation=drift_correlation,
        gap_slopes=tuple(gap_slopes),
    )


__all__ = ["Comparison", "DRIFT_CORRELATION", "Pooling", "Target", "compare", "parse_target"]

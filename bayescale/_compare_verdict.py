"""The table and the verdict of a recipe comparison (:mod:`bayescale.comparison`): numbers per
recipe from its draws, and the comparison in words with the reasons to doubt it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _compare_quantities as cq
from ._words import count, join_names
from .decisions import LAPLACE_CAUTION, decide
from .errors import BayescaleError
from .misfit import ADVICE_HEAD, MIN_DOF, WARNING_HEAD, leverage

#: (Functions here take a :class:`bayescale.comparison.Comparison`, which imports this module.)
Comparison = Any
#: A crossing whose interval spans more than this factor in compute (or runs off either end) is
#: "not placed by the runs" in the verdict.
PLACED_FACTOR = 10.0


def jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def table_of(c: Comparison) -> pd.DataFrame:
    names = c.groups
    X = np.stack([c.losses[g] for g in names])
    dec = decide({g: X[i] for i, g in enumerate(names)}, risk=c.risk, ci_prob=c.ci_prob)
    t = dec.table[["median", "lo", "hi", "risk", "p_best"]].copy()
    t["regret"] = cq.regret(X)
    base = c.losses[c.baseline]
    cols = (
        "multiplier",
        "mult_lo",
        "mult_hi",
        "mult_clipped",
        "p_better",
        "diff",
        "diff_lo",
        "diff_hi",
        "diff_mean",
        "p_cross",
    )
    for col in cols + ("cross_C", "cross_lo", "cross_hi"):
        t[col] = np.nan
    crosses = _crossing_draws(c)
    for g in c.others:
        k = c.multipliers[g][:, -1]
        t.loc[g, ["multiplier", "mult_lo", "mult_hi"]] = cq.interval(k, c.ci_prob)
        t.loc[g, "mult_clipped"] = float(np.mean(c.clipped[g][:, -1]))  # draws held at K_RANGE's edge
        diff = c.losses[g] - base
        t.loc[g, "p_better"] = float(np.mean(diff < 0))
        med, lo, hi = cq.interval(diff, c.ci_prob)
        # the median beside the interval (a heavy tail can put the mean outside it), and the mean
        t.loc[g, ["diff", "diff_lo", "diff_hi", "diff_mean"]] = (med, lo, hi, float(np.mean(diff)))
        where = crosses[g]
        t.loc[g, "p_cross"] = float(np.mean((where > 0) & np.isfinite(where)))
        t.loc[g, ["cross_C", "cross_lo", "cross_hi"]] = cq.location_interval(where, c.ci_prob)
    t.index.name = c.by
    return t


def multiplier_bounds(row: Any, unit: str = "", fmt: str = ".3g") -> tuple[str, str]:
    """The multiplier's interval edges as text; an edge held at the searched range's bound
    (:data:`K_RANGE`) reads ``<=lo`` or ``>=hi``: the draws run beyond it."""
    edge = 1 + 1e-6
    lo = ("<=" if row["mult_lo"] <= cq.K_RANGE[0] * edge else "") + f"{row['mult_lo']:{fmt}}{unit}"
    hi = (">=" if row["mult_hi"] >= cq.K_RANGE[1] / edge else "") + f"{row['mult_hi']:{fmt}}{unit}"
    return lo, hi


def _heavy_tail(row: Any) -> str:
    """Said when the mean difference lies outside its interval: a few draws far out carry it."""
    if row["diff_lo"] <= row["diff_mean"] <= row["diff_hi"]:
        return ""
    return f"; mean {row['diff_mean']:+.4f}, outside it: a heavy tail of draws"


def _crossing_draws(c: Comparison) -> dict[str, np.ndarray]:
    """Per other recipe and draw, where its compute-optimal curve last crosses the baseline's
    between the smallest run and the target; ``inf`` where the crossing is still ahead (beyond
    the target), ``0`` where it lies before the smallest run (:func:`cq.crossing_location`)."""
    keep = c.curve_C <= c.target.C * (1 + 1e-9)
    if keep.sum() < 2:  # a target at or below the smallest run: no stretch of compute to cross in before it
        return {g: np.full(c.curves[g].shape[0], np.inf) for g in c.others}
    grid = c.curve_C[keep]
    return {g: cq.crossing_location(c.curves[g][:, keep] - c.curves[c.baseline][:, keep], grid) for g in c.others}


def _crossing_clause(c: Comparison, r: pd.Series) -> str:
    """Where the curves cross, in words: a located crossing, or the range the runs leave open."""
    said = f"; the curves cross below the target with probability {r['p_cross']:.2f}"
    if r["p_cross"] < 0.05:
        return said + "."
    lo, med, hi = r["cross_lo"], r["cross_C"], r["cross_hi"]
    pct = f"{100 * c.ci_prob:g}%"
    if lo > 0 and math.isfinite(hi) and hi / lo <= PLACED_FACTOR:
        return said + f" (at C={med:.3g}, {pct} interval {lo:.3g}-{hi:.3g})."
    c_min = float(c.curve_C[0])
    start = f"from C={lo:.3g}" if lo > 0 else f"from below the smallest run (C={c_min:.3g})"
    end = f"to C={hi:.3g}" if math.isfinite(hi) else "to beyond the target"
    middle = (
        f"median C={med:.3g}"
        if 0 < med < math.inf
        else f"median {'beyond the target' if med > 0 else 'below the runs'}"
    )
    # The curves are the recipes' fitted compute-optimal frontiers, not the runs themselves.
    return (
        said + f": its {pct} interval runs {start} {end} ({middle}); the runs cannot place where the fitted "
        "compute-optimal curves cross."
    )


def verdict_of(c: Comparison) -> str:
    t = c.table()
    pct = f"{100 * c.ci_prob:g}%"
    parts = [f"At {c.target.describe()}:"]
    for g in c.others:
        r = t.loc[g]
        parts.append(
            f"{g} beats {c.baseline} with probability {r['p_better']:.2f} (loss difference {r['diff']:+.4f}, "
            f"{pct} interval {r['diff_lo']:+.4f} to {r['diff_hi']:+.4f}{_heavy_tail(r)}); {g} is worth "
            f"{r['multiplier']:.3g}x {c.baseline}'s compute ({pct} interval {'-'.join(multiplier_bounds(r, 'x'))})"
            + _trend_clause(c, g)
            + _crossing_clause(c, r)
        )
    if c.laws:
        parts.append(f"Under law uncertainty: {c.describe_laws()}.")
    best = c.best
    b = t.loc[best]
    label = getattr(c.risk, "label", str(c.risk))
    parts.append(
        f"Pick {best}: best by {label} of loss, P(best) = {b['p_best']:.2f}, expected regret {b['regret']:.4f}."
    )
    if b["p_best"] < 0.8:
        parts.append(
            f"The evidence is weak (P(best) {b['p_best']:.2f} < 0.8): the choice may not matter at this scale, or "
            "more runs near the largest compute of each recipe would settle it."
        )
    return " ".join(parts + _doubts(c))


def _trend_clause(c: Comparison, g: str) -> str:
    m, levels = c.multiplier(g), np.asarray(c.levels)
    at_point = getattr(c.target, "at_point", False)
    if at_point:  # the last level is the multiplier at the point's own allocation, not on the frontier: not a trend
        m, levels = m.iloc[:-1], levels[:-1]
    if len(levels) < 2:
        return ""
    words = cq.trend_words(levels, m["median"].to_numpy())
    shown = ", ".join(f"{r['median']:.3g}x at C={r['C']:.2g}" for _, r in m.iterrows())
    where = "along the compute-optimal frontier, " if at_point else ""
    return f"; {where}{words} ({shown})" if words else ""


def _first_finding(warning: str, where: str = "comparison.fit.misfit()") -> str:
    """A warning's first finding (misfit warnings list several, separated by ``|``), and how many
    more, with ``where`` to read them."""
    findings = [f.strip() for f in warning.split(" | ")]
    more = f" (and {count(len(findings) - 1, 'more finding')}: see {where})" if len(findings) > 1 else ""
    return findings[0].rstrip(".") + more + "."


def _own_misfits(c: Comparison) -> list[str]:
    """A doubt per recipe whose own runs misfit its law: the joint fit's check pools every recipe's
    runs, so it can neither say whose runs bend nor see one recipe's bend among the others' runs."""
    out = []
    for g, recipe in c.recipes.items():
        try:
            found = recipe.misfit(alpha=OWNER_ALPHA / len(c.recipes))  # one family over the recipes
        except BayescaleError:  # too few runs of this recipe to test
            continue
        if found.misfits:
            first = _first_finding(" | ".join(found.messages), f"comparison.recipes[{g!r}].misfit()")
            out.append(f"Doubt: {g}'s own runs misfit its law: {first}")
    return out


#: Family-wise level of the tests that name a recipe in a comparison's misfit doubts (as the misfit check's).
OWNER_ALPHA = 0.1


def owners(z: np.ndarray, groups: np.ndarray, lev: np.ndarray, alpha: float = OWNER_ALPHA) -> list[tuple]:
    """The groups whose runs sit further off a joint fit than the others': per group, an F test of
    its residuals' mean square against the other groups', each on its degrees of freedom (runs minus
    the fit's leverage on them: a group with its own parameters absorbs part of its own noise),
    Bonferroni over the groups. Returns ``(group, own mean square, others', p)`` for each named."""
    named = []
    labels = list(dict.fromkeys(groups))
    for g in labels:
        own = groups == g
        dof_own, dof_rest = float(own.sum() - lev[own].sum()), float((~own).sum() - lev[~own].sum())
        if min(dof_own, dof_rest) < MIN_DOF:  # a mean square on fewer is too unsteady to name anyone by
            continue
        ms_own, ms_rest = float(np.sum(z[own] ** 2)) / dof_own, float(np.sum(z[~own] ** 2)) / dof_rest
        p = float(stats.f.sf(ms_own / max(ms_rest, 1e-300), dof_own, dof_rest))
        if ms_own > ms_rest and p < alpha / len(labels):
            named.append((g, ms_own, ms_rest, p))
    return named


def _misfit_owner(c: Comparison) -> str:
    """Whose runs sit further off the joint fit than the others', when the F test of :func:`owners` says so."""
    z = c.fit.misfit().residuals.set_index("run_id")["z"]
    where = {rid: g for g, f in c.recipes.items() for rid in f.runs["run_id"]}
    groups = np.array([where.get(rid, "") for rid in z.index], dtype=object)
    said = [
        f"{g}'s runs sit further off it than the others' (mean squared standardised residual {own:.2g} against "
        f"{rest:.2g} per degree of freedom, F test p = {p:.2g})"
        for g, own, rest, p in owners(z.to_numpy(), groups, leverage(c.fit))
        if g
    ]
    return f" ({'; '.join(said)})" if said else ""


def _doubts(c: Comparison) -> list[str]:
    out = []
    for w in c.warnings:
        owner = _misfit_owner(c) if w.startswith(WARNING_HEAD) else ""
        found = w.split(ADVICE_HEAD)[0]  # the fit's advice is for one law; the verdict says its own
        out.append(f"Doubt: {_first_finding(found).rstrip('.')}{owner}.")
    out += _own_misfits(c)
    if c.pooling.pool and c.fit.method != "nuts":
        out.append(
            f"Doubt: {join_names(c.pooling.pool)} pooled hierarchically with method {c.fit.method!r}: the Gaussian "
            "approximation is poor in the hierarchy's funnel (heavy, too wide tails); decide with method='nuts'."
        )
    if c.fit.method == "laplace" and not c.pooling.pool:  # (a pooled Laplace fit has its own doubt, above)
        out.append(f"Caution: {LAPLACE_CAUTION}.")
    for g in c.others:
        share = float(np.mean(c.clipped[g][:, -1]))
        if share > 0.05:
            out.append(
                f"Doubt: for {100 * share:.0f}% of draws {g}'s multiplier lies beyond "
                f"{cq.K_RANGE[0]:g}-{cq.K_RANGE[1]:g}x (e.g. one recipe's loss floor is below what the other can "
                "reach): the interval's edge is that bound."
            )
    far = {g: c.target.C / float(f.runs["C"].max()) for g, f in c.recipes.items()}
    worst = max(far, key=far.get)
    if far[worst] > 100:
        out.append(
            f"Caution: the target is {far[worst]:.3g}x the compute of {worst}'s largest run; the bands include the "
            f"spec's extrapolation drift ({c.drift_words()}; "
            "a multiplier this far out is only as good as the law's form there)."
        )
    return out


__all__ = ["jsonable", "table_of", "verdict_of"]

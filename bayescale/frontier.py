"""The compute-optimal frontier: per-draw allocation of a FLOP budget between model size and data.

For each posterior draw the law is minimised over model size ``N`` at ``C = 6 N D``: in closed
form where the law declares one (:attr:`bayescale.laws.Law.optimal_N`,
:attr:`bayescale.laws.Law.allocation_exponents`), otherwise numerically on a grid in log N.
Everything here takes a fit (its posterior, spec and runs) and returns draws or their bands. The
optimal loss is predicted as :meth:`bayescale.Fit.predict` predicts any point's: with the extrapolation
drift at each draw's own optimum and the fit's conformal factor, so the frontier's band at 100x the runs
is as wide as the band of a run placed there. Where the allocation is decided (the regret of a size
against each draw's optimum) the law's own loss is compared with itself.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from . import _arviz
from ._words import join_names
from .discrepancy import conformal_scaled
from .errors import BayescaleError, IdentifiabilityWarning, LawError
from .model import DRIFT, distance_from_runs

if TYPE_CHECKING:
    from .inference import Fit


def check_prob(q: Any, what: str) -> None:
    """Raise unless ``q`` is a number in (0, 1)."""
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
        raise BayescaleError(f"{what} must be a number in (0, 1), got {q!r}")


def law_draws(fit: Fit) -> dict[str, np.ndarray]:
    """The posterior draws of the law's parameters, flattened over chains (float64)."""
    return {p: np.asarray(fit.posterior[p].values, dtype=float).reshape(-1) for p in fit.spec.law.params}


def _log_inputs_for(fit: Fit, N: np.ndarray, D: np.ndarray, unique_tokens: float | None) -> dict[str, np.ndarray]:
    # C = 6 N D; the unique tokens are D (fresh data) unless the user has fewer: then D repeats them.
    values = {"N": N, "D": D} if unique_tokens is None else {"N": N, "D": D, "U": np.minimum(D, unique_tokens)}
    try:
        return fit.spec.law.log_inputs(values, fit.spec.inputs)
    except LawError as e:
        raise BayescaleError(f"compute-optimal allocation needs the law's inputs from N and D: {e}") from None


def reads_unique_tokens(fit: Fit) -> bool:
    """Whether the fit's law (any law of an average) reads the unique tokens ``U``: only then can a
    budget's allocation account for data that repeats."""
    if _is_average(fit):
        return any(reads_unique_tokens(m) for m in fit.members.values())
    return "U" in {fit.spec.inputs.get(i, i) for i in fit.spec.law.inputs}


def _loss_at(
    fit: Fit, theta: Mapping[str, np.ndarray], N: np.ndarray, D: np.ndarray, unique_tokens: float | None = None
) -> np.ndarray:
    """Law loss for per-draw parameters ``theta[p]`` shaped (S,) at N, D shaped (S, ...)."""
    th = {k: v.reshape((-1,) + (1,) * (N.ndim - 1)) for k, v in theta.items()}
    # The search visits sizes far outside the runs, where a law's inner exponentials may overflow to
    # an infinite loss: never the optimum, and no reason to warn the user.
    with np.errstate(over="ignore"):
        log_x = _log_inputs_for(fit, N, D, unique_tokens)
        return np.exp(np.asarray(fit.spec.law.log_loss(th, log_x, np), dtype=float))


def _predicted_log_loss(fit: Fit, log_law: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The law's log loss ``log_law`` (draw, budget) at each draw's own (N, D), with the extrapolation
    drift for that point's distance from the runs and the fit's conformal factor (:meth:`Fit.log_loss`)."""
    out = np.array(log_law, dtype=float)
    if DRIFT in fit.posterior:
        drift = np.asarray(fit.posterior[DRIFT].values, dtype=float).reshape(-1)
        for k in range(out.shape[1]):  # one budget at a time: the distances compare every draw with every run
            at = pd.DataFrame({"N": N[:, k], "D": D[:, k]})
            out[:, k] += drift * distance_from_runs(fit.spec, fit.runs, at)
    chains = fit.posterior.sizes["chain"]
    scaled = conformal_scaled(out.reshape(chains, -1, out.shape[1]), _arviz.attrs(fit.idata).get("conformal_factor"))
    return scaled.reshape(out.shape)


#: The numerical optimum's search: a coarse grid over log N, then a fine one over the best coarse
#: cell's neighbours (step 2/(FINE - 1) of the coarse one: as fine as one 512-point grid), then a parabola.
COARSE, FINE = 64, 17


def _numerical_optimum(
    fit: Fit,
    theta: Mapping[str, np.ndarray],
    C: float,
    ratio_bounds: tuple[float, float],
    n_grid: int,
    unique_tokens: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw argmin over log N of L(N, C/(6N)): a grid of ``n_grid`` points, refined around
    each draw's best cell on a finer grid, then by a parabola; returns (N_opt, at_bound).

    Two stages cost COARSE + FINE evaluations per draw where one grid of the same resolution
    costs eight times more: the loss along an isoFLOP line is smooth and single-valleyed for
    every registered law, so the coarse grid finds the valley and the fine one its bottom."""
    S = next(iter(theta.values())).size
    # tokens per parameter r = D/N = C/(6 N^2)  =>  N = sqrt(C / (6 r))
    lo, hi = 0.5 * math.log(C / (6 * ratio_bounds[1])), 0.5 * math.log(C / (6 * ratio_bounds[0]))
    coarse = np.linspace(lo, hi, n_grid)
    N = np.broadcast_to(np.exp(coarse), (S, n_grid))
    L = _loss_at(fit, theta, N, C / (6.0 * N), unique_tokens)
    i = np.argmin(L, axis=1)
    h = coarse[1] - coarse[0]
    # The fine grid spans the best coarse cell's neighbours (clipped to the bounds), per draw.
    start = np.clip(coarse[i] - h, lo, hi - 2 * h)
    logN = start[:, None] + np.linspace(0.0, 2 * h, FINE)[None, :]
    N = np.exp(logN)
    L = _loss_at(fit, theta, N, C / (6.0 * N), unique_tokens)
    k = np.argmin(L, axis=1)
    rows = np.arange(S)
    at_bound = ((i == 0) & (k == 0)) | ((i == n_grid - 1) & (k == FINE - 1))
    j = np.clip(k, 1, FINE - 2)
    y0, y1, y2 = L[rows, j - 1], L[rows, j], L[rows, j + 1]
    denom = y0 - 2 * y1 + y2
    step = 2 * h / (FINE - 1)
    shift = np.where(denom > 0, 0.5 * step * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
    best = np.where(at_bound, logN[rows, k], logN[rows, j] + np.clip(shift, -step, step))
    return np.exp(best), at_bound


def closed_form(fit: Fit) -> bool:
    """Whether :func:`compute_optimal` has the law's closed form (else it searches numerically)."""
    law = fit.spec.law
    return law.optimal_N is not None and all(fit.spec.inputs[i] == i for i in law.inputs)


def compute_optimal(
    fit: Fit,
    budgets: Any,
    *,
    unique_tokens: float | None = None,
    ratio_bounds: tuple[float, float] = (0.01, 1e5),
    n_grid: int = COARSE,
) -> xr.Dataset:
    """Posterior of the compute-optimal allocation at each budget ``C = 6 N D``.

    Closed form where the law declares one (Chinchilla:
    ``N_opt = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A/(beta B))^(1/(alpha+beta))``);
    otherwise a vectorised per-draw minimisation over model size with tokens per
    parameter within ``ratio_bounds``.

    Returns
    -------
    xarray.Dataset
        ``N_opt``, ``D_opt``, ``tokens_per_param``, ``loss_opt`` (the loss predicted there, drift and
        conformal factor included, as ``fit.predict`` without noise; a conformal factor scales the draws
        about the median of the draws' own optima) and ``law_loss_opt`` (the law's
        value alone) with dims ``(chain, draw, budget)``, coordinate ``budget`` (FLOPs), and
        ``at_bound`` (True where the numerical optimum sits on the edge of ``ratio_bounds``: no
        interior optimum).

    Examples
    --------
    >>> opt = compute_optimal(fit, [5.76e23])                    # doctest: +SKIP
    >>> float(opt.tokens_per_param.median())                     # doctest: +SKIP
    """
    try:
        C = np.atleast_1d(np.asarray(budgets, dtype=float))
    except (TypeError, ValueError):
        C = np.array([np.nan])
    if C.ndim != 1 or C.size == 0 or not np.all(np.isfinite(C) & (C > 0)):
        raise BayescaleError(f"budgets must be one or more positive finite FLOP counts, got {budgets!r}")
    unique_tokens = _checked_unique_tokens(unique_tokens)
    if _is_average(fit):
        return _average_optimal(fit, C, unique_tokens, ratio_bounds, n_grid)
    theta = law_draws(fit)
    chains, draws = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    law = fit.spec.law
    # a closed form is derived for fresh data: with fewer unique tokens a law that reads U is searched
    closed = closed_form(fit) and (unique_tokens is None or not reads_unique_tokens(fit))
    N_opt = np.empty((theta[law.params[0]].size, C.size))
    at_bound = np.zeros_like(N_opt, dtype=bool)
    for k, c in enumerate(C):
        if closed:
            N_opt[:, k] = law.optimal_N(theta, c)
        else:
            N_opt[:, k], at_bound[:, k] = _numerical_optimum(fit, theta, float(c), ratio_bounds, n_grid, unique_tokens)
    D_opt = C[None, :] / (6.0 * N_opt)
    law_loss = _loss_at(fit, theta, N_opt, D_opt, unique_tokens)
    shape = (chains, draws, C.size)
    dims = ("chain", "draw", "budget")
    return xr.Dataset(
        {
            "N_opt": (dims, N_opt.reshape(shape)),
            "D_opt": (dims, D_opt.reshape(shape)),
            "tokens_per_param": (dims, (D_opt / N_opt).reshape(shape)),
            "loss_opt": (dims, np.exp(_predicted_log_loss(fit, np.log(law_loss), N_opt, D_opt).reshape(shape))),
            "law_loss_opt": (dims, law_loss.reshape(shape)),
            "at_bound": (dims, at_bound.reshape(shape)),
        },
        coords={"budget": C},
        attrs={"method": "closed form" if closed else "numerical", "unique_tokens": unique_tokens or "fresh"},
    )


def _checked_unique_tokens(unique_tokens: Any) -> float | None:
    if unique_tokens is None:
        return None
    if isinstance(unique_tokens, bool) or not isinstance(unique_tokens, numbers.Real) or not unique_tokens > 0:
        raise BayescaleError(f"unique_tokens must be a positive number of tokens, got {unique_tokens!r}")
    if not math.isfinite(unique_tokens):
        return None  # unlimited: fresh data
    return float(unique_tokens)  # NumPy scalars too


def check_splits(fit: Any, target: str | None = None) -> None:
    """A compute-optimal allocation (``optimal``), or the compute-optimal ``target`` named (``suggest``'s
    frontier, N_opt or frontier-segment targets), splits C = 6ND between N and D: only laws that read both
    have an optimum; a law average is refused when any of its laws does not."""
    what = "compute-optimal allocation" if target is None else f"target {target}: a compute-optimal target"
    hint = "" if target is None else "; give a point instead (N=..,D=..: the law reads its C = 6ND)"
    laws = list(fit.members.values()) if _is_average(fit) else [fit]
    blind = sorted({m.spec.law.name for m in laws if not {"N", "D"} <= set(m.spec.columns)})
    if not blind:
        return
    reads = join_names(sorted({c for m in laws if m.spec.law.name in blind for c in m.spec.columns}))
    raise BayescaleError(
        f"{what} splits a budget C = 6ND between N and D; law {join_names(blind, quoted=True)} reads {reads}, so "
        f"at fixed C its loss does not depend on the split{hint}"
    )


def _is_average(fit: Fit) -> bool:
    # A law average (bayescale.averaging.AveragedFit, which sits beside this module) holds one fit per
    # law; its allocation is each law's own optimum in the draw slots that law fills.
    return hasattr(fit, "members") and hasattr(fit, "mix")


def _average_optimal(
    fit: Any, C: np.ndarray, unique_tokens: float | None, ratio_bounds: tuple[float, float], n_grid: int
) -> xr.Dataset:
    """:func:`compute_optimal` of a law average: each law's optimum per draw, mixed by the average's slots,
    and the average's conformal factor on the predicted loss (as its ``log_loss`` applies it)."""
    kw = {"unique_tokens": unique_tokens, "ratio_bounds": ratio_bounds, "n_grid": n_grid}
    parts = [compute_optimal(m, C, **kw) for m in fit.members.values()]
    dims = ("chain", "draw", "budget")
    # Each budget's laws mixed as ``predict`` mixes them at the budget's optimum (the median over the draws):
    # beyond the reach the weights were tested at, by weights faded towards equal.
    where = {v: np.median(fit.mix([p[v].values for p in parts]), axis=(0, 1)) for v in ("N_opt", "D_opt")}
    at = pd.DataFrame({"N": where["N_opt"], "D": where["D_opt"]})
    data = {var: (dims, fit.mix([p[var].values for p in parts], at)) for var in parts[0].data_vars}
    data["at_bound"] = (dims, data["at_bound"][1] > 0.5)
    data["loss_opt"] = (dims, np.exp(conformal_scaled(np.log(data["loss_opt"][1]), fit.conformal)))
    methods = {name: p.attrs["method"] for name, p in zip(fit.members, parts, strict=True)}
    method = "closed form" if set(methods.values()) == {"closed form"} else "numerical"
    if len(set(methods.values())) > 1:
        method = "mixed: " + ", ".join(f"{name} {how}" for name, how in methods.items())
    attrs = {"method": method, "laws": list(fit.members), "unique_tokens": unique_tokens or "fresh"}
    return xr.Dataset(data, coords={"budget": C}, attrs=attrs)


def allocation_exponents(fit: Fit, *, budget: float | None = None) -> xr.Dataset:
    """Posterior of the scaling exponents of the optimal allocation, ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``.

    Closed form where the law declares one (Chinchilla: ``a = beta/(alpha+beta)``,
    ``b = alpha/(alpha+beta)``, :attr:`bayescale.laws.Law.allocation_exponents`); for
    other laws the local slopes of log N_opt and log D_opt in log C around ``budget``
    (default: 100x the largest run's compute). A law average mixes its laws' exponents.
    """
    if _is_average(fit):
        parts = [allocation_exponents(m, budget=budget) for m in fit.members.values()]
        mixed = {v: (("chain", "draw"), fit.mix([np.asarray(p[v].values) for p in parts])) for v in ("a", "b")}
        methods = sorted({p.attrs["method"] for p in parts})
        return xr.Dataset(mixed, attrs={"method": methods[0] if len(methods) == 1 else "mixed over the laws"})
    law = fit.spec.law
    if law.allocation_exponents is not None and all(fit.spec.inputs[i] == i for i in law.inputs):
        a, b = law.allocation_exponents(fit.posterior)
        return xr.Dataset({"a": a, "b": b}, attrs={"method": "closed form"})
    c0 = float(budget) if budget is not None else 100.0 * float(fit.runs["C"].max())
    opt = compute_optimal(fit, [c0 / math.sqrt(10), c0 * math.sqrt(10)])
    a = np.log(opt["N_opt"].isel(budget=1) / opt["N_opt"].isel(budget=0)) / math.log(10)
    return xr.Dataset({"a": a, "b": 1.0 - a}, attrs={"method": f"local slope at C={c0:.3g}"})


def allocation_regret(
    fit: Fit, budget: float, N: Sequence[float] | np.ndarray, *, unique_tokens: float | None = None
) -> pd.DataFrame:
    """Expected excess loss of training size ``N`` at budget ``C`` over each draw's own optimum.

    Returns
    -------
    pandas.DataFrame
        Per candidate N: ``D`` (= C/(6N)), ``tokens_per_param``, ``expected_loss``,
        ``expected_regret`` (E[L(N) - L(N_opt)]), ``relative_regret`` (as a fraction of the
        optimal loss) and ``p_within_0.5pct`` (probability the regret is below 0.5%).
    """
    N = np.atleast_1d(np.asarray(N, dtype=float))
    if not np.all(np.isfinite(N) & (N > 0)):
        raise BayescaleError("candidate N must be positive and finite")
    c = float(budget)
    unique_tokens = _checked_unique_tokens(unique_tokens)
    if _is_average(fit):
        parts = [_loss_and_optimum(m, c, N, unique_tokens) for m in fit.members.values()]
        at = pd.DataFrame({"N": N, "D": c / (6.0 * N)})  # beyond the weights' reach, mixed as predict mixes
        L, L_opt = (fit.mix([p[i] for p in parts], at).reshape(-1, N.size) for i in (0, 1))
    else:
        L, L_opt = (x.reshape(-1, N.size) for x in _loss_and_optimum(fit, c, N, unique_tokens))
    regret = L - L_opt
    rel = regret / L_opt
    return pd.DataFrame(
        {
            "N": N,
            "D": c / (6.0 * N),
            "tokens_per_param": c / (6.0 * N * N),
            "expected_loss": L.mean(axis=0),
            "expected_regret": regret.mean(axis=0),
            "relative_regret": rel.mean(axis=0),
            "p_within_0.5pct": (rel <= 0.005).mean(axis=0),
        }
    )


def _loss_and_optimum(fit: Fit, c: float, N: np.ndarray, unique_tokens: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The law's loss at each size ``N`` of budget ``c`` and at each draw's own optimum, both (chain, draw, n):
    the law against itself, since the drift moves every size of one draw alike."""
    opt = compute_optimal(fit, [c], unique_tokens=unique_tokens)
    L_opt = opt["law_loss_opt"].values.reshape(-1, 1)
    NN = np.broadcast_to(N, (L_opt.shape[0], N.size))
    shape = (fit.posterior.sizes["chain"], fit.posterior.sizes["draw"], N.size)
    L = _loss_at(fit, law_draws(fit), NN, c / (6.0 * NN), unique_tokens)
    return L.reshape(shape), np.broadcast_to(L_opt, L.shape).reshape(shape)


def near_optimal_range(
    fit: Fit, budget: float, *, tolerance: float = 0.005, n_grid: int = 400, unique_tokens: float | None = None
) -> tuple[float, float]:
    """The range of N whose expected relative regret at ``budget`` is at most ``tolerance``
    ("any N in this range is within 0.5% of optimal"): ``(nan, nan)``, with an
    :class:`~bayescale.errors.IdentifiabilityWarning` saying the least regret any N reaches, when no N
    does (the runs leave the optimal N too uncertain)."""
    c = float(budget)
    n_opt = compute_optimal(fit, [c], unique_tokens=unique_tokens)["N_opt"].values.reshape(-1)
    grid = float(np.median(n_opt)) * np.geomspace(1e-2, 1e2, n_grid)
    regret = allocation_regret(fit, c, grid, unique_tokens=unique_tokens)["relative_regret"].to_numpy()
    ok = regret <= tolerance
    if not ok.any():
        best = int(np.argmin(regret))
        lo, hi = np.quantile(n_opt, [0.05, 0.95])
        warnings.warn(
            f"near_optimal_range: at C = {c:.3g} no N keeps the expected loss within {100 * tolerance:.3g}% of each "
            f"draw's optimum; the least expected excess is {100 * regret[best]:.3g}%, at N = {grid[best]:.3g}. The runs leave the "
            f"optimal N uncertain (90% interval {lo:.3g}-{hi:.3g}): add runs that pin the law's exponents, or give "
            "a larger tolerance.",
            IdentifiabilityWarning,
            stacklevel=2,
        )
        return (math.nan, math.nan)
    return float(grid[ok].min()), float(grid[ok].max())


# ------------------------------------------------------------------ bands


def band_table(draws: xr.DataArray, *, ci_probs: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Median and equal-tailed intervals per point of ``fit.predict(...)`` draws."""
    if not isinstance(draws, xr.DataArray) or "point" not in draws.dims:
        raise BayescaleError("band_table takes the DataArray returned by Fit.predict (dims chain, draw, point)")
    qs = [0.5]
    for p in ci_probs:
        check_prob(p, "ci_probs")
        qs += [(1 - p) / 2, 1 - (1 - p) / 2]
    qv = draws.quantile(sorted(set(qs)), dim=("chain", "draw"))
    out = pd.DataFrame({c: draws[c].values for c in ("N", "D", "C") if c in draws.coords})
    out["median"] = qv.sel(quantile=0.5).values
    for p in ci_probs:
        lo, hi = (1 - p) / 2, 1 - (1 - p) / 2
        out[f"lo{100 * p:g}"] = qv.sel(quantile=lo).values
        out[f"hi{100 * p:g}"] = qv.sel(quantile=hi).values
    return out


def frontier(
    fit: Fit, budgets: Any, *, ci_probs: Sequence[float] = (0.5, 0.9), unique_tokens: float | None = None
) -> pd.DataFrame:
    """Bands of the loss, N_opt and D_opt along the compute-optimal frontier."""
    opt = compute_optimal(fit, budgets, unique_tokens=unique_tokens)
    out = pd.DataFrame({"C": opt["budget"].values})
    for var in ("loss_opt", "N_opt", "D_opt", "tokens_per_param"):
        x = opt[var]
        out[f"{var}_median"] = x.median(dim=("chain", "draw")).values
        for p in ci_probs:
            lo, hi = (1 - p) / 2, 1 - (1 - p) / 2
            out[f"{var}_lo{100 * p:g}"] = x.quantile(lo, dim=("chain", "draw")).values
            out[f"{var}_hi{100 * p:g}"] = x.quantile(hi, dim=("chain", "draw")).values
    return out


__all__ = [
    "allocation_exponents",
    "allocation_regret",
    "band_table",
    "check_splits",
    "compute_optimal",
    "frontier",
    "law_draws",
    "reads_unique_tokens",
    "near_optimal_range",
]

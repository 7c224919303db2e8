"""Scale-up decisions with quantified risk, and compute-optimal allocation.

Everything here works on posterior draws: a risk measure is a small object applied
to draws of loss; a decision compares named options draw by draw (so "P(option is
best)" accounts for their shared uncertainty); compute-optimal allocation is solved
per draw, in closed form where the law declares one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import BayescaleError

# ------------------------------------------------------------------ risk measures


@dataclass(frozen=True)
class Expectation:
    """The posterior mean of the loss."""

    @property
    def label(self) -> str:
        return "mean"

    def __call__(self, draws: np.ndarray) -> float:
        return float(np.mean(draws))


@dataclass(frozen=True)
class Quantile:
    """The ``q`` quantile of the loss (value at risk: the loss is below it with probability ``q``)."""

    q: float = 0.9

    def __post_init__(self) -> None:
        _check_prob(self.q, "Quantile q")

    @property
    def label(self) -> str:
        return f"q{100 * self.q:g}"

    def __call__(self, draws: np.ndarray) -> float:
        return float(np.quantile(draws, self.q))


VaR = Quantile


@dataclass(frozen=True)
class CVaR:
    """Conditional value at risk: the mean loss in the worst ``1 - q`` tail (loss above its ``q`` quantile)."""

    q: float = 0.9

    def __post_init__(self) -> None:
        _check_prob(self.q, "CVaR q")

    @property
    def label(self) -> str:
        return f"cvar{100 * self.q:g}"

    def __call__(self, draws: np.ndarray) -> float:
        x = np.sort(np.asarray(draws, dtype=float).reshape(-1))
        k = int(math.floor(self.q * x.size))
        return float(np.mean(x[min(k, x.size - 1) :]))


def _check_prob(q: Any, what: str) -> None:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
        raise BayescaleError(f"{what} must be a number in (0, 1), got {q!r}")


def parse_risk(text: str | Any) -> Any:
    """``"mean"``, ``"quantile:0.9"`` (or ``"var:0.9"``) or ``"cvar:0.9"`` to a risk measure."""
    if not isinstance(text, str):
        return text
    name, _, arg = text.strip().lower().partition(":")
    try:
        q = float(arg) if arg else 0.9
    except ValueError:
        q = None
    if name in ("mean", "expectation") and not arg:
        return Expectation()
    try:
        if name in ("quantile", "var") and q is not None:
            return Quantile(q)
        if name == "cvar" and q is not None:
            return CVaR(q)
    except BayescaleError as e:
        raise BayescaleError(f"risk {text!r}: {e}; use 'mean', 'quantile:Q', 'var:Q' or 'cvar:Q' with Q in (0, 1)") from None
    raise BayescaleError(f"risk {text!r} not understood; use 'mean', 'quantile:Q', 'var:Q' or 'cvar:Q' with Q in (0, 1)")


@dataclass(frozen=True)
class Utility:
    """Value of reaching the threshold against the price of compute.

    ``U(option) = value * [loss <= threshold] - price_per_flop * C(option)``, in any
    currency; used for the expected value of perfect information.
    """

    value: float
    price_per_flop: float = 0.0


# ------------------------------------------------------------------ decisions


def _flat(draws: Any, name: str) -> np.ndarray:
    if isinstance(draws, xr.DataArray):
        if "point" in draws.dims:
            if draws.sizes["point"] != 1:
                raise BayescaleError(f"option {name!r}: draws have {draws.sizes['point']} points; give one point per option")
            draws = draws.isel(point=0)
        x = draws.transpose("chain", "draw").values if {"chain", "draw"} <= set(draws.dims) else draws.values
    else:
        x = np.asarray(draws, dtype=float)
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise BayescaleError(f"option {name!r}: draws must be a non-empty array of finite losses")
    return x


@dataclass(frozen=True)
class Decision:
    """The comparison of scale-up options; :meth:`verdict` says it in words.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per option: ``mean, median, lo, hi`` (equal-tailed ``ci_prob`` interval),
        ``p_below`` (P(loss <= threshold)), ``var`` and ``cvar`` at ``risk_q``, ``risk``
        (the chosen measure), ``p_best`` (probability it has the lowest loss), and N, D, C when known.
    best : str
        The option with the lowest risk.
    evpi : float or None
        Expected value of perfect information, when a utility was given.
    """

    table: pd.DataFrame
    best: str
    risk_label: str
    ci_prob: float
    threshold: float | None = None
    evpi: float | None = None
    expected_utility: Mapping[str, float] | None = None
    notes: tuple[str, ...] = field(default=())

    def verdict(self) -> str:
        """Plain words for a planning doc."""
        t = self.table
        b = t.loc[self.best]
        pct = f"{100 * self.ci_prob:g}%"
        size = _describe(b)
        parts = [f"Best by {self.risk_label} of loss: {self.best}{size} ({self.risk_label} {b['risk']:.3f})."]
        if self.threshold is not None:
            parts.append(f"P(loss <= {self.threshold:.3g}) = {b['p_below']:.2f} for {self.best};")
        parts.append(f"median {b['median']:.3f}, {pct} interval {b['lo']:.3f}-{b['hi']:.3f}.")
        others = [o for o in t.index if o != self.best]
        if others:
            rival = max(others, key=lambda o: t.loc[o, "p_best"])
            parts.append(f"{rival}{_describe(t.loc[rival])} is better with probability {t.loc[rival, 'p_best']:.2f}.")
        if self.evpi is not None:
            parts.append(f"Expected value of perfect information: {self.evpi:.4g}.")
        return " ".join(parts + list(self.notes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "risk": self.risk_label,
            "ci_prob": self.ci_prob,
            "threshold": self.threshold,
            "evpi": self.evpi,
            "expected_utility": dict(self.expected_utility) if self.expected_utility else None,
            "options": {k: {c: _jsonable(v) for c, v in row.items()} for k, row in self.table.iterrows()},
            "verdict": self.verdict(),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _describe(row: pd.Series) -> str:
    if "N" in row and "D" in row and np.isfinite(row.get("N", np.nan)) and np.isfinite(row.get("D", np.nan)):
        return f" (N={_human(row['N'])} params, D={_human(row['D'])} tokens)"
    return ""


def _human(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def decide(
    options: Mapping[str, Any],
    *,
    fit: Any = None,
    threshold: float | None = None,
    risk: Any = "cvar:0.9",
    ci_prob: float = 0.9,
    utility: Utility | None = None,
    noise: bool = True,
    seed: int = 0,
) -> Decision:
    """Compare named scale-up options by their posterior loss.

    Parameters
    ----------
    options : mapping of str to draws or to a point
        Either draws of loss per option (e.g. ``fit.predict(...)`` DataArrays with one
        point, or arrays; all from the same posterior so they align draw by draw), or
        points ``{"N": 7e9, "D": 1.4e12}`` predicted with ``fit``.
    fit : Fit, optional
        Needed when options are points.
    threshold : float, optional
        Target loss: reports P(loss <= threshold).
    risk : str or risk measure
        ``Expectation()``, ``Quantile(q)``, ``CVaR(q)`` or their text forms; the option with
        the lowest risk is ``best``.
    ci_prob : float
        Probability of the equal-tailed interval.
    utility : Utility, optional
        Value of reaching ``threshold`` and price per FLOP: adds expected utilities and the
        expected value of perfect information (needs ``threshold`` and points).
    noise : bool
        Include seed-to-seed noise (the measured loss of one run), default True.
    seed : int
        Seed for the noise draws.

    Returns
    -------
    Decision

    Examples
    --------
    >>> dec = decide({"7B": {"N": 7e9, "D": 1.4e12}, "13B": {"N": 13e9, "D": 7e11}},
    ...              fit=fit, threshold=2.1, risk="cvar:0.9")      # doctest: +SKIP
    >>> print(dec.verdict())                                        # doctest: +SKIP
    """
    if not isinstance(options, Mapping) or not options:
        raise BayescaleError("options must be a non-empty mapping of option name to draws or to a point {N, D}")
    _check_prob(ci_prob, "ci_prob")
    risk = parse_risk(risk)
    names = [str(k) for k in options]
    points = {k: v for k, v in options.items() if isinstance(v, Mapping)}
    meta = pd.DataFrame(index=names, columns=["N", "D", "C"], dtype=float)
    draws: dict[str, np.ndarray] = {}
    if points:
        if len(points) != len(options):
            raise BayescaleError("options must be all points or all draws, not a mix")
        if fit is None:
            raise BayescaleError("options given as points need fit=... to predict them")
        from .data import points_frame

        frame = points_frame(list(points.values()))
        pred = fit.predict(frame, noise=noise, seed=seed)
        for i, name in enumerate(names):
            draws[name] = _flat(pred.isel(point=[i]), name)
            for col in ("N", "D", "C"):
                if col in frame:
                    meta.loc[name, col] = float(frame[col].iloc[i])
    else:
        for name, v in zip(names, options.values()):
            draws[name] = _flat(v, name)
    sizes = {len(v) for v in draws.values()}
    if len(sizes) != 1:
        raise BayescaleError(f"options have different numbers of draws {sorted(sizes)}; draw them from one posterior")
    X = np.stack([draws[n] for n in names])  # (option, draw)
    lo_q, hi_q = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    q = getattr(risk, "q", 0.9)
    winners = np.argmin(X, axis=0)
    rows = []
    for i, n in enumerate(names):
        x = X[i]
        rows.append(
            {
                "mean": float(np.mean(x)),
                "median": float(np.median(x)),
                "lo": float(np.quantile(x, lo_q)),
                "hi": float(np.quantile(x, hi_q)),
                "p_below": float(np.mean(x <= threshold)) if threshold is not None else np.nan,
                "var": Quantile(q)(x),
                "cvar": CVaR(q)(x),
                "risk": float(risk(x)),
                "p_best": float(np.mean(winners == i)),
            }
        )
    table = pd.DataFrame(rows, index=names).join(meta)
    table.index.name = "option"
    best = str(table["risk"].idxmin())
    evpi = None
    eu = None
    if utility is not None:
        if threshold is None or table["C"].isna().any():
            raise BayescaleError("a utility needs threshold=... and options given as points (for their compute C)")
        U = utility.value * (X <= threshold) - utility.price_per_flop * table["C"].to_numpy()[:, None]
        eu = {n: float(U[i].mean()) for i, n in enumerate(names)}
        evpi = float(np.mean(U.max(axis=0)) - max(eu.values()))
    notes = []
    if fit is not None and points:
        notes += _extrapolation_notes(fit, table)
    return Decision(
        table=table,
        best=best,
        risk_label=getattr(risk, "label", str(risk)),
        ci_prob=ci_prob,
        threshold=threshold,
        evpi=evpi,
        expected_utility=eu,
        notes=tuple(notes),
    )


EXTRAPOLATION_LIMIT = 1000.0


def _extrapolation_notes(fit: Any, table: pd.DataFrame) -> list[str]:
    if "C" not in fit.runs:
        return []
    cmax = float(fit.runs["C"].max())
    far = [n for n in table.index if np.isfinite(table.loc[n, "C"]) and table.loc[n, "C"] > EXTRAPOLATION_LIMIT * cmax]
    if not far:
        return []
    worst = float(table.loc[far, "C"].max()) / cmax
    return [
        f"Caution: {far} extrapolate up to {worst:.3g}x the compute of the largest run; the bands assume the "
        "law holds that far, which no pilot can confirm."
    ]


# ------------------------------------------------------------ compute-optimal allocation


def _log_inputs_for(fit: Any, N: np.ndarray, D: np.ndarray) -> dict[str, np.ndarray]:
    values = {"N": N, "D": D, "C": 6.0 * N * D}
    out = {}
    for name in fit.spec.law.inputs:
        col = fit.spec.inputs[name]
        if col not in values:
            raise BayescaleError(f"compute-optimal allocation needs the law's inputs from N and D; input {name!r} reads column {col!r}")
        out[name] = np.log(values[col])
    return out


def _theta(fit: Any) -> dict[str, np.ndarray]:
    return {p: fit.posterior[p].values.reshape(-1) for p in fit.spec.law.params}


def _loss_at(fit: Any, theta: Mapping[str, np.ndarray], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Law loss for per-draw parameters ``theta[p]`` shaped (S,) at N, D shaped (S, ...)."""
    th = {k: v.reshape((-1,) + (1,) * (N.ndim - 1)) for k, v in theta.items()}
    return np.exp(np.asarray(fit.spec.law.log_loss(th, _log_inputs_for(fit, N, D), np), dtype=float))


def _numerical_optimum(fit: Any, theta: Mapping[str, np.ndarray], C: float, ratio_bounds: tuple[float, float], n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw argmin over log N of L(N, C/(6N)) on a grid, refined by a parabola; returns (N_opt, at_bound)."""
    S = next(iter(theta.values())).size
    # tokens per parameter r = D/N = C/(6 N^2)  =>  N = sqrt(C / (6 r))
    logN = np.linspace(0.5 * math.log(C / (6 * ratio_bounds[1])), 0.5 * math.log(C / (6 * ratio_bounds[0])), n_grid)
    N = np.broadcast_to(np.exp(logN), (S, n_grid))
    L = _loss_at(fit, theta, N, C / (6.0 * N))
    i = np.argmin(L, axis=1)
    at_bound = (i == 0) | (i == n_grid - 1)
    j = np.clip(i, 1, n_grid - 2)
    rows = np.arange(S)
    y0, y1, y2 = L[rows, j - 1], L[rows, j], L[rows, j + 1]
    denom = y0 - 2 * y1 + y2
    h = logN[1] - logN[0]
    shift = np.where(denom > 0, 0.5 * h * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
    best = np.where(at_bound, logN[i], logN[j] + np.clip(shift, -h, h))
    return np.exp(best), at_bound


def compute_optimal(fit: Any, budgets: Any, *, ratio_bounds: tuple[float, float] = (0.01, 1e5), n_grid: int = 512) -> xr.Dataset:
    """Posterior of the compute-optimal allocation at each budget ``C = 6 N D``.

    Closed form where the law declares one (Chinchilla:
    ``N_opt = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A/(beta B))^(1/(alpha+beta))``);
    otherwise a vectorised per-draw minimisation over model size with tokens per
    parameter within ``ratio_bounds``.

    Returns
    -------
    xarray.Dataset
        ``N_opt``, ``D_opt``, ``tokens_per_param`` and ``loss_opt`` with dims
        ``(chain, draw, budget)``, coordinate ``budget`` (FLOPs), and ``at_bound`` (True
        where the numerical optimum sits on the edge of ``ratio_bounds``: no interior optimum).

    Examples
    --------
    >>> opt = compute_optimal(fit, [5.76e23])                    # doctest: +SKIP
    >>> float(opt.tokens_per_param.median())                     # doctest: +SKIP
    """
    C = np.atleast_1d(np.asarray(budgets, dtype=float))
    if C.ndim != 1 or not np.all(np.isfinite(C) & (C > 0)):
        raise BayescaleError(f"budgets must be positive finite FLOP counts, got {budgets!r}")
    theta = _theta(fit)
    chains, draws = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    law = fit.spec.law
    closed = law.optimal_N is not None and all(fit.spec.inputs[i] == i for i in law.inputs)
    N_opt = np.empty((theta[law.params[0]].size, C.size))
    at_bound = np.zeros_like(N_opt, dtype=bool)
    for k, c in enumerate(C):
        if closed:
            N_opt[:, k] = law.optimal_N(theta, c)
        else:
            N_opt[:, k], at_bound[:, k] = _numerical_optimum(fit, theta, float(c), ratio_bounds, n_grid)
    D_opt = C[None, :] / (6.0 * N_opt)
    loss = _loss_at(fit, theta, N_opt, D_opt)
    shape = (chains, draws, C.size)
    dims = ("chain", "draw", "budget")
    return xr.Dataset(
        {
            "N_opt": (dims, N_opt.reshape(shape)),
            "D_opt": (dims, D_opt.reshape(shape)),
            "tokens_per_param": (dims, (D_opt / N_opt).reshape(shape)),
            "loss_opt": (dims, loss.reshape(shape)),
            "at_bound": (dims, at_bound.reshape(shape)),
        },
        coords={"budget": C},
        attrs={"method": "closed form" if closed else "numerical"},
    )


def allocation_exponents(fit: Any, *, budget: float | None = None) -> xr.Dataset:
    """Posterior of the scaling exponents of the optimal allocation, ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``.

    For Chinchilla ``a = beta/(alpha+beta)`` and ``b = alpha/(alpha+beta)`` exactly; for
    other laws the local slopes of log N_opt and log D_opt in log C around ``budget``
    (default: 100x the largest run's compute).
    """
    law = fit.spec.law
    if law.name == "chinchilla" and all(fit.spec.inputs[i] == i for i in law.inputs):
        al, be = fit.posterior["alpha"], fit.posterior["beta"]
        return xr.Dataset({"a": be / (al + be), "b": al / (al + be)}, attrs={"method": "closed form"})
    c0 = float(budget) if budget is not None else 100.0 * float(fit.runs["C"].max())
    opt = compute_optimal(fit, [c0 / math.sqrt(10), c0 * math.sqrt(10)])
    a = np.log(opt["N_opt"].isel(budget=1) / opt["N_opt"].isel(budget=0)) / math.log(10)
    return xr.Dataset({"a": a, "b": 1.0 - a}, attrs={"method": f"local slope at C={c0:.3g}"})


def allocation_regret(fit: Any, budget: float, N: Sequence[float] | np.ndarray) -> pd.DataFrame:
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
    theta = _theta(fit)
    opt = compute_optimal(fit, [c])
    L_opt = opt["loss_opt"].values.reshape(-1, 1)
    S = L_opt.shape[0]
    NN = np.broadcast_to(N, (S, N.size))
    L = _loss_at(fit, theta, NN, c / (6.0 * NN))
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


def near_optimal_range(fit: Any, budget: float, *, tolerance: float = 0.005, n_grid: int = 400) -> tuple[float, float]:
    """The range of N whose expected relative regret at ``budget`` is at most ``tolerance``
    ("any N in this range is within 0.5% of optimal")."""
    c = float(budget)
    med = float(compute_optimal(fit, [c])["N_opt"].median())
    grid = med * np.geomspace(1e-2, 1e2, n_grid)
    reg = allocation_regret(fit, c, grid)
    ok = reg["relative_regret"].to_numpy() <= tolerance
    if not ok.any():
        return (math.nan, math.nan)
    return float(grid[ok].min()), float(grid[ok].max())


# ------------------------------------------------------------------ bands


def band_table(draws: xr.DataArray, *, ci_probs: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Median and equal-tailed intervals per point of ``fit.predict(...)`` draws."""
    if not isinstance(draws, xr.DataArray) or "point" not in draws.dims:
        raise BayescaleError("band_table takes the DataArray returned by Fit.predict (dims chain, draw, point)")
    qs = [0.5]
    for p in ci_probs:
        _check_prob(p, "ci_probs")
        qs += [(1 - p) / 2, 1 - (1 - p) / 2]
    qv = draws.quantile(sorted(set(qs)), dim=("chain", "draw"))
    out = pd.DataFrame({c: draws[c].values for c in ("N", "D", "C") if c in draws.coords})
    out["median"] = qv.sel(quantile=0.5).values
    for p in ci_probs:
        lo, hi = (1 - p) / 2, 1 - (1 - p) / 2
        out[f"lo{100 * p:g}"] = qv.sel(quantile=lo).values
        out[f"hi{100 * p:g}"] = qv.sel(quantile=hi).values
    return out


def frontier(fit: Any, budgets: Any, *, ci_probs: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Bands of the loss, N_opt and D_opt along the compute-optimal frontier."""
    opt = compute_optimal(fit, budgets)
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
    "CVaR",
    "Decision",
    "Expectation",
    "Quantile",
    "Utility",
    "VaR",
    "allocation_exponents",
    "allocation_regret",
    "band_table",
    "compute_optimal",
    "decide",
    "frontier",
    "near_optimal_range",
    "parse_risk",
]

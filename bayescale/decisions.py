"""Scale-up decisions with quantified risk.

Everything here works on posterior draws of loss: a risk measure is a small object applied
to draws; a decision compares named options draw by draw (so "P(option is best)" accounts
for their shared uncertainty). Options given as points are turned into draws once, at the
boundary (``predict``, by default the fit's posterior predictive). Compute-optimal
allocation lives in :mod:`bayescale.frontier` (its names stay importable from here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from . import frontier as _frontier
from ._identified import too_few_runs
from ._io import jsonable
from ._runs_input import RATIO_PLAUSIBLE, unread_unique_tokens
from ._words import join_names
from .averaging import law_disagreement
from .data import points_frame
from .discrepancy import calibration
from .errors import BayescaleError, check_seed
from .frontier import allocation_exponents, allocation_regret, band_table, compute_optimal, frontier, near_optimal_range
from .frontier import check_prob as _validate_prob
from .misfit import ADVICE_HEAD
from .model import distance_from_runs

# Compute-optimal allocation lives in bayescale.frontier; its names stay importable from here.
_theta = _frontier.law_draws
_numerical_optimum = _frontier._numerical_optimum

if TYPE_CHECKING:
    from .inference import Fit

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
        _validate_prob(self.q, "Quantile q")

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
        _validate_prob(self.q, "CVaR q")

    @property
    def label(self) -> str:
        return f"cvar{100 * self.q:g}"

    def __call__(self, draws: np.ndarray) -> float:
        x = np.sort(np.asarray(draws, dtype=float).reshape(-1))
        k = int(math.floor(self.q * x.size))
        return float(np.mean(x[min(k, x.size - 1) :]))


def parse_risk(text: str | Any) -> Any:
    """``"mean"``, ``"quantile:0.9"`` (or ``"var:0.9"``) or ``"cvar:0.9"`` to a risk measure."""
    if not isinstance(text, str):
        return text
    name, colon, arg = text.strip().lower().partition(":")
    try:  # "cvar" alone is cvar:0.9; "cvar:" lacks its Q
        q = float(arg) if colon else 0.9
    except ValueError:
        q = None
    if name in ("mean", "expectation") and not colon:
        return Expectation()
    try:
        if name in ("quantile", "var") and q is not None:
            return Quantile(q)
        if name == "cvar" and q is not None:
            return CVaR(q)
    except BayescaleError as e:
        raise BayescaleError(
            f"risk {text!r}: {e}; use 'mean', 'quantile:Q', 'var:Q' or 'cvar:Q' with Q in (0, 1)"
        ) from None
    raise BayescaleError(
        f"risk {text!r} not understood; use 'mean', 'quantile:Q', 'var:Q' or 'cvar:Q' with Q in (0, 1)"
    )


@dataclass(frozen=True)
class Utility:
    """Value of reaching the threshold against the price of compute.

    ``U(option) = value * [loss <= threshold] - price_per_flop * C(option)``, in any
    currency; used for the expected value of perfect information.
    """

    value: float
    price_per_flop: float = 0.0

    def __post_init__(self) -> None:
        for name in ("value", "price_per_flop"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
                raise BayescaleError(f"Utility: {name} must be a finite number >= 0, got {v!r}")


# ------------------------------------------------------------------ decisions


def _flat(draws: Any, name: str) -> np.ndarray:
    if isinstance(draws, xr.DataArray):
        if "point" in draws.dims:
            if draws.sizes["point"] != 1:
                raise BayescaleError(
                    f"option {name!r}: draws have {draws.sizes['point']} points; give one point per option"
                )
            draws = draws.isel(point=0)
        x = draws.transpose("chain", "draw").values if {"chain", "draw"} <= set(draws.dims) else draws.values
    else:
        x = np.asarray(draws, dtype=float)
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise BayescaleError(
            f"option {name!r}: draws must be an array of at least 2 finite losses (a point to predict is a mapping "
            "such as {'N': 7e9, 'D': 1.4e12}, with fit=...)"
        )
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
    #: The option whose risk is within the draws' Monte Carlo error of the best's (None: none is), and that error.
    tied_with: str | None = None
    risk_error: float = 0.0

    def verdict(self) -> str:
        """Plain words for a planning doc."""
        t = self.table
        b = t.loc[self.best]
        pct = f"{100 * self.ci_prob:g}%"
        size = _describe(b)
        parts = [f"Best by {self.risk_label} of loss: {self.best}{size} ({self.risk_label} {b['risk']:.3f})."]
        if self.tied_with is not None:
            other = t.loc[self.tied_with]
            parts[0] = (
                f"No option is best by {self.risk_label} of loss: {self.best}{size} ({b['risk']:.4f}) and "
                f"{self.tied_with}{_describe(other)} ({other['risk']:.4f}) are tied, {abs(other['risk'] - b['risk']):.2g} "
                f"apart where the draws' Monte Carlo error alone is about {self.risk_error:.2g}; choose between them by "
                "the table's other columns (mean, P(best), the threshold's probability) or by cost."
            )
        if self.threshold is not None:
            parts.append(f"P(loss <= {self.threshold:.3g}) = {b['p_below']:.2f} for {self.best};")
        parts.append(f"median {b['median']:.3f}, {pct} interval {b['lo']:.3f}-{b['hi']:.3f}.")
        others = [o for o in t.index if o != self.best]
        if others:
            rival = max(others, key=lambda o: t.loc[o, "p_best"])
            same = all(t.loc[rival, c] == b[c] for c in ("mean", "lo", "hi", "p_best"))
            parts.append(
                f"{rival}{_describe(t.loc[rival])} ties with it: the same loss in every draw."
                if same
                else f"{rival}{_describe(t.loc[rival])} is better with probability {t.loc[rival, 'p_best']:.2f}."
            )
        if self.evpi is not None:
            parts.append(f"Expected value of perfect information: {self.evpi:.4g}.")
        return " ".join(parts + list(self.notes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "tied_with": self.tied_with,
            "risk_error": self.risk_error,
            "risk": self.risk_label,
            "ci_prob": self.ci_prob,
            "threshold": self.threshold,
            "evpi": self.evpi,
            "expected_utility": dict(self.expected_utility) if self.expected_utility else None,
            "options": {k: jsonable(dict(row)) for k, row in self.table.iterrows()},
            "verdict": self.verdict(),
        }


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
    options: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    fit: Fit | None = None,
    *,
    threshold: float | None = None,
    risk: Any = "cvar:0.9",
    ci_prob: float = 0.9,
    utility: Utility | None = None,
    noise: bool = True,
    seed: int = 0,
    predict: Callable[[pd.DataFrame], xr.DataArray] | None = None,
) -> Decision:
    """Compare named scale-up options by their posterior loss.

    Parameters
    ----------
    options : mapping of str to draws or to a point, or a list of points
        Either draws of loss per option (e.g. ``fit.predict(...)`` DataArrays with one
        point, or arrays; all from the same posterior so they align draw by draw), or
        points ``{"N": 7e9, "D": 1.4e12}`` predicted with ``fit`` (or ``predict``); a list of
        points names each option by its inputs (``"N=7e+09, D=1.4e+12"``).
    fit : Fit, optional
        Needed when options are points (unless ``predict`` is given); its runs also tell how
        far the options extrapolate.
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
    predict : callable, optional
        ``predict(points_frame) -> draws`` (dims chain, draw, point): how points become draws.
        Default ``fit.predict(frame, noise=noise, seed=seed)``.

    Returns
    -------
    Decision

    Examples
    --------
    >>> dec = decide({"7B": {"N": 7e9, "D": 1.4e12}, "13B": {"N": 13e9, "D": 7e11}},
    ...              fit=fit, threshold=2.1, risk="cvar:0.9")      # doctest: +SKIP
    >>> print(dec.verdict())                                        # doctest: +SKIP
    """
    options = _named_options(options)
    _validate_prob(ci_prob, "ci_prob")
    check_seed(seed)
    numeric = isinstance(threshold, (int, float, np.number)) and not isinstance(threshold, bool)
    if threshold is not None and not (numeric and math.isfinite(threshold)):
        raise BayescaleError(f"threshold must be a finite number (a loss in nats), got {threshold!r}")
    risk = parse_risk(risk)
    if predict is None and fit is not None:
        predict = lambda frame: fit.predict(frame, noise=noise, seed=seed)  # noqa: E731  (the boundary: a fit's draws)
    names, X, meta = _option_draws(options, predict)
    table = _decision_table(names, X, meta, threshold=threshold, risk=risk, ci_prob=ci_prob)
    best = str(table["risk"].idxmin())
    tied_with, risk_error = _near_tie(names, X, table, risk, seed)
    evpi = eu = None
    if utility is not None:
        eu, evpi = _expected_utility(names, X, table, threshold, utility)
        table["expected_utility"] = pd.Series(eu)
    as_points = isinstance(next(iter(options.values())), Mapping)
    notes = point_notes(fit, table) + _disagreement_notes(fit, options) if fit is not None and as_points else []
    notes += trust_notes(fit) if fit is not None else []
    return Decision(
        table=table,
        best=best,
        risk_label=getattr(risk, "label", str(risk)),
        ci_prob=ci_prob,
        threshold=threshold,
        evpi=evpi,
        expected_utility=eu,
        notes=tuple(notes),
        tied_with=tied_with,
        risk_error=risk_error,
    )


#: Resamples of the draws that estimate the Monte Carlo error of a risk difference.
TIE_RESAMPLES = 200


def _near_tie(names: list[str], X: np.ndarray, table: pd.DataFrame, risk: Any, seed: int) -> tuple[str | None, float]:
    """The runner-up by risk when its difference from the best is within twice its Monte Carlo error (the sd
    of the difference over resamples of the draws, paired: one posterior's draws move both options), and
    that error. Resampling treats the draws as independent, so the error is if anything too small."""
    if len(names) < 2 or table["risk"].nunique() < 2:  # identical options: the verdict says they tie in every draw
        return None, 0.0
    order = np.argsort(table["risk"].to_numpy(float), kind="stable")
    i, j = int(order[0]), int(order[1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, X.shape[1], size=(TIE_RESAMPLES, X.shape[1]))
    diffs = np.array([risk(X[j, k]) - risk(X[i, k]) for k in idx])
    error = float(diffs.std())
    gap = float(table["risk"].iloc[j] - table["risk"].iloc[i])
    return (names[j] if gap < 2 * error else None), error


def _option_draws(
    options: Mapping[str, Any], predict: Callable[[pd.DataFrame], xr.DataArray] | None
) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Names, draws of loss (option, draw) and each option's N, D, C (NaN for draws given as such)."""
    names = [str(k) for k in options]
    points = {k: v for k, v in options.items() if isinstance(v, Mapping)}
    meta = pd.DataFrame(index=names, columns=["N", "D", "C"], dtype=float)
    draws: dict[str, np.ndarray] = {}
    if points:
        if len(points) != len(options):
            raise BayescaleError("options must be all points or all draws, not a mix")
        if predict is None:
            raise BayescaleError("options given as points need fit=... to predict them")
        frames = []
        for name, point in points.items():  # name the option a bad point belongs to
            try:
                frames.append(points_frame(point))
            except BayescaleError as e:
                raise BayescaleError(f"option {name!r}: {str(e).removeprefix('points: ')}") from None
        frame = pd.concat(frames, ignore_index=True)
        try:
            pred = predict(frame)
        except BayescaleError as e:  # e.g. a law input an option lacks: name the first option it fails on
            raise BayescaleError(_failing_option(points, predict) or str(e)) from None
        for i, name in enumerate(names):
            draws[name] = _flat(pred.isel(point=[i]), name)
            for col in ("N", "D", "C", "U"):  # U: the unique tokens an option repeats, when it gives them
                if col in frame:
                    meta.loc[name, col] = float(frame[col].iloc[i])
    else:
        for name, v in zip(names, options.values()):
            draws[name] = _flat(v, name)
    sizes = {len(v) for v in draws.values()}
    if len(sizes) != 1:
        raise BayescaleError(f"options have different numbers of draws {sorted(sizes)}; draw them from one posterior")
    return names, np.stack([draws[n] for n in names]), meta


def _named_options(options: Any) -> Mapping[str, Any]:
    """The options as a non-empty mapping: a list of points named by their inputs."""
    if isinstance(options, Sequence) and not isinstance(options, str) and all(isinstance(o, Mapping) for o in options):
        options = {", ".join(f"{k}={_number(v)}" for k, v in o.items()): o for o in options}
    if not isinstance(options, Mapping) or not options:
        first = " (the options come first: decide(options, fit))" if hasattr(options, "posterior") else ""
        raise BayescaleError(
            "options must be a non-empty mapping of option name to draws or to a point {N, D}, or a list of "
            f"points; got {type(options).__name__}{first}"
        )
    return options


def _number(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return str(v)


def _failing_option(points: Mapping[str, Any], predict: Callable[[pd.DataFrame], xr.DataArray]) -> str | None:
    """Why the first option whose point alone cannot be predicted fails, named (None when each can)."""
    for name, point in points.items():
        try:
            predict(points_frame(point))
        except BayescaleError as e:
            return f"option {name!r}: {e}"
    return None


def _decision_table(
    names: list[str], X: np.ndarray, meta: pd.DataFrame, *, threshold: float | None, risk: Any, ci_prob: float
) -> pd.DataFrame:
    """One row per option: summaries of its draws, its risk and P(it is best)."""
    lo_q, hi_q = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    q = getattr(risk, "q", 0.9)
    # a draw where several options share the lowest loss counts for each a share (two options at one
    # (N, D) tie in every draw: 0.5 each, not 1 for the first listed)
    best = X == X.min(axis=0, keepdims=True)
    shares = best / best.sum(axis=0, keepdims=True)
    rows = []
    for i, _ in enumerate(names):
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
                "p_best": float(np.mean(shares[i])),
            }
        )
    table = pd.DataFrame(rows, index=names).join(meta)
    table.index.name = "option"
    return table


def _expected_utility(
    names: list[str], X: np.ndarray, table: pd.DataFrame, threshold: float | None, utility: Utility
) -> tuple[dict[str, float], float]:
    """Expected utility per option and the expected value of perfect information."""
    if threshold is None or table["C"].isna().any():
        raise BayescaleError("a utility needs threshold=... and options given as points (for their compute C)")
    U = utility.value * (X <= threshold) - utility.price_per_flop * table["C"].to_numpy()[:, None]
    eu = {n: float(U[i].mean()) for i, n in enumerate(names)}
    return eu, float(np.mean(U.max(axis=0)) - max(eu.values()))


EXTRAPOLATION_LIMIT = 1000.0


def point_notes(fit: Fit, table: pd.DataFrame) -> list[str]:
    """Cautions for the fit's bands at the points of ``table`` (named by its index; columns N, D, C where
    known): far beyond or below the runs' compute, repeating data a law does not read, or beyond the distance
    at which the law weights or a conformal calibration were tested. ``decide``, ``predict`` and ``optimal`` say them."""
    reach, calibrated = _reach_notes(fit, table), _calibration_notes(fit, table)
    factor, scored_at = calibration(fit) if calibrated else (None, None)
    if reach and calibrated and scored_at == getattr(fit, "weights_reach", None):
        calibrated = [  # one set of splits scored both: one note says how far, the other need not repeat it
            f"Caution: the bands' split-conformal scaling ({factor:.2f}x) was scored on those same "
            "held-out runs, so its coverage is untested there too; compare with a fit made without it."
        ]
    spec = getattr(fit, "spec_average", fit.spec)  # an average reads U where any of its laws does
    unread = unread_unique_tokens(table, spec.columns, f"spec {spec.name!r}")
    return _compute_notes(fit, table) + _ratio_notes(fit, table) + unread + reach + calibrated


#: A point whose tokens per parameter lie further than this factor outside the runs' own range is an
#: extrapolation in the law's shape (how it splits N against D), not only in scale.
RATIO_MARGIN = 2.0


def _ratio_notes(fit: Fit, table: pd.DataFrame) -> list[str]:
    """Points whose tokens per parameter (D / N) the runs never trained, by more than :data:`RATIO_MARGIN`."""
    if not {"N", "D"} <= set(table.columns) or not {"N", "D"} <= set(fit.runs.columns):
        return []
    ran = (fit.runs["D"] / fit.runs["N"]).to_numpy(float)
    lo, hi = float(np.nanmin(ran)), float(np.nanmax(ran))
    ratio = (table["D"] / table["N"]).to_numpy(float)
    with np.errstate(invalid="ignore"):
        off = (ratio < lo / RATIO_MARGIN) | (ratio > hi * RATIO_MARGIN)
    if not off.any():
        return []
    names = list(table.index[off])
    few, many = (ratio[off] < RATIO_PLAUSIBLE[0]).any(), (ratio[off] > RATIO_PLAUSIBLE[1]).any()
    units = (
        f" No training run has {'so few' if few and not many else 'so many'} tokens per parameter: is N or D in "
        "other units (millions, billions)?"
        if few or many
        else ""
    )
    return [
        f"Caution: {join_names(names)} train{'s' if len(names) == 1 else ''} {_ratios(ratio[off])} tokens per "
        f"parameter, outside the {lo:.3g}-{hi:.3g} of your runs: how the law splits loss between N and D there "
        "is untested (a law that bends inside your runs moves it most); add runs near that ratio before relying "
        "on it." + units
    ]


def _ratios(ratio: np.ndarray) -> str:
    lo, hi = float(np.min(ratio)), float(np.max(ratio))
    return f"{lo:.3g}" if np.isclose(lo, hi, rtol=0.005) else f"{lo:.3g}-{hi:.3g}"


def _farthest(fit: Fit, table: pd.DataFrame) -> float | None:
    """Decades (in N and D) from the runs of the farthest point of ``table`` with both known."""
    if not {"N", "D"} <= set(table.columns) or not {"N", "D"} <= set(fit.runs.columns):
        return None
    known = table[np.isfinite(table["N"]) & np.isfinite(table["D"])]
    return float(distance_from_runs(fit.spec, fit.runs, known[["N", "D"]]).max()) if len(known) else None


#: Where a calibrated fit does not record how far out its factor was scored (one saved before it did), points
#: farther than this many decades from the runs are cautioned: leave-future-out splits rarely reach beyond it.
UNRECORDED_REACH = 0.5


def _calibration_notes(fit: Fit, table: pd.DataFrame) -> list[str]:
    cal = calibration(fit)
    far = _farthest(fit, table) if cal is not None else None
    if far is None or far <= REACH_FACTOR * (cal[1] if cal[1] is not None else UNRECORDED_REACH):
        return []
    tested = (
        f"up to {cal[1]:.2g} decades (in N and D) beyond the splits' runs"
        if cal[1] is not None
        else "at distances this fit file does not record (refit it to record them)"
    )
    return [
        f"Caution: the bands were calibrated (split-conformal, scaled {cal[0]:.2f}x about their median) on runs held "
        f"out {tested}, and the points lie up to {far:.2g} decades beyond yours: the calibration's coverage is "
        "untested there (it assumes errors alike at every distance); compare with a fit made without it."
    ]


#: A law average's weights are read as untested for options farther from the runs than this many
#: times the reach they were scored at: past it, more than half the way is beyond any held-out run.
REACH_FACTOR = 2.0


def _reach_notes(fit: Fit, table: pd.DataFrame) -> list[str]:
    reach = getattr(fit, "weights_reach", None)
    far = _farthest(fit, table) if reach is not None else None
    if far is None or far <= REACH_FACTOR * reach:
        return []
    return [
        f"Law weights: scored on held-out runs up to {reach:.2g} decades (in N and D) beyond their splits' runs; "
        f"the options lie up to {far:.2g} decades beyond yours, so which law holds there is untested (the weights "
        f"there count {reach / far:.2g} of the stacking weights, the rest equal): compare the laws' own "
        "predictions (fit.members) before trusting the average's median."
    ]


def doubts(fit: Any) -> tuple[list[str], str | None, str | None]:
    """Why a fit may not deserve trust: its problems (sampling, too few runs), the first way its law misfits
    its runs (or None), and why that could not be tested (or None; unsaid when too few runs says it)."""
    problems = list(fit.diagnostics()["problems"])
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # a degenerate fit's residuals say so in the test
            found = fit.misfit()
    except BayescaleError as e:
        return problems, None, None if too_few_runs(fit.spec, len(fit.runs)) else str(e)
    return problems, f"{found.messages[0]}{ADVICE_HEAD}{found.advice}" if found.misfits else None, None


LAPLACE_CAUTION = (
    "a Laplace fit is a quick look (a Gaussian at the mode, narrower or wider than the posterior on a few dozen "
    "runs); decide with NUTS (the default method)"
)


def trust_notes(fit: Any) -> list[str]:
    """Why the fit behind a decision may not deserve trust, in words (none when it does): its sampling
    problems, a quick Laplace fit, a law that misfits its runs. A decision never leaves them behind."""
    problems, misfits, untested = doubts(fit)
    notes = [f"Caution, the fit has a problem: {p}" for p in problems]
    notes += [f"Caution: {LAPLACE_CAUTION}."] if fit.method == "laplace" else []
    notes += [f"Caution: the law's fit could not be tested ({untested})."] if untested else []
    return notes + ([f"Caution, the law misfits its runs: {misfits}"] if misfits else [])


def _disagreement_notes(fit: Fit, options: Mapping[str, Any]) -> list[str]:
    """Words for the option where two laws of an average disagree beyond their own bands, if any."""
    found = law_disagreement(fit, list(options.values()))
    if found is None:
        return []
    a, b, i, med_a, med_b = found
    w = fit.weights  # an average: law_disagreement answers None for one law
    return [
        f"Laws disagree at {list(options)[i]}: {a} predicts a loss of {math.exp(med_a):.4g} and {b} "
        f"{math.exp(med_b):.4g} ({100 * abs(med_a - med_b):.3g}% apart in log loss), further apart than either "
        f"law's own 90% interval; the average's median there is set by the law weights ({a} {w[a]:.2f}, {b} "
        f"{w[b]:.2f}), not by the runs: compare the laws' own predictions (fit.members) before deciding."
    ]


def _compute_notes(fit: Fit, table: pd.DataFrame) -> list[str]:
    if "C" not in fit.runs:
        return []
    cmin, cmax = float(fit.runs["C"].min()), float(fit.runs["C"].max())
    c = table["C"].to_numpy(float) if "C" in table else np.full(len(table), np.nan)
    notes = []
    with np.errstate(invalid="ignore"):
        beyond, below = c > EXTRAPOLATION_LIMIT * cmax, c < cmin / EXTRAPOLATION_LIMIT
    for far, words in (
        (beyond, f"up to {np.nanmax(c, initial=0.0) / cmax:.3g}x the compute of the largest run"),
        (below, f"down to 1/{cmin / np.nanmin(c, initial=np.inf):.3g} of the compute of the smallest run"),
    ):
        if far.any():
            names = list(table.index[far])
            check = "no pilot can confirm" if far is beyond else "only a run there can confirm"
            notes.append(
                f"Caution: {join_names(names)} extrapolate{'s' if len(names) == 1 else ''} {words}; the bands "
                f"assume the law holds that far, which {check}."
            )
    return notes


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
    "point_notes",
]

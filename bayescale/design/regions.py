"""Target regions: the pilots should pin down the loss over a set of planned runs, not one.

A :class:`Region` is a weighted set of (N, D) points; the planners minimise the **weighted
target-region error**, the weighted mean over its points of the expected squared error of log
loss (law variance plus extrapolation drift), ``sum_i w_i E[(log L_i - log L_i_hat)^2]``.

Forms :func:`parse_region` reads (each point may carry a ``weight``; weights are normalised):

* a list of points: mappings ``{"N": 7e9, "D": 1.4e12, "weight": 2}`` or text ``"N=7e9,D=1.4e12"``;
* a DataFrame with columns ``N, D`` (or ``N, C``) and an optional ``weight``;
* a box in (N, D): ``{"N": (1e9, 1e10), "D": (2e10, 2e11)}``, or in (N, tokens per parameter):
  ``{"N": (1e9, 1e10), "tokens_per_param": (20, 80)}``, with ``n`` points per axis (default 3,
  log-spaced) and optional ``weights`` (one per grid point, N varying slowest);
* a compute-optimal frontier segment ``{"frontier": (1e21, 1e22)}``: ``n`` budgets (default 5,
  log-spaced), each placed at the fit's posterior-median compute-optimal (N, D) when the plan is
  made (:func:`region_points`), with optional ``weights``.

A region of one point is that point: :func:`parse_target` returns the
:class:`~bayescale.design.Target` itself, so the plan is the point's.

:func:`parse_target` (``bayescale.design.parse_target``) reads every target: a region in these
forms, or one point, frontier budget or N_opt (:func:`bayescale.design.targets.parse_target`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._words import join_names
from ..errors import BayescaleError
from ..frontier import check_splits, compute_optimal
from .targets import Target, TargetDraws, band_from, target_draws
from .targets import parse_target as parse_one

if TYPE_CHECKING:
    from ..inference import Fit

#: Points per axis of a box, and budgets along a frontier segment, unless ``n`` is given.
BOX_POINTS, FRONTIER_POINTS = 3, 5
REGION_SHAPES = ("points", "box", "frontier")
_BOX_KEYS = {"N", "D", "tokens_per_param", "n", "weights"}
_FRONTIER_KEYS = {"frontier", "n", "weights"}


@dataclass(frozen=True)
class Region:
    """A weighted set of target points (see the module notes).

    Attributes
    ----------
    shape : {"points", "box", "frontier"}
    points : pandas.DataFrame
        ``N, D, C, ratio, weight`` (weights sum to 1); empty for a frontier segment until
        :func:`region_points` places it on a fit's frontier.
    budgets : tuple of float
        A frontier segment's compute budgets.
    """

    shape: str
    points: pd.DataFrame = field(repr=False)
    budgets: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    kind: str = "region"
    threshold: None = None

    @property
    def size(self) -> int:
        return len(self.budgets) if self.shape == "frontier" else len(self.points)

    @property
    def C(self) -> float:
        """The largest compute in the region (FLOPs)."""
        return float(max(self.budgets)) if self.shape == "frontier" else float(self.points["C"].max())

    @property
    def is_decision(self) -> bool:
        return False

    @property
    def label(self) -> str:
        if self.shape == "frontier":
            return f"compute-optimal loss over C={min(self.budgets):.3g}..{max(self.budgets):.3g} ({self.size} budgets)"
        p = self.points
        return (
            f"loss over a {self.shape} region of {len(p)} points, N={p['N'].min():.3g}..{p['N'].max():.3g}, "
            f"D={p['D'].min():.3g}..{p['D'].max():.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "region", "shape": self.shape}
        if self.shape == "frontier":
            out.update(frontier=[float(c) for c in self.budgets], weights=list(self.weights))
        else:
            out["points"] = [
                {k: float(r[k]) for k in ("N", "D", "weight")} for r in self.points.to_dict(orient="records")
            ]
        return out


def _weights(raw: Sequence[Any], what: str) -> np.ndarray:
    w = []
    for i, v in enumerate(raw):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise BayescaleError(f"{what} {i + 1}: weight {v!r} is not a number") from None
        if not (math.isfinite(x) and x >= 0):
            raise BayescaleError(f"{what} {i + 1}: weight must be finite and >= 0, got {v!r}")
        w.append(x)
    arr = np.asarray(w, dtype=float)
    if arr.size == 0 or arr.sum() <= 0:
        raise BayescaleError(f"{what}: the weights must not all be 0")
    return arr / arr.sum()


def _point(item: Any, i: int) -> tuple[float, float, Any]:
    """(N, D, weight) of one listed point, validated as a loss target (the error names the item)."""
    what = f"target point {i + 1} ({item!r})" if not isinstance(item, Mapping) else f"target point {i + 1}"
    if isinstance(item, str):
        text, weight = item, 1.0
        parts = [p for p in item.split(",") if p.strip().lower().startswith("weight")]
        if parts:
            weight = parts[0].partition("=")[2].strip()
            text = ",".join(p for p in item.split(",") if p not in parts)
        item = {"text": text, "weight": weight}
    elif isinstance(item, Mapping):
        item = dict(item)
    else:
        raise BayescaleError(f"{what}: must be a mapping with N and D or text N=..,D=.., got {type(item).__name__}")
    weight = item.pop("weight", 1.0)
    try:
        target = parse_one(item.pop("text")) if "text" in item else parse_one(item)
    except BayescaleError as e:
        raise BayescaleError(f"{what}: {e}") from None
    except (TypeError, ValueError):
        raise BayescaleError(f"{what}: N, D and C must be numbers, got {item!r}") from None
    if not isinstance(target, Target) or target.kind != "loss" or target.is_decision or target.U is not None:
        raise BayescaleError(f"{what}: a region point is a loss at (N, D), without a threshold or U")
    return float(target.N), float(target.D), weight


def _points_region(items: Sequence[Any], shape: str = "points") -> Region:
    if len(items) == 0:
        raise BayescaleError("target region: no points given")
    rows = [_point(item, i) for i, item in enumerate(items)]
    n = np.array([r[0] for r in rows])
    d = np.array([r[1] for r in rows])
    w = _weights([r[2] for r in rows], "target point")
    frame = pd.DataFrame({"N": n, "D": d, "C": 6.0 * n * d, "ratio": d / n, "weight": w})
    return Region(shape, frame)


def _frame_region(frame: pd.DataFrame) -> Region:
    unknown = sorted(set(frame.columns) - {"N", "D", "C", "weight"})
    if unknown:
        raise BayescaleError(f"target table: unknown columns {unknown}; allowed N, D, C and weight")
    if "weight" in frame and frame["weight"].isna().any():  # a blank weight is a mistake, not a weight of 1
        rows = join_names(str(i + 1) for i in np.flatnonzero(frame["weight"].isna().to_numpy()))
        raise BayescaleError(
            f"target table: row(s) {rows} have a blank weight; give every row a weight or drop the column"
        )
    records = []
    for i, r in enumerate(frame.to_dict("records")):
        given = {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
        blank = [k for k in ("N", "D", "C") if k in r and k not in given]
        if len(set(given) & {"N", "D", "C"}) < 2 and blank:
            raise BayescaleError(
                f"target table: row {i + 1} needs two of N, D and C; {join_names(blank)} {'is' if len(blank) == 1 else 'are'} blank"
            )
        records.append(given)
    return _points_region(records)


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BayescaleError(f"target box: {name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise BayescaleError(f"target box: {name} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi


def _count(spec: Mapping[str, Any], default: int, what: str) -> int:
    n = spec.get("n", default)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 50:
        raise BayescaleError(f"{what}: n (points per axis) must be an integer from 1 to 50, got {n!r}")
    return int(n)


def _box_region(spec: Mapping[str, Any]) -> Region:
    unknown = sorted(set(spec) - _BOX_KEYS)
    if unknown:
        raise BayescaleError(f"target box: unknown keys {unknown}; allowed N, D or tokens_per_param, n, weights")
    if ("D" in spec) == ("tokens_per_param" in spec):
        raise BayescaleError("target box: give N and one of D or tokens_per_param, each as (low, high)")
    n = _count(spec, BOX_POINTS, "target box")
    n_lo, n_hi = _pair(spec["N"], "N")
    sizes = np.geomspace(n_lo, n_hi, n) if n_hi > n_lo else np.array([n_lo])
    second = "D" if "D" in spec else "tokens_per_param"
    s_lo, s_hi = _pair(spec[second], second)
    other = np.geomspace(s_lo, s_hi, n) if s_hi > s_lo else np.array([s_lo])
    nn, ss = (a.reshape(-1) for a in np.meshgrid(sizes, other, indexing="ij"))
    dd = ss if second == "D" else nn * ss
    weights = spec.get("weights", np.ones(nn.size))
    if len(weights) != nn.size:
        raise BayescaleError(f"target box: weights has {len(weights)} entries; the box has {nn.size} points")
    items = [{"N": float(a), "D": float(b), "weight": w} for a, b, w in zip(nn, dd, weights)]
    return _points_region(items, "box")


def _frontier_region(spec: Mapping[str, Any]) -> Region:
    unknown = sorted(set(spec) - _FRONTIER_KEYS)
    if unknown:
        raise BayescaleError(f"target frontier segment: unknown keys {unknown}; allowed frontier, n, weights")
    c_lo, c_hi = _pair(spec["frontier"], "frontier")
    n = _count(spec, FRONTIER_POINTS, "target frontier segment")
    budgets = np.geomspace(c_lo, c_hi, n) if c_hi > c_lo else np.array([c_lo])
    weights = spec.get("weights", np.ones(budgets.size))
    if len(weights) != budgets.size:
        raise BayescaleError(
            f"target frontier segment: weights has {len(weights)} entries; it has {budgets.size} budgets"
        )
    w = _weights(weights, "target frontier budget")
    return Region("frontier", pd.DataFrame(), tuple(float(c) for c in budgets), tuple(float(x) for x in w))


def is_region(target: Any) -> bool:
    """Whether ``target`` is in one of the region forms (not a single point's text or mapping)."""
    if isinstance(target, (Region, pd.DataFrame)):
        return True
    if isinstance(target, Mapping):
        return (
            "frontier" in target
            and not isinstance(target["frontier"], (int, float, str))
            or any(isinstance(target.get(k), (list, tuple, np.ndarray)) for k in ("N", "D", "tokens_per_param"))
        )
    return isinstance(target, (list, tuple))


def parse_region(target: Any) -> Region | Target:
    """A :class:`Region` from one of the forms in the module notes; one point gives its
    :class:`~bayescale.design.Target` (the plan for a region of one point is the point's)."""
    if isinstance(target, Region):
        region = target
    elif isinstance(target, pd.DataFrame):
        region = _frame_region(target)
    elif isinstance(target, Mapping):
        region = _frontier_region(target) if "frontier" in target else _box_region(target)
    elif isinstance(target, (list, tuple)):
        region = _points_region(list(target))
    else:
        raise BayescaleError(f"target region must be a list, a DataFrame or a mapping, got {type(target).__name__}")
    if region.shape != "frontier" and len(region.points) == 1:
        r = region.points.iloc[0]
        return Target("loss", N=float(r["N"]), D=float(r["D"]))
    if region.shape == "frontier" and len(region.budgets) == 1:
        return Target("frontier", C=float(region.budgets[0]))
    return region


def parse_target(target: Any, threshold: float | None = None) -> Target | Region:
    """A :class:`~bayescale.design.Target` or a :class:`Region` from text, a mapping, a list, a
    DataFrame, a Target or a Region (see :func:`bayescale.design.targets.parse_target` for one target).

    Examples
    --------
    >>> parse_target(["N=1e9,D=2e10", "N=2e9,D=4e10"]).size
    2
    >>> parse_target([{"N": 1e9, "D": 2e10}]).kind
    'loss'
    >>> parse_target({"N": (1e9, 4e9), "tokens_per_param": (20, 80)}).size
    9
    """
    if not is_region(target):
        return parse_one(target, threshold)
    if threshold is not None:
        raise BayescaleError("threshold applies to one target point, not to a region")
    return parse_region(target)


def region_points(fit: Fit, region: Region) -> pd.DataFrame:
    """The region's points (``N, D, C, ratio, weight``); a frontier segment at the fit's
    posterior-median compute-optimal (N, D) for each budget."""
    if region.shape != "frontier":
        return region.points
    check_splits(fit, region.label)
    opt = compute_optimal(fit, list(region.budgets))
    n_opt = np.median(np.asarray(opt["N_opt"].values, dtype=float).reshape(-1, len(region.budgets)), axis=0)
    c = np.asarray(region.budgets, dtype=float)
    d = c / (6.0 * n_opt)
    return pd.DataFrame({"N": n_opt, "D": d, "C": c, "ratio": d / n_opt, "weight": np.asarray(region.weights)})


def target_points(fit: Fit, target: Target | Region) -> pd.DataFrame:
    """Where the target lies in (N, D): ``N, D, C, ratio, weight``. A loss target is its point; a
    frontier or N_opt target the fit's posterior-median compute-optimal point at its budget."""
    if isinstance(target, Region):
        return region_points(fit, target)
    if target.kind == "loss":
        n, d = float(target.N), float(target.D)
    else:
        opt = compute_optimal(fit, [target.C])
        n = float(np.median(np.asarray(opt["N_opt"].values, dtype=float)))
        d = float(target.C) / (6.0 * n)
    return pd.DataFrame({"N": [n], "D": [d], "C": [6.0 * n * d], "ratio": [d / n], "weight": [1.0]})


@dataclass(frozen=True)
class RegionDraws:
    """Draws of every point of a target (one for a :class:`Target`), with the weights of the
    region's error: ``law`` is (S, T); ``drift2`` (each point's expected squared drift per decade
    squared), ``reach`` (its distance from the fit's nearest run, decades of (N, D)) and ``weights``
    are (T,)."""

    target: Target | Region
    law: np.ndarray
    drift2: np.ndarray
    reach: np.ndarray
    weights: np.ndarray
    noise_var: float
    parts: tuple[TargetDraws, ...]

    def drift_var(self, *, reach: np.ndarray | None = None) -> float:
        """The weighted expected squared drift with each point ``reach`` decades from its nearest run
        (default: the fit's runs; TargetDraws.drift_var for one point)."""
        r = self.reach if reach is None else np.asarray(reach, dtype=float)
        return float(self.drift_each(r[None, :])[0])

    def drift_each(self, reach: np.ndarray) -> np.ndarray:
        """:meth:`drift_var` for each row of ``reach`` (K, T)."""
        return (self.drift2[None, :] * np.asarray(reach, dtype=float) ** 2) @ self.weights


def region_draws(fit: Fit, target: Target | Region) -> RegionDraws:
    """Draws of a target or of each point of a region (:class:`RegionDraws`)."""
    if isinstance(target, Region):
        pts = region_points(fit, target)
        parts = tuple(target_draws(fit, Target("loss", N=float(r["N"]), D=float(r["D"]))) for _, r in pts.iterrows())
        weights = pts["weight"].to_numpy(float)
    else:
        parts, weights = (target_draws(fit, target),), np.ones(1)
    return RegionDraws(
        target=target,
        law=np.stack([p.law for p in parts], axis=1),
        drift2=np.array([p.drift2 for p in parts]),
        reach=np.array([p.reach for p in parts]),
        weights=weights,
        noise_var=float(parts[0].noise_var),
        parts=parts,
    )


def region_band(rd: RegionDraws) -> dict[str, float]:
    """The region now: the weighted root mean square of its points' 90% widths of log loss, each the
    width of ``predict``'s band there (``log_width90``; one point twice gives that point's width), the
    sd of its weighted mean squared error (``sd_log``), and the widest point's width. (A Gaussian width
    from the sd put one point twice at 0.3645 where ``predict`` said 0.3489.)"""
    var = np.var(rd.law, axis=0) + rd.drift2 * rd.reach**2
    sd = float(math.sqrt(var @ rd.weights))
    widths = np.array([band_from(p)["log_width90"] for p in rd.parts])
    return {
        "log_width90": float(math.sqrt(widths**2 @ rd.weights)),
        "sd_log": sd,
        "widest_log_width90": float(widths.max()),
    }


__all__ = [
    "BOX_POINTS",
    "FRONTIER_POINTS",
    "REGION_SHAPES",
    "Region",
    "RegionDraws",
    "is_region",
    "parse_region",
    "parse_target",
    "region_band",
    "region_draws",
    "region_points",
    "target_points",
]

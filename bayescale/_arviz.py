"""The one module that calls ArviZ.

Everything else in bayescale goes through these functions, so moving from
ArviZ 0.23 (InferenceData) to ArviZ 1.x (DataTree) touches this file only.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor on import; this module is where that move will happen.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az
    from arviz.utils import Numba
import numpy as np
import pandas as pd
import xarray as xr

from ._io import atomic_write
from .errors import BayescaleError

InferenceData = az.InferenceData

SAMPLE_DIMS = ("chain", "draw")


@contextlib.contextmanager
def _numpy_kernels() -> Any:
    """ArviZ's statistics in numpy, not numba, within bayescale's calls.

    ArviZ switches to numba kernels whenever numba is installed (PyMC's pytensor pulls it in),
    and a fresh process then compiles them on first use: 0.2-0.8 s of a cold fit, for arrays of
    chains x draws that numpy handles as fast (issue 20). The user's own setting is restored.
    """
    before = Numba.numba_flag
    Numba.numba_flag = False
    try:
        yield
    finally:
        Numba.numba_flag = before


def version() -> str:
    return az.__version__


def from_draws(
    posterior: Mapping[str, np.ndarray],
    *,
    log_prior: Mapping[str, np.ndarray] | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    constant_data: Mapping[str, np.ndarray] | None = None,
    coords: Mapping[str, Sequence[Any]] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> InferenceData:
    """InferenceData from arrays shaped ``(chain, draw, ...)``."""
    idata = az.from_dict(
        posterior=dict(posterior),
        sample_stats=dict(sample_stats) if sample_stats else None,
        log_likelihood=dict(log_likelihood) if log_likelihood else None,
        observed_data=dict(observed_data) if observed_data else None,
        constant_data=dict(constant_data) if constant_data else None,
        coords=dict(coords or {}),
        dims=dict(dims or {}),
        attrs=dict(attrs or {}),
    )
    if log_prior:
        # az.from_dict has no log_prior argument in 0.23 (it drops unknown groups): add it after.
        idata.add_groups({"log_prior": dict(log_prior)})
    return idata


def group(idata: InferenceData, name: str) -> xr.Dataset | None:
    """A group of the result, or None when it is absent."""
    return getattr(idata, name, None) if name in idata.groups() else None


def attrs(idata: InferenceData) -> dict[str, Any]:
    """Attributes of the whole result (bayescale keeps its provenance there)."""
    return dict(idata.attrs)


COMPARISON_ATTR = "bayescale_comparison"  # marks a saved recipe comparison (bayescale.Comparison.save)


def fit_attrs(idata: InferenceData, path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of a saved fit. A saved recipe comparison is refused by name: it holds a
    joint fit whose grouped law no registry knows, which would otherwise read as an unknown law."""
    found = attrs(idata)
    if COMPARISON_ATTR in found:
        raise BayescaleError(
            f"{path} is a recipe comparison (saved by Comparison.save), not a fit: read it with "
            f"bayescale.Comparison.load, or write its report with `bayescale report {path} -o report.html`"
        )
    return found


@_numpy_kernels()
def diagnostics_table(idata: InferenceData, var_names: Sequence[str]) -> pd.DataFrame:
    """r-hat, bulk and tail ESS and MCSE of the mean per variable."""
    post = idata.posterior[list(var_names)]
    # a variable that does not vary (a collapsed fit's) has no r-hat or ESS: NaN, which callers read,
    # and no numpy warning about the 0 / 0 behind it
    with np.errstate(divide="ignore", invalid="ignore"):
        # r-hat compares chains: with one there is nothing to compare (ArviZ would log a shape warning).
        rhat = az.rhat(post) if post.sizes.get("chain", 1) > 1 else {v: np.nan for v in var_names}
        ess_bulk = az.ess(post, method="bulk")
        ess_tail = az.ess(post, method="tail")
        mcse = az.mcse(post)
    rows = []
    for v in var_names:
        rows.append(
            {
                "variable": v,
                "r_hat": float(rhat[v]),
                "ess_bulk": float(ess_bulk[v]),
                "ess_tail": float(ess_tail[v]),
                "mcse_mean": float(mcse[v]),
            }
        )
    return pd.DataFrame(rows).set_index("variable")


@_numpy_kernels()
def rhat(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat (Vehtari et al. 2021) of draws shaped ``(unit, chain, draw)``:
    one value per unit and variable (the units are independent fits, e.g. learning curves)."""
    data = xr.Dataset({k: (("unit", *SAMPLE_DIMS), np.asarray(v, dtype=np.float64)) for k, v in draws.items()})
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # ArviZ warns about too few draws per chain; the caller decides what short chains mean (and a
        # constant variable's NaN).
        warnings.simplefilter("ignore", UserWarning)
        out = az.rhat(data)
    return {k: np.asarray(out[k].values, dtype=np.float64).reshape(-1) for k in draws}


@_numpy_kernels()
def summary_table(idata: InferenceData, var_names: Sequence[str], ci_prob: float) -> pd.DataFrame:
    """Mean, sd, median and equal-tailed credible interval per variable, with diagnostics."""
    post = idata.posterior[list(var_names)]
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    pct = lambda q: f"{100 * q:g}%"  # noqa: E731
    rows = []
    for v in var_names:
        x = post[v].values.reshape(-1)
        rows.append(
            {
                "variable": v,
                "mean": float(np.mean(x)),
                "sd": float(np.std(x, ddof=1)) if x.size > 1 else float("nan"),
                pct(lo): float(np.quantile(x, lo)),
                "median": float(np.median(x)),
                pct(hi): float(np.quantile(x, hi)),
            }
        )
    table = pd.DataFrame(rows).set_index("variable")
    if idata.posterior.sizes.get("chain", 1) * idata.posterior.sizes.get("draw", 1) >= 8:
        table = table.join(diagnostics_table(idata, var_names)[["ess_bulk", "ess_tail", "r_hat"]])
    return table


def from_groups(groups: Mapping[str, xr.Dataset], attrs: Mapping[str, Any]) -> InferenceData:
    """An InferenceData of the given groups (posterior, sample_stats, ...) and attributes."""
    idata = InferenceData(**dict(groups))
    idata.attrs = dict(attrs)
    return idata


def with_groups(idata: InferenceData, groups: Mapping[str, xr.Dataset], attrs: Mapping[str, Any]) -> InferenceData:
    """A copy of ``idata`` with extra (non-standard) groups and replaced attributes."""
    out = idata.copy()
    if not groups:
        out.attrs = dict(attrs)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes that the group names are its own
        out.add_groups(dict(groups))
    out.attrs = dict(attrs)
    return out


#: Suffixes of other formats a fit is never written under (``fit.save("runs.csv")`` would replace a runs table).
OTHER_FORMATS = (".csv", ".json", ".toml", ".yaml", ".yml", ".txt", ".md", ".html", ".png", ".parquet", ".pkl")


def save(idata: InferenceData, path: str | os.PathLike) -> Path:
    """Write to netCDF atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    if path.suffix.lower() in OTHER_FORMATS:
        raise BayescaleError(
            f"fits are written as netCDF: {str(path)!r} names a {path.suffix} file; give a path ending in .nc"
        )
    atomic_write(path, lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))
    return path


def load(path: str | os.PathLike) -> InferenceData:
    """Read a netCDF file written by :func:`save` fully into memory."""
    idata = az.from_netcdf(str(path), engine="h5netcdf")
    idata.load()
    return idata


@_numpy_kernels()
def loo(idata: InferenceData) -> dict[str, Any]:
    """PSIS-LOO: elpd, its SE, p_loo and pointwise Pareto k."""
    with warnings.catch_warnings():
        # ArviZ warns when some k > 0.7; bayescale reports those runs by id instead.
        warnings.simplefilter("ignore", UserWarning)
        res = az.loo(idata, pointwise=True)
    return {
        "elpd": float(res.elpd_loo),
        "se": float(res.se),
        "p_loo": float(res.p_loo),
        "pareto_k": np.asarray(res.pareto_k),
    }


@_numpy_kernels()
def psis_log_weights(idata: InferenceData) -> np.ndarray:
    """Normalised PSIS log weights, shape (chain*draw, run)."""
    ll = idata.log_likelihood["log_loss"]
    stacked = ll.stack(__sample__=("chain", "draw")).transpose(..., "__sample__")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lw, _ = az.psislw(-stacked)
    return np.asarray(lw.transpose("__sample__", ...).values)


@_numpy_kernels()
def power_scaling(
    draws: Mapping[str, np.ndarray], log_prior: np.ndarray, log_likelihood: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Power-scaling sensitivity (Kallioinen et al. 2023, ``az.psens``) of each quantity in ``draws``
    (shaped ``(chain, draw)``) to the prior and to the likelihood: ``{name: (prior, likelihood)}``.

    ``log_prior`` is the joint log prior per draw ``(chain, draw)``, ``log_likelihood`` the pointwise
    log likelihood ``(chain, draw, run)``. Derived quantities (a prediction's log loss) work as parameters do.
    """
    idata = az.from_dict(
        posterior={k: np.asarray(v, dtype=np.float64) for k, v in draws.items()},
        log_likelihood={"log_loss": np.asarray(log_likelihood, dtype=np.float64)},
    )
    idata.add_groups({"log_prior": {"lprior": np.asarray(log_prior, dtype=np.float64)}})
    with warnings.catch_warnings():
        # PSIS warns on high Pareto k of the power-scaled weights; with powers 1 +- 0.01 that is rare,
        # and the sensitivity is a finite-difference derivative that needs no reliable weights far out.
        warnings.simplefilter("ignore", UserWarning)
        prior = az.psens(idata, component="prior")
        lik = az.psens(idata, component="likelihood")
    return {k: (float(prior[k]), float(lik[k])) for k in draws}


@_numpy_kernels()
def psis_smooth(log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed, normalised importance log weights of each row of ``log_weights``
    (rows: independent targets; columns: proposal draws) and each row's Pareto k."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lw, k = az.psislw(np.asarray(log_weights, dtype=np.float64))
    return np.asarray(lw), np.atleast_1d(np.asarray(k, dtype=np.float64))


@_numpy_kernels()
def compare(idatas: Mapping[str, InferenceData]) -> pd.DataFrame:
    """ArviZ's LOO comparison table (rank, elpd_loo, p_loo, elpd_diff, weight, se, dse, warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # ArviZ 0.23 calls DataFrame.sort_values(inplace=True), which pandas 3 deprecates.
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        return az.compare(dict(idatas), ic="loo")


# ---- plots (ArviZ)
#
# Every az.plot_* call of bayescale lives below; bayescale.plots adds the scaling-specific
# figures and the annotations. Each function returns a matplotlib Figure, or the axes
# where the caller needs them.


@contextlib.contextmanager
def _quiet_plotting() -> Any:
    """Silence the one warning ArviZ 0.23's plotting raises under newer matplotlib (only that one)."""
    with warnings.catch_warnings():
        # ArviZ 0.23 passes dicts to matplotlib.cbook.normalize_kwargs, deprecated in matplotlib 3.11.
        warnings.filterwarnings("ignore", message=".*alias_mapping to normalize_kwargs.*")
        yield


def _figure_of(ax: Any) -> Any:
    return np.asarray(ax, dtype=object).ravel()[0].get_figure()


def plot_trace_rank(
    idata: InferenceData, var_names: Sequence[str], *, figsize: tuple[float, float] | None = None
) -> Any:
    """ArviZ trace plot with rank bars per chain (``kind="rank_bars"``): densities left, ranks right."""
    with _quiet_plotting():
        ax = az.plot_trace(idata, var_names=list(var_names), kind="rank_bars", compact=False, figsize=figsize)
    return _figure_of(ax)


def plot_rank(idata: InferenceData, var_names: Sequence[str], *, kind: str = "bars") -> Any:
    """ArviZ rank plot: one panel per variable, rank histograms per chain (uniform when the chains agree)."""
    with _quiet_plotting():
        ax = az.plot_rank(idata, var_names=list(var_names), kind=kind)
    return _figure_of(ax)


def plot_pair(
    idata: InferenceData,
    var_names: Sequence[str],
    *,
    divergences: bool = False,
    figsize: tuple[float, float] | None = None,
) -> np.ndarray:
    """ArviZ pair plot (scatter, no marginals); returns the axes grid, shape ``(k-1, k-1)``.

    ``ax[j, i]`` has variable ``i`` on x and variable ``j + 1`` on y for ``i <= j`` (the
    lower triangle; ArviZ removes the upper triangle from the figure).
    """
    with _quiet_plotting():
        ax = az.plot_pair(
            idata,
            var_names=list(var_names),
            kind="scatter",
            marginals=False,
            divergences=divergences,
            figsize=figsize,
            scatter_kwargs={"alpha": 0.25, "s": 4},
        )
    return np.atleast_2d(np.asarray(ax, dtype=object))


def plot_posterior(
    data: xr.Dataset | InferenceData, var_names: Sequence[str], *, ax: Any, hdi_prob: float = 0.9
) -> Any:
    """ArviZ posterior density per variable with its median and highest-density interval, on ``ax``."""
    with _quiet_plotting():
        return az.plot_posterior(
            data, var_names=list(var_names), ax=ax, hdi_prob=hdi_prob, point_estimate="median", textsize=9
        )

"""Inference: :func:`fit` and the frozen :class:`Fit` (predict, summary, diagnostics, save/load).

The model (:mod:`bayescale.model`) is ``log L_obs ~ Likelihood(law.log_loss(theta, log x), sigma)``
with the spec's priors on ``theta``; the engine (:mod:`bayescale._engine`) samples it. Fitting
runs in three steps:

1. MAP in the unconstrained space (float64, SciPy L-BFGS on JAX gradients, several
   starts drawn from the prior), and the Laplace approximation at the mode.
2. NUTS with a dense mass matrix whose adaptation starts from the Laplace
   covariance, chains started from dispersed Laplace draws. Scaling-law posteriors
   are strongly correlated (``log A`` with ``alpha``, ``E`` with everything); a
   dense metric makes these linear correlations free and the Laplace start
   removes most of the warmup's work. Coefficients a law declares in ``Law.power_terms``
   are sampled at the runs' reference scale (``log A - alpha * mean(log N)``), which
   straightens the curved ridge a linear whitening cannot (unit Jacobian: same posterior).
3. Diagnostics (r-hat, ESS, divergences) with a :class:`ConvergenceWarning` in words.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from . import _arviz, _importance
from ._engine import GPU_MIN_RUNS as GPU_MIN_RUNS  # re-exported: bs.inference.GPU_MIN_RUNS
from ._engine import (
    Laplace,
    _chain_method,
    _sampling_device,
    enable_compilation_cache,
    laplace,
    nuts,
    padded,
    psis,
)
from ._engine import log_likelihood as padded_log_likelihood
from ._idata import build_idata, fit_attrs, require_fit_groups, runs_from_idata
from ._identified import DEGENERATE, collapsed_noise, too_few_runs, unspanned_inputs
from ._identified import add_identified as add_identified  # re-exported: the PyMC backend reads it here
from ._words import count, join_names
from .data import law_inputs, load_runs, points_frame
from .discrepancy import Learned, conformal_scaled, learn
from .errors import (
    BayescaleError,
    ConvergenceWarning,
    MultimodalWarning,
    SpecError,
    StaleFitError,
    check_seed,
    user_stacklevel,
)
from .misfit import Misfit, misfit, warn_if_misfit
from .model import _POSTERIORS as _POSTERIORS  # re-exported: the benchmarks clear it
from .model import (
    DRIFT,
    Posterior,
    add_drift,
    distance_from_runs,
    make_model,
    noise_names,
    posterior,
    predictive_draws,
)
from .model import observation_dist as observation_dist  # re-exported: its home before bayescale.model
from .modes import chains_agree, describe, modes_of, settle, stuck_chains, stuck_words
from .scaled_priors import place_priors
from .sensitivity import Sensitivity, sensitivity
from .spec import ModelSpec, load_spec, recorded_spec

METHODS = ("nuts", "laplace", "psis")
#: Attribute of a saved law average (:mod:`bayescale.averaging`): its spec, weights and evidence.
AVERAGE_ATTR = "bayescale_average"
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


@dataclass(frozen=True)
class Fit:
    """What was learned: a spec, the runs it saw, and the ArviZ result.

    Attributes
    ----------
    spec : ModelSpec
    idata : arviz.InferenceData
        Groups ``posterior`` (law parameters on their natural scale, ``sigma``,
        dims ``(chain, draw)``), ``sample_stats``, ``log_likelihood``,
        ``observed_data`` (``log_loss``, dim ``run``) and ``constant_data``.
    runs : pandas.DataFrame
        The validated runs table the fit used.
    method : str
        ``"nuts"``, ``"laplace"``, ``"pymc"`` (the PyMC backend) or ``"fixed"`` (given draws, for tests).
    seed : int
    """

    spec: ModelSpec
    idata: Any
    runs: pd.DataFrame = field(repr=False)
    method: str = "nuts"
    seed: int = 0
    laplace: Laplace | None = field(default=None, repr=False, compare=False)

    # --------------------------------------------------------------- access
    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws, dims ``(chain, draw)``."""
        return self.idata.posterior

    @property
    def var_names(self) -> list[str]:
        """Law parameters, noise parameters, then ``drift`` when the spec has an extrapolation prior."""
        extra = [DRIFT] if DRIFT in self.posterior else []
        return list(self.spec.law.params) + noise_names(self.spec) + extra

    def noise_params(self, points: Any = None) -> dict[str, np.ndarray]:
        """Draws of the likelihood's noise parameters, shaped ``(chain, draw, 1)`` to broadcast over points
        (the same at any ``points``: a law average's may differ per point)."""
        return {k: self.posterior[k].values[..., None] for k in noise_names(self.spec)}

    def law_log_loss(self, points: Any) -> np.ndarray:
        """Log of the law's loss at ``points`` per draw, shape ``(chain, draw, point)``: the law's
        parameter draws alone, without the extrapolation drift or a conformal factor."""
        logx = law_inputs(self.spec, points_frame(points), np.float64)
        theta = {p: self.posterior[p].values[..., None] for p in self.spec.law.params}
        return np.asarray(
            self.spec.law.log_loss(theta, {k: v[None, None, :] for k, v in logx.items()}, np), dtype=float
        )

    def log_loss(self, points: Any) -> np.ndarray:
        """Log of the law's loss at ``points`` per draw, shape ``(chain, draw, point)``, including the
        extrapolation drift (``drift * distance from the runs``, :func:`~bayescale.model.distance_from_runs`)
        when the spec has one, and widened (or narrowed) about the median by the conformal factor of a fit
        made with ``calibrate="conformal"``."""
        frame = points_frame(points)
        log_mu = self.law_log_loss(frame)
        if DRIFT in self.posterior:
            distance = distance_from_runs(self.spec, self.runs, frame)
            log_mu = log_mu + self.posterior[DRIFT].values[..., None] * distance[None, None, :]
        return conformal_scaled(log_mu, _arviz.attrs(self.idata).get("conformal_factor"))

    def draws(self, var_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Posterior draws as NumPy arrays shaped ``(chain, draw)``."""
        return {v: self.posterior[v].values for v in (var_names or self.var_names)}

    # ------------------------------------------------------------ predict
    def predict(self, points: Any, *, noise: bool = False, seed: int = 0) -> xr.DataArray:
        """Draws of the loss at new points, dims ``(chain, draw, point)``.

        Parameters
        ----------
        points : mapping, DataFrame or list of mappings
            Inputs of the law, e.g. ``{"N": 7e9, "D": 1.4e12}`` or arrays of them.
            A missing ``C`` is ``6 N D``; a missing ``D`` is ``C / (6 N)``; a missing
            ``U`` (unique tokens, read by the data-constrained law) is ``D``.
        noise : bool
            Add observation noise (the likelihood's, on log loss), i.e. predict a
            new run's measured loss rather than the law's value.
        seed : int
            Seed for the noise draws.

        Returns
        -------
        xarray.DataArray
            Named ``"loss"``, with coordinates of the inputs along ``point``.

        Examples
        --------
        >>> band = fit.predict({"N": 7e9, "D": 1.4e12})      # doctest: +SKIP
        >>> band.quantile([0.05, 0.5, 0.95], dim=("chain", "draw"))  # doctest: +SKIP
        """
        return predictive_draws(self, points, noise=noise, seed=seed)

    # --------------------------------------------------------- summaries
    def summary(self, *, var_names: Sequence[str] | None = None, ci_prob: float = 0.9) -> pd.DataFrame:
        """Posterior mean, sd, median, equal-tailed ``ci_prob`` interval, and for MCMC draws ESS and
        r-hat (independent or importance-resampled draws have no chains to diagnose)."""
        if not 0 < ci_prob < 1:
            raise BayescaleError(f"ci_prob must be in (0, 1), got {ci_prob!r}")
        names = list(var_names or self.var_names + self.identified_names)
        unknown = [v for v in names if v not in self.posterior]
        if unknown:
            raise BayescaleError(
                f"var_names {unknown} are not in the posterior; it has {list(self.posterior.data_vars)}"
            )
        table = _arviz.summary_table(self.idata, names, ci_prob)
        exact = self.method not in ("laplace", "psis")
        return table if exact else table.drop(columns=["ess_bulk", "ess_tail", "r_hat"], errors="ignore")

    def describe(self) -> str:
        """The law, in words (as :meth:`bayescale.AveragedFit.describe` names an average's laws)."""
        return f"one law, {self.spec.name} ({self.spec.law.name}), fitted by {self.method} to {count(len(self.runs), 'run')}."

    def sensitivity(self, points: Any = None, **kwargs: Any) -> Sensitivity:
        """Does the prior decide a parameter, or the loss at ``points``? Power-scaling (:mod:`bayescale.sensitivity`)."""
        return sensitivity(self, points, **kwargs)

    def misfit(self, **kwargs: Any) -> Misfit:
        """Does the law bend differently from the runs? Residual patterns in words (:func:`bayescale.misfit.misfit`)."""
        return misfit(self, **kwargs)

    @property
    def drift_scale(self) -> dict[str, float] | None:
        """The extrapolation drift scale learned from the runs (``[extrapolation] learned = true``): its
        ``median``, ``q05``, ``q95`` (log loss per decade of (N, D)) and ``splits``; None when not learned."""
        learned = _arviz.attrs(self.idata).get("drift_scale")
        return json.loads(learned) if learned else None

    @property
    def identified_names(self) -> list[str]:
        """Identifiable combinations added when the law's inputs are collinear."""
        return [v for v in json.loads(_arviz.attrs(self.idata).get("identified", "[]"))]

    def diagnostics(self) -> dict[str, Any]:
        """Sampling diagnostics and the plain-words problems they show.

        Returns
        -------
        dict
            ``method``, ``chains``, ``draws``, ``divergences``, ``max_tree_depth_hits``,
            ``table`` (r-hat, ESS per variable as a DataFrame), ``max_r_hat``,
            ``min_ess_bulk``, ``min_ess_tail``, ``sampling_seconds``, ``problems`` (list of str), ``modes``
            (the posterior's modes, :mod:`bayescale.modes`: dicts of params, weight, chains, prediction).
        """
        a = _arviz.attrs(self.idata)
        chains = int(self.posterior.sizes["chain"])
        draws = int(self.posterior.sizes["draw"])
        out: dict[str, Any] = {
            "method": self.method,
            "chains": chains,
            "draws": draws,
            "sampling_seconds": float(a.get("sampling_seconds", float("nan"))),
            "chain_method": a.get("chain_method", ""),
            "device": a.get("device", ""),
            "modes": modes_of(a)["modes"],
        }
        said = describe(modes_of(a))  # several modes, in words: always a problem to read
        few = too_few_runs(self.spec, len(self.runs)) + unspanned_inputs(self.spec, self.runs)
        few += collapsed_noise(self.method, self.posterior)
        if self.method in ("laplace", "psis", "fixed") or "sample_stats" not in self.idata.groups():
            out.update(problems=few + [said] * bool(said), divergences=0, max_tree_depth_hits=0)
            out["note"] = (
                "Laplace approximation: a Gaussian at the mode in the unconstrained space, no MCMC diagnostics."
                if self.method == "laplace"
                else "no sampler statistics in this result"
            )
            if self.method == "psis":
                k = float(a.get("pareto_k", float("nan")))
                out["pareto_k"] = k
                out["note"] = (
                    f"Laplace approximation corrected by importance sampling, Pareto k {k:.3g} (reliable at 0.7 or below); no MCMC diagnostics."
                )
                if not k <= _importance.K_MAX:
                    out["problems"] += [
                        f"Pareto k {k:.4g} > {_importance.K_MAX}: the importance-sampling draws are unreliable and the bands "
                        "approximate; refit with method='nuts'."
                    ]
            return out
        table = _arviz.diagnostics_table(self.idata, self.var_names)
        stats = self.idata.sample_stats
        div = int(stats["diverging"].values.sum())
        depth_hits = (
            int((stats["tree_depth"].values >= self.spec.sampler.max_tree_depth).sum()) if "tree_depth" in stats else 0
        )
        out.update(
            table=table,
            divergences=div,
            max_tree_depth_hits=depth_hits,
            max_r_hat=float(table["r_hat"].max()),
            min_ess_bulk=float(table["ess_bulk"].min()),
            min_ess_tail=float(table["ess_tail"].min()),
            nuts_batches=int(a.get("nuts_batches", 1)),  # > 1: the chains drew on while r-hat was high
            # Stuck chains given a healthy chain's step size, per round, and divergences among the draws dropped.
            **{f"nuts_{k}": v for k, v in json.loads(a.get("nuts_restepped", '{"restepped": []}')).items()},
            acceptance=stats["acceptance_rate"].mean("draw").values.tolist() if "acceptance_rate" in stats else [],
        )
        # Too few runs first: where it holds, it is why the sampler struggles, and what to fix.
        out["problems"] = few + _problems(out, table, chains, said, modes_of(a)["state"] == "split")
        out["problems"] += stuck_words(out["acceptance"], self.spec.sampler.target_accept)
        return out

    # --------------------------------------------------------- save / load
    def save(self, path: str | Path) -> Path:
        """Write the fit to netCDF (atomically). :meth:`load` reads it back."""
        return _arviz.save(self.idata, path)

    @classmethod
    def load(cls, path: str | Path, *, spec: ModelSpec | str | Path | None = None, check_spec: bool = True) -> "Fit":
        """Read a fit written by :meth:`save`.

        Parameters
        ----------
        path : path
        spec : ModelSpec or path, optional
            The spec the fit should have been made with. When omitted and the fit
            records the spec file it came from, that file is read and compared.
        check_spec : bool
            Set False to load a fit whose spec has changed since (at your own risk).

        Raises
        ------
        StaleFitError
            If the spec has changed since the fit was made.
        BayescaleError
            If the file is missing or is not a bayescale fit.
        """
        path = Path(path)
        if not path.is_file():
            raise BayescaleError(
                f"fit file {str(path)!r} {'is a folder, not a fit file' if path.is_dir() else 'not found'}"
            )
        try:
            idata = _arviz.load(path)
            stored = json.loads(_arviz.attrs(idata)["bayescale_spec"])
        except PermissionError:
            raise BayescaleError(f"fit file {str(path)!r} cannot be read (permission denied)") from None
        except (KeyError, OSError, ValueError) as e:
            raise BayescaleError(f"{path} is not a bayescale fit file ({type(e).__name__}: {e})") from None
        require_fit_groups(idata, path)
        a = _arviz.fit_attrs(idata, path)
        saved = recorded_spec(stored, path=a.get("spec_path") or None)
        if check_spec:
            current = None
            if spec is not None:
                current = load_spec(spec)
            elif a.get("spec_path") and Path(a["spec_path"]).is_file():
                current = load_spec(a["spec_path"])
            if current is not None and current.declared_id != saved.declared_id:
                changed = [k for k in ("law", "priors", "likelihood") if current.to_dict()[k] != saved.to_dict()[k]]
                raise StaleFitError(
                    f"{path} was fitted with spec {saved.name!r} but {current.path or 'the given spec'} now defines "
                    f"another model (changed: {', '.join(changed)}; model id {saved.model_id} -> "
                    f"{current.model_id}): refit it (`bayescale fit`), "
                    f"{'put the spec file back as it was, ' if current.path else ''}or in Python load with "
                    "check_spec=False (the fit keeps its own copy of the spec)"
                )
        if AVERAGE_ATTR in a:
            warnings.warn(
                f"{path} holds a law average; Fit.load reads its leading law alone ({saved.name!r}), without "
                "the other laws or their weights: load it with bayescale.load_fit(path)",
                UserWarning,
                stacklevel=2,
            )
        runs = runs_from_idata(idata)
        return cls(spec=saved, idata=idata, runs=runs, method=a.get("method", "nuts"), seed=int(a.get("seed", 0)))


def _problems(
    d: Mapping[str, Any], table: pd.DataFrame, chains: int, modes: str | None = None, split: bool = False
) -> list[str]:
    """Sampling problems in words. ``modes`` (several modes, in words) comes first; when the chains
    sat in different modes (``split``), r-hat and ESS say nothing a longer run would fix."""
    problems = [modes] if modes else []
    if chains < 2:  # nothing for r-hat to compare
        problems.append("one chain: r-hat cannot see a stuck chain or a second mode; use 2 or more chains (--chains)")
    bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
    if bad_rhat and not split:
        batches = d.get("nuts_batches", 1)
        longer = f", even after {batches} batches of draws per chain" if batches > 1 else ""
        problems.append(
            f"r-hat above {RHAT_MAX} for {join_names(bad_rhat)} (max {d['max_r_hat']:.3f}): the chains disagree"
            f"{longer}. Run more warmup and draws (sampler.warmup / sampler.draws; CLI: --warmup / --draws), or tighten the priors if "
            "the data cannot pin these parameters down."
        )
    ess_min = ESS_PER_CHAIN_MIN * chains
    low = table.index[(table["ess_bulk"] < ess_min) | (table["ess_tail"] < ess_min)].tolist()
    if low and not split:
        problems.append(
            f"effective sample size below {ess_min} for {join_names(low)} (min bulk {d['min_ess_bulk']:.0f}, tail "
            f"{d['min_ess_tail']:.0f}): intervals are noisy. Increase sampler.draws (CLI: --draws)."
        )
    if d["divergences"]:
        problems.append(
            f"{d['divergences']} divergent transitions: the sampler missed part of the posterior. Raise "
            "sampler.target_accept (e.g. 0.95 or 0.99), or reparameterise / tighten the priors."
        )
    if d["max_tree_depth_hits"]:
        problems.append(
            f"{d['max_tree_depth_hits']} draws hit the maximum tree depth: sampling is inefficient. Raise "
            "sampler.max_tree_depth or use more informative priors."
        )
    return problems


# ----------------------------------------------------------------- fitting


def _checked_spec(spec: ModelSpec, method: str, seed: Any, **overrides: int | None) -> ModelSpec:
    """The spec with the caller's sampler overrides, after checking ``method`` and ``seed``."""
    if method not in METHODS:
        raise BayescaleError(f"method must be one of {list(METHODS)}, got {method!r}")
    check_seed(seed)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return spec
    try:
        return spec.with_sampler(**overrides)
    except SpecError as e:
        raise BayescaleError(str(e)) from None


def _draw(
    spec: ModelSpec,
    method: str,
    logx: Mapping[str, np.ndarray],
    y: np.ndarray,
    lap: Laplace,
    rng: np.random.Generator,
    device: Any,
    dtype: Any,
    progress: bool,
    post64: Posterior,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Unconstrained draws (chain, draw, d) by ``method``, with the sampler statistics and what goes
    into the fit's attributes: the chain method and batches of draws (NUTS), the Pareto k (PSIS)."""
    s = spec.sampler
    if method == "laplace":
        return rng.multivariate_normal(lap.mode, lap.cov, size=(s.chains, s.draws)), {}, {"chain_method": ""}
    if method == "psis":
        with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
            chol = np.linalg.cholesky(0.5 * (lap.cov + lap.cov.T) + 1e-12 * np.eye(lap.mode.size))
            data = padded(logx, y, np.float64)[:3]  # (logx, y, mask): compiled once per table-size bucket
            xs, k = psis(
                posterior(spec, np.float64), data, lap.mode[None], chol[None], rng, s.chains * s.draws, units=False
            )
        return xs[0].reshape(s.chains, s.draws, -1), {}, {"chain_method": "", "pareto_k": float(k[0])}
    chain_method = _chain_method(s.chain_method, s.chains, device)
    slow = partial(_mixing_slowly, post64)
    with jax.enable_x64(dtype == np.float64), jax.default_device(device):
        flat, stats, ran = nuts(posterior(spec, dtype), logx, y, lap, rng, dtype, chain_method, progress, slow)
    info = {"chain_method": chain_method, "nuts_batches": ran.pop("batches")}
    return flat, stats, {**info, "nuts_restepped": json.dumps(ran)}  # chains per round, divergences dropped


def _mixing_slowly(post64: Posterior, flat: np.ndarray) -> bool:
    """r-hat above :data:`RHAT_MAX` while the chains sit together: a ridge they cross slowly, or modes
    of the MAP search that every chain moves between, which longer chains fix (chains that sit in
    different modes are left to :func:`bayescale.modes.settle`: longer chains do not join them)."""
    if not chains_agree(flat):
        return False
    r_hat = _arviz.rhat({k: v[None] for k, v in _natural(post64, flat).items()})
    return max(float(np.max(v)) for v in r_hat.values()) > RHAT_MAX


def fit(
    spec: ModelSpec | str | Path,
    runs: Any,
    *,
    seed: int = 0,
    method: str = "nuts",
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    progress: bool = False,
    calibrate: str | None = None,
    learned: Learned | None = None,
) -> Fit:
    """Fit a scaling law to training runs.

    Parameters
    ----------
    spec : ModelSpec or path
        The model (law, priors, likelihood, sampler settings); a path or bundled name is loaded.
    runs : DataFrame or path
        The runs table (see :func:`bayescale.load_runs`).
    seed : int
        The one seed for everything random in the fit.
    method : {"nuts", "laplace", "psis"}
        ``"nuts"`` (default) samples the posterior. ``"laplace"`` returns draws from
        the Gaussian approximation at the MAP estimate: seconds, for quick looks.
        ``"psis"`` corrects those draws by adaptive Pareto-smoothed importance sampling
        (:mod:`bayescale._importance`): nearly as fast, and it follows a skewed posterior
        (an asymptote ``E`` the runs barely constrain) where the Gaussian cannot. Its Pareto k
        is in ``fit.idata.attrs["pareto_k"]``; above 0.7 a :class:`ConvergenceWarning` says
        the draws are unreliable.
    chains, warmup, draws : int, optional
        Override the spec's sampler settings.
    progress : bool
        Show NumPyro's progress bar.
    calibrate : {None, "conformal"}
        ``"conformal"``: bands scaled about their median to cover the runs held out by leave-future-out
        splits at the split-conformal rate (:mod:`bayescale.discrepancy`, which states the assumption).
    learned : Learned, optional
        Drift scale and conformal factor from splits the caller already ran (a law average does).

    Returns
    -------
    Fit

    Raises
    ------
    SpecError, RunsTableError
        For bad input.

    Warns
    -----
    ConvergenceWarning
        When r-hat > 1.01, ESS is low or there were divergences; its subclass :class:`MultimodalWarning`
        when the posterior has several modes (which, and how the draws mix them).
    IdentifiabilityWarning
        When the runs cannot separate some parameters (e.g. ``C = 6 N D`` in the multiplicative law).

    Examples
    --------
    >>> import bayescale as bs                                   # doctest: +SKIP
    >>> fit = bs.fit("chinchilla", bs.datasets.load_chinchilla(), seed=0)  # doctest: +SKIP
    >>> fit.summary()                                            # doctest: +SKIP
    """
    result = fit_quietly(
        spec, runs, seed=seed, method=method, chains=chains, warmup=warmup, draws=draws, progress=progress,
        calibrate=calibrate, learned=learned,
    )  # fmt: skip
    # A pattern in the residuals the law cannot follow, said in words (never a silent confident band).
    warn_if_misfit(result)
    return result


def fit_quietly(
    spec: ModelSpec | str | Path,
    runs: Any,
    *,
    seed: int = 0,
    method: str = "nuts",
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    progress: bool = False,
    calibrate: str | None = None,
    learned: Learned | None = None,
) -> Fit:
    """:func:`fit` without its misfit check: a law average checks the misfit of its own predictions,
    not each member's, and the check costs as much as a Laplace fit on large tables."""
    spec = _checked_spec(load_spec(spec), method, seed, chains=chains, warmup=warmup, draws=draws)
    table = load_runs(runs)
    spec = place_priors(spec, table)  # [priors] scale = "runs": priors on the runs' scale, recorded in the spec
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    logx, y, post64, lap = _map_and_laplace(spec, table, rng)
    device, dtype = _device_and_dtype(spec, len(table))
    flat, stats, drawn = _draw(spec, method, logx, y, lap, rng, device, dtype, progress, post64)
    stuck = stuck_chains(stats, spec.sampler.target_accept)
    flat, stats, modes = settle(post64, lap.modes, flat, stats, (logx, y), table, method, stuck)  # mixed by weight
    samples, ll = _constrained(post64, flat, logx, y)
    seconds = time.perf_counter() - t0
    learned = learned if learned is not None else learn(spec, table, rng, calibrate=calibrate, method=method)
    add_drift(spec, samples, rng, None if learned.drift is None else learned.drift.sample(rng, ll.shape[:2]))
    attrs = fit_attrs(
        spec,
        table,
        method=method,
        seed=seed,
        seconds=seconds,
        identified=add_identified(spec, samples, logx),
        device=f"{device.platform}:{device.device_kind}" if method == "nuts" else "cpu",
        dtype=np.dtype(dtype).name,
        laplace_mode=json.dumps(lap.value),
        **learned.attrs(),
        modes=modes,
        **drawn,
    )
    idata = build_idata(spec, table, samples, stats, ll, y, attrs)
    result = Fit(spec=spec, idata=idata, runs=table, method=method, seed=int(seed), laplace=lap)
    if method != "nuts":
        warn_if_degenerate_laplace(result)
    warn_if_unconverged(result)  # Laplace too: it may leave modes out
    return result


def _device_and_dtype(spec: ModelSpec, n_runs: int) -> tuple[Any, Any]:
    """Where NUTS runs, and in what precision: float64 costs little on a CPU; GPUs are fast in
    float32, and the laws are written in log space so float32 is accurate there."""
    device = _sampling_device(spec.sampler.device, n_runs)
    return device, np.float32 if device.platform == "gpu" else np.float64


def _map_and_laplace(spec: ModelSpec, table: pd.DataFrame, rng: np.random.Generator) -> tuple:
    """The law inputs, log losses, float64 posterior and Laplace fit of the runs."""
    # MAP + Laplace always in float64 on the CPU: a few hundred tiny steps, precision matters.
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        logx = law_inputs(spec, table, np.float64)
        y = np.log(table["loss"].to_numpy(dtype=np.float64))
        post64 = posterior(spec, np.float64)
        return logx, y, post64, laplace(post64, logx, y, rng, np.float64)


def _constrained(post64: Posterior, flat: np.ndarray, logx: Mapping[str, np.ndarray], y: np.ndarray) -> tuple:
    """The draws on their natural scale (float64) and their pointwise log likelihood."""
    samples = _natural(post64, flat)
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        return samples, padded_log_likelihood(post64, samples, logx, y)  # compiled once per table-size bucket


def _natural(post64: Posterior, flat: np.ndarray) -> dict[str, np.ndarray]:
    """Unconstrained draws mapped to each site's natural scale, in float64 on the CPU."""
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        values = post64.constrain_many(jnp.asarray(flat, dtype=np.float64))
        return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


def warn_if_degenerate_laplace(fit: Fit) -> None:
    """Warn when a Laplace approximation sits at a degenerate mode.

    With no more runs than law parameters the law can pass through every run, the posterior
    mode sends the noise scale to zero and the Gaussian around it has (almost) no width: the
    bands would look certain when they are not. NUTS explores the whole posterior, where the
    noise prior keeps the scale honest.
    """
    # (a collapsed noise scale, and no more runs than parameters, are problems Fit.diagnostics says,
    # from the draws, so a saved fit says them too; the Hessian is not kept, so it is said here, unless
    # the collapsed noise already says the approximation is degenerate)
    said = any(DEGENERATE in p for p in fit.diagnostics()["problems"])
    if not fit.laplace.converged and not said:
        warnings.warn(
            f"spec {fit.spec.name!r}: the Laplace approximation is degenerate (the Hessian at the mode is not positive "
            "definite), so its bands are far too narrow; fit with method='nuts' or add runs",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )


def warn_if_unconverged(fit: Fit) -> None:
    """Raise a :class:`ConvergenceWarning` listing the fit's sampling problems, if any."""
    d = fit.diagnostics()
    design = unspanned_inputs(fit.spec, fit.runs)  # the runs' design, said by the fit's IdentifiabilityWarning
    problems = [p for p in d["problems"] if p not in design]
    if problems:
        category = MultimodalWarning if len(d["modes"]) > 1 else ConvergenceWarning
        warnings.warn(unconverged_message(problems), category, stacklevel=user_stacklevel())


def unconverged_message(problems: list[str]) -> str:
    """The words of :func:`warn_if_unconverged`'s warning for ``problems``."""
    return "sampling may not be trustworthy: " + "; ".join(p.strip().rstrip(".") for p in problems) + "."


__all__ = ["Fit", "Laplace", "enable_compilation_cache", "fit", "make_model", "points_frame"]

"""Checks: prior and posterior predictive, PSIS-LOO with Pareto-k flags, LOO-PIT, model
comparison, leave-largest-out validation, and "was this new run a surprise?".

A scaling law is trusted for extrapolation, so the check that matters most is
:func:`leave_largest_out`: fit on the runs below a compute cut and see whether the
intervals cover the runs above it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from . import _arviz
from ._check_patterns import loss_unit_notes, surprise_pattern
from ._runs_input import schedules_of, table_notes, unit_notes
from ._words import count, join_names
from .averaging import fit as _fit
from .data import fill_ids, law_inputs, load_runs, points_frame
from .decisions import point_notes
from .discrepancy import calibration
from .errors import BayescaleError, RunsTableWarning
from .frontier import compute_optimal
from .inference import METHODS, Fit
from .likelihoods import mixture_cdf, mixture_quantiles
from .model import noise_names, observation_dist, parameter_priors, sample_observations
from .spec import ModelSpec, load_spec

CI_PROBS = (0.5, 0.8, 0.9, 0.95)
PARETO_K_BAD = 0.7


class ComparisonWarning(UserWarning):
    """Leave-one-out numbers that do not say what they seem to: two models' predictive accuracy
    differs by less than its standard error, or the draws are an approximation's."""


# ------------------------------------------------------------- predictive draws


def prior_predictive(
    spec: ModelSpec | str, points: Any, *, draws: int = 1000, noise: bool = True, seed: int = 0
) -> xr.DataArray:
    """Draws of loss at ``points`` implied by the priors alone (dims ``chain=1, draw, point``).

    Do the priors produce plausible loss curves? Look at the quantiles before fitting.
    """
    spec = load_spec(spec)
    frame = points_frame(points)
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    params = {}
    with jax.enable_x64(True):
        for name, prior in parameter_priors(spec).items():
            key, sub = jax.random.split(key)
            params[name] = np.asarray(prior.to_numpyro().sample(sub, (draws,)), dtype=float)[:, None]
        logx = law_inputs(spec, frame, np.float64)
        log_mu = np.asarray(
            spec.law.log_loss({p: params[p] for p in spec.law.params}, {k: v[None, :] for k, v in logx.items()}, jnp)
        )
    if noise:
        log_mu = sample_observations(spec, log_mu, {k: params[k] for k in noise_names(spec)}, int(rng.integers(2**31)))
    coords = {"point": np.arange(len(frame))}
    coords.update({c: ("point", frame[c].to_numpy(float)) for c in ("N", "D", "C") if c in frame})
    return xr.DataArray(np.exp(log_mu)[None], dims=("chain", "draw", "point"), coords=coords, name="loss")


def posterior_predictive(fit: Fit, *, seed: int = 0) -> xr.DataArray:
    """Replicated losses of the observed runs, dims ``(chain, draw, run)``."""
    y = sample_observations(fit.spec, fit.log_loss(fit.runs), fit.noise_params(), seed)
    return xr.DataArray(
        np.exp(y), dims=("chain", "draw", "run"), coords={"run": fit.runs["run_id"].astype(str).to_numpy()}, name="loss"
    )


# ------------------------------------------------------------- LOO


@dataclass(frozen=True)
class LooResult:
    """PSIS-LOO estimate with per-run Pareto k; ``flagged`` lists influential runs by id; ``note``
    says when the numbers reflect the fit's approximation rather than the runs (Laplace draws)."""

    elpd: float
    se: float
    p_loo: float
    pareto_k: pd.Series
    flagged: tuple[str, ...]
    method: str = "nuts"
    note: str | None = None

    def __str__(self) -> str:
        s = f"elpd_loo {self.elpd:.2f} (SE {self.se:.2f}), p_loo {self.p_loo:.2f}"
        if self.flagged:
            s += f"; Pareto k > {PARETO_K_BAD} (influential, LOO unreliable) for runs {join_names(self.flagged)}"
        return s + (f"\n{self.note}" if self.note else "")


def approximation_note(method: str, n_flagged: int, refit: str = "method='nuts'") -> str | None:
    """What high Pareto k mean for a fit whose draws are not MCMC draws (Laplace, psis); ``None`` otherwise."""
    if method not in ("laplace", "psis") or not n_flagged:
        return None
    name = "a Laplace approximation" + (" reweighted by importance sampling (psis)" if method == "psis" else "")
    return (
        f"note: this fit's draws come from {name}, not from the posterior itself; Pareto k > {PARETO_K_BAD:g} "
        "here mostly reflect the approximation (its Gaussian tails miss the posterior's), not runs that are "
        f"truly influential, and p_loo is inflated with them. Refit with {refit} for a LOO you can trust."
    )


def loo(fit: Fit) -> LooResult:
    """PSIS-LOO of the fit's pointwise log likelihood, with runs whose Pareto k > 0.7 named (and a
    note, also warned, when the fit's draws are an approximation that the high k reflect)."""
    res = _arviz.loo(fit.idata)
    k = pd.Series(res["pareto_k"], index=fit.runs["run_id"].astype(str).to_numpy(), name="pareto_k")
    flagged = tuple(k.index[k > PARETO_K_BAD])
    note = approximation_note(fit.method, len(flagged))
    if note:
        warnings.warn(note.removeprefix("note: "), ComparisonWarning, stacklevel=2)
    return LooResult(res["elpd"], res["se"], res["p_loo"], k, flagged, method=fit.method, note=note)


def loo_pit(fit: Fit) -> pd.Series:
    """Leave-one-out probability integral transform of each observed run.

    ``PIT_i = sum_s w_is F(y_i | theta_s)`` with PSIS weights ``w`` and the likelihood's
    CDF ``F`` (exact, no replicate sampling). Calibrated models give PIT values that
    look uniform on [0, 1]. On a Laplace fit's draws they reflect the approximation (warned).
    """
    if fit.method == "laplace":
        warnings.warn(
            "LOO-PIT from a Laplace approximation's draws reflects the approximation's tails, not the runs; "
            "refit with method='nuts' to check calibration.",
            ComparisonWarning,
            stacklevel=2,
        )
    log_w = _arviz.psis_log_weights(fit.idata)  # (chain*draw, run), normalised per run
    log_mu = fit.log_loss(fit.runs).reshape(-1, len(fit.runs))
    noise = {k: v.reshape(-1, 1) for k, v in fit.noise_params().items()}
    y = np.log(fit.runs["loss"].to_numpy(float))[None, :]
    with jax.enable_x64(True):
        cdf = np.asarray(
            observation_dist(fit.spec, jnp.asarray(log_mu), {k: jnp.asarray(v) for k, v in noise.items()}).cdf(
                jnp.asarray(y)
            )
        )
    pit = np.sum(np.exp(log_w) * cdf, axis=0)
    return pd.Series(np.clip(pit, 0, 1), index=fit.runs["run_id"].astype(str).to_numpy(), name="loo_pit")


def compare(fits: Mapping[str, Fit]) -> pd.DataFrame:
    """Rank models (laws, likelihoods, priors) fitted to the same runs by PSIS-LOO.

    Warns with :class:`ComparisonWarning` when the best model's lead over the next is
    within two standard errors of the difference: the data do not separate them, and when a
    fit's draws come from a Laplace approximation (its LOO is not the posterior's).
    """
    if len(fits) < 2:
        raise BayescaleError("compare needs at least two fits")
    hashes = {n: f.idata.attrs.get("runs_hash") for n, f in fits.items()}
    if len(set(hashes.values())) != 1:
        raise BayescaleError(f"compare needs fits of the same runs; runs hashes differ: {hashes}")
    table = _arviz.compare({n: f.idata for n, f in fits.items()})
    approximate = [n for n, f in fits.items() if f.method in ("laplace", "psis")]
    if approximate:
        warnings.warn(
            f"{join_names(approximate, quoted=True)} drew from a Laplace approximation, not the posterior: their "
            "PSIS-LOO reflects the approximation's tails (p_loo inflated, often above the number of runs), so this "
            "ranking cannot be trusted. Refit every model with method='nuts' to compare them.",
            ComparisonWarning,
            stacklevel=2,
        )
    second = table.iloc[1]
    if second["elpd_diff"] < 2 * max(second["dse"], 1e-12):
        warnings.warn(
            f"{table.index[0]!r} leads {table.index[1]!r} by {second['elpd_diff']:.2f} elpd, within 2 standard "
            f"errors ({second['dse']:.2f}): the runs do not tell these models apart.",
            ComparisonWarning,
            stacklevel=2,
        )
    return table


# ------------------------------------------------------------- held-out checks


def _band(p: np.ndarray) -> list[str]:
    """Name of the narrowest central interval (of CI_PROBS) that contains each run."""
    out = []
    for pi in p:
        central = abs(2 * pi - 1)  # the smallest central interval containing the value
        name = f"outside {100 * CI_PROBS[-1]:g}%"
        for prob in CI_PROBS:
            if central <= prob:
                name = f"inside {100 * prob:g}%"
                break
        out.append(name)
    return out


#: The smallest one-sided tail probability a run's z is read from: below it ``1 - pit`` is lost to
#: double precision, so a far run's |z| stops near 8.2 rather than becoming infinite.
_SMALLEST_TAIL = 1e-16


def predictive_table(fit: Fit, runs: Any, *, seed: int = 0) -> pd.DataFrame:
    """How each run's observed loss sits in the fit's predictive distribution for it.

    Columns: ``observed``, ``median``, ``lo90``/``hi90``, ``p_value`` (two-sided,
    ``2 min(P(y_rep <= y), P(y_rep >= y))``), ``pit`` (``P(y_rep <= y)``), ``z`` (the standard normal
    quantile of ``pit``, Dunn and Smyth's quantile residual: the z a normal predictive would give for
    the same p-value, so that z and p never disagree however skewed or heavy-tailed the predictive;
    ``|z| > 1.645`` exactly when the run is outside the 90% band; capped near 8.2, where double
    precision can no longer tell ``pit`` from 1), ``band`` (narrowest central interval containing it),
    ``surprise`` (outside the 90% band), ``log_pred_density`` and ``rel_error``, the median's error relative to
    the observed loss, ``median / observed - 1`` (negative: the prediction was low, the run came in above it, z > 0).
    """
    return _predictive(fit, runs, seed)[0]


def _predictive(fit: Fit, runs: Any, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`predictive_table` and its replicated log losses (draws x runs, jointly drawn)."""
    table = runs if isinstance(runs, pd.DataFrame) and "derived" in runs else load_runs(runs)
    y = np.log(table["loss"].to_numpy(float))
    log_mu = fit.log_loss(table)
    noise = fit.noise_params()
    rep = sample_observations(fit.spec, log_mu, noise, seed).reshape(-1, len(table))
    with jax.enable_x64(True):
        d = observation_dist(
            fit.spec,
            jnp.asarray(log_mu.reshape(-1, len(table))),
            {k: jnp.asarray(v.reshape(-1, 1)) for k, v in noise.items()},
        )
        lp = np.asarray(d.log_prob(jnp.asarray(y)[None, :]))
        pit = mixture_cdf(d, y)[0]
        # the band and median of the same predictive the p-value and flag read (not the replicated
        # draws' quantiles, whose sampling error could flag a run inside its printed band)
        lo90, med, hi90 = mixture_quantiles(d, _BAND, np.quantile(rep, _BAND, axis=0))
    lpd = np.log(np.mean(np.exp(lp - lp.max(axis=0)), axis=0)) + lp.max(axis=0)
    tail = np.clip(np.minimum(pit, 1.0 - pit), _SMALLEST_TAIL, 0.5)
    out = pd.DataFrame(
        {
            "run_id": table["run_id"].astype(str).to_numpy(),
            "N": table["N"].to_numpy(float),
            "D": table["D"].to_numpy(float),
            "C": table["C"].to_numpy(float),
            "observed": np.exp(y),
            "median": np.exp(med),
            "lo90": np.exp(lo90),
            "hi90": np.exp(hi90),
            "pit": pit,
            "p_value": np.minimum(1.0, 2 * np.minimum(pit, 1 - pit)),
            "z": np.sign(pit - 0.5) * -stats.norm.ppf(tail),
            "band": _band(pit),
            "log_pred_density": lpd,
            "rel_error": np.exp(med) / np.exp(y) - 1.0,
        }
    )
    out["surprise"] = (out["pit"] < 0.05) | (out["pit"] > 0.95)
    return out, rep


#: The probabilities of the printed band and median.
_BAND = (0.05, 0.5, 0.95)


#: Fewer held-out runs than this and :class:`Validation`'s coverages are said to say little: each run moves
#: them by more than 0.2, so a 90% band can read 1.00 or 0.75 by chance.
FEW_HELD_OUT = 5


@dataclass(frozen=True)
class Validation:
    """Leave-largest-out validation: fit below a compute cut, predict above it."""

    table: pd.DataFrame  # per held-out run, see predictive_table
    coverage: Mapping[float, float]  # nominal -> empirical central-interval coverage
    mean_log_pred_density: float
    median_abs_rel_error: float
    cut: float  # compute threshold: runs with C > cut were held out
    n_train: int
    fit: Fit | None = field(default=None, repr=False)

    def summary(self) -> str:
        cov = ", ".join(f"{100 * k:g}%: {v:.2f}" for k, v in self.coverage.items())
        return (
            f"fit on {self.n_train} runs with C <= {self.cut:.3g}, held out {len(self.table)}: coverage {cov}; "
            f"mean log predictive density {self.mean_log_pred_density:.3f}; median |relative error| of the "
            f"median {100 * self.median_abs_rel_error:.2f}%; surprises {int(self.table['surprise'].sum())}"
            + (  # a coverage of 0 or 1 from a handful of runs is mostly chance
                f" (only {count(len(self.table), 'held-out run')}: the coverages say little; hold out more, or add runs)"
                if len(self.table) < FEW_HELD_OUT
                else ""
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cut": self.cut,
            "n_train": self.n_train,
            "n_test": len(self.table),
            "coverage": {str(k): v for k, v in self.coverage.items()},
            "mean_log_pred_density": self.mean_log_pred_density,
            "median_abs_rel_error": self.median_abs_rel_error,
        }


def coverage(pit: np.ndarray, probs: Sequence[float] = CI_PROBS) -> dict[float, float]:
    """Fraction of PIT values inside each central interval."""
    pit = np.asarray(pit, dtype=float)
    return {p: float(np.mean(np.abs(2 * pit - 1) <= p)) for p in probs}


def leave_largest_out(
    spec: ModelSpec | str,
    runs: Any,
    *,
    holdout_top: float = 0.2,
    seed: int = 0,
    method: str = "nuts",
    **fit_kwargs: Any,
) -> Validation:
    """Fit on the runs with the least compute and check predictions for the largest.

    Parameters
    ----------
    holdout_top : float
        Fraction of runs, by compute C, held out (0 < f < 1). At least one run is held
        out and at least three are kept.
    method, fit_kwargs
        Passed to :func:`bayescale.fit`.
    """
    if not 0 < holdout_top < 1:
        raise BayescaleError(f"holdout_top must be a fraction in (0, 1), got {holdout_top!r}")
    table = load_runs(runs)
    order = np.argsort(table["C"].to_numpy(float), kind="stable")
    n_test = max(1, int(round(holdout_top * len(table))))
    if len(table) - n_test < 3:
        raise BayescaleError(
            f"leave-largest-out needs at least 3 training runs; holding out the top {holdout_top:g} of the "
            f"{len(table)} runs ({n_test}) leaves {len(table) - n_test}: hold out a smaller fraction"
        )
    test_idx, train_idx = order[-n_test:], order[:-n_test]
    train, test = table.iloc[train_idx], table.iloc[test_idx]
    f = _fit(load_spec(spec), train.reset_index(drop=True), seed=seed, method=method, **fit_kwargs)
    pt = predictive_table(f, test.reset_index(drop=True), seed=seed)
    return Validation(
        table=pt,
        coverage=coverage(pt["pit"].to_numpy()),
        mean_log_pred_density=float(pt["log_pred_density"].mean()),
        median_abs_rel_error=float(np.median(np.abs(pt["rel_error"]))),
        cut=float(train["C"].max()),
        n_train=len(train),
        fit=f,
    )


@dataclass(frozen=True)
class NewRunCheck:
    """Per-run surprise of new runs against a fit; optionally the refit with them added."""

    table: pd.DataFrame
    updated: Fit | None = field(default=None, repr=False)
    shifts: pd.DataFrame | None = None
    #: What to keep in mind, in words with what to do (:func:`check_notes`).
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        t = self.table
        lines = []
        for _, r in t.iterrows():
            flag = "  <-- SURPRISE (outside the 90% band)" if r["surprise"] else ""
            lines.append(
                f"{r['run_id']}: observed {r['observed']:.4f}, predicted {r['median']:.4f} "
                f"(90% {r['lo90']:.4f}-{r['hi90']:.4f}), z {r['z']:+.2f}, p {r['p_value']:.3f}, {r['band']}{flag}"
            )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def refit_method(fit: Fit) -> str:
    """The method a refit with new runs uses: the fit's own, so that what moved is the runs' doing, not a
    change of method (a fit from given draws, ``"fixed"``, is refitted with NUTS, the default)."""
    return fit.method if fit.method in METHODS else "nuts"


def check(
    fit: Fit, new_runs: Any, *, update: bool = False, seed: int = 0, budget: float | None = None, **fit_kwargs: Any
) -> NewRunCheck:
    """Was each new run what the law predicted?

    Parameters
    ----------
    fit : Fit
    new_runs : DataFrame or path
        Runs that just finished (not in the fit).
    update : bool
        Refit with the new runs appended and report how the parameters and the
        compute-optimal allocation at ``budget`` moved.
    budget : float, optional
        FLOPs for the decision quantities in ``shifts`` (default 1000x the largest run).
    fit_kwargs
        Passed to :func:`bayescale.fit` for the refit (``method``, ``chains``, ``draws``, ...). The refit
        uses the fit's own method unless ``method`` is given: the shifts then show what the new runs
        moved, not a change of method.
    """
    new = _unseen(fit, load_runs(new_runs))
    table, rep = _predictive(fit, new, seed)
    notes = check_notes(fit, new, table, rep, updated=update)
    if not update:
        return NewRunCheck(table=table, notes=notes)
    if _other_units(new, table):  # a refit through runs in other units moves the law by the error alone
        return NewRunCheck(table=table, notes=notes + (NOT_REFITTED,))
    # every column of both tables: a blank U is a run without repetition and a blank trunk_id a run of its
    # own, so new runs that lack a column the fit's runs have must not erase it from them
    combined = pd.concat([fit.runs, new], ignore_index=True).drop(columns="derived")
    fit_kwargs.setdefault("method", refit_method(fit))
    if calibration(fit) is not None:  # calibrated as the fit was, whether by its spec or by the caller
        fit_kwargs.setdefault("calibrate", "conformal")
    with warnings.catch_warnings():
        # the notes say what the new runs' table holds (and a schedule the fit's runs lack); the fit's own
        # runs were warned of when it was made: the refit's warnings about the whole table said it twice
        warnings.simplefilter("ignore", RunsTableWarning)
        refit = _fit(getattr(fit, "spec_average", fit.spec), combined, seed=seed, **fit_kwargs)  # averages refit whole
    return NewRunCheck(table=table, updated=refit, shifts=_shifts(fit, refit, budget), notes=notes)


def _other_units(new: pd.DataFrame, table: pd.DataFrame) -> bool:
    """Whether the new runs look like other units than the fit's (N, D or loss)."""
    return bool(unit_notes(new) or loss_unit_notes(table))


#: Said instead of refitting new runs that look like other units (``check(update=True)``).
NOT_REFITTED = (
    "not refitted: the refit would put one law through runs whose N, D or loss look like other units, and its "
    "shifts would show the error, not what the runs teach; correct the new runs' table and check again"
)


def check_notes(
    fit: Fit, new: pd.DataFrame, table: pd.DataFrame, rep: np.ndarray, *, updated: bool = False
) -> tuple[str, ...]:
    """What a reader of :func:`check`'s table should know, each with what to do: the new runs' table as a
    fit would warn of it (units first: then nothing else is said, as nothing else means anything; repeated
    data the law does not read; copies where they will be fitted, and a schedule the fit's runs lack), new runs far beyond the fit's runs or
    at tokens per parameter they never trained (:func:`bayescale.decisions.point_notes`), more surprises
    than chance, the runs off the prediction together (both against the joint predictive draws
    ``rep``), and a refit that takes the surprising runs in."""
    spec = getattr(fit, "spec_average", fit.spec)
    said = table_notes(new, spec.columns, f"spec {spec.name!r}", fitted=updated, alone=False)
    notes = [f"the new runs' table: {n}" for n in said + loss_unit_notes(table)]
    if _other_units(new, table):
        return tuple(notes)
    if updated:
        notes += _schedules_apart(fit.runs, new)
    notes += [n.removeprefix("Caution: ") for n in point_notes(fit, new.set_index(new["run_id"].astype(str)))]
    notes += surprise_pattern(table, rep)
    flagged = table.loc[table["surprise"], "run_id"].astype(str).tolist()
    if updated and flagged:
        notes.append(
            f"the refit takes in the runs flagged as surprises ({join_names(flagged, quoted=True)}): an error, or a "
            "run of another regime (other data, a changed recipe), moves the refit's law and bands; refit without "
            "them to see how much"
        )
    return tuple(notes)


def _schedules_apart(runs: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """New runs of a learning-rate schedule the fit's runs lack, which a refit would fit with them."""
    old_kinds, new_kinds = schedules_of(runs), schedules_of(new)
    if not old_kinds or not new_kinds or new_kinds <= old_kinds:
        return []
    return [
        f"the new runs' schedule {join_names(sorted(new_kinds - old_kinds), quoted=True)} is not the fit's "
        f"({join_names(sorted(old_kinds), quoted=True)}): the refit puts one law through both, which is biased "
        "(their losses differ by more than the noise); fit each schedule's rows alone"
    ]


def _unseen(fit: Fit, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` if none of its runs is in the fit: none repeats a fitted run's inputs and loss, and none
    has a fitted run's id. Ids made from row positions (neither table named its runs) name nothing
    outside their table, so colliding ones are renumbered past the fit's instead."""
    same = [c for c in ("N", "D", "C", "U", "loss") if c in new.columns and c in fit.runs.columns]

    def key(table: pd.DataFrame) -> pd.DataFrame:  # equal to 1e-9 relative: a saved fit keeps log(loss)
        values = {c: table[c].to_numpy(float) for c in same}
        if "U" in values:  # a blank U is one epoch, U = D
            values["U"] = np.where(np.isnan(values["U"]), table["D"].to_numpy(float), values["U"])
        return pd.DataFrame({c: np.round(np.log(v), 9) for c, v in values.items()}).assign(
            run_id=table["run_id"].to_numpy()
        )

    seen = key(new).merge(key(fit.runs), on=same, suffixes=("", "_fit"))
    if len(seen):
        raise BayescaleError(
            f"new runs {join_names(seen['run_id'].astype(str).tolist(), quoted=True)} repeat runs of the fit (the same "
            f"{join_names(same)} as its {join_names(seen['run_id_fit'].astype(str).tolist(), quoted=True)}); a check "
            "needs runs the fit has not seen"
        )
    dup = sorted(set(new["run_id"].astype(str)) & set(fit.runs["run_id"].astype(str)))
    if dup and new.attrs.get("ids_generated"):
        return fill_ids(fit.runs, new.drop(columns="run_id"))
    if dup:
        raise BayescaleError(
            f"new runs {join_names(dup, quoted=True)} are already in the fit (by run_id); a check needs runs the fit "
            "has not seen: give the new runs their own ids"
        )
    return new


def _shifts(before: Fit, after: Fit, budget: float | None) -> pd.DataFrame:
    rows = []
    for v in before.spec.law.params:
        b, a = before.posterior[v].values.reshape(-1), after.posterior[v].values.reshape(-1)
        rows.append(
            {
                "quantity": v,
                "median_before": np.median(b),
                "median_after": np.median(a),
                "sd_before": b.std(),
                "sd_after": a.std(),
            }
        )
    try:
        c = float(budget) if budget is not None else 1000.0 * float(before.runs["C"].max())
        for label, fitted in (("before", before), ("after", after)):
            opt = compute_optimal(fitted, [c])
            # the law's own optimal loss: the drift, a prior the runs barely inform, would hide what they taught
            for q in ("N_opt", "law_loss_opt"):
                x = opt[q].values.reshape(-1)
                key = f"{q}@C={c:.3g}"
                row = next((r for r in rows if r["quantity"] == key), None)
                if row is None:
                    row = {"quantity": key}
                    rows.append(row)
                row[f"median_{label}"] = float(np.median(x))
                row[f"sd_{label}"] = float(x.std())
    except BayescaleError:
        pass
    out = pd.DataFrame(rows).set_index("quantity")
    out["sd_ratio"] = out["sd_after"] / out["sd_before"]
    return out


# ------------------------------------------------------------- honesty


def one_ratio(fit: Fit) -> float | None:
    """The one tokens-per-parameter ratio every run trains (to a tenth of a decade) of a law that reads N and D,
    or ``None``: such runs cannot separate the size and data terms, so the allocation comes from the priors."""
    if not {"N", "D"} <= set(fit.spec.law.inputs) or not {"N", "D"} <= set(fit.runs.columns):
        return None
    ratios = np.unique(np.round(np.log10(fit.runs["D"] / fit.runs["N"]), 1))
    return float(10 ** ratios[0]) if ratios.size == 1 else None


def design_warnings(fit: Fit, *, corr_limit: float = 0.95) -> list[str]:
    """Plain-words warnings about what the runs cannot tell apart.

    - a law with separate size and data exponents fitted to runs at one tokens-per-parameter ratio;
    - posterior correlation between two law parameters above ``corr_limit`` in absolute value.
    """
    out = []
    law = fit.spec.law
    if (ratio := one_ratio(fit)) is not None:
        out.append(
            f"all runs use one tokens-per-parameter ratio (~{ratio:.3g}); the size and data terms of "
            f"law {law.name!r} cannot be separated: add runs at other ratios."
        )
    params = list(law.params)
    if len(params) >= 2:
        X = np.stack([np.log(np.abs(fit.posterior[p].values.reshape(-1)) + 1e-300) for p in params])
        with np.errstate(invalid="ignore"):
            R = np.corrcoef(X)
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                if np.isfinite(R[i, j]) and abs(R[i, j]) > corr_limit and {params[i], params[j]} == {"alpha", "beta"}:
                    out.append(
                        f"posterior correlation of alpha and beta is {R[i, j]:+.3f}: the runs barely separate the size "
                        "and data exponents; add runs that vary N and D independently."
                    )
    return out


__all__ = [
    "ComparisonWarning",
    "LooResult",
    "NewRunCheck",
    "Validation",
    "check",
    "compare",
    "coverage",
    "design_warnings",
    "one_ratio",
    "leave_largest_out",
    "loo",
    "loo_pit",
    "posterior_predictive",
    "predictive_table",
    "prior_predictive",
]

"""Testing helpers: synthetic runs with known truth, fits from given draws, and a law conformance suite.

:func:`synthetic_runs` draws a runs table from a law with known parameters (recovery
tests, coverage studies, demos); :func:`fit_from_draws` makes a fit whose posterior is
exactly the given draws; :func:`verify_law` checks that a law, a built-in or your own,
behaves as fitting needs it to (see :data:`LAW_PROPERTIES`)::

    import bayescale as bs
    bs.testing.verify_law(my_law)          # raises LawError naming the failed property
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ._idata import build_idata, fit_attrs
from .data import law_inputs, load_runs
from .errors import BayescaleError, LawError, SpecError
from .inference import Fit
from .laws import INPUT_COLUMNS, Law, get_law
from .model import log_likelihood as _log_likelihood
from .model import noise_names
from .spec import ModelSpec, load_spec, spec_from_dict


def synthetic_runs(
    law: str | Law,
    params: Mapping[str, float],
    *,
    N: Sequence[float] = (1e7, 3e7, 1e8, 3e8, 1e9),
    tokens_per_param: Sequence[float] = (5.0, 20.0, 80.0),
    sigma: float = 0.01,
    df: float | None = None,
    columns: Mapping[str, str] | None = None,
    seed: int = 0,
    source: str | None = None,
    epochs: Sequence[float] | None = None,
    prefix: str = "syn",
) -> pd.DataFrame:
    """A runs table drawn from a law with known parameters.

    Every model size in ``N`` is trained at every tokens-per-parameter ratio, so
    ``D = ratio * N`` and ``C = 6 N D``; with ``epochs``, also at every epoch count,
    on ``U = D / epochs`` unique tokens (a column ``U``). The observed loss is the law's loss times
    ``exp(sigma * eps)``, with ``eps`` standard normal, or Student-t with ``df``
    degrees of freedom when ``df`` is given (noise on log loss, as the models assume).

    Parameters
    ----------
    law : str or Law
    params : mapping
        The true parameter values, one per law parameter.
    N, tokens_per_param : sequences of float
    sigma : float
        Noise scale on log loss.
    df : float, optional
        Student-t degrees of freedom of the noise (Normal when omitted).
    columns : mapping, optional
        Law input to runs-table column (as a spec's ``law.inputs``), e.g. ``{"S": "N"}``.
    seed : int
    source : str, optional
        Value of the ``source`` column; says by default that the runs are synthetic.
    epochs : sequence of float, optional
        Passes over the unique data (>= 1), crossed with the grid; without it there is no
        ``U`` column, and laws that read ``U`` see ``U = D``.
    prefix : str
        Start of every run id (``syn000``, ...): give each table its own to concatenate them
        (two recipes, say) into one runs table, whose ids must be unique.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, N, D, C, loss, loss_true, source`` (and ``U`` with ``epochs``).

    Examples
    --------
    >>> runs = synthetic_runs("chinchilla", {"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36})
    >>> len(runs)
    15
    """
    law = get_law(law)
    missing = [p for p in law.params if p not in params]
    if missing:
        raise BayescaleError(f"synthetic_runs: missing true values for {missing} of law {law.name!r}")
    rng = np.random.default_rng(seed)
    ep = np.asarray([1.0] if epochs is None else epochs, float)
    n_grid, r_grid, e_grid = np.meshgrid(np.asarray(N, float), np.asarray(tokens_per_param, float), ep, indexing="ij")
    n = n_grid.reshape(-1)
    d = (n_grid * r_grid).reshape(-1)
    c = 6.0 * n * d
    cols = dict(law.columns)
    cols.update(columns or {})
    values = {"N": n, "D": d, "C": c, "U": d / e_grid.reshape(-1)}
    logx = {}
    for name in law.inputs:
        col = cols[name]
        if col not in values:
            raise BayescaleError(f"synthetic_runs: law input {name!r} maps to column {col!r}; use one of N, D, C, U")
        logx[name] = np.log(values[col])
    p = {k: float(params[k]) for k in law.params}
    true = np.exp(np.asarray(law.log_loss(p, logx, np), dtype=float))
    eps = rng.standard_t(df, size=n.size) if df is not None else rng.standard_normal(n.size)
    loss = np.asarray(true, dtype=float) * np.exp(sigma * eps)
    width = max(3, len(str(n.size - 1)))
    out = pd.DataFrame(
        {
            "run_id": [f"{prefix}{i:0{width}d}" for i in range(n.size)],
            "N": n,
            "D": d,
            "C": c,
            "loss": loss,
            "loss_true": np.asarray(true, dtype=float),
            "source": source or f"synthetic: {law.name} law, sigma={sigma:g}, seed={seed}",
        }
    )
    if epochs is not None:
        out.insert(4, "U", values["U"])
    return out


def fit_from_draws(spec: Any, runs: Any, draws: Mapping[str, Any], *, seed: int = 0) -> Any:
    """A :class:`~bayescale.Fit` whose posterior is exactly the given draws.

    For testing decisions, checks and reports against hand-computed answers without
    sampling. ``draws`` maps every law parameter and ``sigma`` (and ``df`` when the spec
    gives it a prior, ``excess`` for ExGaussian, optionally ``drift``) to arrays shaped
    ``(chain, draw)`` (1-D arrays become one chain).
    """
    spec = load_spec(spec)
    table = load_runs(runs)
    names = list(spec.law.params) + noise_names(spec)
    missing = [n for n in names if n not in draws]
    if missing:
        raise BayescaleError(f"fit_from_draws: missing draws for {missing}")
    if "drift" in draws:
        names.append("drift")
    post = {}
    for n in names:
        a = np.asarray(draws[n], dtype=float)
        post[n] = a[None, :] if a.ndim == 1 else a
    shape = {v.shape for v in post.values()}
    if len(shape) != 1 or len(next(iter(shape))) != 2:
        raise BayescaleError(f"fit_from_draws: draws must share one (chain, draw) shape, got {sorted(shape)}")
    logx = law_inputs(spec, table, np.float64)
    y = np.log(table["loss"].to_numpy(float))
    with jax.enable_x64(True):
        ll = _log_likelihood(spec, post, logx, y)
    attrs = fit_attrs(
        spec, table, method="fixed", seed=seed, seconds=float("nan"), identified=[]
    )  # nothing was sampled
    idata = build_idata(spec, table, post, None, ll, y, attrs)
    return Fit(spec=spec, idata=idata, runs=table, method="fixed", seed=seed)


# ------------------------------------------------------- law conformance

#: Model sizes and token counts the conformance checks evaluate laws at (pilot runs to frontier runs).
N_GRID = np.geomspace(1e7, 1e11, 9)
D_GRID = np.geomspace(1e8, 1e13, 11)

#: The properties :func:`verify_law` checks, in the order it checks them.
LAW_PROPERTIES = (
    "declaration",
    "broadcasting",
    "finite_positive",
    "monotone",
    "float32",
    "natural_call",
    "gradients",
    "round_trip",
)

MonotoneWhen = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class _Failed(Exception):
    """One conformance property does not hold; the message says where."""


def verify_law(
    law: str | Law,
    *,
    properties: Sequence[str] = LAW_PROPERTIES,
    monotone_when: MonotoneWhen | None = None,
    draws: int = 200,
    seed: int = 0,
) -> None:
    """Check that a law behaves as fitting, prediction and the PyMC backend need.

    The properties (:data:`LAW_PROPERTIES`):

    ``declaration``
        Its inputs read runs-table columns N, D, C or U (unique tokens; ``U = D`` here) and every ``positive`` parameter's
        default prior has positive support.
    ``broadcasting``
        Parameters shaped ``(chain, draw, 1)`` and inputs shaped ``(point,)`` give
        ``(chain, draw, point)``, equal element by element to scalar calls, with
        ``xp = numpy`` and ``xp = jax.numpy`` alike.
    ``finite_positive``
        Finite, positive loss at draws from the default priors over a grid of N and D.
    ``monotone``
        Loss non-increasing in N and in D (with ``C = 6 N D``) for every prior draw
        where the law says it falls: where each declared power term's
        ``sign * exponent`` is <= 0, or where ``monotone_when(draws)`` is True.
    ``float32``
        Loss in float32 within 1e-5 (relative) of float64 at the prior medians.
    ``natural_call``
        ``law(params, N=..., D=...)`` is ``exp(log_loss)``, shaped like the inputs.
    ``gradients``
        Finite gradients of log loss in every parameter at the prior medians (NUTS needs them).
    ``round_trip``
        For a registered law: a spec of its default priors survives ``to_dict`` and back.

    Parameters
    ----------
    law : str or Law
    properties : sequence of str
        The properties to check (default: all).
    monotone_when : callable, optional
        ``monotone_when(draws) -> bool array``: the prior draws (arrays by parameter)
        for which the loss must fall with N and D, when the law's ``power_terms`` do not
        say it (e.g. the multiplicative law: ``(b + d < 0) & (c + d < 0)``).
    draws : int
        Prior draws per check.
    seed : int

    Raises
    ------
    LawError
        Naming the law and the first property that fails, with where it fails.

    Examples
    --------
    >>> verify_law("chinchilla")
    """
    law = get_law(law)
    unknown = [p for p in properties if p not in LAW_PROPERTIES]
    if unknown:
        raise LawError(f"verify_law: unknown properties {unknown}; known: {list(LAW_PROPERTIES)}")
    opts = {"monotone_when": monotone_when, "draws": int(draws), "seed": int(seed)}
    for prop in properties:
        try:
            with np.errstate(all="ignore"):  # NaN, overflow: the checks report them with context
                _CHECKS[prop](law, **opts)
        except _Failed as e:
            raise LawError(f"law {law.name!r} fails the {prop!r} check: {e}") from None
        except Exception as e:  # the law's own code raised: that is the failure to report
            raise LawError(f"law {law.name!r} fails the {prop!r} check: {type(e).__name__}: {e}") from e


def _log_inputs(law: Law, N: Any, D: Any, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """The law's log inputs at model size ``N`` and tokens ``D`` (``C = 6 N D``, one epoch: ``U = D``)."""
    N, D = np.broadcast_arrays(np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64))
    return {name: v.astype(dtype) for name, v in law.log_inputs({"N": N, "D": D}).items()}


def _log_loss_np(law: Law, params: Mapping[str, Any], N: Any, D: Any) -> np.ndarray:
    """log L with NumPy in float64."""
    return np.asarray(law.log_loss(params, _log_inputs(law, N, D), np), dtype=np.float64)


def _log_loss_jax(law: Law, params: Mapping[str, Any], N: Any, D: Any, dtype: Any = jnp.float64) -> np.ndarray:
    p = {k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}
    x = {k: jnp.asarray(v, dtype=dtype) for k, v in _log_inputs(law, N, D, dtype).items()}
    out = law.log_loss(p, x, jnp)
    if out.dtype != dtype:
        raise _Failed(f"log_loss in {jnp.dtype(dtype).name} returned {out.dtype}")
    return np.asarray(out, dtype=np.float64)


def _prior_draws(law: Law, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` draws of each parameter from the law's default priors, in float64."""
    key = jax.random.PRNGKey(seed)
    out = {}
    with jax.enable_x64(True):
        for name in law.params:
            key, sub = jax.random.split(key)
            out[name] = np.asarray(law.priors[name].to_numpyro().sample(sub, (n,)), dtype=np.float64)
    return out


def _prior_medians(law: Law) -> dict[str, float]:
    out = {}
    for name, prior in law.priors.items():
        d = prior.to_numpyro()
        try:
            out[name] = float(d.icdf(jnp.asarray(0.5)))
        except (NotImplementedError, AttributeError, ImportError):  # Gamma.icdf needs tensorflow_probability
            out[name] = float(np.median(np.asarray(d.sample(jax.random.PRNGKey(0), (20001,)))))
    return out


def _at(params: Mapping[str, np.ndarray], index: Any) -> dict[str, float]:
    return {k: float(np.asarray(v)[index]) for k, v in params.items()}


def _validate_declaration(law: Law, **_: Any) -> None:
    bad = {i: c for i, c in law.columns.items() if c not in INPUT_COLUMNS}
    if bad:
        raise _Failed(f"inputs {bad} read columns outside {list(INPUT_COLUMNS)}")
    for p in law.positive:
        if not law.priors[p].is_positive():
            raise _Failed(f"{p!r} is declared positive but its default prior {law.priors[p]} allows values <= 0")


def _validate_broadcasting(law: Law, *, seed: int, **_: Any) -> None:
    params = {k: v.reshape(2, 3, 1) for k, v in _prior_draws(law, 6, seed + 1).items()}
    N = np.array([1e7, 1e8, 1e9, 1e10, 1e11])
    D = np.array([2e8, 2e9, 2e10, 2e11, 2e12])
    out = _log_loss_np(law, params, N, D)
    if out.shape != (2, 3, 5):
        raise _Failed(
            f"parameters shaped (chain, draw, 1) = (2, 3, 1) and 5 points gave shape {out.shape}, not (2, 3, 5)"
        )
    for c, d, i in np.ndindex(2, 3, 5):
        one = float(_log_loss_np(law, _at(params, (c, d, 0)), N[i], D[i]))
        if not np.isclose(out[c, d, i], one, rtol=1e-12, atol=1e-12, equal_nan=True):
            raise _Failed(
                f"element (chain {c}, draw {d}, point {i}) is {out[c, d, i]!r} but the scalar call gives {one!r}"
            )
    with jax.enable_x64(True):
        out_j = _log_loss_jax(law, params, N, D)
    if out_j.shape != out.shape or not np.allclose(out_j, out, rtol=1e-12, atol=1e-12, equal_nan=True):
        raise _Failed(f"xp=jax.numpy gives shape {out_j.shape} or values that differ from xp=numpy's")


def _validate_finite_positive(law: Law, *, draws: int, seed: int, **_: Any) -> None:
    prior = _prior_draws(law, draws, seed + 2)
    params = {k: v[:, None, None] for k, v in prior.items()}
    logl = np.broadcast_to(
        _log_loss_np(law, params, N_GRID[None, :, None], D_GRID[None, None, :]), (draws, N_GRID.size, D_GRID.size)
    )
    loss = np.exp(logl)
    bad = ~(np.isfinite(logl) & np.isfinite(loss) & (loss > 0))
    if bad.any():
        k, i, j = np.argwhere(bad)[0]
        raise _Failed(
            f"{int(bad.sum())} of {bad.size} losses at prior draws are not finite and > 0; e.g. log loss {float(logl[k, i, j])!r} "
            f"at N={N_GRID[i]:.3g}, D={D_GRID[j]:.3g} with {_at(prior, k)}"
        )


def _declared_monotone(law: Law, prior: Mapping[str, np.ndarray]) -> np.ndarray:
    """Draws where every declared power term ``sign * exponent * log(input)`` falls with its input."""
    keep = np.ones(next(iter(prior.values())).shape, dtype=bool)
    for entries in law.power_terms.values():
        for exponent, _, sign in entries:
            keep &= sign * prior[exponent] <= 0
    return keep


def _validate_monotone(law: Law, *, monotone_when: MonotoneWhen | None, draws: int, seed: int, **_: Any) -> None:
    prior = _prior_draws(law, draws, seed + 3)
    keep = np.asarray(monotone_when(prior) if monotone_when else _declared_monotone(law, prior), dtype=bool)
    if keep.sum() < max(1, draws // 4):
        raise _Failed(
            f"only {int(keep.sum())} of {draws} prior draws satisfy the condition under which the loss must fall"
        )
    params = {k: v[keep][:, None, None] for k, v in prior.items()}
    logl = _log_loss_np(law, params, N_GRID[None, :, None], D_GRID[None, None, :])
    vals = np.exp(np.broadcast_to(logl, (int(keep.sum()), N_GRID.size, D_GRID.size)))
    for axis, name in ((1, "N"), (2, "D")):
        rise = np.diff(vals, axis=axis)
        tol = 1e-12 * np.abs(vals).max()
        if rise.max() > tol:
            k, i, j = np.unravel_index(int(np.argmax(rise)), rise.shape)
            where = f"N={N_GRID[i]:.3g}, D={D_GRID[j]:.3g}"
            raise _Failed(
                f"loss rises by {float(rise.max()):.3g} with {name} at {where} for prior draw {_at(params, (k, 0, 0))}"
            )


def _validate_float32(law: Law, **_: Any) -> None:
    med = _prior_medians(law)
    N, D = np.meshgrid(N_GRID, D_GRID, indexing="ij")
    with jax.enable_x64(False):
        loss32 = np.exp(_log_loss_jax(law, med, N, D, jnp.float32))
        nat32 = law(med, N=N, D=D)
    with jax.enable_x64(True):
        loss64 = np.exp(_log_loss_jax(law, med, N, D))
    for what, got in (("log_loss", loss32), ("the natural call", nat32)):
        err = np.abs(np.asarray(got, dtype=np.float64) - loss64) / np.abs(loss64)
        if not np.all(err <= 1e-5):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))), err.shape)
            raise _Failed(
                f"{what} in float32 gives loss {float(got[worst])!r}, float64 {float(loss64[worst])!r} "
                f"at N={N[worst]:.3g}, D={D[worst]:.3g} (prior medians; allowed relative error 1e-5)"
            )


def _validate_natural_call(law: Law, *, seed: int, **_: Any) -> None:
    prior = _prior_draws(law, 20, seed + 4)
    N, D = np.meshgrid(N_GRID, D_GRID, indexing="ij")
    for k in range(0, 20, 5):
        p = _at(prior, k)
        with jax.enable_x64(True):
            nat = law(p, N=N, D=D)
        if not isinstance(nat, np.ndarray) or nat.shape != N.shape:
            raise _Failed(
                f"law(params, N=..., D=...) gave {type(nat).__name__} of shape {np.shape(nat)}, not {N.shape}"
            )
        if not np.allclose(nat, np.exp(_log_loss_np(law, p, N, D)), rtol=1e-12, atol=0.0):
            raise _Failed(f"law(params, N=..., D=...) is not exp(log_loss) at prior draw {p}")


def _validate_gradients(law: Law, **_: Any) -> None:
    med = _prior_medians(law)
    with jax.enable_x64(True):
        x = {k: jnp.asarray(v) for k, v in _log_inputs(law, N_GRID, N_GRID * 20).items()}
        grad = jax.grad(lambda p: jnp.sum(law.log_loss(p, x, jnp)))(
            {k: jnp.asarray(v, dtype=jnp.float64) for k, v in med.items()}
        )
    bad = sorted(k for k in law.params if not np.isfinite(float(grad[k])))
    if bad:
        raise _Failed(f"gradient of log loss in {bad} is not finite at the prior medians {med}")


def _validate_round_trip(law: Law, **_: Any) -> None:
    try:
        registered = get_law(law.name) is law
    except LawError:
        registered = False
    if not registered:
        return  # a spec names a law by its registry name: nothing to round-trip until it is registered
    try:
        spec = ModelSpec.from_law(law)
        back = spec_from_dict(spec.to_dict())
    except SpecError as e:
        raise _Failed(f"a spec of its default priors does not load back: {e}") from None
    if back.law is not law or back.id != spec.id or dict(back.priors) != dict(spec.priors):
        raise _Failed("a spec of its default priors changes when written with to_dict and read back")


_CHECKS: dict[str, Callable[..., None]] = {
    "declaration": _validate_declaration,
    "broadcasting": _validate_broadcasting,
    "finite_positive": _validate_finite_positive,
    "monotone": _validate_monotone,
    "float32": _validate_float32,
    "natural_call": _validate_natural_call,
    "gradients": _validate_gradients,
    "round_trip": _validate_round_trip,
}


__all__ = ["LAW_PROPERTIES", "verify_law", "fit_from_draws", "synthetic_runs"]

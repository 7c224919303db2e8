"""Synthetic runs with known truth, for parameter-recovery tests, coverage studies and demos."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import BayescaleError
from .laws import Law, get_law


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
) -> pd.DataFrame:
    """A runs table drawn from a law with known parameters.

    Every model size in ``N`` is trained at every tokens-per-parameter ratio, so
    ``D = ratio * N`` and ``C = 6 N D``. The observed loss is the law's loss times
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

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, N, D, C, loss, loss_true, source``.

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
    n_grid, r_grid = np.meshgrid(np.asarray(N, float), np.asarray(tokens_per_param, float), indexing="ij")
    n = n_grid.reshape(-1)
    d = (n_grid * r_grid).reshape(-1)
    c = 6.0 * n * d
    cols = dict(law.columns)
    cols.update(columns or {})
    values = {"N": n, "D": d, "C": c}
    logx = {}
    for name in law.inputs:
        col = cols[name]
        if col not in values:
            raise BayescaleError(f"synthetic_runs: law input {name!r} maps to column {col!r}; use one of N, D, C")
        logx[name] = np.log(values[col])
    p = {k: float(params[k]) for k in law.params}
    true = np.exp(np.asarray(law.log_loss(p, logx, np), dtype=float))
    eps = rng.standard_t(df, size=n.size) if df is not None else rng.standard_normal(n.size)
    loss = np.asarray(true, dtype=float) * np.exp(sigma * eps)
    width = max(3, len(str(n.size - 1)))
    return pd.DataFrame(
        {
            "run_id": [f"syn{i:0{width}d}" for i in range(n.size)],
            "N": n,
            "D": d,
            "C": c,
            "loss": loss,
            "loss_true": np.asarray(true, dtype=float),
            "source": source or f"synthetic: {law.name} law, sigma={sigma:g}, seed={seed}",
        }
    )





def fit_from_draws(spec: Any, runs: Any, draws: Mapping[str, Any], *, seed: int = 0) -> Any:
    """A :class:`~bayescale.Fit` whose posterior is exactly the given draws.

    For testing decisions, checks and reports against hand-computed answers without
    sampling. ``draws`` maps every law parameter and ``sigma`` (and ``df`` when the spec
    gives it a prior, ``excess`` for ExGaussian, optionally ``drift``) to arrays shaped
    ``(chain, draw)`` (1-D arrays become one chain).
    """
    import jax

    from .data import load_runs
    from .data import law_inputs
    from .inference import Fit, build_idata, fit_attrs
    from .model import log_likelihood as _log_likelihood, noise_names
    from .spec import load_spec

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
    attrs = fit_attrs(spec, table, method="fixed", seed=seed, seconds=float("nan"), identified=[])  # nothing was sampled
    idata = build_idata(spec, table, post, None, ll, y, attrs)
    return Fit(spec=spec, idata=idata, runs=table, method="fixed", seed=seed)


__all__ = ["fit_from_draws", "synthetic_runs"]

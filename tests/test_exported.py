"""Traced functions kept on disk between processes (issue 20): same draws, never a stale function.

The default tier writes and reads the stored functions in the test process, each fit with a new
:class:`~bayescale.model.Posterior` (so nothing traced is held in memory between them). The slow tier
(``make test-all``) runs the fits in fresh Python processes, since what a user relies on is what a second
process reads from the folder the first one wrote (three interpreters: they took 80 s when the default tier
ran them); only it checks that another interpreter, on another device count, finds the stored files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import _exported, model
from bayescale.laws import is_bundled, register_law
from bayescale.model import Posterior
from bayescale.spec import ModelSpec

FIT = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import bayescale as bs
    from bayescale.spec import spec_from_dict
    bs.set_host_device_count(2)
    cache, out, loc, which = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    if cache != "none":
        bs.enable_compilation_cache(cache)
    spec = bs.load_spec("chinchilla").with_sampler(chains=2, warmup=150, draws=150)
    d = spec.to_dict()
    spec = spec_from_dict({**d, "priors": {**d["priors"], "alpha": {"dist": "LogNormal", "loc": loc, "scale": 0.5}}})
    ratios = (5, 10, 20, 80) if which == "recommended" else (5, 20, 80)  # a law average needs 16 runs
    runs = bs.testing.synthetic_runs("chinchilla", {"E": 1.8, "A": 400.0, "B": 410.0, "alpha": 0.34,
        "beta": 0.28}, sigma=0.01, seed=0, N=np.geomspace(1e7, 1e9, 4), tokens_per_param=ratios)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if which == "recommended":  # a law average: vectorised splits, PSIS
            fit = bs.fit("recommended", runs, seed=3, method="psis", draws=100)
            draws = fit.predict(runs.head(3)[["N", "D"]] * 10, seed=0).values
        else:
            fit = bs.fit(spec, runs, seed=3)
            draws = fit.idata.posterior["alpha"].values
    json.dump(np.asarray(draws).tolist(), open(out, "w"))
    """
)


def _alpha_draws(
    tmp_path: Path, cache: Path | str, name: str, loc: float = -1.2, which: str = "chinchilla"
) -> np.ndarray:
    out = tmp_path / f"{name}.json"
    subprocess.run([sys.executable, "-c", FIT, str(cache), str(out), str(loc), which], check=True, timeout=600)
    return np.asarray(json.loads(out.read_text()))


def _stored_files(cache: Path) -> list[Path]:
    return sorted((cache / "bayescale-exported").rglob("*.jaxexport"))


@pytest.fixture(scope="module")
def plain_draws(tmp_path_factory) -> np.ndarray:
    return _alpha_draws(tmp_path_factory.mktemp("plain"), "none", "plain")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A cache folder one process has fitted with (storing its traced functions), and its draws."""
    tmp = tmp_path_factory.mktemp("written")
    return tmp / "jax", _alpha_draws(tmp, tmp / "jax", "writing")


def _alpha_draws_here(folder: Path | None, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The fit of ``FIT`` in this process, with a new Posterior, storing in (and reading from) ``folder``."""
    monkeypatch.setattr(_exported, "_FOLDER", [folder])
    monkeypatch.setattr(model, "_POSTERIORS", {})  # a new Posterior: no traced function held in memory
    spec = bs.load_spec("chinchilla").with_sampler(chains=2, warmup=150, draws=150)
    truth = {"E": 1.8, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}
    runs = bs.testing.synthetic_runs("chinchilla", truth, sigma=0.01, seed=0, N=np.geomspace(1e7, 1e9, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 150 draws of 2 chains: what is compared is the draws, not their health
        return bs.fit(spec, runs, seed=3).idata.posterior["alpha"].values


def test_stored_functions_give_the_same_draws_as_traced_ones(tmp_path, monkeypatch) -> None:
    traced = _alpha_draws_here(None, monkeypatch)
    writing = _alpha_draws_here(tmp_path, monkeypatch)
    stored = sorted(tmp_path.rglob("*.jaxexport"))
    assert stored, "the fit stored no traced function"
    export, deserialize = jax.export.export, jax.export.deserialize
    exported, read = [], []
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: exported.append(a) or export(*a, **k))
    monkeypatch.setattr(jax.export, "deserialize", lambda *a, **k: read.append(a) or deserialize(*a, **k))
    reading = _alpha_draws_here(tmp_path, monkeypatch)
    assert read and not exported and sorted(tmp_path.rglob("*.jaxexport")) == stored, "read back, not traced again"
    np.testing.assert_array_equal(writing, traced)
    np.testing.assert_array_equal(reading, traced)


@pytest.mark.slow  # three fits in fresh processes (80 s); the default tier stores and reads in one process
def test_stored_functions_give_the_same_draws(tmp_path, plain_draws, written) -> None:
    cache, writing = written
    assert _stored_files(cache), "the first process stored no traced function"
    np.testing.assert_array_equal(writing, plain_draws)
    np.testing.assert_array_equal(_alpha_draws(tmp_path, cache, "reading"), plain_draws)


@pytest.mark.slow  # two more fits in fresh processes: `make test-all`
def test_another_prior_is_traced_anew_not_read(tmp_path, plain_draws, written) -> None:
    cache, _ = written
    before = set(_stored_files(cache))
    other = _alpha_draws(tmp_path, cache, "other", loc=-0.5)
    assert set(_stored_files(cache)) > before, "a spec with another prior must store its own functions"
    assert not np.array_equal(other, plain_draws)


@pytest.mark.slow  # a 21 s subprocess fit; the default tier stores and reads in one process
def test_an_unreadable_stored_function_is_traced_again(tmp_path, plain_draws, written) -> None:
    cache, _ = written
    torn = tmp_path / "torn"
    shutil.copytree(cache, torn)
    for path in _stored_files(torn):
        path.write_bytes(b"torn")
    np.testing.assert_array_equal(_alpha_draws(tmp_path, torn, "again"), plain_draws)


def test_a_users_law_is_never_stored() -> None:
    """A law defined outside bayescale may change between processes under one name."""
    from bayescale.laws import _REGISTRY, chinchilla

    law = register_law(
        replace(chinchilla, name="test_exported_users_law", log_loss=lambda p, x, xp: chinchilla.log_loss(p, x, xp))
    )
    try:
        assert not is_bundled(law)
        assert Posterior(ModelSpec.from_law(law.name)).stored_key is None
        assert Posterior(ModelSpec.from_law("chinchilla")).stored_key is not None
    finally:
        _REGISTRY.pop(law.name, None)


def test_nothing_is_stored_without_the_cache(monkeypatch) -> None:
    monkeypatch.setattr(_exported, "_FOLDER", [None])
    stored = _exported.Stored(lambda x: x + 1, "plus_one", ("key",))
    assert float(stored(np.float64(1.0))) == 2.0
    assert not stored.calls


@pytest.mark.slow
def test_a_law_average_gives_the_same_draws_from_stored_functions(tmp_path) -> None:
    """The splits' vectorised Newton (a Hessian mapped over units) and PSIS, stored and read back
    (that stored functions equal traced ones is the single-law test's; this one is about the average's
    own compiled functions, one of which runs inside another's trace)."""
    cache = tmp_path / "jax"
    writing = _alpha_draws(tmp_path, cache, "writing", which="recommended")
    names = len(_stored_files(cache))
    reading = _alpha_draws(tmp_path, cache, "reading", which="recommended")
    assert names and len(_stored_files(cache)) == names, "the second process stored nothing new"
    np.testing.assert_array_equal(reading, writing)


def test_a_stored_function_inside_another_trace_is_part_of_that_trace(tmp_path, monkeypatch) -> None:
    """The splits' Newton maps a stored Hessian over units: under ``vmap`` (or ``jit``) it must be traced
    with the caller, not called as an exported function of one unit's shapes."""
    monkeypatch.setattr(_exported, "_FOLDER", [tmp_path])
    square = _exported.Stored(lambda x: x**2, "square", ("test",))
    xs = np.arange(4.0)
    np.testing.assert_array_equal(jax.vmap(square)(xs), xs**2)
    np.testing.assert_array_equal(jax.jit(lambda v: square(v) + 1)(xs), xs**2 + 1)
    assert float(square(np.float64(3.0))) == 9.0 and list(tmp_path.rglob("*.jaxexport")), "a direct call is stored"

"""Data-scaled priors (``[priors] scale = "runs"``): declared, validated, placed units-free, recorded, and
they let a fit reach an exponent of 1.5 that the bundled priors pull away from."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import bayescale as bs
from bayescale.errors import SpecError, StaleFitError
from bayescale.scaled_priors import place_priors

# Losses 0.43-0.72 (the scale of the sweep in issue 15) and a model-size exponent of 1.5.
TRUTH = {"E": 0.4, "A": 6.3e9, "B": 30.0, "alpha": 1.5, "beta": 0.3}


@pytest.fixture(scope="module")
def runs():
    return bs.testing.synthetic_runs(
        "chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(10.0, 40.0), sigma=0.01, seed=0
    )


def _spec_dict(**priors):
    return {"name": "scaled", "law": "chinchilla", "priors": {"scale": "runs", **priors}}


def test_declared_spec_leaves_priors_to_the_runs():
    spec = bs.load_spec(_spec_dict(alpha={"dist": "LogNormal", "loc": -1.0, "scale": 0.5}))
    assert spec.prior_scale == "runs" and not spec.placed
    assert spec.from_runs == ("E", "A", "B", "beta")  # the written alpha prior wins
    assert spec.to_dict()["priors"] == {"scale": "runs", "alpha": {"dist": "LogNormal", "loc": -1.0, "scale": 0.5}}
    assert bs.load_spec(spec.to_dict()) == spec
    assert 'scale = "runs"' in spec.to_toml()


@pytest.mark.parametrize(
    "d, match",
    [
        (_spec_dict() | {"priors": {"scale": "data"}}, r"priors.scale: 'data' is not one of \['fixed', 'runs'\]"),
        ({"law": "kaplan", "priors": {"scale": "runs"}}, r"law 'kaplan' declares neither"),
        (
            {"law": "chinchilla", "priors": {**bs.load_spec("chinchilla").to_dict()["priors"], "from_runs": ["E"]}},
            r"priors.from_runs: only a spec with scale",
        ),
        (_spec_dict() | {"priors": {"scale": "runs", "from_runs": "E"}}, r"priors.from_runs: must be a list"),
    ],
)
def test_bad_declarations_name_the_item(d, match):
    with pytest.raises(SpecError, match=match):
        bs.load_spec(d)


def test_placement_is_units_free_and_puts_E_below_the_smallest_loss(runs):
    spec = bs.load_spec(_spec_dict())
    nats = place_priors(spec, runs)
    bits_runs = runs.assign(loss=runs["loss"] / math.log(2))
    bits = place_priors(spec, bits_runs)
    assert nats.placed and nats.from_runs == ("E", "A", "B", "alpha", "beta")
    e_median = math.exp(nats.priors["E"].params["loc"])
    assert e_median < runs["loss"].min()
    shift = math.log(1 / math.log(2))
    for p in ("E", "A", "B"):
        assert bits.priors[p].params["loc"] - nats.priors[p].params["loc"] == pytest.approx(shift, abs=2e-3)
        assert bits.priors[p].params["scale"] == nats.priors[p].params["scale"]
    for p in ("alpha", "beta"):
        assert bits.priors[p] == nats.priors[p]
        # wide enough: 1.5 lies inside the prior's central 95%
        assert math.exp(nats.priors[p].params["loc"] + 1.96 * nats.priors[p].params["scale"]) > 1.5
    # placing is idempotent, and a fixed spec is left alone
    assert place_priors(nats, bits_runs) is nats
    assert place_priors(bs.load_spec("chinchilla"), runs) == bs.load_spec("chinchilla")


@pytest.fixture(scope="module")
def fits(runs):
    spec = bs.load_spec(_spec_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nats = bs.fit(spec, runs, method="laplace", seed=0)
        bits = bs.fit(spec, runs.assign(loss=runs["loss"] / math.log(2)), method="laplace", seed=0)
    return nats, bits


def test_same_fit_in_nats_and_bits(fits):
    nats, bits = fits
    m_nats, m_bits = (f.summary()["median"] for f in fits)
    for p in ("E", "A", "B"):
        assert m_bits[p] == pytest.approx(m_nats[p] / math.log(2), rel=0.02)
    for p in ("alpha", "beta", "sigma"):
        assert m_bits[p] == pytest.approx(m_nats[p], rel=0.02)


def test_scaled_priors_recover_an_exponent_of_one_and_a_half(fits, runs):
    nats, _ = fits
    alpha = nats.summary()["median"]["alpha"]
    assert alpha == pytest.approx(1.5, abs=0.1)
    # the bundled priors (alpha's median 0.30) pull the same fit well below it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = bs.fit("chinchilla", runs, method="laplace", seed=0)
    assert fixed.summary()["median"]["alpha"] < alpha - 0.15


def test_the_fit_records_the_priors_it_used_and_loads(fits, tmp_path):
    nats, _ = fits
    spec = nats.spec
    assert spec.placed and spec.to_dict()["priors"]["from_runs"] == ["E", "A", "B", "alpha", "beta"]
    assert all(p in spec.to_dict()["priors"] for p in spec.law.params)
    toml = tmp_path / "scaled.toml"
    toml.write_text('law = "chinchilla"\n\n[priors]\nscale = "runs"\n')
    path = nats.save(tmp_path / "fit.nc")
    loaded = bs.Fit.load(path, spec=toml)
    assert loaded.spec == spec and loaded.spec.priors == spec.priors
    assert np.allclose(loaded.posterior["alpha"].values, nats.posterior["alpha"].values)
    toml.write_text(
        'law = "chinchilla"\n\n[priors]\nscale = "runs"\nalpha = {dist = "LogNormal", loc = 0.0, scale = 1.0}\n'
    )
    with pytest.raises(StaleFitError):
        bs.Fit.load(path, spec=toml)

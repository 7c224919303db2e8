"""The sampler benchmark's own logic (benchmarks/bench_samplers.py): agreement with the reference
posterior, pooling, skipping a missing package, summaries and where its subsection goes. No sampler runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_samplers as bsamp  # noqa: E402


def _draws(seed: int, shift: float = 0.0, scale: float = 1.0, chains: int = 4, n: int = 4000) -> dict:
    rng = np.random.default_rng(seed)
    centre = {"E": 1.8, "A": 480.0, "B": 1950.0, "alpha": 0.35, "beta": 0.36, "sigma": 0.0045}
    sd = {"E": 0.015, "A": 75.0, "B": 420.0, "alpha": 0.009, "beta": 0.01, "sigma": 0.0003}
    return {p: centre[p] + (shift + scale * rng.standard_normal((chains, n // chains))) * sd[p] for p in bsamp.PARAMS}


def test_identical_draws_agree_exactly():
    d = _draws(0)
    a = bsamp.agreement(d, d)
    assert a["max_shift"] == 0.0
    assert all(r == pytest.approx(1.0) for r in a["sd_ratio"].values())
    assert a["agrees"]


def test_independent_draws_of_the_same_posterior_agree():
    a = bsamp.agreement(_draws(0), _draws(1))
    assert a["max_shift"] < 0.1
    assert 0.9 < a["worst_sd_ratio"] < 1.1
    assert a["agrees"]


def test_a_shifted_posterior_is_flagged_with_its_parameter():
    ref, other = _draws(0), _draws(1)
    other["beta"] = other["beta"] + 0.3 * ref["beta"].std()  # 0.3 sd off in one parameter
    a = bsamp.agreement(ref, other)
    assert a["max_shift_param"] == "beta"
    assert a["max_shift"] == pytest.approx(0.3, abs=0.06)
    assert not a["agrees"]


def test_a_too_narrow_posterior_is_flagged():
    a = bsamp.agreement(_draws(0), _draws(1, scale=0.8))
    assert a["worst_sd_ratio"] == pytest.approx(0.8, abs=0.03)
    assert not a["agrees"]


def test_pooled_stacks_chains_of_all_fits():
    fits = [{"draws": _draws(0)}, {"draws": _draws(1)}]
    p = bsamp.pooled(fits)
    assert p["E"].shape == (8, 1000)
    np.testing.assert_array_equal(p["E"][4:], fits[1]["draws"]["E"])


def test_missing_package_skips_not_crashes(monkeypatch):
    real = bsamp.importlib.util.find_spec
    monkeypatch.setattr(bsamp.importlib.util, "find_spec", lambda m: None if m == "nutpie" else real(m))
    assert bsamp.missing_packages("nutpie_lowrank") == ["nutpie"]
    assert bsamp.missing_packages("numpyro") == []


def test_summary_uses_warm_fits_for_speed_and_all_fits_for_quality():
    fits = [
        {
            "wall": 10.0,
            "cpu": 9.0,
            "compile": 5.0,
            "load": 1.0,
            "min_ess_bulk": 1000,
            "min_ess_tail": 900,
            "max_r_hat": 1.01,
        },
        {
            "wall": 2.0,
            "cpu": 2.0,
            "compile": 0.0,
            "load": 3.0,
            "min_ess_bulk": 1200,
            "min_ess_tail": 800,
            "max_r_hat": 1.00,
        },
        {
            "wall": 4.0,
            "cpu": 4.0,
            "compile": 0.0,
            "load": 2.0,
            "min_ess_bulk": 800,
            "min_ess_tail": 1000,
            "max_r_hat": 1.002,
        },
    ]
    s = bsamp.summarise(fits)
    assert s["cold_wall"] == 10.0
    assert s["warm_wall"] == 3.0
    assert s["ess_per_s"] == pytest.approx(np.median([600, 200]))
    assert s["min_ess_bulk"] == 1000
    assert s["max_r_hat"] == 1.01
    assert s["load"] == 3.0


def test_subsection_goes_at_the_end_of_the_fit_speed_section_and_is_replaced(tmp_path):
    out = tmp_path / "B.md"
    out.write_text(f"# Benchmarks\n\n{bsamp.SECTION}\n\nold text kept\n\n## Extrapolation calibration\n\nmore\n")
    bsamp.write_subsection(out, f"### {bsamp.LABEL}\n\nfirst\n")
    text = out.read_text()
    assert text.index("old text kept") < text.index("first") < text.index("## Extrapolation calibration")
    bsamp.write_subsection(out, f"### {bsamp.LABEL}\n\nsecond\n")
    text = out.read_text()
    assert "first" not in text and text.count(bsamp.MARKERS[0]) == 1 and text.count(f"### {bsamp.LABEL}") == 1
    assert text.index("second") < text.index("## Extrapolation calibration")
    assert "old text kept" in text and "more" in text

"""The bundled Chinchilla spec on the real Chinchilla runs (Epoch AI's digitisation).

Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt", Epoch AI) refit
Hoffmann et al.'s law to the 240 runs digitised from the paper and report 95%
bootstrap intervals E 1.769-1.871, A 285-744, B 1042-5810, alpha 0.317-0.373,
beta 0.331-0.415, and show that Hoffmann et al.'s beta = 0.28 is inconsistent with
the data. The Bayesian fit must agree.

Needs the public data folder (``shared/data`` beside the repository); skipped without it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

# In the default tier (make test, CI): one NUTS fit of about 20 s, and the flagship reproduction.

EPOCH_95 = {
    "E": (1.769, 1.871),
    "A": (285.0, 744.0),
    "B": (1042.0, 5810.0),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}
EPOCH_POINT = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
HOFFMANN_BETA = 0.28


@pytest.fixture(scope="module")
def runs(shared_data) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESCALE_DATA", str(shared_data))
        return bs.datasets.load_chinchilla()


@pytest.fixture(scope="module")
def chinchilla_fit(runs) -> bs.Fit:
    # The bundled spec's own sampler settings (4 chains, 1000 warmup, 1000 draws). NUTS samples
    # the coefficients at the runs' reference scale (Law.power_terms), which removes the curved
    # (A, alpha) and (B, beta) ridges that gave 1-11 divergent transitions per fit before; over
    # seeds 0-15 every fit was clean (BENCHMARKS.md), so any ConvergenceWarning is an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.ConvergenceWarning)
        return bs.fit(bs.load_spec("chinchilla"), runs, seed=0)


def test_the_data(runs: pd.DataFrame) -> None:
    assert len(runs) == 240
    assert runs["N"].min() < 1e8 and runs["N"].max() > 1e10
    assert np.allclose(runs["C"], 6 * runs["N"] * runs["D"], rtol=1e-9)


def test_medians_inside_epoch_intervals(chinchilla_fit: bs.Fit) -> None:
    table = chinchilla_fit.summary(ci_prob=0.95)
    for k, (lo, hi) in EPOCH_95.items():
        assert lo < table.loc[k, "median"] < hi, (k, table.loc[k, "median"], (lo, hi))
    # The posterior intervals overlap Epoch's and contain Epoch's point estimates.
    for k, v in EPOCH_POINT.items():
        assert table.loc[k, "2.5%"] < v < table.loc[k, "97.5%"], (k, v, table.loc[k].to_dict())


def test_hoffmann_beta_excluded(chinchilla_fit: bs.Fit) -> None:
    beta = chinchilla_fit.posterior["beta"].values.reshape(-1)
    lo, hi = np.quantile(beta, [0.005, 0.995])
    assert not lo <= HOFFMANN_BETA <= hi, (lo, hi)
    assert lo > HOFFMANN_BETA  # above it, as Epoch found
    assert float(np.mean(beta <= HOFFMANN_BETA)) == 0.0


def test_sampling_is_clean(chinchilla_fit: bs.Fit) -> None:
    d = chinchilla_fit.diagnostics()
    assert d["chains"] == 4 and d["draws"] == 1000
    assert d["max_r_hat"] <= 1.01, d["table"]
    assert d["divergences"] == 0
    assert d["min_ess_bulk"] >= 1000 and d["min_ess_tail"] >= 1000
    assert d["problems"] == []


def test_predictive_band_covers_the_runs(chinchilla_fit: bs.Fit, runs: pd.DataFrame) -> None:
    # In-sample check: a new run's 90% predictive band (noise included) covers about
    # 90% of the observed runs; far fewer would mean the noise model is too narrow.
    band = chinchilla_fit.predict(runs, noise=True, seed=0)
    lo, hi = band.quantile([0.05, 0.95], dim=("chain", "draw")).values
    loss = runs["loss"].to_numpy()
    covered = float(np.mean((lo < loss) & (loss < hi)))
    assert 0.8 <= covered <= 0.99, covered
    # The law's median reproduces the runs to within a few percent everywhere.
    med = chinchilla_fit.predict(runs).median(dim=("chain", "draw")).values
    rel = np.abs(np.log(loss / med))
    assert np.median(rel) < 0.01 and rel.max() < 0.1


def test_extrapolation_to_chinchilla(chinchilla_fit: bs.Fit, runs: pd.DataFrame) -> None:
    # Chinchilla itself (70B parameters, 1.4T tokens), 1.66 decades of compute beyond the
    # largest run. Epoch's point estimate gives
    # 1.82 + 482.01/7e10^0.3478 + 2085.43/1.4e12^0.3658 = 1.82 + 0.0813 + 0.0751 = 1.977.
    N, D = 7e10, 1.4e12
    p = EPOCH_POINT
    epoch = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    assert np.log10(6 * N * D / runs["C"].max()) == pytest.approx(1.66, abs=0.01)
    post = chinchilla_fit.posterior
    law = (post["E"] + post["A"] / N ** post["alpha"] + post["B"] / D ** post["beta"]).values.reshape(-1)
    law_lo, law_hi = np.quantile(law, [0.025, 0.975])
    # The law's own posterior band contains Epoch's value and is narrow ...
    assert law_lo < epoch < law_hi and law_hi - law_lo < 0.05, (law_lo, law_hi)
    # ... and the prediction adds the spec's extrapolation drift on top: wider, same centre.
    band = chinchilla_fit.predict({"N": N, "D": D}).values.reshape(-1)
    lo, hi = np.quantile(band, [0.025, 0.975])
    assert lo < epoch < hi
    assert hi - lo > 2 * (law_hi - law_lo)
    assert np.median(band) == pytest.approx(np.median(law), rel=0.005)
    # On a run there is no drift (it grows with the distance from the nearest run): the prediction is the law.
    run = runs.iloc[len(runs) // 2]
    pred = chinchilla_fit.predict({"N": run["N"], "D": run["D"]}).values.reshape(-1)
    law_in = (post["E"] + post["A"] / run["N"] ** post["alpha"] + post["B"] / run["D"] ** post["beta"]).values.reshape(
        -1
    )
    np.testing.assert_allclose(pred, law_in, rtol=1e-12)

"""Recipe comparisons (bayescale.comparison): known multipliers recovered, identical recipes
indistinguishable, a crossover found, pooling as documented, and bad input refused by name."""

from __future__ import annotations

import json
import math
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _compare_quantities as cq
from bayescale._compare_model import Pooling, grouped_spec
from bayescale._compare_quantities import regret
from bayescale._compare_verdict import _crossing_clause, table_of
from bayescale.cli import main
from bayescale.cli.compare import parse_pooling
from bayescale.comparison import parse_target
from bayescale.decisions import parse_risk

TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.33, "beta": 0.30}
SIZES = (1e7, 3e7, 1e8, 3e8, 1e9, 3e9)
TARGET = 1e24


def optimal_loss(p: dict, C: float) -> float:
    """Chinchilla's compute-optimal loss in closed form (the truth of the synthetic worlds)."""
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    return p["E"] + p["A"] / N**a + p["B"] / (C / (6 * N)) ** b


def with_multiplier(p: dict, k: float) -> dict:
    """``p`` made ``k`` times as compute-efficient: L_new(N, D) = L(sqrt(k) N, sqrt(k) D), so
    L*_new(C) = L*(k C) at every C (a constant compute multiplier)."""
    s = math.sqrt(k)
    return dict(p, A=p["A"] * s ** -p["alpha"], B=p["B"] * s ** -p["beta"])


def two_recipes(a: dict, b: dict, *, sigma: float = 0.005, seeds: tuple[int, int] = (1, 2)) -> pd.DataFrame:
    tables = []
    for name, p, seed in (("A", a, seeds[0]), ("B", b, seeds[1])):
        t = bs.testing.synthetic_runs("chinchilla", p, N=SIZES, sigma=sigma, seed=seed)
        tables.append(t.assign(recipe=name, run_id=[f"{name}{i}" for i in range(len(t))]))
    return pd.concat(tables, ignore_index=True)


@pytest.fixture(scope="module")
def doubled() -> pd.DataFrame:
    return two_recipes(TRUTH, with_multiplier(TRUTH, 2.0))


@pytest.fixture(scope="module")
def doubled_cmp(doubled: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.compare(doubled, at={"C": TARGET}, method="laplace", seed=0)


def test_truth_has_the_multiplier_it_claims() -> None:
    b = with_multiplier(TRUTH, 2.0)
    for C in (1e20, 1e23):
        assert optimal_loss(b, C) == pytest.approx(optimal_loss(TRUTH, 2 * C), rel=1e-12)


def test_known_multiplier_is_recovered(doubled_cmp) -> None:
    row = doubled_cmp.table().loc["B"]
    assert row["mult_lo"] < 2.0 < row["mult_hi"]
    # the median within one posterior sd of the truth (sd read off the 90% interval, on log k), and
    # the interval sharp: at most 3x wide (1.78, 1.31-2.90 when written: 0.5 sd off, 2.2x wide)
    sd = math.log(row["mult_hi"] / row["mult_lo"]) / (2 * 1.645)
    assert abs(math.log(row["multiplier"] / 2.0)) < sd
    assert row["mult_hi"] / row["mult_lo"] < 3.0
    # B is better at every compute by a constant factor: its loss difference is negative with
    # confidence (0.99 when written) and the curves do not cross
    assert row["p_better"] > 0.95 and row["diff_hi"] < 0
    assert row["p_cross"] < 0.05 and row["cross_C"] == float("inf")
    m = doubled_cmp.multiplier("B")
    assert len(m) == len(doubled_cmp.levels) and m["C"].iloc[-1] == pytest.approx(TARGET)
    assert all(m["lo"] < 2.0) and all(m["hi"] > 2.0)


def test_the_loss_difference_is_its_median_beside_its_interval_and_a_clipped_multiplier_says_so(doubled_cmp):
    """The verdict's loss difference is the median, inside its interval; the mean (``diff_mean``) is said
    only when a heavy tail puts it outside. A multiplier interval held at the searched range reads >=."""
    from bayescale._compare_verdict import _heavy_tail, multiplier_bounds

    row = doubled_cmp.table().loc["B"]
    diff = doubled_cmp.losses["B"] - doubled_cmp.losses["A"]
    assert row["diff"] == pytest.approx(np.median(diff)) and row["diff_mean"] == pytest.approx(np.mean(diff))
    assert f"loss difference {row['diff']:+.4f}," in doubled_cmp.verdict and "heavy tail" not in doubled_cmp.verdict
    tail = {"diff": 0.07, "diff_lo": -3.25, "diff_hi": 0.79, "diff_mean": -5.02}
    assert _heavy_tail(tail) == "; mean -5.0200, outside it: a heavy tail of draws"
    clipped = {"mult_lo": 0.00205, "mult_hi": 1e4}
    assert multiplier_bounds(clipped, "x") == ("0.00205x", ">=1e+04x")


@pytest.mark.slow  # a statistical check: a joint fit of its own: `make test-all`
def test_known_multiplier_with_shared_exponents_is_tight(doubled: pd.DataFrame) -> None:
    share = {"share": ["E", "alpha", "beta"]}
    cmp = bs.compare(doubled, at={"C": TARGET}, method="laplace", pooling=share, drift_correlation=1.0)
    row = cmp.table().loc["B"]
    assert row["mult_lo"] < 2.0 < row["mult_hi"]
    assert row["mult_hi"] / row["mult_lo"] < 4  # only the coefficients differ and the drift cancels: k is pinned down
    apart = bs.compare(doubled, at={"C": TARGET}, method="laplace", pooling=share, drift_correlation=0.0)
    wide = apart.table().loc["B"]
    assert wide["mult_hi"] / wide["mult_lo"] > 2 * row["mult_hi"] / row["mult_lo"]  # independent drifts widen it
    assert row["p_better"] > 0.9
    assert "roughly constant with scale" in cmp.verdict  # a constant multiplier, said so


def bent(runs: pd.DataFrame, recipe: str, per_decade: float) -> pd.DataFrame:
    """``runs`` with ``recipe``'s losses bending up beyond its median compute, ``per_decade`` in log
    loss per decade of compute: a law that holds for one recipe and not the other at scale."""
    C = 6 * runs["N"] * runs["D"]
    decades = np.log10(C / C[runs.recipe == recipe].median()).clip(lower=0)
    return runs.assign(loss=runs["loss"] * np.exp(np.where(runs.recipe == recipe, per_decade * decades, 0.0)))


def test_learned_gap_is_small_for_recipes_that_follow_the_law_and_grows_when_one_bends(doubled, doubled_cmp) -> None:
    clean = doubled_cmp.gap_drift()
    assert doubled_cmp.drift_correlation == "learned" and clean["splits"] >= 3
    assert clean["q95"] < 0.005, clean
    # the runs make "the recipes drift alike" more probable than its prior 0.5, and the words say so
    assert clean["p_zero"] > 0.5 and f"probability {clean['p_zero']:.2f} that the recipes drift alike" in (
        doubled_cmp.drift_words()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bent recipe's misfit warning
        apart = bs.compare(bent(doubled, "B", 0.04), at={"C": TARGET}, method="laplace", seed=0)
    gap = apart.gap_drift()
    assert gap["median"] > 3 * clean["q95"] and gap["q05"] > clean["q95"], (clean, gap)
    assert 0.02 < gap["median"] < 0.08, gap  # B bends by 0.04 per decade of compute
    assert gap["p_zero"] < 0.01, gap  # and its splits rule out "alike"
    wide, narrow = apart.table().loc["B"], doubled_cmp.table().loc["B"]
    assert wide["mult_hi"] / wide["mult_lo"] > 2 * narrow["mult_hi"] / narrow["mult_lo"]
    assert "learned from" in apart.drift_words() and "learned" in json.loads(apart.to_json())["drift_correlation"]
    # the verdict says whose runs bend (the joint fit's misfit check pools both recipes' runs)
    assert "B's runs sit further off it than the others'" in apart.verdict and "A's runs sit" not in apart.verdict
    assert "What to do" not in apart.verdict  # the fit's advice is for one law; the verdict has its own
    assert "own runs misfit" not in doubled_cmp.verdict


def test_a_recipe_whose_own_runs_misfit_is_named(doubled_cmp) -> None:
    from bayescale._compare_verdict import _own_misfits

    bent_b = SimpleNamespace(misfits=True, messages=["runs at N = 3e9 sit 2% above it", "a trend in D"])

    asked = []

    def too_few(**kwargs):
        raise bs.BayescaleError("too few runs to test")

    def bent_misfit(**kwargs):
        asked.append(kwargs.get("alpha"))
        return bent_b

    recipes = {
        "A": doubled_cmp.recipes["A"],  # a real recipe fit that follows its law
        "B": SimpleNamespace(misfit=bent_misfit),
        "C": SimpleNamespace(misfit=too_few),
    }
    said = _own_misfits(SimpleNamespace(recipes=recipes))
    assert said == [
        "Doubt: B's own runs misfit its law: runs at N = 3e9 sit 2% above it (and 1 more finding: see "
        "comparison.recipes['B'].misfit())."
    ]
    assert asked == [pytest.approx(0.1 / 3)]  # each recipe's check at the family's level over 3 recipes


def _joint_linear_fit(sizes: dict, scales: dict, rng) -> tuple:
    """Residuals of a least-squares fit with a shared constant and 4 free columns per group (as a
    comparison's default pooling: E shared, A, B, alpha, beta per recipe), standardised by the
    pooled noise estimate, with each run's leverage."""
    groups = np.concatenate([[g] * n for g, n in sizes.items()]).astype(object)
    cols = [np.ones(groups.size)]
    for g in sizes:
        x = rng.standard_normal((groups.size, 4)) * (groups == g)[:, None]
        cols += list(x.T)
    X = np.column_stack(cols)
    y = np.concatenate([scales[g] * rng.standard_normal(n) for g, n in sizes.items()])
    hat = X @ np.linalg.pinv(X)
    resid = y - hat @ y
    sigma = np.sqrt(np.sum(resid**2) / (groups.size - np.trace(hat)))
    return resid / sigma, groups, np.diag(hat)


@pytest.mark.parametrize("sizes", [{"A": 6, "B": 24}, {"A": 10, "B": 10}, {"A": 5, "B": 8, "C": 20}])
def test_a_recipe_is_named_for_a_joint_misfit_only_when_a_test_says_so(sizes) -> None:
    from bayescale._compare_verdict import owners

    rng = np.random.default_rng(0)
    same = {g: 1.0 for g in sizes}
    # equal noise everywhere, recipes with their own parameters: named at about the family-wise level 0.1
    named = sum(bool(owners(*_joint_linear_fit(sizes, same, rng))) for _ in range(300))
    assert named <= 0.15 * 300, named  # the naive F(n_g, n_rest), without the leverage, named B in ~48% (6 vs 24)


def test_a_recipe_whose_runs_sit_further_off_is_named() -> None:
    from bayescale._compare_verdict import owners

    rng = np.random.default_rng(1)
    found = [owners(*_joint_linear_fit({"A": 15, "B": 15}, {"A": 1.0, "B": 3.0}, rng)) for _ in range(20)]
    assert sum(any(g == "B" for g, *_ in f) for f in found) >= 15
    assert not any(g == "A" for f in found for g, *_ in f)


@pytest.mark.slow  # two joint fits of their own: `make test-all`
def test_a_stated_gap_prior_is_the_one_learned_from(doubled) -> None:
    d = bs.load_spec("chinchilla").to_dict()
    d["extrapolation"]["gap_per_decade"] = {"dist": "HalfNormal", "scale": 0.002}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tight = bs.compare(bent(doubled, "B", 0.04), at={"C": TARGET}, method="laplace", seed=0, spec=bs.load_spec(d))
    # The runs say about 0.04 (the default prior lets them, see above); a prior at 0.002 pulls it far below.
    assert tight.gap_drift()["q95"] < 0.02, tight.gap_drift()
    # a stated prior probability of "alike" is the one the spike starts from: 0 is the slab alone
    d["extrapolation"] = {k: v for k, v in d["extrapolation"].items() if k != "gap_per_decade"} | {"gap_alike": 0.0}
    assert bs.load_spec(d).to_dict()["extrapolation"]["gap_alike"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slab = bs.compare(doubled, at={"C": TARGET}, method="laplace", seed=0, spec=bs.load_spec(d))
    gap = slab.gap_drift()
    assert gap["p_zero"] == 0.0 and gap["alike_prior"] == 0.0 and gap["median"] > 0, gap
    assert "drift alike" not in slab.drift_words()  # the prior ruled it out: the runs said nothing of it


def test_a_stated_gap_alike_must_be_a_probability_below_one() -> None:
    d = bs.load_spec("chinchilla").to_dict()
    d["extrapolation"] = {**d["extrapolation"], "gap_alike": 0.0}
    assert bs.load_spec(d).to_dict()["extrapolation"]["gap_alike"] == 0.0
    for bad in (1.0, -0.1, "half", True):
        d["extrapolation"]["gap_alike"] = bad
        with pytest.raises(bs.SpecError, match="extrapolation.gap_alike: must be a probability"):
            bs.load_spec(d)


@pytest.mark.slow  # three joint law fits (09_compare_recipes runs a law average's comparison in CI): `make test-all`
def test_a_law_average_compares_under_every_law_it_weighs(doubled, doubled_cmp, tmp_path) -> None:
    # Three of the recommended laws (the bending law and Farseer's cost 4x the time and test nothing more here).
    spec = tmp_path / "three.toml"
    spec.write_text(
        'name = "three"\n[average]\nlaws = ["chinchilla", "kaplan", "data_constrained"]\nconcentration = 1.1\n'
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        avg = bs.compare(doubled, at={"C": TARGET}, method="laplace", spec=str(spec), seed=0)
    # A law's own warnings name it and its weight: none speaks for the average.
    fits = [str(w.message) for w in caught if issubclass(w.category, (bs.ConvergenceWarning, bs.MisfitWarning))]
    assert fits and all(re.match(r"law \w+ \(weight [01]\.\d\d\): ", m) for m in fits), fits
    # The runs follow the Chinchilla law: it carries the weight, and the known multiplier is inside.
    assert avg.law_weights["chinchilla"] > 0.5 and "chinchilla" in avg.describe_laws()
    assert "data_constrained left out" in avg.describe_laws()  # no repeated data: nothing it could add
    row = avg.table().loc["B"]
    assert row["mult_lo"] < 2.0 < row["mult_hi"] and row["p_better"] > 0.5
    assert "Under law uncertainty" in avg.verdict and json.loads(avg.to_json())["laws"] == avg.law_weights
    # The draws are the laws' draws, mixed by weight: each slot is one law's draw of that slot.
    for k, (name, law) in enumerate(avg.laws.items()):
        np.testing.assert_array_equal(avg.losses["B"][avg.slots == k], law.losses["B"][avg.slots == k])
    assert set(avg.summary().index.get_level_values("law")) == set(avg.laws)
    back = bs.Comparison.load(avg.save(tmp_path / "avg.nc"))
    pd.testing.assert_frame_equal(back.table(), avg.table())
    assert back.law_weights == avg.law_weights and back.verdict == avg.verdict
    assert back.multiplier(C=[1e22])["median"].iloc[0] == pytest.approx(avg.multiplier(C=[1e22])["median"].iloc[0])


@pytest.mark.slow  # a statistical check: a joint fit of its own: `make test-all`
def test_identical_recipes_are_indistinguishable() -> None:
    runs = two_recipes(TRUTH, TRUTH, seeds=(3, 4))
    cmp = bs.compare(runs, at={"C": TARGET}, method="laplace", pooling={"share": ["E", "alpha", "beta"]})
    row = cmp.table().loc["B"]
    assert 0.1 < row["p_better"] < 0.9
    assert row["mult_lo"] < 1.0 < row["mult_hi"]
    assert row["diff_lo"] < 0 < row["diff_hi"]
    assert "The evidence is weak" in cmp.verdict


def test_crossover_between_runs_and_target_is_found() -> None:
    # B: better coefficients, smaller exponents, tuned so its compute-optimal curve crosses A's at 1e22.
    def recipe_b(f: float) -> dict:
        return dict(TRUTH, A=400 * f, B=1500 * f, alpha=0.26, beta=0.23)

    lo, hi = 0.01, 1.0
    for _ in range(60):  # bisection on the coefficient scale: the truth's crossing at 1e22
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if optimal_loss(recipe_b(mid), 1e22) < optimal_loss(TRUTH, 1e22) else (lo, mid)
    b = recipe_b(lo)
    runs = two_recipes(TRUTH, b)
    assert runs["C"].max() < 1e22 < TARGET
    cmp = bs.compare(runs, at={"C": TARGET}, method="laplace")
    row = cmp.table().loc["B"]
    assert row["p_cross"] > 0.6
    assert 1e21 < row["cross_C"] < 1e23
    assert row["cross_lo"] < 1e22 < row["cross_hi"]  # the truth inside the crossing's interval
    assert row["p_better"] < 0.5  # past the crossing, A is ahead
    assert "cross below the target with probability" in cmp.verdict


def test_pooling_sets_the_parameters_as_documented() -> None:
    spec = bs.load_spec("chinchilla")
    groups = ["A", "B", "C"]
    default = grouped_spec(spec, groups, Pooling.default(spec.law))
    assert Pooling.default(spec.law) == Pooling(share=("E",))
    assert len(default.law.params) == 1 + 3 * 4  # E shared; A, B, alpha, beta per recipe
    shared = grouped_spec(spec, groups, Pooling.parse({"share": ["E", "alpha", "beta"]}, spec.law))
    assert len(shared.law.params) == 3 + 3 * 2
    pooled = grouped_spec(spec, groups, Pooling.parse({"share": "E", "pool": ["alpha", "beta"]}, spec.law))
    assert len(pooled.law.params) == 1 + 3 * 2 + 2 * (2 + 3)  # mu, tau and one z per recipe each
    assert {"alpha_mu", "alpha_tau", "alpha_z2"} <= set(pooled.law.params)
    # a mapping without "share" keeps the default's shared floor unless it pools or frees it
    assert Pooling.parse({"pool": ["alpha"]}, spec.law) == Pooling(share=("E",), pool=("alpha",))
    assert Pooling.parse({"free": ["E"]}, spec.law) == Pooling()
    assert Pooling.parse({"pool": ["E"]}, spec.law) == Pooling(pool=("E",))
    assert Pooling.parse({"share": []}, spec.law) == Pooling()
    # the grouped law at equal parameters is the base law
    x = {"N": np.log([1e8, 1e9]), "D": np.log([2e9, 2e10]), "group": np.array([0.0, 2.0])}
    p = {n: 1.0 for n in default.law.params} | {"E": 1.7}
    p.update({f"A_g{k}": 400.0 for k in range(3)} | {f"B_g{k}": 1500.0 for k in range(3)})
    p.update({f"alpha_g{k}": 0.33 for k in range(3)} | {f"beta_g{k}": 0.3 for k in range(3)})
    base = spec.law.log_loss(TRUTH, {"N": x["N"], "D": x["D"]}, np)
    assert np.allclose(default.law.log_loss(p, x, np), base)


def _crossing_draws_comparison(cross_at: np.ndarray, grid: np.ndarray, target: float) -> SimpleNamespace:
    """A comparison's draws where B's curve crosses A's (in log loss) at ``cross_at`` per draw:
    worse before, better after. Only what the table reads."""
    diff = 0.01 * np.log(cross_at[:, None] / grid[None, :])
    n = cross_at.size
    losses = {"A": np.full(n, 2.0), "B": 2.0 + 0.01 * np.log(cross_at / target)}
    return SimpleNamespace(
        groups=["A", "B"],
        others=["B"],
        baseline="A",
        by="recipe",
        ci_prob=0.9,
        risk=parse_risk("cvar:0.9"),
        losses=losses,
        multipliers={"B": np.ones((n, 1))},
        clipped={"B": np.zeros((n, 1), bool)},
        curve_C=grid,
        curves={"A": np.zeros((n, grid.size)), "B": diff},
        target=SimpleNamespace(C=target),
    )


def test_crossing_median_counts_the_draws_that_cross_beyond_the_target() -> None:
    # the crossing's posterior: uniform in log C from 1e19 to 1e24; the target 1e22 leaves 40% beyond it
    grid = np.geomspace(1e18, 1e23, 61)
    c = _crossing_draws_comparison(np.logspace(19, 24, 1000), grid, 1e22)
    row = table_of(c).loc["B"]
    assert row["p_cross"] == pytest.approx(0.6, abs=0.02)
    # the median over all draws (10^21.5), not of the 60% that cross below the target (10^20.5)
    assert row["cross_C"] == pytest.approx(10**21.5, rel=0.05)
    assert row["cross_lo"] == pytest.approx(10**19.25, rel=0.05)
    assert row["cross_hi"] == np.inf  # the interval is open: the runs leave the crossing's end beyond the target
    clause = _crossing_clause(c, row)
    assert "its 90% interval runs from C=1.78e+19 to beyond the target (median C=3.22e+21)" in clause
    assert "the runs cannot place where the fitted compute-optimal curves cross" in clause
    # fewer than half cross below the target: the median lies beyond it
    row = table_of(_crossing_draws_comparison(np.logspace(21, 24, 1000), grid, 1e22)).loc["B"]
    assert row["p_cross"] == pytest.approx(1 / 3, abs=0.02) and row["cross_C"] == np.inf


def test_crossing_that_is_placed_and_one_that_has_happened_before_the_runs() -> None:
    grid = np.geomspace(1e18, 1e23, 61)
    c = _crossing_draws_comparison(np.logspace(20.01, 20.6, 1000), grid, 1e22)
    row = table_of(c).loc["B"]
    assert row["p_cross"] == 1.0 and 1e20 < row["cross_lo"] < row["cross_C"] < row["cross_hi"] < 10**20.6
    assert "probability 1.00 (at C=2.02e+20, 90% interval 1.09e+20-3.72e+20)." in _crossing_clause(c, row)
    # draws whose curves crossed before the smallest run (B better throughout) sit at 0, not beyond the target
    c = _crossing_draws_comparison(np.concatenate([np.logspace(20.01, 21, 700), np.full(300, 1e17)]), grid, 1e22)
    row = table_of(c).loc["B"]
    assert row["p_cross"] == pytest.approx(0.7, abs=0.01) and row["cross_lo"] == 0 and np.isfinite(row["cross_hi"])
    assert "runs from below the smallest run (C=1e+18) to C=" in _crossing_clause(c, row)


def test_draws_that_crossed_before_the_runs_are_placed_there() -> None:
    # 40% of draws cross from B better to B worse just above the smallest run; the rest have B
    # worse throughout (the majority's sign at the start): they crossed before it, not beyond the target
    grid = np.geomspace(1e18, 1e23, 61)
    cross_at = np.concatenate([np.logspace(18.11, 18.9, 400), np.full(600, 1e17)])
    c = _crossing_draws_comparison(cross_at, grid, 1e22)
    c.curves["B"] = -c.curves["B"]
    row = table_of(c).loc["B"]
    assert row["p_cross"] == pytest.approx(0.4, abs=0.01)
    assert row["cross_lo"] == 0 and row["cross_C"] == 0 and row["cross_hi"] < 1e19
    assert "median below the runs" in _crossing_clause(c, row)
    # no draw crosses: nothing to place
    row = table_of(_crossing_draws_comparison(np.full(50, 1e25), grid, 1e22)).loc["B"]
    assert row["p_cross"] == 0 and np.isnan(row["cross_C"])


def test_multiplier_read_off_a_lattice_matches_the_exact_curves(doubled_cmp, monkeypatch) -> None:
    """A law without a closed-form optimum searches its baseline curve once on a lattice of
    budgets and reads each level's curve off it; on Chinchilla's law (closed form, forced to the
    numerical path here) that gives the exact multipliers to the searches' resolution (coarser for
    the few draws far in the tail: 2 of 20,000 at k 12 and 43 read 1.2% and 3.9% high)."""
    base, other = doubled_cmp.recipes["A"], doubled_cmp.recipes["B"]
    exact, exact_edge = cq.multiplier_at_compute(base, other, doubled_cmp.levels)
    monkeypatch.setattr(cq, "closed_form", lambda fit: False)
    lattice, lattice_edge = cq.multiplier_at_compute(base, other, doubled_cmp.levels)
    inside = ~(exact_edge | lattice_edge)
    assert inside.mean() > 0.95
    rel = np.abs(lattice[inside] / exact[inside] - 1)
    assert np.quantile(rel, 0.999) < 0.01 and rel.max() < 0.05, np.quantile(rel, [0.999, 1.0])
    np.testing.assert_allclose(np.median(lattice, axis=0), np.median(exact, axis=0), rtol=0.005)


def test_regret_and_p_best_on_fixed_draws() -> None:
    # three options, four draws: the regret of each is its mean excess over the draw's best
    losses = np.array([[2.0, 2.0, 3.0, 2.0], [2.1, 1.9, 2.0, 2.2], [2.2, 2.2, 2.2, 1.0]])
    np.testing.assert_allclose(
        regret(losses), [(0.0 + 0.1 + 1.0 + 1.0) / 4, (0.1 + 0.0 + 0.0 + 1.2) / 4, 0.2 / 4 + 0.3 / 4 + 0.2 / 4]
    )


@pytest.mark.slow  # a new compilation (three recipes, a hierarchy): about 20 s
def test_three_recipes_pooled_exponents(doubled: pd.DataFrame) -> None:
    # C is 4x as compute-efficient as A, B 2x: C should be best, with the least regret.
    extra = bs.testing.synthetic_runs("chinchilla", with_multiplier(TRUTH, 4.0), N=SIZES, sigma=0.005, seed=5)
    runs = pd.concat([doubled, extra.assign(recipe="C", run_id=[f"C{i}" for i in range(len(extra))])])
    with warnings.catch_warnings():  # the Laplace fit of a hierarchy may find several modes: it says so
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        cmp = bs.compare(runs, at={"C": TARGET}, method="laplace", pooling={"share": "E", "pool": ["alpha", "beta"]})
    assert {"alpha_mu", "beta_tau", "alpha_z2"} <= set(cmp.fit.var_names)
    assert "pooled hierarchically with method 'laplace'" in cmp.verdict
    t = cmp.table()
    assert list(t.index) == ["A", "B", "C"] and t["p_best"].sum() == pytest.approx(1.0)
    assert t["p_best"].idxmax() == "C" and t["regret"].idxmin() == "C"
    assert t.loc["C", "multiplier"] > t.loc["B", "multiplier"] > 1


def test_point_target_and_json(doubled_cmp, doubled: pd.DataFrame) -> None:
    d = json.loads(doubled_cmp.to_json())
    assert d["baseline"] == "A" and d["recipes"]["B"]["p_best"] > 0.5 and d["verdict"] == doubled_cmp.verdict
    assert "Caution: a Laplace fit is a quick look" in doubled_cmp.verdict  # as decide's verdict says it
    cmp = bs.compare(doubled, at={"N": 3e10, "D": 6e11}, method="laplace")
    row = cmp.table().loc["B"]
    assert row["mult_lo"] < 2.0 < row["mult_hi"]  # a constant multiplier holds at any allocation too
    assert cmp.target.C == pytest.approx(6 * 3e10 * 6e11)


def test_save_and_load_give_the_same_numbers(doubled_cmp, tmp_path) -> None:
    path = doubled_cmp.save(tmp_path / "cmp.nc")
    back = bs.Comparison.load(path)
    pd.testing.assert_frame_equal(back.table(), doubled_cmp.table())
    assert back.verdict == doubled_cmp.verdict and back.pooling == doubled_cmp.pooling
    with pytest.raises(bs.BayescaleError, match="not found"):
        bs.Comparison.load(tmp_path / "missing.nc")


def test_a_comparison_saved_before_the_gaps_spike_loads_as_it_was_fitted(doubled_cmp) -> None:
    """Files written before the spike (no gap_alike in their spec) were fitted with the slab alone; the
    spec saved now records the probability used, so a later default cannot change a saved comparison."""
    from bayescale._compare_average import law_setup, saved_spec

    saved = law_setup(doubled_cmp)["spec"]
    assert saved["extrapolation"]["gap_alike"] == 0.5
    old = {**saved, "extrapolation": {k: v for k, v in saved["extrapolation"].items() if k != "gap_alike"}}
    assert saved_spec(old).gap_alike == 0.0 and saved_spec(saved).gap_alike == 0.5


def test_a_saved_comparison_is_named_as_one(doubled_cmp, tmp_path, capsys) -> None:
    path = doubled_cmp.save(tmp_path / "cmp.nc")
    with pytest.raises(bs.BayescaleError, match="is a recipe comparison .* not a fit"):
        bs.load_fit(path)  # it used to read as an unknown law 'chinchilla|groups=2|...'
    assert main(["summary", str(path)]) == 2
    assert "Comparison.load" in capsys.readouterr().err
    assert main(["report", str(path), "-o", str(tmp_path / "r.html"), "-q"]) == 0  # the comparison's report
    assert "multiplier" in (tmp_path / "r.html").read_text()
    assert main(["report", str(path), "-o", str(tmp_path / "r.md"), "-q"]) == 2
    assert "HTML only" in capsys.readouterr().err


def test_summary_names_the_recipes(doubled_cmp) -> None:
    s = doubled_cmp.summary()
    assert list(s.index.get_level_values(0).unique()) == ["A", "B"]
    assert s.loc[("A", "E"), "mean"] == s.loc[("B", "E"), "mean"]  # E is shared by default
    assert s.loc[("A", "A"), "mean"] != s.loc[("B", "A"), "mean"]


def test_multiplier_at_other_compute(doubled_cmp) -> None:
    m = doubled_cmp.multiplier("B", C=[1e20, 1e22])
    assert list(m["C"]) == [1e20, 1e22] and all(m["lo"] < 2.0) and all(m["hi"] > 2.0)
    with pytest.raises(bs.BayescaleError, match="recipe 'Z' is not a group"):
        doubled_cmp.multiplier("Z")


def test_report_and_figure(doubled_cmp, tmp_path) -> None:
    fig = bs.plots.plot_comparison(doubled_cmp)
    assert len(fig.axes) == 2
    out = bs.report.write_comparison_html(doubled_cmp, tmp_path / "cmp.html")
    text = out.read_text()
    assert "data:image/png;base64," in text and "compute multiplier" in text and "<script" not in text
    # the answer box lists the verdict's cautions whole, with their label (a Laplace comparison has one)
    assert "<li>Caution: a Laplace fit is a quick look" in text and "No warnings" not in text
    with pytest.raises(bs.BayescaleError, match="takes what bayescale.compare returns, got Fit"):
        bs.report.write_comparison_html(doubled_cmp.fit, tmp_path / "fit.html")
    with pytest.raises(bs.BayescaleError, match="'A' is the baseline: a multiplier is another recipe's over it"):
        doubled_cmp.multiplier("A")


@pytest.mark.parametrize(
    "change, kwargs, match",
    [
        (
            lambda r: r.drop(columns="recipe"),
            {},
            r"grouping column 'recipe' is not in the runs table; its columns are 'run_id', 'N', 'D', 'C', 'loss', 'loss_true' and 'source'$",
        ),
        (lambda r: r, {"by": "N"}, "grouping column 'N' measures each run .* it does not name its recipe"),
        (lambda r: r.assign(recipe=r["recipe"].where(r.index > 0)), {}, r"is blank in the rows with run_id 'A0';"),
        (lambda r: r.assign(recipe="A"), {}, "has one group"),
        (lambda r: r[(r.recipe == "A") | (r.index % 6 == 0)], {}, "at least as many runs as its free parameters"),
        (lambda r: r, {"baseline": "Z"}, "baseline 'Z' is not a group"),
        (lambda r: r, {"at": {"N": 1e9}}, "at must be"),
        (lambda r: r, {"pooling": {"share": ["gamma"]}}, "'gamma'|gamma"),
        (lambda r: r, {"pooling": {"shared": ["E"]}}, "unknown key"),
        (lambda r: r, {"spec": "recommended", "pooling": {"share": ["E"]}}, "with a law average"),
        (lambda r: r, {"drift_correlation": 2}, "drift_correlation must be 'learned' or a number in"),
        (lambda r: r, {"drift_correlation": "shared"}, "drift_correlation must be 'learned' or a number in"),
    ],
)
def test_bad_input_is_refused_by_name(doubled: pd.DataFrame, change, kwargs, match) -> None:
    kwargs = {"at": {"C": TARGET}, "method": "laplace"} | kwargs
    with pytest.raises(bs.BayescaleError, match=match):
        bs.compare(change(doubled), **kwargs)


def test_parse_target() -> None:
    assert parse_target(1e23).C == 1e23 and not parse_target(1e23).at_point
    assert parse_target({"N": 1e9, "D": 2e10}).C == pytest.approx(1.2e20)
    with pytest.raises(bs.BayescaleError, match="finite and > 0"):
        parse_target({"C": -1})
    assert parse_target("C=1e23") == parse_target(1e23)  # text, as the CLI's --at
    assert parse_target("N=1e9,D=2e10") == parse_target({"N": 1e9, "D": 2e10})
    # as every point bayescale predicts at: a plausible language model (here C beyond 6e32 FLOPs)
    with pytest.raises(bs.BayescaleError, match=r"at: C=1e\+40 is outside 6-6e\+32"):
        parse_target("C=1e40")
    with pytest.raises(bs.BayescaleError, match=r"at: N=1e\+16 is outside 1-1e\+15"):
        parse_target({"N": 1e16, "D": 1e10})


def test_a_target_at_or_below_the_smallest_run_has_no_crossing_before_it() -> None:
    """No stretch of compute lies between the smallest run and such a target: nothing crosses there (it
    raised an empty-argmax error before)."""
    grid = np.geomspace(1e18, 1e23, 61)
    for target in (1e17, 1.1e18):
        row = table_of(_crossing_draws_comparison(np.logspace(19, 24, 1000), grid, target)).loc["B"]
        assert row["p_cross"] == 0.0


# ------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def runs_csv(doubled: pd.DataFrame, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cmp") / "runs.csv"
    doubled.to_csv(path, index=False)
    return str(path)


def test_cli_happy_path(runs_csv: str, capsys, tmp_path) -> None:
    args = ["compare", runs_csv, "--by", "recipe", "--at", "C=1e24", "--method", "laplace", "-q"]
    assert main(args + ["--baseline", "A", "--report", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "x compute vs A" in out and "Pick " in out and "P(best)" in out
    assert (tmp_path / "r.html").is_file()
    assert main(args + ["--json", "--share", "E,alpha,beta"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (
        d["pooling"]["share"] == ["E", "alpha", "beta"]
        and d["recipes"]["B"]["mult_lo"] < 2 < d["recipes"]["B"]["mult_hi"]
        and 0 <= d["recipes"]["B"]["mult_clipped"] < 0.05
    )


def test_cli_marks_a_multiplier_edge_held_at_the_search_bound() -> None:
    from bayescale._compare_quantities import K_RANGE
    from bayescale.cli.compare import _multiplier_interval

    assert _multiplier_interval({"mult_lo": 0.5, "mult_hi": 3.0}) == "[0.5, 3]"
    assert _multiplier_interval({"mult_lo": K_RANGE[0], "mult_hi": K_RANGE[1]}) == "[<=0.0001, >=1e+04]"


def test_cli_pooling_options_left_out_keep_their_default() -> None:
    law = bs.load_spec("chinchilla").law
    assert parse_pooling(None, None, None) is None
    # --pool alone: E stays shared, as --share's help says
    assert Pooling.parse(parse_pooling(None, "alpha,beta", None), law) == Pooling(share=("E",), pool=("alpha", "beta"))
    assert Pooling.parse(parse_pooling(None, None, "E"), law) == Pooling()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--by", "arch"], "grouping column 'arch'"),
        (["--baseline", "Z"], "baseline 'Z'"),
        (["--at", "N=1e9"], "--at 'N=1e9'"),
        (["--at", "C=abc"], "--at 'C=abc'"),
        (["--share", "gamma"], "gamma"),
        (["--report", "out.pdf"], "--report"),
        (["--drift-correlation", "1.5"], "drift_correlation must be 'learned' or a number in [0, 1], got 1.5"),
        (["--drift-correlation", "shared"], "drift_correlation must be 'learned' or a number in [0, 1], got 'shared'"),
    ],
)
def test_cli_bad_input_exits_2(runs_csv: str, capsys, extra, match) -> None:
    args = ["compare", runs_csv, "--at", "C=1e24", "--method", "laplace", "-q"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayescale: error:") and match in err and "Traceback" not in err


@pytest.mark.slow  # NUTS on the grouped spec: a compilation of the sampler, about a minute on 2 cores
def test_nuts_recovers_the_multiplier(doubled: pd.DataFrame) -> None:
    cmp = bs.compare(doubled, at={"C": TARGET}, method="nuts", chains=2, warmup=300, draws=300, seed=1)
    row = cmp.table().loc["B"]
    assert row["mult_lo"] < 2.0 < row["mult_hi"] and row["p_better"] > 0.5
    assert cmp.fit.diagnostics()["max_r_hat"] < 1.05


def test_a_learned_gap_at_its_hyperpriors_upper_bound_is_said() -> None:
    """Porian's settings learned a gap of 0.092 per decade (90% 0.076-0.100) under a hyperprior capped at 0.1:
    the bound decided the bands' width, which the words now say, with what to do."""
    from bayescale._compare_fit import gap_at_bound

    spec = bs.load_spec("chinchilla")
    assert gap_at_bound(spec, {"median": 0.092, "q05": 0.076, "q95": 0.0995, "splits": 5}).startswith(
        "; it presses its hyperprior's upper bound (0.1)"
    )
    assert gap_at_bound(spec, {"median": 0.01, "q05": 0.002, "q95": 0.04, "splits": 5}) == ""
    assert gap_at_bound(spec, {"median": 0.092, "q05": 0.076, "q95": 0.0995, "splits": 0}) == ""  # the prior alone


def test_the_trend_in_words_says_when_the_advantage_changes_hands() -> None:
    from bayescale._compare_quantities import trend_words

    levels = [1e21, 1e22, 1e23]
    assert trend_words(levels, [1.8, 1.2, 0.685]) == "the advantage changes hands with scale"  # was "narrows"
    assert trend_words(levels, [1.8, 1.5, 1.3]) == "the gap narrows with scale"
    assert trend_words(levels, [0.5, 0.3, 0.2]) == "the gap widens with scale"
    assert trend_words(levels, [1.8, 1.85, 1.9]) == "roughly constant with scale"

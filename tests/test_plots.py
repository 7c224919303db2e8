"""Every figure in bayescale.plots, drawn on Agg from fits with fixed draws (and one real NUTS fit)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from scipy import stats

import bayescale as bs
from bayescale import checks, decisions, plots
from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.testing import fit_from_draws, synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


def ridge_draws(chains: int = 2, draws: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Draws shaped like a Chinchilla posterior: log A rides with alpha and log B with beta."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, chains, draws))
    return {
        "E": 1.8 + 0.02 * z[0],
        "A": 480.0 * np.exp(0.6 * z[1]),
        "alpha": 0.35 + 0.02 * z[1] + 0.003 * z[2],
        "B": 2000.0 * np.exp(0.6 * z[3]),
        "beta": 0.36 + 0.02 * z[3] + 0.003 * z[4],
        "sigma": 0.01 * np.exp(0.1 * z[5]),
        "drift": 0.01 * rng.standard_normal((chains, draws)),
    }


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs("chinchilla", TRUTH, seed=1)


@pytest.fixture(scope="module")
def fit(runs):
    return fit_from_draws("chinchilla", runs, ridge_draws())


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images)


def _check_figure(fig, min_axes: int = 1) -> list:
    """A drawable Figure with at least ``min_axes`` axes that hold data; returns those axes."""
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # lays out and renders: bad mathtext or layout errors surface here
    axes = [a for a in fig.axes if _has_data(a)]
    assert len(axes) >= min_axes, f"{len(axes)} axes with data, expected >= {min_axes}"
    return axes


def _offsets(ax) -> np.ndarray:
    """All scatter points of an axis, shape (n, 2)."""
    pts = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    return np.concatenate([np.asarray(p, dtype=float) for p in pts]) if pts else np.empty((0, 2))


# ------------------------------------------------------------------ backend


def test_headless_import_picks_agg_and_imports_no_pymc(tmp_path):
    """A fresh process without a display gets the Agg backend; importing bayescale (its PyMC backend
    included) imports neither pymc nor pytensor, which load only when that backend fits (one process
    checks both: each costs an interpreter and bayescale's imports)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLCONFIGDIR"] = str(tmp_path)
    code = (
        "import sys, bayescale, bayescale.pymc_backend, bayescale.plots, matplotlib; "
        "print(matplotlib.get_backend(), [m for m in ('pymc', 'pytensor') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg []"


# ------------------------------------------------------------------ MCMC


def test_trace_has_density_and_rank_bars_per_variable(fit):
    fig = plots.plot_trace(fit)
    names = list(fit.spec.law.params) + ["sigma"]
    axes = _check_figure(fig, min_axes=2 * len(names))
    assert len(fig.axes) == 2 * len(names)
    rank_axes = [a for a in axes if a.patches]
    assert len(rank_axes) == len(names)  # one rank-bar panel per variable
    titles = {a.get_title() for a in fig.axes}
    assert set(names) <= titles


def test_rank_one_panel_per_requested_variable(fit):
    fig = plots.plot_rank(fit, ["alpha", "beta"])
    axes = _check_figure(fig, min_axes=2)
    assert {a.get_title() for a in axes} == {"alpha", "beta"}
    assert all(a.patches for a in axes)


def test_posteriors_overlay_exact_prior_density(fit):
    fig = plots.plot_posteriors(fit)
    axes = _check_figure(fig, min_axes=6)
    titles = [a.get_title() for a in axes]
    # A and B span more than a decade in these draws: drawn on log10 scale; E is not.
    assert "log10(A)" in titles and "log10(B)" in titles and "E" in titles
    for ax in axes:
        prior = [ln for ln in ax.lines if ln.get_label() == "prior"]
        assert len(prior) == 1, ax.get_title()
    # The dashed line is the spec's prior density: E ~ LogNormal(0.5, 0.5).
    ax_e = axes[titles.index("E")]
    line = next(ln for ln in ax_e.lines if ln.get_label() == "prior")
    x, y = (np.asarray(v, dtype=float) for v in line.get_data())
    np.testing.assert_allclose(y, stats.lognorm(s=0.5, scale=math.exp(0.5)).pdf(x), rtol=1e-6)
    # On the log10 scale the density is transformed: p(10^u) 10^u ln 10, for A ~ LogNormal(6, 3).
    ax_a = axes[titles.index("log10(A)")]
    u, ya = (np.asarray(v, dtype=float) for v in next(ln for ln in ax_a.lines if ln.get_label() == "prior").get_data())
    expect = stats.lognorm(s=3.0, scale=math.exp(6.0)).pdf(10**u) * 10**u * math.log(10)
    np.testing.assert_allclose(ya, expect, rtol=1e-6)


def test_pair_log_axes_and_ridge_correlations(fit):
    fig = plots.plot_pair(fit)
    axes = _check_figure(fig, min_axes=10)
    assert len(axes) == 10  # 5 parameters: the lower triangle of a 4 x 4 grid
    xlabels = {a.get_xlabel(): a for a in axes if a.get_xlabel()}
    ylabels = {a.get_ylabel(): a for a in axes if a.get_ylabel()}
    assert xlabels["A"].get_xscale() == "log" and xlabels["B"].get_xscale() == "log"
    assert xlabels["E"].get_xscale() == "linear" and ylabels["alpha"].get_yscale() == "linear"
    texts = [t.get_text() for a in axes for t in a.texts if t.get_text().startswith("r=")]
    assert len(texts) == 10
    high = [float(t[2:]) for t in texts if abs(float(t[2:])) > 0.9]
    assert len(high) == 2  # the A-alpha and B-beta ridges, and only those


def wide_draws(chains: int = 2, draws: int = 200, seed: int = 2) -> dict[str, np.ndarray]:
    """Draws shaped like a posterior from a few dozen small pilots: every parameter spans more than
    a factor 2, so every axis of the pair plot is logarithmic, over one to three decades."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, chains, draws))
    return {
        "E": 1.2 * np.exp(0.3 * z[0]),
        "A": 30.0 * np.exp(0.8 * z[1]),
        "alpha": 0.25 * np.exp(0.3 * z[1] + 0.05 * z[2]),
        "B": 300.0 * np.exp(1.2 * z[3]),
        "beta": 0.36 * np.exp(0.25 * z[3] + 0.05 * z[4]),
        "sigma": 0.03 * np.exp(0.1 * z[5]),
        "drift": 0.01 * rng.standard_normal((chains, draws)),
    }


def _drawn_tick_labels(ax, axis, renderer) -> list:
    """(text, window extent, font size) of the tick labels matplotlib draws on one axis: visible, non-empty, in view."""
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
        label = tick.label1
        if label.get_visible() and label.get_text() and lo <= tick.get_loc() <= hi:
            out.append((label.get_text(), label.get_window_extent(renderer), label.get_fontsize()))
    return out


@pytest.mark.parametrize("draws", [ridge_draws, wide_draws], ids=["ridge", "wide"])
def test_pair_tick_labels_do_not_overlap(runs, draws):
    fig = plots.plot_pair(fit_from_draws("chinchilla", runs, draws()))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    overlaps, labelled = [], 0
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = _drawn_tick_labels(ax, axis, renderer)
            labelled += bool(labels)
            for i, (a, box_a, _) in enumerate(labels):
                overlaps += [
                    (ax.get_xlabel(), ax.get_ylabel(), a, b) for b, box_b, _ in labels[i + 1 :] if box_a.overlaps(box_b)
                ]
            assert len({t[2] for t in labels}) <= 1, labels  # one font size per axis
    assert not overlaps, overlaps
    assert labelled >= 8  # the outer row and column are labelled: 4 x axes and 4 y axes


def test_pair_needs_two_variables(fit):
    with pytest.raises(BayescaleError, match="at least two"):
        plots.plot_pair(fit, ["E"])


def test_unknown_variable_is_named(fit):
    with pytest.raises(BayescaleError, match="gamma"):
        plots.plot_trace(fit, ["gamma"])


# ------------------------------------------------------------------ predictive checks


def test_ppc_shows_every_observed_run(fit, runs):
    fig = plots.plot_ppc(fit)
    a1, a2 = _check_figure(fig, min_axes=2)
    pts = _offsets(a1)
    assert len(pts) == len(runs)
    np.testing.assert_allclose(np.sort(pts[:, 1]), np.sort(runs["loss"].to_numpy()))
    assert a1.get_xscale() == "log" and a1.get_yscale() == "log"
    ratios = _offsets(a2)[:, 1]
    assert np.all(np.abs(ratios - 1) < 0.2)  # observed / replicated median near 1 for a fit at the truth


def test_loo_pit_from_given_values_and_from_fit(fit):
    u = np.linspace(0.01, 0.99, 40)
    fig = plots.plot_loo_pit(fit, u)
    hist_ax, ecdf_ax = _check_figure(fig, min_axes=2)
    from matplotlib.patches import Rectangle

    bars = [p for p in hist_ax.patches if isinstance(p, Rectangle) and p.get_width() < 1]
    assert sum(b.get_height() for b in bars) == len(u)
    assert any(ln.get_label() == "ECDF - uniform" for ln in ecdf_ax.lines)
    fig2 = plots.plot_loo_pit(fit)  # computes checks.loo_pit itself
    _check_figure(fig2, min_axes=2)
    with pytest.raises(BayescaleError):
        plots.plot_loo_pit(fit, [])


# ------------------------------------------------------------------ scaling views


@pytest.mark.parametrize("x", ["C", "N", "D"])
def test_law_runs_bands_and_extrapolation(fit, runs, x):
    fig = plots.plot_law(fit, x)
    ax = _check_figure(fig)[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    pts = _offsets(ax)
    np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(runs[x].to_numpy()))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection) and len(c.get_paths())]
    medians = [ln for ln in ax.lines if ln.get_label() and not ln.get_label().startswith("_")]
    n_ratios = 1 if x == "C" else len(plots.representative_ratios(runs["D"] / runs["N"]))
    assert len(medians) == n_ratios and len(bands) >= 2 * n_ratios
    xmax = max(float(np.max(ln.get_xdata())) for ln in medians)
    factor = {"C": 1000.0, "N": math.sqrt(1000.0), "D": math.sqrt(1000.0)}[x]
    assert xmax >= 0.999 * factor * runs[x].max()
    # The median line is the fit's median prediction: check one point of x = N.
    if x == "N":
        ln = medians[0]
        n0 = float(ln.get_xdata()[-1])
        ratio = plots.representative_ratios(runs["D"] / runs["N"])[0]
        expect = float(fit.predict({"N": n0, "D": ratio * n0}).median())
        assert float(ln.get_ydata()[-1]) == pytest.approx(expect, rel=1e-9)


def test_law_rejects_bad_x(fit):
    with pytest.raises(BayescaleError, match="x must be one of"):
        plots.plot_law(fit, "loss")
    with pytest.raises(BayescaleError, match="extend"):
        plots.plot_law(fit, "C", extend=0.5)


@pytest.mark.parametrize(
    ("plot", "what"),
    [
        (plots.plot_decision, "a Decision"),
        (plots.plot_holdout, "a Validation"),
        (plots.plot_comparison, "a Comparison"),
    ],
)
def test_a_plot_given_a_fit_for_a_result_says_what_it_takes(fit, plot, what):
    with pytest.raises(BayescaleError, match=rf"{plot.__name__} takes {what} \(from bayescale\.\w+\), got Fit"):
        plot(fit)


def test_representative_ratios_thin_to_the_extremes():
    # 5 and 5.1 are one ratio (within 0.05 decades), represented by their geometric middle.
    np.testing.assert_allclose(
        plots.representative_ratios([5, 5.1, 10, 20, 40]), [math.sqrt(5 * 5.1), 10, 20, 40], rtol=1e-6
    )
    many = np.geomspace(1, 1000, 30)
    r = plots.representative_ratios(many, max_ratios=4)
    assert len(r) <= 4 and r.min() == pytest.approx(1.0) and r.max() == pytest.approx(1000.0)


def test_frontier_bands_match_decisions_frontier(fit):
    budgets = np.geomspace(1e20, 1e24, 9)
    fig = plots.plot_frontier(fit, budgets)
    ax_n, ax_d = _check_figure(fig, min_axes=2)
    fr = decisions.frontier(fit, budgets)
    line_n = next(ln for ln in ax_n.lines if ln.get_label().startswith("N_opt"))
    line_d = next(ln for ln in ax_d.lines if ln.get_label().startswith("D_opt"))
    np.testing.assert_allclose(line_n.get_ydata(), fr["N_opt_median"])
    np.testing.assert_allclose(line_d.get_ydata(), fr["D_opt_median"])
    np.testing.assert_allclose(line_n.get_xdata(), budgets)


def test_the_law_against_compute_draws_the_optimal_loss_optimal_prints(fit):
    """The report's figure drew `predict` at the median allocation beside a table of the optimal loss."""
    fig = plots.plot_law(fit, "C", extend=10)
    line = next(ln for ln in fig.axes[0].lines if ln.get_label() == "compute-optimal frontier")
    budgets = np.asarray(line.get_xdata(), dtype=float)
    np.testing.assert_allclose(line.get_ydata(), decisions.frontier(fit, budgets)["loss_opt_median"], rtol=1e-9)
    plt.close(fig)


def test_decision_redraws_the_decisions_draws_and_marks_threshold(fit):
    options = {"small $a$_b": {"N": 5e9, "D": 1e11}, "big": {"N": 2e10, "D": 4e11}}
    dec = bs.decide(options, fit=fit, threshold=2.2)
    fig = plots.plot_decision(dec, fit)
    ax = _check_figure(fig)[0]
    assert "posterior draws" in ax.get_title()
    assert any(np.allclose(ln.get_xdata(), 2.2) for ln in ax.lines)  # the threshold line
    densities = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(densities) == 2
    # The mathtext-looking option name is drawn as text.
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [r"small \$a\$_b", "big"]
    # Without the fit: the table's summary only, still with the threshold.
    fig2 = plots.plot_decision(dec)
    ax2 = _check_figure(fig2)[0]
    assert "summary" in ax2.get_title()
    assert not [c for c in ax2.collections if isinstance(c, PolyCollection)]
    # Draws that do not reproduce the table (another seed) are not shown as densities.
    fig3 = plots.plot_decision(bs.decide(options, fit=fit, threshold=2.2, seed=7), fit)
    assert "summary" in _check_figure(fig3)[0].get_title()


def test_holdout_shows_held_out_runs_against_bands(fit, runs):
    train, test = runs.iloc[:12].reset_index(drop=True), runs.iloc[12:].reset_index(drop=True)
    table = checks.predictive_table(fit, test)
    val = checks.Validation(
        table=table,
        coverage=checks.coverage(table["pit"].to_numpy()),
        mean_log_pred_density=float(table["log_pred_density"].mean()),
        median_abs_rel_error=float(np.median(np.abs(table["rel_error"]))),
        cut=float(train["C"].max()),
        n_train=len(train),
        fit=fit,
    )
    fig = plots.plot_holdout(val)
    a1 = _check_figure(fig, min_axes=2)[0]
    pts = _offsets(a1)
    for y in test["loss"]:
        assert np.any(np.isclose(pts[:, 1], y))
    assert any(np.allclose(ln.get_xdata(), val.cut) for ln in a1.lines)


# ------------------------------------------------------------------ a real fit


@pytest.mark.slow
def test_trace_rank_and_pair_of_a_real_nuts_fit():
    runs = synthetic_runs("chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(5.0, 20.0, 80.0), seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a short run; these tests are about the figures
        fit = bs.fit("chinchilla", runs, seed=0, chains=2, warmup=200, draws=200)
    assert fit.method == "nuts" and "sample_stats" in fit.idata.groups()
    _check_figure(plots.plot_trace(fit), min_axes=12)
    _check_figure(plots.plot_rank(fit), min_axes=6)
    _check_figure(plots.plot_pair(fit), min_axes=10)

"""The content of a report, built from a fit: provenance, summary, diagnostics, figures, decision, validation, runs."""

from __future__ import annotations

import datetime
import json
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

from .. import __version__, plots  # plots before checks: bayescale.plots picks the headless backend before pyplot loads
from .._runs_input import repeated_rows
from .._words import count, restepped_words
from ..checks import ComparisonWarning, coverage, design_warnings, loo, loo_pit
from ..errors import BayescaleError
from ..frontier import frontier
from ._answer import answer_block
from ._elements import (
    _Figure,
    _fixed,
    _Heading,
    _interval,
    _List,
    _num,
    _Para,
    _Pre,
    _Progress,
    _short,
    _Table,
    figure_png,
)
from ._honesty import average_blocks, sensitivity_blocks

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit

#: Multiples of the largest run's compute in the extrapolation table.
EXTRAPOLATION_SCALES = (1.0, 10.0, 100.0, 1000.0)


# ------------------------------------------------------------------ content


def _attrs(fit: Fit) -> dict[str, Any]:
    return dict(getattr(fit.idata, "attrs", {}) or {})


def _versions(attrs: dict[str, Any]) -> str:
    raw = attrs.get("versions")
    if not raw:
        return "-"
    try:
        v = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return str(raw)
    return ", ".join(f"{k} {v[k]}" for k in sorted(v))


def _provenance(fit: Fit, now: datetime.datetime) -> list[Any]:
    a = _attrs(fit)
    spec = fit.spec
    chains, draws = fit.posterior.sizes.get("chain", 1), fit.posterior.sizes.get("draw", 1)
    secs = a.get("sampling_seconds")
    sampling = f"{chains} chains x {draws} draws"
    if secs is not None and math.isfinite(float(secs)):
        sampling += f" in {float(secs):.1f} s"
    device = " / ".join(str(a[k]) for k in ("device", "chain_method", "dtype") if a.get(k))
    rows = [
        ("spec", f"{spec.name} (id {a.get('spec_id', spec.id)})"),
        ("description", spec.description or "-"),
        ("law", f"{spec.law.name}: {spec.law.formula}"),
        ("likelihood", spec.likelihood.family),
        ("spec file", a.get("spec_path") or "-"),
        ("runs", f"{count(len(fit.runs), 'run')}, hash {a.get('runs_hash', '-')}"),
        ("method", str(a.get("method", fit.method))),
        ("seed", str(a.get("seed", fit.seed))),
        ("sampling", sampling + (f" ({device})" if device else "")),
        ("versions", _versions(a)),
        (
            "report written",
            f"{now.strftime('%Y-%m-%d %H:%M:%S')} UTC by bayescale {__version__} (matplotlib {matplotlib.__version__})",
        ),
    ]
    return [
        _Heading("Provenance", "provenance"),
        _Table(("item", "value"), tuple((k, str(v)) for k, v in rows), cls="kv"),
        _Pre(spec.to_toml(), summary="The spec (TOML)"),
    ]


def _summary(fit: Fit, bands: Any) -> list[Any]:
    s = fit.summary()
    cols = list(s.columns)
    header = ("variable", *cols)
    rows = []
    for name, r in s.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c.startswith("ess"):
                cells.append(_num(round(float(v)) if math.isfinite(float(v)) else v, 6))
            elif c == "r_hat":
                cells.append(_fixed(v, 3))
            else:
                cells.append(_num(v, 4))
        rows.append((str(name), *cells))
    out: list[Any] = [
        _Heading("Posterior summary", "summary"),
        _Para(
            f"Law {fit.spec.law.name}: {fit.spec.law.formula}. Mean, sd, median and 90% equal-tailed interval of each parameter."
            + (
                " The drift row is the signed extrapolation drift in log loss per decade of distance from the "
                "runs in (log N, log D) (tau times a standard normal; tau from the spec's per_decade prior, or "
                "learned from leave-future-out splits of the runs when the spec says learned): centred on 0."
                if "drift" in s.index
                else ""
            )
        ),
        _Table(header, tuple(rows), numeric=(False,) + (True,) * len(cols)),
    ]
    out += average_blocks(fit)
    out += _extrapolation(fit, bands)
    return out


def _frontier_bands(fit: Fit) -> Any | None:
    """The compute-optimal frontier at multiples of the largest run's compute, with the optimal loss's band
    (each draw at its own optimum, drift included: what `bayescale optimal` prints); None for a law
    without N and D. Computed once: the table and the answer box read it."""
    if "C" not in fit.runs or not {"N", "D"} <= set(fit.spec.columns):
        return None
    cmax = float(fit.runs["C"].max())
    return frontier(fit, np.array([k * cmax for k in EXTRAPOLATION_SCALES]), ci_probs=[0.9])


def _extrapolation(fit: Fit, bands: Any | None) -> list[Any]:
    """Loss along the compute-optimal frontier at multiples of the largest run's compute."""
    if bands is None:
        return []
    rows = []
    for k, (_, f) in zip(EXTRAPOLATION_SCALES, bands.iterrows()):
        rows.append(
            (
                f"{k:g}x",
                _num(f["C"], 3),
                f"{_num(f['N_opt_median'], 3)} ({_num(f['N_opt_lo90'], 3)} - {_num(f['N_opt_hi90'], 3)})",
                f"{_num(f['D_opt_median'], 3)} ({_num(f['D_opt_lo90'], 3)} - {_num(f['D_opt_hi90'], 3)})",
                _num(f["tokens_per_param_median"], 3),
                _fixed(f["loss_opt_median"]),
                _interval(f["loss_opt_lo90"], f["loss_opt_hi90"]),
            )
        )
    return [
        _Heading("Extrapolation along the compute-optimal frontier", "extrapolation", level=3),
        _Para(
            "Compute-optimal model size N and tokens D (posterior median and 90% interval) at multiples of the "
            "largest run's compute, and the loss at the optimum (each posterior draw at its own optimal split, "
            "as `bayescale optimal` gives it; without run-to-run noise"
            + (", with the spec's extrapolation drift" if fit.spec.extrapolation is not None else "")
            + "). These points follow the fitted law's own optimal split of each budget; `bayescale demo` and "
            "Chinchilla's rule of thumb use D = 20 N instead, which for small pilots can be far from it, so "
            "their losses at the same compute differ from these." + _fresh_tokens_note(fit)
        ),
        _Table(
            ("compute", "C (FLOPs)", "N_opt (90%)", "D_opt (90%)", "tokens/param", "loss median", "loss 90%"),
            tuple(rows),
            numeric=(False,) + (True,) * 6,
        ),
    ]


def _fresh_tokens_note(fit: Fit) -> str:
    """Where the runs repeat data: these allocations train on fresh tokens, which the user may not have."""
    repeated = int(repeated_rows(fit.runs).sum())
    if not repeated:
        return ""
    return (
        f" {repeated} of the runs repeat data (U < D), but these allocations train on"
        " fresh tokens at every budget (U = D): with fewer unique tokens, `bayescale optimal --unique-tokens U`"
        " gives the allocation and loss your data can reach (with a law that reads U)."
    )


def _misfit_blocks(fit: Fit) -> list[Any]:
    """Does the law follow the runs? Patterns in the residuals it cannot express, in words."""
    out: list[Any] = [_Heading("Does the law fit the runs?", "misfit", level=3)]
    try:
        m = fit.misfit()
    except BayescaleError as e:
        return [*out, _Para(f"Not tested: {e}")]
    if m.misfits:
        out.append(
            _Para(
                "The law misfits the runs it was fitted to, so bands beyond them may miss on one side:", cls="problem"
            )
        )
        out.append(_List(tuple(m.messages), cls="problem"))
        out.append(_Para(f"What to do: {m.advice}.", cls="problem"))
    else:
        out.append(_Para(str(m)[:1].upper() + str(m)[1:] + ".", cls="ok"))
    return out


def _diagnostics(fit: Fit, pit: Any, psis: Any) -> list[Any]:
    d = fit.diagnostics()
    out: list[Any] = [_Heading("Diagnostics", "diagnostics")]
    facts = f"Method {d['method']}, {d['chains']} chains x {d['draws']} draws"
    if "max_r_hat" in d:
        facts += (
            f"; max r-hat {d['max_r_hat']:.3f}".replace("r-hat nan", "r-hat n/a (one chain)")
            + f", min bulk ESS {d['min_ess_bulk']:.0f}, min tail ESS {d['min_ess_tail']:.0f}, "
            f"{d['divergences']} divergent transitions, {d['max_tree_depth_hits']} draws at the maximum tree depth"
            f"{restepped_words(d)}."
        )
    else:
        facts += "."
    out.append(_Para(facts))
    if d.get("note"):
        out.append(_Para(str(d["note"])))
    out.append(_Heading("Sampling problems", "problems", level=3))
    if d["problems"]:
        out.append(_List(tuple(str(p) for p in d["problems"]), cls="problem"))
    elif "max_r_hat" in d:
        out.append(
            _Para(
                "No sampling problems: r-hat, effective sample sizes, divergences and tree depth are all within their limits.",
                cls="ok",
            )
        )
    else:
        out.append(_Para("No MCMC statistics to check for this method."))
    out += _misfit_blocks(fit)
    out += sensitivity_blocks(fit)
    out.append(_Heading("Design warnings", "design", level=3))
    warnings_ = design_warnings(fit)
    if warnings_:
        out.append(_List(tuple(str(w) for w in warnings_), cls="warn"))
    else:
        out.append(_Para("No design warnings: the runs vary what the law needs them to vary.", cls="ok"))
    out.append(_Heading("Leave-one-out predictive checks", "loo", level=3))
    if psis is not None:
        out.append(_Para(f"PSIS-LOO: {psis}.", cls="warn" if psis.flagged else ""))
    if pit is not None:
        cov = coverage(np.asarray(pit, dtype=float))
        out.append(
            _Para(
                "LOO-PIT coverage of central intervals (nominal: empirical): "
                + ", ".join(f"{100 * k:g}%: {v:.2f}" for k, v in cov.items())
                + "."
            )
        )
    return out


def _decision_blocks(decision: Any, fig: _Figure | None) -> list[Any]:
    t = decision.table
    pct = f"{100 * decision.ci_prob:g}%"
    header = ["option", "N", "D", "C", "median", f"{pct} interval"]
    if decision.threshold is not None:
        header.append(f"P(loss <= {decision.threshold:g})")
    header += ["VaR", "CVaR", f"risk ({decision.risk_label})", "P(best)", ""]
    rows = []
    for name, r in t.iterrows():
        cells = [
            str(name),
            *(_num(r.get(c), 3) for c in ("N", "D", "C")),
            _fixed(r["median"]),
            _interval(r["lo"], r["hi"]),
        ]
        if decision.threshold is not None:
            cells.append(_fixed(r["p_below"], 2))
        cells += [
            _fixed(r["var"]),
            _fixed(r["cvar"]),
            _fixed(r["risk"]),
            _fixed(r["p_best"], 2),
            "best" if str(name) == str(decision.best) else "",
        ]
        rows.append(tuple(cells))
    out: list[Any] = [
        _Heading("Decision", "decision"),
        _Para(decision.verdict(), cls="verdict"),
        _Table(tuple(header), tuple(rows), numeric=(False,) + (True,) * (len(header) - 2) + (False,)),
    ]
    if decision.expected_utility:
        out.append(
            _Para(
                "Expected utility: " + ", ".join(f"{k}: {_num(v)}" for k, v in decision.expected_utility.items()) + "."
            )
        )
    if fig is not None:
        out.append(fig)
    return out


def _validation_blocks(validation: Any, fig: _Figure | None) -> list[Any]:
    t = validation.table
    cov_rows = tuple((f"{100 * k:g}%", _fixed(v, 2)) for k, v in validation.coverage.items())
    rows = []
    for _, r in t.iterrows():
        rows.append(
            (
                str(r["run_id"]),
                _num(r["C"], 3),
                _fixed(r["observed"]),
                _fixed(r["median"]),
                _interval(r["lo90"], r["hi90"]),
                _fixed(r.get("z"), 2),
                str(r["band"]),
                "yes" if bool(r.get("surprise", False)) else "",
            )
        )
    out: list[Any] = [
        _Heading("Leave-largest-out validation", "validation"),
        _Para(validation.summary()),
        _Table(("central interval", "empirical coverage"), cov_rows, numeric=(False, True)),
        _Table(
            ("run", "C", "observed", "median", "90% interval", "z", "band", "surprise"),
            tuple(rows),
            numeric=(False, True, True, True, True, True, False, False),
        ),
    ]
    if fig is not None:
        out.append(fig)
    return out


def _runs_blocks(fit: Fit) -> list[Any]:
    runs = fit.runs
    extra = [c for c in ("seed", "arch", "notes", "source") if c in runs.columns]
    header = ("run_id", "N", "D", "C", "loss", *extra)
    rows = []
    for _, r in runs.iterrows():
        rows.append(
            (str(r["run_id"]), *(_num(r.get(c), 4) for c in ("N", "D", "C", "loss")), *(_short(r[c]) for c in extra))
        )
    return [
        _Heading("Runs", "runs"),
        _Table(
            header,
            tuple(rows),
            numeric=(False, True, True, True, True) + (False,) * len(extra),
            collapsed=f"The {len(runs)} runs the fit used",
        ),
    ]


# Figures: key, title, caption, and a function of (fit, context) returning a Figure.
_FIGURES: tuple[tuple[str, str, str], ...] = (
    (
        "law_C",
        "Loss against compute",
        "Runs coloured by tokens per parameter; the law's posterior median and 50%/90% bands along the "
        "compute-optimal frontier, 1000x beyond the largest run (shaded: extrapolation).",
    ),
    (
        "law_N",
        "Loss against model size",
        "One band per tokens-per-parameter ratio of the runs, in the runs' colours, extended to 1000x the largest run's compute.",
    ),
    ("law_D", "Loss against training tokens", "As above, against the number of training tokens."),
    (
        "frontier",
        "Compute-optimal allocation",
        "N_opt(C) and D_opt(C): per posterior draw, the split of each budget C = 6ND that minimises the "
        "law's loss; median and 50%/90% bands, runs for reference.",
    ),
    (
        "ppc",
        "Posterior predictive check",
        "Each run's observed loss against its replicated losses (law plus observation noise); right: as a "
        "ratio to the replicated median, to show systematic misfit.",
    ),
    (
        "loo_pit",
        "LOO-PIT calibration",
        "Leave-one-out probability integral transform of each run: uniform when the predictive intervals are "
        "calibrated (grey: the range of a uniform sample of this size).",
    ),
    (
        "posteriors",
        "Posteriors against priors",
        "Posterior densities (median, 90% HDI) with the spec's prior densities dashed; a posterior that looks like its prior was not informed by the runs.",
    ),
    (
        "pair",
        "Pair plot",
        "Joint posterior of the law's parameters with correlations; the A-alpha and B-beta ridges show what the runs cannot separate.",
    ),
    (
        "trace",
        "Trace and rank plots",
        "Per chain: density and rank histogram of each parameter. Chains that agree have overlapping densities and flat rank bars.",
    ),
)


def _figures(fit: Fit, pit: Any, progress: _Progress) -> list[_Figure]:
    makers: dict[str, Callable[[], Any]] = {
        "law_C": lambda: plots.plot_law(fit, "C"),
        "law_N": lambda: plots.plot_law(fit, "N"),
        "law_D": lambda: plots.plot_law(fit, "D"),
        "frontier": lambda: plots.plot_frontier(fit),
        "ppc": lambda: plots.plot_ppc(fit),
        "loo_pit": lambda: plots.plot_loo_pit(fit, pit),
        "posteriors": lambda: plots.plot_posteriors(fit),
        "pair": lambda: plots.plot_pair(fit),
        "trace": lambda: plots.plot_trace(fit),
    }
    has_nd = {"N", "D"} <= set(fit.spec.columns)
    out = []
    for key, title, caption in _FIGURES:
        progress.step(f"figure: {title.lower()}")
        if key == "frontier" and not has_nd:
            continue
        if key == "loo_pit" and pit is None:
            continue
        if key == "pair" and len(fit.spec.law.params) < 2:
            continue
        out.append(_Figure(key, title, caption, figure_png(makers[key]())))
    return out


def _blocks(
    fit: Fit, *, decision: Any, validation: Any, title: str | None, progress: _Progress, decision_seed: int = 0
) -> tuple[str, list[Any]]:
    now = datetime.datetime.now(datetime.UTC)
    title = title or f"bayescale report: {fit.spec.name} on {count(len(fit.runs), 'run')}"
    progress.step("leave-one-out checks")
    try:
        with warnings.catch_warnings():  # a Laplace fit's LOO is said in the answer block's words
            warnings.simplefilter("ignore", ComparisonWarning)
            psis = loo(fit)
            pit = loo_pit(fit)
    except BayescaleError:
        psis = pit = None
    progress.step("the answer, provenance and summary")
    bands = _frontier_bands(fit)
    far = None if bands is None else (EXTRAPOLATION_SCALES[-1], bands.iloc[-1])
    blocks: list[Any] = [answer_block(fit, psis=psis, decision=decision, validation=validation, extrapolation=far)]
    blocks += _provenance(fit, now)
    blocks += _summary(fit, bands)
    blocks += _diagnostics(fit, pit, psis)
    blocks.append(_Heading("Plots", "plots"))
    blocks += _figures(fit, pit, progress)
    if decision is not None:
        progress.step("figure: decision")
        fig = _Figure(
            "decision",
            "Loss of each option",
            "Posterior loss of each option with the threshold (red, dashed), the median, the interval and CVaR.",
            figure_png(plots.plot_decision(decision, fit, seed=decision_seed)),
        )
        blocks += _decision_blocks(decision, fig)
    if validation is not None:
        progress.step("figure: leave-largest-out")
        fig = _Figure(
            "holdout",
            "Held-out runs against their predicted bands",
            "Each held-out run's observed loss against the 90% predictive interval of the fit without it.",
            figure_png(plots.plot_holdout(validation)),
        )
        blocks += _validation_blocks(validation, fig)
    blocks += _runs_blocks(fit)
    return title, blocks


def _n_steps(decision: Any, validation: Any) -> int:
    return 2 + len(_FIGURES) + (decision is not None) + (validation is not None)


__all__ = ["EXTRAPOLATION_SCALES"]

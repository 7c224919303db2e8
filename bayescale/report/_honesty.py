"""Report sections on what the answer rests on besides one law's posterior: the laws of an
average and their weights (:mod:`bayescale.averaging`), and whether the prior decides a parameter
or the extrapolation (:mod:`bayescale.sensitivity`). Rendering only: the numbers come from there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BayescaleError
from ..sensitivity import sensitivity, sensitivity_section
from ._elements import _Heading, _List, _Para, _Table

if TYPE_CHECKING:  # annotations only
    from ..inference import Fit


def is_average(fit: Fit) -> bool:
    return hasattr(fit, "weights_table")


def average_sentence(fit: Fit) -> str:
    """Which laws carry the weight, in one sentence (empty for one law)."""
    if not is_average(fit):
        return ""
    return (
        f"The answer is an {fit.describe()} Parameter tables and the frontier describe the leading law, "
        f"{fit.spec.law.name}."
    )


def average_blocks(fit: Fit) -> list[Any]:
    """The laws of an average: weight, held-out log density and learned drift, one row each."""
    if not is_average(fit):
        return []
    rows = tuple(
        (str(law), f"{r['weight']:.3f}", f"{r['elpd_lfo']:.3f}", str(r["drift"]) or "-")
        for law, r in fit.weights_table().iterrows()
    )
    return [
        _Heading("Which laws carry the weight?", "laws"),
        _Para(
            "Each law was fitted on leave-future-out splits of the runs (below a compute cut, scored on the runs "
            "above it) and weighted by stacking of those held-out predictive densities; the bands mix the laws' "
            "draws by weight. " + average_sentence(fit)
        ),
        _Table(
            ("law", "weight", "held-out log density per run", "learned drift"), rows, numeric=(False, True, True, False)
        ),
    ]


def sensitivity_blocks(fit: Fit) -> list[Any]:
    """Does the prior decide? Power-scaling sensitivity of each parameter, in words."""
    try:
        sec = sensitivity_section(fit)
    except BayescaleError as e:
        return [_Heading("Does the prior decide?", "prior", level=3), _Para(f"Not checked: {e}")]
    out: list[Any] = [_Heading(sec["title"], "prior", level=3), _Para(sec["lead"])]
    out.append(_Table(tuple(sec["columns"]), tuple(tuple(r) for r in sec["rows"]), numeric=(False, True, True, False)))
    if sec["messages"]:
        out.append(_List(tuple(sec["messages"]), cls="problem"))
    if sec["note"]:
        out.append(_Para(sec["note"]))
    return out


def prior_warnings(fit: Fit) -> list[str]:
    """The prior-sensitivity findings, for the answer box."""
    try:
        return [f"Prior: {m}" for m in sensitivity(fit).messages]
    except BayescaleError:
        return []


__all__ = ["average_blocks", "average_sentence", "is_average", "prior_warnings", "sensitivity_blocks"]

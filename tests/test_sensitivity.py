"""Power-scaling prior sensitivity: it flags what the runs cannot inform, spares what they pin down,
and says when the prior decides a prediction, in the API, the CLI and the report's section."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import bayescale as bs
from bayescale import cli
from bayescale.errors import BayescaleError
from bayescale.sensitivity import sensitivity, sensitivity_section

# Single-epoch runs (U = D) carry no information on R_D, the decay of repeated data; the other
# parameters of the data-constrained law are pinned by 15 runs with 1% noise.
TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36, "R_D": 15.0}
REPEATED = {"N": 1e9, "D": 8e10, "U": 1e10}  # 8 epochs: the loss there hangs on R_D
INSIDE = {"N": 1e8, "D": 2e9}  # among the runs


@pytest.fixture(scope="module")
def fit():
    runs = bs.testing.synthetic_runs("data_constrained", TRUTH, sigma=0.01, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PSIS: posterior draws in seconds (Laplace draws are not posterior-shaped, so their
        # likelihood power-scaling would be unreliable).
        return bs.fit("data_constrained", runs, method="psis", seed=0)


def test_flags_what_the_runs_cannot_inform_and_spares_the_rest(fit):
    s = fit.sensitivity()
    by = {q.name: q for q in s.params}
    assert by["R_D"].flagged and by["R_D"].prior > 0.2
    for p in ("E", "A", "B", "alpha", "beta", "sigma"):
        assert not by[p].flagged, (p, by[p])
        assert by[p].prior < 0.05
    assert s.prior_decides == ["R_D"]
    assert any("R_D" in m for m in s.messages)


def test_the_prior_decides_a_prediction_that_depends_on_it(fit):
    s = fit.sensitivity(points=[REPEATED, INSIDE])
    far, near = s.predictions
    assert far.flagged and far.prior >= 0.05
    assert far.message().startswith("The prior decides the loss at N=1e+09, D=8e+10, U=1e+10")
    assert "state a prior you believe" in far.message() and far.shift > 0.002
    assert not near.flagged and near.message() == ""
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["predictions"][0]["message"] == far.message()


def test_fits_saved_without_a_log_prior_group_give_the_same_answer(fit):
    idata = fit.idata.copy()
    del idata.log_prior
    old = bs.Fit(spec=fit.spec, idata=idata, runs=fit.runs, method=fit.method, seed=fit.seed)
    assert old.sensitivity().to_dict() == fit.sensitivity().to_dict()


def test_bad_arguments(fit):
    with pytest.raises(BayescaleError, match="threshold"):
        sensitivity(fit, threshold=1.5)
    with pytest.raises(BayescaleError, match="needs a Fit"):
        sensitivity(object())


def test_report_section_is_plain_data(fit):
    sec = sensitivity_section(fit, points=[REPEATED])
    assert sec["title"] and sec["lead"] and len(sec["columns"]) == 4
    assert [r[0] for r in sec["rows"]][-1].startswith("the loss at N=1e+09")
    assert all(len(r) == 4 and all(isinstance(c, str) for c in r) for r in sec["rows"])
    assert any(m.startswith("The prior decides R_D") or "R_D" in m for m in sec["messages"])


def test_summary_command_reports_it(fit, tmp_path, capsys):
    path = fit.save(tmp_path / "fit.nc")
    assert cli.main(["summary", str(path), "--at", "N=1e9,D=8e10,U=1e10"]) == 0
    err = capsys.readouterr().err
    assert "warning: The prior decides the loss at N=1e+09, D=8e+10, U=1e+10" in err
    assert cli.main(["summary", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [q["name"] for q in doc["sensitivity"]["params"] if q["diagnosis"]]
    assert names == ["R_D"] and np.isfinite(doc["sensitivity"]["noise_floor"]["prior"])


def _chinchilla_fit(name: str, prior: dict, runs) -> bs.Fit:
    spec = bs.load_spec("chinchilla").to_dict()
    spec["priors"][name] = prior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit(bs.load_spec(spec), runs, method="psis", seed=0)


def test_a_prior_on_another_scale_is_a_conflict_and_an_informative_one_is_not():
    """Both sensitivities above the threshold: a conflict only where the posterior sits in the prior's tail."""
    truth = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.28}
    runs = bs.testing.synthetic_runs("chinchilla", truth, sigma=0.003, seed=1)
    # An exponent's prior a factor 4 below the truth: the runs drag alpha into its upper tail.
    wrong = _chinchilla_fit("alpha", {"dist": "LogNormal", "loc": float(np.log(0.08)), "scale": 0.3}, runs)
    a = {q.name: q for q in wrong.sensitivity().params}["alpha"]
    assert a.diagnosis == "prior-data conflict" and a.flagged and a.prior_quantile > 0.975, a
    assert "prior-data conflict" in a.message() and "quantile" in a.message()
    # A prior centred on the truth, about as narrow as the runs' evidence: it informs alpha, nothing to report.
    right = _chinchilla_fit("alpha", {"dist": "LogNormal", "loc": float(np.log(0.34)), "scale": 0.04}, runs)
    s = right.sensitivity()
    a = {q.name: q for q in s.params}["alpha"]
    assert a.prior >= 0.05 and a.diagnosis == "prior informs", a
    assert not a.flagged and a.message() == "" and 0.025 < a.prior_quantile < 0.975 and a.prior < a.likelihood
    assert "alpha" in s.informed and "alpha" not in s.prior_decides and "also informs alpha" in s.summary()
    assert "stated in a unit of loss" not in s.summary()  # said only where E's prior informs the answer


def test_an_informative_prior_on_the_floor_names_its_unit():
    """An E prior that informs the fit is in nats: losses in bits would shift it unseen (issue: bits vs nats)."""
    truth = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.28}
    runs = bs.testing.synthetic_runs("chinchilla", truth, sigma=0.003, seed=1)
    s = _chinchilla_fit("E", {"dist": "LogNormal", "loc": float(np.log(1.7)), "scale": 0.01}, runs).sensitivity()
    assert "E" in s.informed + s.prior_decides
    assert "the prior of E is stated in a unit of loss" in s.summary() and 'scale = "runs"' in s.summary()

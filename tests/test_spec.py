"""Model specs: every bad input gets a SpecError that names the item and what is allowed;
bundled specs round-trip through TOML with the same id."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest

import bayescale as bs
from bayescale.errors import BayescaleError, SpecError
from bayescale.priors import Prior, available_distributions
from bayescale.spec import (
    Likelihood,
    ModelSpec,
    SamplerSettings,
    bundled_specs,
    load_spec,
    spec_from_dict,
)

REPO = Path(__file__).resolve().parents[1]


def base() -> dict:
    """A valid chinchilla spec as plain data (a fresh copy each call)."""
    return copy.deepcopy(
        {
            "name": "t",
            "law": "chinchilla",
            "priors": {
                "E": {"dist": "LogNormal", "loc": 0.5, "scale": 0.5},
                "A": {"dist": "LogNormal", "loc": 6.0, "scale": 3.0},
                "B": {"dist": "LogNormal", "loc": 7.0, "scale": 3.0},
                "alpha": {"dist": "LogNormal", "loc": -1.2, "scale": 0.5},
                "beta": {"dist": "LogNormal", "loc": -1.2, "scale": 0.5},
            },
            "likelihood": {"family": "StudentT", "sigma": {"dist": "HalfNormal", "scale": 0.05}, "df": 4.0},
            "sampler": {"chains": 4, "warmup": 1000, "draws": 1000},
        }
    )


def with_(path: str, value) -> dict:
    """``base()`` with the item at dotted ``path`` set to ``value`` (``...`` deletes it)."""
    d = base()
    *parents, last = path.split(".")
    node = d
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {} if p not in node else {"name": node[p]}
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return d


def test_base_is_valid() -> None:
    spec = load_spec(base())
    assert spec.law is bs.laws.chinchilla
    assert spec.likelihood == Likelihood("StudentT", Prior("HalfNormal", {"scale": 0.05}), 4.0)
    assert spec.sampler.chains == 4 and spec.sampler.target_accept == 0.9


# --------------------------------------------------------------- bad input

BAD = [
    # (id, spec dict, message regex)
    (
        "unknown top-level key",
        dict(base(), prior={}),
        r"spec: unknown key\(s\) \['prior'\]; allowed: \['name', 'description', 'law', 'priors', 'likelihood', 'sampler'.*\]",
    ),
    (
        "unknown sampler key",
        with_("sampler.num_chains", 4),
        r"sampler: unknown key\(s\) \['num_chains'\]; allowed: \[.*'chains'.*'target_accept'",
    ),
    (
        "unknown likelihood key",
        with_("likelihood.nu", 4.0),
        r"likelihood: unknown key\(s\) \['nu'\]; allowed: \['family', 'sigma', 'df'.*\]",
    ),
    (
        "unknown law key",
        with_("law", {"name": "chinchilla", "input": {"N": "N"}}),
        r"law: unknown key\(s\) \['input'\]; allowed: \['name', 'inputs'\]",
    ),
    (
        "unknown law",
        with_("law", "chinchila"),
        r"law.name: unknown law 'chinchila'; registered laws: \[.*'chinchilla'.*'kaplan'",
    ),
    ("missing law", with_("law", ...), r"spec: missing 'law'"),
    ("law not a table", with_("law", 3), r"'law' must be a law name or a table with 'name'"),
    (
        "unknown law input",
        with_("law", {"name": "chinchilla", "inputs": {"S": "N"}}),
        r"law.inputs: \['S'\] are not inputs of law 'chinchilla'; its inputs are \['N', 'D'\]",
    ),
    (
        "law input not a column name",
        with_("law", {"name": "power", "inputs": {"S": 3}}),
        r"law.inputs.S: must name a runs-table column, got 3",
    ),
    (
        "law input is the loss",  # the law would predict the loss from itself
        with_("law", {"name": "power", "inputs": {"S": "loss"}}),
        r"law.inputs.S: 'loss' cannot be a law input \(it is what the law predicts\); name a column such as N, D or C",
    ),
    (
        "law inputs not a table",
        with_("law", {"name": "power", "inputs": "N"}),
        r"law.inputs: must be a table mapping law inputs",
    ),
    (
        "unknown distribution",
        with_("priors.E", {"dist": "LogNormel", "loc": 0.5, "scale": 0.5}),
        r"priors.E: unknown distribution 'LogNormel'; use a numpyro.distributions name: .*LogNormal",
    ),
    (
        "unknown distribution parameter",
        with_("priors.E", {"dist": "LogNormal", "mu": 0.5, "scale": 0.5}),
        r"priors.E: LogNormal has no parameter \['mu'\]; allowed: \['loc', 'scale'\]",
    ),
    (
        "non-numeric parameter",
        with_("priors.E", {"dist": "LogNormal", "loc": "half", "scale": 0.5}),
        r"priors.E: parameter 'loc' of LogNormal must be a finite number, got 'half'",
    ),
    (
        "boolean parameter",
        with_("priors.E", {"dist": "LogNormal", "loc": True, "scale": 0.5}),
        r"parameter 'loc' of LogNormal must be a finite number, got True",
    ),
    (
        "infinite parameter",
        with_("priors.E", {"dist": "LogNormal", "loc": float("inf"), "scale": 0.5}),
        r"parameter 'loc' of LogNormal must be a finite number, got inf",
    ),
    (
        "negative scale",
        with_("priors.E", {"dist": "LogNormal", "loc": 0.5, "scale": -0.5}),
        r"priors.E: invalid LogNormal\{'loc': 0.5, 'scale': -0.5\}: .*scale",
    ),
    ("prior without dist", with_("priors.E", {"loc": 0.5, "scale": 0.5}), r"priors.E: missing 'dist'"),
    ("prior not a table", with_("priors.E", 1.7), r"priors.E: a prior must be a table like"),
    (
        "vector prior",
        with_("priors.E", {"dist": "MultivariateNormal", "loc": 0.0, "covariance_matrix": 1.0}),
        r"priors.E: MultivariateNormal is not a scalar continuous distribution; a prior must be one",
    ),
    (
        "discrete prior",
        with_("priors.E", {"dist": "Poisson", "rate": 2.0}),
        r"priors.E: Poisson is not a scalar continuous distribution; a prior must be one",
    ),
    (
        "factory that is no prior",
        with_("priors.E", {"dist": "Bernoulli", "probs": 0.5}),
        r"priors.E: unknown distribution 'Bernoulli'",
    ),
    (
        "prior for a parameter the law lacks",
        with_("priors.gamma", {"dist": "Normal", "loc": 0, "scale": 1}),
        r"priors: \['gamma'\] are not parameters of law 'chinchilla'; its parameters are \['E', 'A', 'B', 'alpha', 'beta'\]",
    ),
    (
        "missing [priors]",
        with_("priors", ...),
        r"missing \[priors\] table; give one prior per parameter of law 'chinchilla': \['E', 'A', 'B', 'alpha', 'beta'\]",
    ),
    (
        "non-positive prior for positive parameter",
        with_("priors.alpha", {"dist": "Normal", "loc": 0.3, "scale": 0.1}),
        r"priors.alpha: Normal\(loc=0.3, scale=0.1\) allows values <= 0 but 'alpha' must be > 0 in law 'chinchilla'; use a positive distribution",
    ),
    (
        "bad likelihood family",
        with_("likelihood.family", "Cauchy"),
        r"likelihood.family: 'Cauchy' is not supported; use one of \['Normal', 'StudentT'.*\]",
    ),
    ("likelihood not a table", with_("likelihood", "Normal"), r"likelihood: must be a table"),
    (
        "sigma prior not positive",
        with_("likelihood.sigma", {"dist": "Normal", "loc": 0, "scale": 0.05}),
        r"likelihood.sigma: prior Normal\(loc=0, scale=0.05\) allows values <= 0; use a positive distribution such as HalfNormal",
    ),
    (
        "bad sigma prior",
        with_("likelihood.sigma", {"dist": "HalfNormal", "sd": 0.05}),
        r"likelihood.sigma: HalfNormal has no parameter \['sd'\]; allowed: \['scale'\]",
    ),
    ("df zero", with_("likelihood.df", 0), r"likelihood.df: must be a number > 0 or a prior table, got 0"),
    ("df negative", with_("likelihood.df", -3.0), r"likelihood.df: must be a number > 0 or a prior table, got -3.0"),
    (
        "df a string",
        with_("likelihood.df", "four"),
        r"likelihood.df: must be a number > 0 or a prior table, got 'four'",
    ),
    ("df boolean", with_("likelihood.df", True), r"likelihood.df: must be a number > 0 or a prior table, got True"),
    (
        "df prior not positive",
        with_("likelihood.df", {"dist": "Normal", "loc": 4, "scale": 1}),
        r"likelihood.df: prior Normal\(loc=4, scale=1\) allows values <= 0; use e.g. Gamma",
    ),
    (
        "df prior unknown",
        with_("likelihood.df", {"dist": "Gama", "concentration": 2, "rate": 0.1}),
        r"likelihood.df: unknown distribution 'Gama'",
    ),
    ("sampler not a table", with_("sampler", 4), r"sampler: must be a table"),
    ("chains zero", with_("sampler.chains", 0), r"sampler.chains: must be an integer >= 1, got 0"),
    ("chains float", with_("sampler.chains", 2.0), r"sampler.chains: must be an integer >= 1, got 2.0"),
    ("chains boolean", with_("sampler.chains", True), r"sampler.chains: must be an integer >= 1, got True"),
    ("warmup negative", with_("sampler.warmup", -1), r"sampler.warmup: must be an integer >= 0, got -1"),
    ("draws zero", with_("sampler.draws", 0), r"sampler.draws: must be an integer >= 1, got 0"),
    ("draws string", with_("sampler.draws", "1000"), r"sampler.draws: must be an integer >= 1, got '1000'"),
    (
        "max_tree_depth zero",
        with_("sampler.max_tree_depth", 0),
        r"sampler.max_tree_depth: must be an integer >= 1, got 0",
    ),
    (
        "target_accept one",
        with_("sampler.target_accept", 1.0),
        r"sampler.target_accept: must be a number in \(0, 1\), got 1.0",
    ),
    (
        "target_accept zero",
        with_("sampler.target_accept", 0),
        r"sampler.target_accept: must be a number in \(0, 1\), got 0",
    ),
    (
        "target_accept string",
        with_("sampler.target_accept", "high"),
        r"sampler.target_accept: must be a number in \(0, 1\), got 'high'",
    ),
    (
        "dense_mass not bool",
        with_("sampler.dense_mass", "yes"),
        r"sampler.dense_mass: must be true or false, got 'yes'",
    ),
    ("init unknown", with_("sampler.init", "random"), r"sampler.init: 'random' is not one of \['map', 'prior'\]"),
    (
        "chain_method unknown",
        with_("sampler.chain_method", "threads"),
        r"sampler.chain_method: 'threads' is not one of \['auto', 'vectorized', 'parallel', 'sequential'\]",
    ),
    ("device unknown", with_("sampler.device", "tpu"), r"sampler.device: 'tpu' is not one of \['auto', 'cpu', 'gpu'\]"),
    ("extrapolation not a table", with_("extrapolation", 0.02), r"extrapolation: must be a table with per_decade"),
    (
        "extrapolation unknown key",
        with_("extrapolation", {"per_decade": {"dist": "HalfNormal", "scale": 0.02}, "per_run": 1}),
        r"extrapolation: unknown key\(s\) \['per_run'\]; allowed: \['per_decade', 'learned', 'gap_per_decade', 'gap_alike'\]",
    ),
    ("extrapolation without per_decade", with_("extrapolation", {}), r"extrapolation: missing per_decade"),
    (
        "extrapolation prior not positive",
        with_("extrapolation", {"per_decade": {"dist": "Normal", "loc": 0.0, "scale": 0.02}}),
        r"extrapolation.per_decade: Normal\(loc=0, scale=0.02\) allows values < 0; use e.g. HalfNormal",
    ),
    (
        "gap prior not positive",
        with_(
            "extrapolation",
            {"per_decade": {"dist": "HalfNormal", "scale": 0.02}, "gap_per_decade": {"dist": "Normal", "scale": 0.01}},
        ),
        r"extrapolation.gap_per_decade: Normal\(scale=0.01\) allows values < 0; use e.g. LogUniform",
    ),
    (
        "extrapolation bad prior",
        with_("extrapolation", {"per_decade": {"dist": "HalfNormal", "sd": 0.02}}),
        r"extrapolation.per_decade: HalfNormal has no parameter \['sd'\]",
    ),
    ("empty name", with_("name", ""), r"spec: 'name' must be a non-empty string"),
    ("name not a string", with_("name", 3), r"spec: 'name' must be a non-empty string"),
]


@pytest.mark.parametrize("d,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spec(d: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(d)


def test_abstract_base_class_is_no_distribution() -> None:
    with pytest.raises(SpecError, match=r"priors.E: unknown distribution 'Distribution'"):
        load_spec(with_("priors.E", {"dist": "Distribution"}))


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_spec(with_("law", "nope"))
    assert issubclass(SpecError, BayescaleError)


def test_missing_priors_listed_with_defaults() -> None:
    d = base()
    del d["priors"]["alpha"], d["priors"]["B"]
    with pytest.raises(SpecError) as info:
        load_spec(d)
    msg = str(info.value)
    assert "priors: missing prior(s) for ['B', 'alpha'] of law 'chinchilla'" in msg
    # The message shows the law's defaults in TOML, ready to paste into the file.
    assert 'B = {dist = "LogNormal", loc = 7.0, scale = 3.0}' in msg
    assert 'alpha = {dist = "LogNormal", loc = -1.2, scale = 0.5}' in msg
    assert "beta" not in msg.split("defaults are:")[1]


def test_a_spec_that_is_not_utf8_text_or_is_a_folder_is_said(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(SpecError, match=r"not valid TOML \(UTF-8 text\): .*can't decode byte 0xe9"):
        load_spec(latin)
    with pytest.raises(SpecError, match=r"spec file '.*' is a folder, not a TOML file"):
        load_spec(tmp_path)


def test_not_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\nlaw = chinchilla\n[priors\n')
    with pytest.raises(SpecError, match=rf"spec {re.escape(str(path))}: not valid TOML \(UTF-8 text\): "):
        load_spec(path)


def test_missing_file_lists_bundled_specs(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"spec file '.*nope.toml' not found; the bundled specs are .*'chinchilla'.* and 'recommended'$"
    ):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(
        SpecError,
        match=r"spec file 'chinchila' not found; the bundled specs are 'chinchilla', .*'chinchilla_normal', .*'power'",
    ):
        load_spec("chinchila")


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text('law = "chinchilla"\npriorz = 1\n')
    with pytest.raises(SpecError, match=rf"spec {re.escape(str(path))}: unknown key\(s\) \['priorz'\]"):
        load_spec(path)


def test_with_sampler_validates() -> None:
    spec = load_spec("chinchilla")
    assert spec.with_sampler(chains=2).sampler.chains == 2
    with pytest.raises(SpecError, match=r"sampler.draws: must be an integer >= 1, got -5"):
        spec.with_sampler(draws=-5)


def test_prior_object_validates() -> None:
    with pytest.raises(SpecError, match=r"E: invalid HalfNormal\{'scale': 0.0\}"):
        bs.priors.as_prior(Prior("HalfNormal", {"scale": 0.0}), where="E")
    assert "LogNormal" in available_distributions() and "TruncatedNormal" in available_distributions()
    assert "Dirichlet" not in available_distributions() and "Poisson" not in available_distributions()


def test_truncated_normal_factory_is_allowed() -> None:
    d = with_("priors.alpha", {"dist": "TruncatedNormal", "loc": 0.3, "scale": 0.1, "low": 0.0})
    spec = load_spec(d)
    assert spec.priors["alpha"].is_positive()
    assert spec.priors["alpha"].to_numpyro().log_prob(0.3) > 0


# ------------------------------------------------------- round trip, ids


def test_bundled_specs_present() -> None:
    assert {"chinchilla", "chinchilla_normal", "power", "multiplicative", "kaplan"} <= set(bundled_specs())
    # The README's list names every one.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("Bundled (load by path or name") :].split("\n\n")[0]
    assert all(f"`{name}`" in listed for name in bundled_specs()), listed


LAW_SPECS = [name for name in bundled_specs() if "[average]" not in (REPO / "models" / f"{name}.toml").read_text()]


def test_bundled_average_round_trips(tmp_path: Path) -> None:
    spec = load_spec("recommended")
    path = tmp_path / "recommended.toml"
    path.write_text(spec.to_toml())
    again = load_spec(path)
    assert again.id == spec.id and again.model_id == spec.model_id
    assert [m.name for m in again.members] == [m.name for m in spec.members]


@pytest.mark.parametrize("name", LAW_SPECS)
def test_bundled_spec_round_trips(name: str, tmp_path: Path) -> None:
    spec = load_spec(name)
    assert spec.path == str(REPO / "models" / f"{name}.toml") or Path(spec.path).name == f"{name}.toml"
    # Loading by name and by path give the same spec.
    assert load_spec(spec.path).id == spec.id
    # to_toml -> file -> load: same id, same content.
    path = tmp_path / f"{name}.toml"
    path.write_text(spec.to_toml())
    again = load_spec(path)
    assert again.id == spec.id
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    # to_dict -> load: same id.
    assert load_spec(spec.to_dict()).id == spec.id
    # The file says what it is: description, law name.
    assert spec.description
    assert spec.law.name in bs.list_laws()


def test_id_is_stable_and_short() -> None:
    a, b = load_spec(base()), load_spec(base())
    assert a.id == b.id and len(a.id) == 16 and re.fullmatch(r"[0-9a-f]{16}", a.id)
    # The path does not enter the id: the same spec from a file has the same id.
    assert spec_from_dict(base(), path="/somewhere/else.toml").id == a.id


@pytest.mark.parametrize(
    "path,value",
    [
        ("priors.alpha", {"dist": "LogNormal", "loc": -1.2, "scale": 0.4}),
        ("priors.E", {"dist": "Gamma", "concentration": 4.0, "rate": 2.0}),
        ("likelihood.sigma", {"dist": "HalfNormal", "scale": 0.1}),
        ("likelihood.df", 5.0),
        ("likelihood.family", "Normal"),
    ],
)
def test_id_changes_when_the_belief_changes(path: str, value) -> None:
    assert load_spec(with_(path, value)).id != load_spec(base()).id


@pytest.mark.parametrize(
    "path,value,same_model",
    [
        ("priors.alpha", {"dist": "LogNormal", "loc": -1.2, "scale": 0.4}, False),
        ("likelihood.df", 5.0, False),
        ("law", {"name": "chinchilla"}, True),
        ("extrapolation", {"per_decade": {"dist": "HalfNormal", "scale": 0.05}}, False),
        (
            "extrapolation",
            {
                "per_decade": {"dist": "HalfNormal", "scale": 0.02},
                "gap_per_decade": {"dist": "HalfNormal", "scale": 0.01},
            },
            False,
        ),
        ("sampler.draws", 50, True),
        ("sampler.device", "cpu", True),
        ("name", "other", True),
        ("description", "other words", True),
    ],
)
def test_model_id_covers_only_the_belief(path: str, value, same_model: bool) -> None:
    a, b = load_spec(base()), load_spec(with_(path, value))
    assert (a.model_id == b.model_id) is same_model
    assert re.fullmatch(r"[0-9a-f]{16}", a.model_id)
    if path != "law":
        assert a.id != b.id  # the full id sees every change


def test_model_id_sees_law_inputs() -> None:
    d = load_spec("power").to_dict()
    d["law"]["inputs"] = {"S": "N"}
    assert load_spec(d).model_id != load_spec("power").model_id


def test_id_ignores_df_for_normal_likelihood() -> None:
    a = load_spec(with_("likelihood", {"family": "Normal", "df": 3.0}))
    b = load_spec(with_("likelihood", {"family": "Normal", "df": 30.0}))
    assert a.id == b.id
    assert "df" not in a.to_dict()["likelihood"]


def test_df_as_prior_round_trips(tmp_path: Path) -> None:
    spec = load_spec(with_("likelihood.df", {"dist": "Gamma", "concentration": 2.0, "rate": 0.1}))
    assert spec.likelihood.df == Prior("Gamma", {"concentration": 2.0, "rate": 0.1})
    path = tmp_path / "df.toml"
    path.write_text(spec.to_toml())
    assert load_spec(path).id == spec.id
    assert load_spec(path).likelihood.df == spec.likelihood.df


def test_gap_prior_round_trips_and_reaches_an_average_s_members(tmp_path: Path) -> None:
    gap = {"dist": "HalfNormal", "scale": 0.01}
    spec = load_spec(
        with_("extrapolation", {"per_decade": {"dist": "HalfNormal", "scale": 0.02}, "gap_per_decade": gap})
    )
    assert spec.gap_per_decade == Prior("HalfNormal", {"scale": 0.01})
    path = tmp_path / "gap.toml"
    path.write_text(spec.to_toml())
    assert load_spec(path).id == spec.id and load_spec(path).gap_per_decade == spec.gap_per_decade
    assert load_spec(base()).gap_per_decade is None  # the default: discrepancy.GAP_HYPERPRIOR
    avg = load_spec(
        {
            "name": "avg",
            "average": {"laws": ["chinchilla", "kaplan"]},
            "extrapolation": {"per_decade": {"dist": "HalfNormal", "scale": 0.05}, "gap_per_decade": gap},
        }
    )
    assert all(m.gap_per_decade == Prior("HalfNormal", {"scale": 0.01}) for m in avg.members)


def test_power_in_N() -> None:
    spec_c = load_spec("power")
    d = spec_c.to_dict()
    d["law"]["inputs"] = {"S": "N"}
    spec_n = load_spec(d)
    assert spec_c.columns == ("C",) and spec_c.inputs == {"S": "C"}
    assert spec_n.columns == ("N",) and spec_n.inputs == {"S": "N"}
    assert spec_n.id != spec_c.id
    assert spec_n.to_dict()["law"] == {"name": "power", "inputs": {"S": "N"}}
    assert 'inputs = {S = "N"}' in spec_n.to_toml()
    # A law whose inputs are not remapped writes no inputs table.
    assert load_spec("chinchilla").to_dict()["law"] == {"name": "chinchilla"}


def test_power_in_N_from_toml(tmp_path: Path) -> None:
    text = (REPO / "models" / "power.toml").read_text().replace('inputs = {S = "C"}', 'inputs = {S = "N"}')
    assert 'inputs = {S = "N"}' in text
    path = tmp_path / "power_n.toml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.columns == ("N",)


def test_from_law_uses_defaults() -> None:
    spec = ModelSpec.from_law("kaplan")
    assert spec.name == "kaplan"
    assert spec.priors == dict(bs.laws.kaplan.priors)
    assert spec.likelihood == Likelihood()
    assert spec.sampler == SamplerSettings()
    assert load_spec(spec) is spec


def test_law_as_a_string_or_table_is_the_same() -> None:
    assert load_spec(with_("law", "chinchilla")).id == load_spec(with_("law", {"name": "chinchilla"})).id


def test_defaults_when_tables_are_omitted() -> None:
    d = base()
    del d["likelihood"], d["sampler"], d["name"]
    spec = load_spec(d)
    assert spec.name == "chinchilla"
    assert spec.likelihood.family == "StudentT" and spec.likelihood.df == 4.0
    assert spec.sampler == SamplerSettings()


def test_spec_is_frozen() -> None:
    spec = load_spec("chinchilla")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]

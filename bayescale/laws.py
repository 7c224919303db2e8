"""Scaling laws as declared objects, kept in a registry.

A :class:`Law` is data plus one pure function. The function maps parameters on
their natural scale and the *logarithms* of the inputs to the *logarithm* of the
predicted loss, written with ``logaddexp`` so it stays finite and accurate in
float32 at any scale. It takes the array namespace ``xp`` (``jax.numpy`` by
default) so the same declaration compiles to NumPyro and to PyMC.

Built-in laws are instances, not subclasses. Register your own with
:func:`register_law` and it gets fitting, prediction, checks and reports for free::

    import bayescale as bs
    bs.register_law(bs.Law(
        name="chinchilla_shared_exponent",
        formula="L = E + A/N^alpha + B/D^alpha",
        inputs=("N", "D"),
        params=("E", "A", "B", "alpha"),
        log_loss=lambda p, x, xp: bs.laws.logsumexp(
            xp, [xp.log(p["E"]), xp.log(p["A"]) - p["alpha"] * x["N"], xp.log(p["B"]) - p["alpha"] * x["D"]]),
        priors={...},
    ))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _laws_nd
from .errors import LawError
from .priors import Prior, as_prior

#: Columns of a runs table a law may use as inputs. ``U`` is the number of unique training
#: tokens of a run that repeats its data (epochs = D/U); it is optional (see FALLBACK_COLUMNS).
INPUT_COLUMNS = ("N", "D", "C", "U")

#: Optional input columns, and the column that stands in where one is absent or blank: a run
#: with no unique-token count saw each token once, so ``U = D`` (one epoch).
FALLBACK_COLUMNS = {"U": "D"}

LogLossFn = Callable[[Mapping[str, Any], Mapping[str, Any], Any], Any]


def logsumexp(xp: Any, terms: Sequence[Any]) -> Any:
    """Stable ``log(sum(exp(t) for t in terms))`` using only ``xp.logaddexp``."""
    out = terms[0]
    for t in terms[1:]:
        out = xp.logaddexp(out, t)
    return out


@dataclass(frozen=True)
class Law:
    """A declared scaling law.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"chinchilla"``.
    formula : str
        Human-readable formula shown in summaries and reports.
    inputs : tuple of str
        Symbolic inputs of the law. By default each is read from the runs-table
        column of the same name; a spec may map them to other columns
        (``power`` declares one input ``S`` and the spec says whether it is N, D or C).
    params : tuple of str
        Parameter names; they become the posterior's variable names.
    log_loss : callable
        ``log_loss(params, log_inputs, xp) -> log L``. ``params`` maps names to
        values on their natural scale, ``log_inputs`` maps each input to its
        natural logarithm, ``xp`` is the array namespace.
    priors : mapping of str to Prior or dict
        Default priors, one per parameter.
    positive : tuple of str
        Parameters that must be > 0 (their priors must have positive support).
    columns : mapping of str to str
        Default runs-table column for each input (identity when omitted).
    description : str
        A sentence on what the law is and where it comes from.
    identified : callable, optional
        ``identified(params, log_k) -> dict`` giving the identifiable combinations of
        parameters when ``C = k * N * D`` makes the inputs collinear (multiplicative law).
    optimal_N : callable, optional
        ``optimal_N(params, C) -> N_opt``, the closed-form compute-optimal model size at
        budget ``C = 6 N D`` (NumPy broadcasting). Without it, bayescale minimises numerically.
    allocation_exponents : callable, optional
        ``allocation_exponents(params) -> (a, b)``, the closed-form exponents of the optimal
        allocation ``N_opt ∝ C^a``, ``D_opt ∝ C^b`` (``params`` may hold xarray draws).
        Without it, :func:`bayescale.frontier.allocation_exponents` takes local slopes.
    power_terms : mapping of str to tuple, optional
        Power-law terms the sampler may move to the runs' reference scale:
        ``{coefficient: ((exponent, input, sign), ...)}`` declares that the law holds the
        term ``log(coefficient) + sign * exponent * log(input)``. NUTS then samples
        ``log(coefficient) + sign * exponent * mean(log input)`` instead of
        ``log(coefficient)``: the value of the term in the middle of the runs, which the
        data pin down nearly independently of the exponent. The map has unit Jacobian,
        so the posterior is unchanged; it removes the curved ridge between a coefficient
        and its exponent that otherwise causes divergent transitions.
    irreducible : str, optional
        The parameter that is the law's irreducible loss (the floor the loss falls to, in the
        loss's own units). With ``power_terms`` it tells data-scaled priors (``[priors] scale =
        "runs"``, :mod:`bayescale.scaled_priors`) which priors are in units of loss.
    """

    name: str
    formula: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    log_loss: LogLossFn
    priors: Mapping[str, Prior]
    positive: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    identified: Callable[[Mapping[str, Any], float], Mapping[str, Any]] | None = None
    optimal_N: Callable[[Mapping[str, Any], Any], Any] | None = None
    allocation_exponents: Callable[[Mapping[str, Any]], tuple[Any, Any]] | None = None
    power_terms: Mapping[str, tuple[tuple[str, str, float], ...]] = field(default_factory=dict)
    irreducible: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "positive", tuple(self.positive))
        where = f"law {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise LawError("a law needs a non-empty string name")
        if len(set(self.params)) != len(self.params) or not self.params:
            raise LawError(f"{where}: params must be distinct and non-empty, got {self.params}")
        if not self.inputs:
            raise LawError(f"{where}: needs at least one input")
        bad = [p for p in self.positive if p not in self.params]
        if bad:
            raise LawError(f"{where}: positive names {bad} are not parameters {list(self.params)}")
        priors = {k: as_prior(v, where=f"{where}: prior for {k!r}") for k, v in dict(self.priors).items()}
        missing = [p for p in self.params if p not in priors]
        extra = [p for p in priors if p not in self.params]
        if missing or extra:
            raise LawError(
                f"{where}: default priors must cover exactly {list(self.params)}; missing {missing}, unknown {extra}"
            )
        object.__setattr__(self, "priors", priors)
        cols = {i: i for i in self.inputs}
        cols.update(dict(self.columns))
        object.__setattr__(self, "columns", cols)
        object.__setattr__(
            self, "power_terms", _validate_power_terms(where, self.power_terms, self.params, self.inputs)
        )
        if self.irreducible is not None and self.irreducible not in self.positive:
            raise LawError(f"{where}: irreducible {self.irreducible!r} must name a parameter declared positive")

    @property
    def scalable(self) -> tuple[str, ...]:
        """Parameters whose priors data-scaled priors can place on the runs' scale: the irreducible
        loss, and each declared power term's coefficient and exponents (in parameter order)."""
        names = {self.irreducible} if self.irreducible else set()
        for coef, entries in self.power_terms.items():
            names |= {coef, *(e for e, _, _ in entries)}
        return tuple(p for p in self.params if p in names)

    def __hash__(self) -> int:
        return hash(self.name)

    def __call__(self, params: Mapping[str, Any], **inputs: Any) -> np.ndarray:
        """Loss on the natural scale at ``inputs`` (e.g. ``law(p, N=1e9, D=2e10)``).

        Broadcasting follows NumPy rules, so arrays of parameter draws and of
        inputs combine. Inputs not given are computed from ``C = 6 N D``; unique
        tokens ``U`` not given, or NaN, are ``D`` (one epoch, see :data:`FALLBACK_COLUMNS`).
        """
        x = {}
        for name in self.inputs:
            col = self.columns[name]
            x[name] = jnp.log(jnp.asarray(_input_value(col, inputs), dtype=jnp.result_type(float)))
        return np.asarray(jnp.exp(self.log_loss(params, x, jnp)))

    def log_inputs(self, values: Mapping[str, Any], columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        """The log of each input (float64, NumPy) from runs-table values such as ``{"N": N, "D": D}``.

        A column not given is derived as in :meth:`__call__` (``C = 6 N D``; ``U = D``, one epoch).
        ``columns`` maps inputs to columns where a spec overrides the law's defaults.
        """
        cols = {**self.columns, **(columns or {})}
        return {name: np.log(np.asarray(_input_value(cols[name], values), dtype=np.float64)) for name in self.inputs}


def _validate_power_terms(
    where: str, terms: Mapping[str, Any], params: Sequence[str], inputs: Sequence[str]
) -> dict[str, tuple[tuple[str, str, float], ...]]:
    out = {}
    for coef, entries in dict(terms).items():
        entries = tuple((str(e), str(i), float(sign)) for e, i, sign in entries)
        bad = [n for n in [coef] + [e for e, _, _ in entries] if n not in params]
        bad_inputs = [i for _, i, _ in entries if i not in inputs]
        if bad or bad_inputs or coef in [e for e, _, _ in entries]:
            raise LawError(
                f"{where}: power_terms entry {coef!r} must name a coefficient and other parameters as exponents and law inputs {list(inputs)}; got {entries}"
            )
        out[coef] = entries
    return out


def _input_value(col: str, inputs: Mapping[str, Any]) -> Any:
    if col in FALLBACK_COLUMNS:  # optional column: absent or NaN cells take the stand-in's value
        value = np.asarray(inputs[col], dtype=float) if col in inputs else None
        if value is not None and not np.isnan(value).any():
            return value
        standin = _input_value(FALLBACK_COLUMNS[col], inputs)
        return standin if value is None else np.where(np.isnan(value), standin, value)
    if col in inputs:
        return inputs[col]
    if col == "C" and {"N", "D"} <= set(inputs):
        return 6.0 * np.asarray(inputs["N"]) * np.asarray(inputs["D"])
    if col == "D" and {"N", "C"} <= set(inputs):
        return np.asarray(inputs["C"]) / (6.0 * np.asarray(inputs["N"]))
    raise LawError(f"law input column {col!r} is missing; given {sorted(inputs)}")


_REGISTRY: dict[str, Law] = {}


def register_law(law: Law, *, overwrite: bool = False) -> Law:
    """Add a law to the registry so specs can name it.

    Raises
    ------
    LawError
        If a different law of the same name is registered and ``overwrite`` is False.
    """
    if not isinstance(law, Law):
        raise LawError(f"register_law takes a Law, got {type(law).__name__}")
    if law.name in _REGISTRY and _REGISTRY[law.name] is not law and not overwrite:
        raise LawError(f"a law named {law.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[law.name] = law
    return law


#: The modules whose laws bayescale ships (see :func:`is_bundled`).
_BUNDLED_MODULES = ("bayescale.laws", "bayescale._laws_nd")


def is_bundled(law: Law) -> bool:
    """Whether ``law`` is one bayescale ships: registered under its name, its function from
    bayescale's own modules (a user's law may change between processes under the same name)."""
    return _REGISTRY.get(law.name) is law and getattr(law.log_loss, "__module__", "") in _BUNDLED_MODULES


def get_law(name: str | Law) -> Law:
    """The registered law called ``name``.

    Raises
    ------
    LawError
        If no law has that name; the message lists the registered ones.
    """
    if isinstance(name, Law):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise LawError(f"unknown law {name!r}; registered laws: {sorted(_REGISTRY)}") from None


def list_laws() -> list[str]:
    """Names of the registered laws."""
    return sorted(_REGISTRY)


def _p(dist: str, **params: float) -> Prior:
    return Prior(dist, params)


# ---------------------------------------------------------------- built-ins
# Priors are weakly informative for language-model loss in nats per token:
# irreducible loss around 1-3, exponents around 0.05-1, coefficients spanning
# many orders of magnitude (their logs are what the data pin down).

power = register_law(
    Law(
        name="power",
        formula="L = E + a * S^b",
        inputs=("S",),
        params=("E", "a", "b"),
        log_loss=lambda p, x, xp: xp.logaddexp(xp.log(p["E"]), xp.log(p["a"]) + p["b"] * x["S"]),
        priors={
            "E": _p("LogNormal", loc=0.5, scale=0.5),
            "a": _p("LogNormal", loc=3.0, scale=3.0),
            "b": _p("Normal", loc=-0.3, scale=0.3),
        },
        positive=("E", "a"),
        columns={"S": "C"},
        power_terms={"a": (("b", "S", 1.0),)},
        irreducible="E",
        description="Saturating power law in one scale variable S (N, D or C); b < 0 means loss falls with scale.",
    )
)

multiplicative = register_law(
    Law(
        name="multiplicative",
        formula="L = E + a * N^b * D^c * C^d",
        inputs=("N", "D", "C"),
        params=("E", "a", "b", "c", "d"),
        log_loss=lambda p, x, xp: xp.logaddexp(
            xp.log(p["E"]), xp.log(p["a"]) + p["b"] * x["N"] + p["c"] * x["D"] + p["d"] * x["C"]
        ),
        priors={
            "E": _p("LogNormal", loc=0.5, scale=0.5),
            "a": _p("LogNormal", loc=3.0, scale=3.0),
            "b": _p("Normal", loc=-0.1, scale=0.2),
            "c": _p("Normal", loc=-0.1, scale=0.2),
            "d": _p("Normal", loc=0.0, scale=0.1),
        },
        positive=("E", "a"),
        irreducible="E",
        # No power_terms: with C = 6ND the exponents lie on a prior-driven ridge, and moving
        # log(a) to the runs' centre made mixing worse there (r-hat 1.013 vs 1.002, seeds 0-3).
        description=(
            "Multiplicative power law in N, D and C. With C = k*N*D only N_exponent = b + d, "
            "D_exponent = c + d and log_coefficient = log(a) + d*log(k) are identified; the priors decide the rest."
        ),
        identified=lambda p, log_k: {
            "N_exponent": p["b"] + p["d"],
            "D_exponent": p["c"] + p["d"],
            "log_coefficient": np.log(p["a"]) + p["d"] * log_k,
        },
    )
)

chinchilla = register_law(
    Law(
        name="chinchilla",
        formula="L = E + A / N^alpha + B / D^beta",
        inputs=("N", "D"),
        params=("E", "A", "B", "alpha", "beta"),
        log_loss=lambda p, x, xp: logsumexp(
            xp,
            [xp.log(p["E"]), xp.log(p["A"]) - p["alpha"] * x["N"], xp.log(p["B"]) - p["beta"] * x["D"]],
        ),
        priors={
            "E": _p("LogNormal", loc=0.5, scale=0.5),
            "A": _p("LogNormal", loc=6.0, scale=3.0),
            "B": _p("LogNormal", loc=7.0, scale=3.0),
            "alpha": _p("LogNormal", loc=-1.2, scale=0.5),
            "beta": _p("LogNormal", loc=-1.2, scale=0.5),
        },
        positive=("E", "A", "B", "alpha", "beta"),
        power_terms={"A": (("alpha", "N", -1.0),), "B": (("beta", "D", -1.0),)},
        irreducible="E",
        description="Hoffmann et al. 2022 (Chinchilla): irreducible loss plus separate model-size and data terms.",
        # dL/dN = 0 with D = C/(6N): N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)).
        optimal_N=lambda p, C: (
            (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / (p["alpha"] + p["beta"]))
            * (np.asarray(C) / 6.0) ** (p["beta"] / (p["alpha"] + p["beta"]))
        ),
        # so N_opt ∝ C^(beta/(alpha+beta)) and D_opt ∝ C^(alpha/(alpha+beta)).
        allocation_exponents=lambda p: (p["beta"] / (p["alpha"] + p["beta"]), p["alpha"] / (p["alpha"] + p["beta"])),
    )
)

kaplan = register_law(
    Law(
        name="kaplan",
        formula="L = [(Nc/N)^(alpha_N/alpha_D) + Dc/D]^alpha_D",
        inputs=("N", "D"),
        params=("Nc", "Dc", "alpha_N", "alpha_D"),
        log_loss=lambda p, x, xp: (
            p["alpha_D"]
            * xp.logaddexp(
                (p["alpha_N"] / p["alpha_D"]) * (xp.log(p["Nc"]) - x["N"]),
                xp.log(p["Dc"]) - x["D"],
            )
        ),
        priors={
            # Kaplan et al. 2020 report Nc = 8.8e13, Dc = 5.4e13, alpha_N = 0.076, alpha_D = 0.095
            # (their tokenizer and data); these priors are centred there and wide.
            "Nc": _p("LogNormal", loc=32.0, scale=4.0),
            "Dc": _p("LogNormal", loc=31.6, scale=4.0),
            "alpha_N": _p("LogNormal", loc=-2.5, scale=0.7),
            "alpha_D": _p("LogNormal", loc=-2.3, scale=0.7),
        },
        positive=("Nc", "Dc", "alpha_N", "alpha_D"),
        description="Kaplan et al. 2020 joint form in N and D, with no irreducible-loss term.",
    )
)


# N-D laws declared in bayescale._laws_nd (data-constrained with and without N', Farseer, bending Chinchilla).
ND_LAWS: dict[str, Law] = {kw["name"]: register_law(Law(**kw)) for kw in _laws_nd.DECLARATIONS}
data_constrained = ND_LAWS["data_constrained"]
data_constrained_full = ND_LAWS["data_constrained_full"]
farseer = ND_LAWS["farseer"]
farseer_paper_params = _laws_nd.farseer_paper_params  # the paper's a1, b1, a2, b2 from the sampled c, s, k
chinchilla_bending = ND_LAWS["chinchilla_bending"]


# ------------------------------------------------------- learning-curve laws
# One-dimensional laws of the learning-curve extrapolation literature: Alabdulmohsin,
# Neyshabur & Zhai 2022 (M1-M4) and Caballero et al. 2022 (broken neural scaling laws).
# Their one input ``x`` (examples or tokens seen, model width, ...) reads column D by
# default. Their default priors are for a *normalised* curve: x divided by the largest
# fitted x and the loss divided by the loss there, so the last fitted point sits at
# (1, 1); :mod:`bayescale.curves` normalises and undoes it. Exponents are positive
# decay rates (the loss falls with x), as in the papers' constrained fits.
# They live in a dict rather than module attributes: ``CURVE_LAWS[name]``.

#: Newton steps that solve M4's implicit equation (quadratic convergence; 24 is ample).
M4_NEWTON_STEPS = 24


def _softplus(xp: Any, z: Any) -> Any:
    return xp.logaddexp(0.0 * z, z)


def _m4_log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
    """M4: (L - E) / (E + delta - L)^alpha = b x^-c, solved for L.

    With L = E + t delta and s = logit(t) the equation reads
    g(s) = log t - alpha log(1 - t) = r, r = log b - c log x - (1 - alpha) log delta;
    g is increasing and either concave or convex, so Newton's method converges from any
    start. Unrolled steps keep it differentiable (exact gradients at convergence).
    """
    a = p["alpha"]
    log_delta = xp.log(p["delta"])
    r = xp.log(p["b"]) - p["c"] * x["x"] - (1.0 - a) * log_delta

    def newton(s: Any) -> Any:
        sp_pos = _softplus(xp, s)  # -log(1 - t)
        sp_neg = _softplus(xp, -s)  # -log t
        g = a * sp_pos - sp_neg - r
        slope = xp.exp(-sp_pos) + a * xp.exp(-sp_neg)
        return s - g / slope

    s = r
    if xp is jnp:
        # A loop primitive keeps the compiled gradient and Hessian small (24 unrolled steps
        # take minutes to compile); its fixed trip count keeps it differentiable.
        s = jax.lax.fori_loop(0, M4_NEWTON_STEPS, lambda _, v: newton(v), s + 0.0 * a)
    else:
        for _ in range(M4_NEWTON_STEPS):
            s = newton(s)
    log_t = -_softplus(xp, -s)
    return xp.logaddexp(xp.log(p["E"]) + 0.0 * log_t, log_t + log_delta)


def _bnsl_log_loss(breaks: int) -> LogLossFn:
    def log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
        lx = x["x"]
        out = xp.log(p["b"]) - p["c0"] * lx
        log_d = xp.log(p["d1"])
        for i in range(1, breaks + 1):
            if i > 1:
                log_d = log_d + p[f"r{i}"]  # break i sits r_i nats of x after break i-1
            f = p[f"f{i}"]
            out = out - p[f"c{i}"] * f * _softplus(xp, (lx - log_d) / f)
        return xp.logaddexp(xp.log(p["E"]) + 0.0 * out, out)

    return log_loss


_NORMALISED = " Default priors assume x and the loss scaled to 1 at the last fitted point (bayescale.curves does this)."

_BNSL_BREAK2 = {
    "c2": _p("LogNormal", loc=-1.2, scale=1.0),
    "r2": _p("LogNormal", loc=0.7, scale=0.7),
    "f2": _p("LogNormal", loc=-0.7, scale=1.0),
}
_BNSL_PRIORS = {
    "E": _p("LogNormal", loc=-1.0, scale=1.0),
    "b": _p("LogNormal", loc=-1.0, scale=1.0),
    "c0": _p("LogNormal", loc=-1.6, scale=1.0),
    "c1": _p("LogNormal", loc=-1.2, scale=1.0),
    "d1": _p("LogNormal", loc=-2.0, scale=3.0),
    "f1": _p("LogNormal", loc=-0.7, scale=1.0),
}

CURVE_LAWS: dict[str, Law] = {
    law.name: register_law(law)
    for law in (
        Law(
            name="m1",
            formula="L = b * x^-c",
            inputs=("x",),
            params=("b", "c"),
            log_loss=lambda p, x, xp: xp.log(p["b"]) - p["c"] * x["x"],
            priors={"b": _p("LogNormal", loc=0.0, scale=1.0), "c": _p("LogNormal", loc=-1.2, scale=1.0)},
            positive=("b", "c"),
            columns={"x": "D"},
            description="M1 of Alabdulmohsin et al. 2022: a pure power law in one variable x." + _NORMALISED,
        ),
        Law(
            name="m2",
            formula="L = E + b * x^-c",
            inputs=("x",),
            params=("E", "b", "c"),
            log_loss=lambda p, x, xp: xp.logaddexp(xp.log(p["E"]) + 0.0 * x["x"], xp.log(p["b"]) - p["c"] * x["x"]),
            priors={
                "E": _p("LogNormal", loc=-1.0, scale=1.0),
                "b": _p("LogNormal", loc=-1.0, scale=1.0),
                "c": _p("LogNormal", loc=-1.2, scale=1.0),
            },
            positive=("E", "b", "c"),
            columns={"x": "D"},
            description="M2 of Alabdulmohsin et al. 2022: power law plus an irreducible loss E." + _NORMALISED,
        ),
        Law(
            name="m3",
            formula="L = b * (x^-1 + g)^c",
            inputs=("x",),
            params=("b", "g", "c"),
            log_loss=lambda p, x, xp: xp.log(p["b"]) + p["c"] * xp.logaddexp(-x["x"], xp.log(p["g"]) + 0.0 * x["x"]),
            priors={
                "b": _p("LogNormal", loc=0.0, scale=1.0),
                "g": _p("LogNormal", loc=0.0, scale=3.0),
                "c": _p("LogNormal", loc=-1.2, scale=1.0),
            },
            positive=("b", "g", "c"),
            columns={"x": "D"},
            description="M3 of Alabdulmohsin et al. 2022 (after Ghorbani et al. 2021): L -> b g^c as x grows."
            + _NORMALISED,
        ),
        Law(
            name="m4",
            formula="(L - E) / (E + delta - L)^alpha = b * x^-c",
            inputs=("x",),
            params=("E", "delta", "b", "c", "alpha"),
            log_loss=_m4_log_loss,
            priors={
                "E": _p("LogNormal", loc=-1.0, scale=1.0),
                "delta": _p("LogNormal", loc=0.0, scale=1.0),
                "b": _p("LogNormal", loc=0.0, scale=2.0),
                "c": _p("LogNormal", loc=-1.2, scale=1.0),
                "alpha": _p("LogNormal", loc=-0.7, scale=0.7),
            },
            positive=("E", "delta", "b", "c", "alpha"),
            columns={"x": "D"},
            description=(
                "M4 of Alabdulmohsin et al. 2022: the loss moves from E + delta (random guessing, x -> 0) to E "
                "(x -> infinity) along a sigmoid in log x; solved for L by Newton's method." + _NORMALISED
            ),
        ),
        Law(
            name="bnsl1",
            formula="L = E + b x^-c0 (1 + (x/d1)^(1/f1))^(-c1 f1)",
            inputs=("x",),
            params=tuple(_BNSL_PRIORS),
            log_loss=_bnsl_log_loss(1),
            priors=_BNSL_PRIORS,
            positive=tuple(_BNSL_PRIORS),
            columns={"x": "D"},
            description=(
                "Broken neural scaling law of Caballero et al. 2022 with one break at x = d1 (sharpness f1): the "
                "exponent changes from c0 to c0 + c1." + _NORMALISED
            ),
        ),
        Law(
            name="bnsl2",
            formula="L = E + b x^-c0 (1 + (x/d1)^(1/f1))^(-c1 f1) (1 + (x/d2)^(1/f2))^(-c2 f2), d2 = d1 e^r2",
            inputs=("x",),
            params=(*_BNSL_PRIORS, *_BNSL_BREAK2),
            log_loss=_bnsl_log_loss(2),
            priors={**_BNSL_PRIORS, **_BNSL_BREAK2},
            positive=(*_BNSL_PRIORS, *_BNSL_BREAK2),
            columns={"x": "D"},
            description=(
                "Broken neural scaling law of Caballero et al. 2022 with two breaks, ordered (d2 = d1 e^r2 > d1)."
                + _NORMALISED
            ),
        ),
    )
}


__all__ = [
    "CURVE_LAWS",
    "FALLBACK_COLUMNS",
    "INPUT_COLUMNS",
    "ND_LAWS",
    "Law",
    "get_law",
    "list_laws",
    "logsumexp",
    "farseer_paper_params",
    "register_law",
]

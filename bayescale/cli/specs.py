"""``bayescale laws | specs | check-spec``: the registered laws and the bundled or given specs.

Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily: :mod:`bayescale.laws` and
:mod:`bayescale.spec` import JAX, so the command functions import them when they run.
"""

from __future__ import annotations

import argparse

from ._common import _spec_source, _table


def cmd_laws(args: argparse.Namespace) -> int:
    from bayescale.laws import get_law, list_laws

    for i, name in enumerate(list_laws()):
        law = get_law(name)
        inputs = ", ".join(i if law.columns[i] == i else f"{i} (column {law.columns[i]})" for i in law.inputs)
        if i:
            print()
        print(f"{law.name}: {law.formula}")
        print(f"  params: {', '.join(law.params)}")
        print(f"  inputs: {inputs}")
        if law.description:
            print(f"  {law.description}")
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from bayescale.spec import bundled_specs, load_spec

    rows = []
    for name in bundled_specs():
        spec = load_spec(name)
        if hasattr(spec, "members"):  # a law average
            law = "average of " + ", ".join(m.law.name for m in spec.members)
            rows.append([name, law, spec.family, spec.id, spec.description])
            continue
        rows.append([name, spec.law.name, spec.likelihood.family, spec.id, spec.description])
    if not rows:
        print("no bundled specs found")
        return 0
    print(_table(rows, ["name", "law", "likelihood", "id", "description"], right=[False] * 5))
    return 0


def cmd_check_spec(args: argparse.Namespace) -> int:
    from bayescale.spec import load_spec

    spec = load_spec(_spec_source(args.spec))
    print(f"# spec {spec.name!r} is valid; id {spec.id}" + (f" ({spec.path})" if spec.path else ""))
    print(spec.to_toml(), end="")
    return 0


# ------------------------------------------------------------------ parsers


def _laws_parser(p: argparse.ArgumentParser) -> None:
    p.description = "The registered scaling laws with their formula, parameters and inputs."
    p.set_defaults(func=cmd_laws)


def _specs_parser(p: argparse.ArgumentParser) -> None:
    p.description = "The bundled model specs (models/*.toml)."
    p.set_defaults(func=cmd_specs)


def _validate_spec_parser(p: argparse.ArgumentParser) -> None:
    p.description = "Validate SPEC and print its canonical TOML, headed by its id."
    p.add_argument("spec", metavar="SPEC", help="spec TOML file or bundled spec name")
    p.set_defaults(func=cmd_check_spec)


#: Verb -> the function that fills in its parser (description, arguments, command).
PARSERS = {"laws": _laws_parser, "specs": _specs_parser, "check-spec": _validate_spec_parser}

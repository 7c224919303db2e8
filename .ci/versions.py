"""Say which package versions an environment has, against the constraints (lock) file.

    python .ci/versions.py constraints.txt           # print the tested versions and every difference
    python .ci/versions.py --write constraints.txt   # record this environment as the new lock

CI runs the first after installing, so a log always names the versions it tested, and a
dependency that moved since the last green run shows up by name rather than as a mystery.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

#: The packages a reader of a CI log looks for first.
HEADLINE = (
    "jax",
    "jaxlib",
    "numpyro",
    "arviz",
    "xarray",
    "numpy",
    "scipy",
    "pandas",
    "pymc",
    "pytensor",
    "torch",
    "transformers",
    "ray",
    "pytest",
)
#: Installed but not dependencies to pin: the project itself and the installer's own tools.
SKIP = {"bayescale", "pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in SKIP:
            # A local build label (torch's "+cpu") names the wheel, not the release: "==2.13.0" matches it.
            out[name] = dist.version.split("+")[0]
    return out


def read_lock(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonical(name)] = version.strip()
    return out


def write_lock(path: Path, versions: dict[str, str]) -> None:
    head = [
        "# Exact versions of every package CI was last green with (make test and .ci/run install with -c).",
        f"# Python {platform.python_version()} on {platform.machine()}, recorded {datetime.date.today().isoformat()} by `make lock`.",
        "# The user-facing install (pip install bayescale) keeps the ranges in pyproject.toml;",
        "# `make test-latest` ignores this file and names every package that moved since.",
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(head + [f"{n}=={v}" for n, v in sorted(versions.items())]) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lock", type=Path)
    ap.add_argument("--write", action="store_true", help="record this environment as the lock")
    args = ap.parse_args(argv)
    have = installed()
    if args.write:
        write_lock(args.lock, have)
        print(f"wrote {len(have)} pinned versions to {args.lock}")
        return 0
    print(
        f"tested with Python {platform.python_version()}: " + ", ".join(f"{n} {have[n]}" for n in HEADLINE if n in have)
    )
    if not args.lock.is_file():
        print(f"no lock file {args.lock}: these are the newest versions the registry gave today")
        return 0
    lock = read_lock(args.lock)
    moved = [f"{n} {lock[n]} -> {have[n]}" for n in sorted(lock) if n in have and have[n] != lock[n]]
    new = [f"{n} {have[n]}" for n in sorted(have) if n not in lock]
    gone = [n for n in sorted(lock) if n not in have]
    if not (moved or new or gone):
        print(f"every installed package matches {args.lock} ({len(lock)} pinned)")
    for label, items in (
        ("differs from the lock", moved),
        ("not in the lock", new),
        ("in the lock, not installed", gone),
    ):
        if items:
            print(f"{label}: " + "; ".join(items))
    return 0


if __name__ == "__main__":
    sys.exit(main())

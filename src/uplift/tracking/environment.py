"""The exact environment a model was trained in: every distribution the project needs, at its installed version.

:func:`pinned_requirements` walks the installed metadata (:mod:`importlib.metadata`) from the
``uplift`` distribution through every requirement whose marker holds here, and pins each one
reached at the version installed (``name==version``). The logged model lists them as its pip
requirements, so a fresh environment built from the model alone has what training had, numba and
LightGBM included. ``python -m uplift.tracking.environment --extras dev,spark`` prints the same pins
for the project's extras: ``constraints.txt``, which the Makefile installs with; ``--model-runtime``
prints what a logged model of the project lists (:data:`MODEL_RUNTIME` and their requirements).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

__all__ = ["PROJECT", "MODEL_RUNTIME", "pinned_requirements", "runtime_requirements", "declared_requirements",
           "canonical_name"]

PROJECT = "uplift"
"""The distribution name of this project (never pinned: a model carries its code, constraints install it editable)."""

MODEL_RUNTIME = ("mlflow-skinny", "lightgbm", "numba", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy",
                 "pandera", "pydantic", "pyyaml")
"""The distributions a logged model imports to load and predict (their own requirements follow them)."""


def canonical_name(name: str) -> str:
    """PEP 503 normal form: ``PyYAML`` -> ``pyyaml``, ``typing_extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(req: Requirement, extras: tuple[str, ...]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or ("",)))


def pinned_requirements(root: str = PROJECT, extras: tuple[str, ...] = (), *,
                        direct: list[str] | None = None) -> list[str]:
    """``name==version`` for every distribution ``root`` (with ``extras``) needs, sorted; ``root`` itself left out.

    Markers are evaluated for this interpreter and platform, so the pins describe this
    machine's environment (a model is reloaded on the platform it was trained on). ``direct``
    replaces ``root``'s own requirement lines (e.g. read from a ``pyproject.toml`` newer than
    the installed metadata).

    Raises
    ------
    PackageNotFoundError
        ``root`` or one of the distributions it requires is not installed.
    """
    found: dict[str, str] = {}
    expanded: set[tuple[str, tuple[str, ...]]] = set()
    stack = [(root, tuple(extras))]
    if direct is not None:
        expanded.add((canonical_name(root), tuple(extras)))
        stack = [(r.name, tuple(sorted(r.extras))) for r in map(Requirement, direct) if _wanted(r, tuple(extras))]
    while stack:
        name, want = stack.pop()
        key = canonical_name(name)
        if (key, want) in expanded:
            continue
        expanded.add((key, want))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise PackageNotFoundError(f"{name} (required by {root}) is not installed") from None
        found[key] = f"{dist.metadata['Name']}=={dist.version}"
        for line in dist.requires or []:
            req = Requirement(line)
            if _wanted(req, want):
                stack.append((req.name, tuple(sorted(req.extras))))
    found.pop(canonical_name(root), None)
    return sorted(found.values(), key=lambda pin: canonical_name(pin.split("==")[0]))


def runtime_requirements(roots: tuple[str, ...] = MODEL_RUNTIME) -> list[str]:
    """``name==version`` for ``roots`` and everything they need, sorted (what a logged model lists)."""
    pins: dict[str, str] = {}
    for root in roots:
        for pin in [f"{distribution(root).metadata['Name']}=={distribution(root).version}", *pinned_requirements(root)]:
            pins.setdefault(canonical_name(pin.split("==")[0]), pin)
    return sorted(pins.values(), key=lambda pin: canonical_name(pin.split("==")[0]))


def declared_requirements(pyproject: str, extras: tuple[str, ...]) -> list[str]:
    """The project's requirement lines from ``pyproject``: its dependencies and those of ``extras``."""
    import tomllib

    with open(pyproject, "rb") as handle:
        project = tomllib.load(handle)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra(s) {unknown}; valid: {sorted(optional)}")
    return [*project.get("dependencies", []), *(line for e in extras for line in optional[e])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the installed version of everything the project needs.")
    parser.add_argument("--extras", default="", help="comma-separated extras of the project, e.g. dev,spark")
    parser.add_argument("--pyproject",
                        help="read the project's own requirements from this file, not the installed metadata")
    parser.add_argument("--model-runtime", action="store_true",
                        help="what a logged model needs (MODEL_RUNTIME) instead")
    args = parser.parse_args(argv)
    if args.model_runtime:
        sys.stdout.write("\n".join(runtime_requirements()) + "\n")
        return
    extras = tuple(e for e in args.extras.split(",") if e)
    direct = declared_requirements(args.pyproject, extras) if args.pyproject else None
    pins = pinned_requirements(PROJECT, extras, direct=direct) + [f"pip=={distribution('pip').version}"]
    header = (f"# Exact versions the project is tested with (Python {sys.version_info.major}.{sys.version_info.minor}, "
              f"Linux x86_64). Made by `make constraints`:\n# python -m uplift.tracking.environment "
              f"--pyproject pyproject.toml --extras {args.extras}\n")
    sys.stdout.write(header + "\n".join(sorted(pins, key=lambda p: canonical_name(p.split("==")[0]))) + "\n")


if __name__ == "__main__":
    main()

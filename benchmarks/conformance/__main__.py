"""Regenerate every conformance fixture: ``python -m benchmarks.conformance --refs DIR``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import benchmarks.conformance as package


def generators() -> dict[str, str]:
    """Generator module name -> the checkout (a folder of ``--refs``) it needs.

    A generator is a module of this package with a ``CHECKOUT`` constant; it imports its
    reference only inside ``main``, so listing the generators imports no reference code.
    """
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "CHECKOUT"):
            found[info.name] = module.CHECKOUT
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refs", type=Path, required=True, help="folder holding the reference checkouts")
    parser.add_argument("--only", nargs="*", default=None, help="generator modules to run (default: all)")
    args = parser.parse_args(argv)
    found = generators()
    chosen = args.only or sorted(found)
    unknown = sorted(set(chosen) - set(found))
    if unknown:
        parser.error(f"unknown generator(s) {unknown}; known: {sorted(found)}")
    failed = []
    for name in chosen:
        checkout = args.refs / found[name]
        print(f"== {name} ({checkout})", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.conformance.{name}", "--ref", str(checkout)]
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

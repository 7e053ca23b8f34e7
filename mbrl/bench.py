"""Console entries for the benchmark scripts of a source checkout (``benchmarks/`` is not installed).

``mbrl-bench-throughput ARGS`` runs ``benchmarks/throughput.py ARGS`` of the checkout this package
was installed from (``pip install -e .``); benchmarks measure the code of that checkout.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str) -> None:
    path = BENCHMARKS / script
    if not path.exists():
        raise SystemExit(f"{path} not found: benchmarks run from a source checkout installed with `pip install -e .`")
    sys.path.insert(0, str(BENCHMARKS.parent))  # the scripts import ``benchmarks.*`` and the packages beside it
    sys.argv[0] = str(path)
    runpy.run_path(str(path), run_name="__main__")


def throughput() -> None:
    _run("throughput.py")

"""Nearest-neighbour search benchmark: PRDC's lookup with each exact backend of ``mbrl.agents.nn_search``.

    python -m benchmarks.nn_search                                   # 1M points, dim 23, 256 queries
    python -m benchmarks.nn_search --points 200000 --datasets hopper-medium halfcheetah-medium

Points look like PRDC's keys on standardised data: ``beta * N(0, 1)`` state columns (``beta = 2``)
next to ``U(-1, 1)`` action columns. Two query patterns:

* ``prdc``: the state part of a random point with a fresh action, which is what PRDC asks (a batch
  state with the policy's action);
* ``random``: fresh draws from the same distribution, sharing nothing with the points (the worst
  case for a KD-tree).

``--datasets`` adds the ``prdc`` pattern on real datasets' keys (standardised states, raw actions).
Per backend: build time (duplicate removal included) and the median time of one query batch over
``--repeats``, plus each time as a ratio to the fastest backend on that row. Every backend's answers
are checked against the first's (they are exact, with the same tie rule). Writes
``benchmarks/results/nn_search.json`` with the machine, the load and the torch and scipy versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import scipy
import torch
from mbrl.agents.nn_search import KDTreeSearch, MatmulSearch

from mbrl.machine import describe

ROOT = Path(__file__).resolve().parent.parent
BETA = 2.0


def synthetic(n: int, dim: int, act_dim: int, g: torch.Generator) -> torch.Tensor:
    """``[n, dim]`` keys: ``BETA * N(0, 1)`` state columns, then ``U(-1, 1)`` action columns."""
    states = BETA * torch.randn(n, dim - act_dim, generator=g)
    return torch.cat([states, torch.rand(n, act_dim, generator=g) * 2 - 1], dim=1)


def dataset_keys(name: str) -> tuple[torch.Tensor, int]:
    from mbrl.data.loading import load_dataset

    data = load_dataset(name).transitions
    obs = (data.obs - data.obs.mean(dim=0)) / (data.obs.std(dim=0) + 1e-3)
    return torch.cat([BETA * obs, data.act], dim=1), data.act_dim


def prdc_queries(points: torch.Tensor, act_dim: int, b: int, g: torch.Generator) -> torch.Tensor:
    """State part of ``b`` random points with fresh ``U(-1, 1)`` actions."""
    rows = points[torch.randint(len(points), (b,), generator=g)]
    return torch.cat([rows[:, :-act_dim], torch.rand(b, act_dim, generator=g) * 2 - 1], dim=1)


def run_data(
    data: str, points: torch.Tensor, query_sets: dict[str, torch.Tensor], devices: list[str], repeats: int
) -> list[dict]:
    """Build every backend once on ``points`` and time each query set; one result row per (backend, set)."""
    builders = {"kdtree": KDTreeSearch}
    for device in devices:
        builders[f"matmul-{device}"] = lambda p, device=device: MatmulSearch(p.to(device))
    rows, reference = [], {}
    for backend, build in builders.items():
        start = time.perf_counter()
        search = build(points)  # ends on a host read (the max norm / the tree), so the clock is honest on CUDA
        build_s = time.perf_counter() - start
        search.query(next(iter(query_sets.values()))[:8])  # warm-up: allocations, kernel selection
        for pattern, queries in query_sets.items():
            fallbacks_before, times = search.exact_fallbacks, []
            for _ in range(repeats):
                start = time.perf_counter()
                answer = search.query(queries).cpu()
                times.append(time.perf_counter() - start)
            if pattern not in reference:
                reference[pattern] = answer
            elif not torch.equal(answer, reference[pattern]):
                raise AssertionError(f"{backend} disagrees with {rows[0]['backend']} on {data}, {pattern}")
            rows.append(
                {
                    "data": data,
                    "queries": pattern,
                    "backend": backend,
                    "points": len(points),
                    "dim": points.shape[1],
                    "batch": len(queries),
                    "build_s": build_s,
                    "query_s": statistics.median(times),
                    # query rows that needed the brute-force path (ties, or an uncertified matmul ranking)
                    "exact_fallback_rows_per_batch": (search.exact_fallbacks - fallbacks_before) / repeats,
                }
            )
            query_ms = rows[-1]["query_s"] * 1e3
            print(
                f"  {data:<24} {pattern:<7} {backend:<11} build {build_s:6.2f} s  query {query_ms:9.1f} ms", flush=True
            )
    for r in rows:
        same_data = [x for x in rows if x["data"] == r["data"]]
        same_queries = [x for x in same_data if x["queries"] == r["queries"]]
        r["build_ratio"] = r["build_s"] / min(x["build_s"] for x in same_data)
        r["query_ratio"] = r["query_s"] / min(x["query_s"] for x in same_queries)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=23, help="obs_dim + act_dim (halfcheetah: 17 + 6)")
    parser.add_argument("--act-dim", type=int, default=6)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; also the KD-tree's workers")
    parser.add_argument("--datasets", nargs="*", default=[], help="also time PRDC queries on these datasets' keys")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nn_search.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    g = torch.Generator().manual_seed(0)
    load_before = os.getloadavg()
    started = time.perf_counter()

    points = synthetic(args.points, args.dim, args.act_dim, g)
    query_sets = {
        "prdc": prdc_queries(points, args.act_dim, args.queries, g),
        "random": synthetic(args.queries, args.dim, args.act_dim, g),
    }
    results = run_data("random", points, query_sets, devices, args.repeats)
    for name in args.datasets:
        keys, act_dim = dataset_keys(name)
        results += run_data(name, keys, {"prdc": prdc_queries(keys, act_dim, args.queries, g)}, devices, args.repeats)

    report = {
        "machine": {
            **describe(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "threads": args.threads,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "args": {k: os.path.relpath(v, ROOT) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wall_s": time.perf_counter() - started,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()

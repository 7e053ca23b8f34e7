"""CUDA graphs against eager execution on a GPU (``cuda_graphs=true``; docs/gpu.md): agreement and speed.

    python benchmarks/cuda_graphs_check.py --out cuda_graphs.json       # on a CUDA machine, well under a minute

Agent updates: for each case below, two agents built from the same seed take the same batches (HalfCheetah
sizes, 256 rows) under the same CUDA seed, one by ``agent.update``, one through
:class:`mbrl.agents.graphed.GraphedUpdate` (eager warm-up calls, then a captured graph per branch and learning
rate). Reported: the largest relative difference of any tensor of the two agents' states (networks and optimiser
states) and of the last update's metrics, whether they are bit for bit equal, and the rates of both (interleaved
rounds, after the comparison, so the graphs are captured) with the speed-up.

Rollouts are not graphed: on an H200 a graphed 50k-state RAVL rollout ran at half the eager one's speed
(``benchmarks/results/cuda_graphs_h200.json``, made while they were; docs/gpu.md).

Exit status: 0 when everything ran and agreed (relative difference <= ``--tolerance``), 1 otherwise (the JSON
says what), 2 without a CUDA GPU: then one line on stderr and no file.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

OBS_DIM, ACT_DIM, BATCH = 17, 6, 256
BATCHES = 8  # distinct batches, cycled
DEVICE = "cuda"
EVERY_15 = {"actor_lr_schedule_every": 15}


def refuse_without_gpu() -> None:
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
        message = f"needs a CUDA GPU; torch {torch.__version__} ({build} build) sees none, nothing was run"
        print(f"cuda_graphs_check: {message}", file=sys.stderr)
        sys.exit(2)


def synthetic(n: int, device: torch.device, seed: int):
    """``n`` random transitions of HalfCheetah's sizes (actions in [-1, 1], a few terminals)."""
    from mbrl.data.transitions import Transitions

    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=g)
    return Transitions(
        obs,
        torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        obs + 0.1 * torch.randn(n, OBS_DIM, generator=g),
        torch.rand(n, generator=g) < 0.05,
        torch.zeros(n, dtype=torch.bool),
    ).to(device)


def agent_cases() -> dict[str, tuple[str, dict[str, Any], int]]:
    """Case -> (agent, config fields, model rows of the 256): the published sizes of each method."""
    return {
        "sac": ("sac", {"hidden_sizes": (256, 256)}, 243),  # MOPO-like: 5 % real rows
        "edac_n10": ("sac", {"hidden_sizes": (256, 256, 256), "num_critics": 10, "eta": 1.0}, 243),  # RAVL
        "sac_lipschitz": ("sac", {"hidden_sizes": (256, 256), "spectral_norm": True, "adv_target_eps": 0.01}, 243),
        "cql": ("cql", {"with_lagrange": True, "bc_steps": 10}, 0),
        "combo": ("combo", {}, 128),
        # the cosine schedule every 15 updates: a new capture per learning rate (the presets step every 1000)
        "iql_cosine": ("iql", {"actor_lr_schedule": "cosine", "actor_lr_schedule_steps": 300, **EVERY_15}, 0),
        "td3bc": ("td3bc", {}, 0),
        "bc": ("bc", {}, 0),
        "rambo": ("rambo", {"bc_steps": 20, "adv_every": 25, "adv_steps": 5}, 128),
    }


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, bool]:
    """The largest ``max|a - b| / max|a|`` over the floating tensors both hold, and whether all are equal."""
    worst, equal = 0.0, True
    for key, x in a.items():
        y = b[key]
        if not torch.equal(x, y):
            equal = False
        if x.is_floating_point() and x.numel():
            scale = x.abs().max().clamp_min(1e-30)
            worst = max(worst, float((x.double() - y.double()).abs().max() / scale))
    return worst, equal


def flat(state: Any, path: str = "") -> dict[str, torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return {path: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return {k: v for key, value in items for k, v in flat(value, f"{path}/{key}").items()}


def rates(fns: dict[str, Callable[[], int]], rounds: int, min_s: float) -> dict[str, float]:
    """Median units/s of each function over interleaved rounds of at least ``min_s`` seconds."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            torch.cuda.synchronize()
            start, units = time.perf_counter(), 0
            while time.perf_counter() - start < min_s:
                units += fns[name]()
                torch.cuda.synchronize()
            out[name].append(units / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in out.items()}


def check_agent_case(name: str, kw: dict[str, Any], model_rows: int, args, device: torch.device) -> dict[str, Any]:
    from mbrl.agents import AGENTS
    from mbrl.agents.base import AgentSpec
    from mbrl.agents.graphed import GraphedUpdate
    from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

    spec = AgentSpec(OBS_DIM, ACT_DIM, (-1.0,) * ACT_DIM, (1.0,) * ACT_DIM, str(device))
    cls = AGENTS.get(name)
    data = synthetic(4000, device, seed=99)

    def make():
        torch.manual_seed(0)
        agent = cls(spec, cls.Config(**kw))
        if name == "rambo":  # an adversarial phase (eager) between graph replays; the model need not be fitted
            agent.attach(data, GaussianEnsemble(OBS_DIM, ACT_DIM, EnsembleConfig(), device))
        return agent

    batches = [
        (synthetic(BATCH - model_rows, device, 2 * i), synthetic(model_rows, device, 2 * i + 1) if model_rows else None)
        for i in range(BATCHES)
    ]
    eager, graphed = make(), make()
    update = GraphedUpdate(graphed)
    torch.cuda.manual_seed(1)
    for i in range(args.updates):
        expected = eager.update(*batches[i % BATCHES])
    torch.cuda.manual_seed(1)
    for i in range(args.updates):
        got = update(*batches[i % BATCHES])
    state_diff, state_equal = relative_difference(flat(eager.state_dict()), flat(graphed.state_dict()))
    metric_diff, metric_equal = relative_difference(expected, got)
    step = [0]

    def eager_one() -> int:
        eager.update(*batches[step[0] % BATCHES])
        step[0] += 1
        return 1

    def graphed_one() -> int:
        update(*batches[step[0] % BATCHES])
        step[0] += 1
        return 1

    timed = rates({"eager": eager_one, "graphed": graphed_one}, args.rounds, args.round_s)
    worst = max(state_diff, metric_diff)
    return {
        "agent": name,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
        "rows": {"real": BATCH - model_rows, "model": model_rows},
        "updates_compared": args.updates,
        "max_rel_diff_state": state_diff,
        "max_rel_diff_metrics": metric_diff,
        "bitwise_equal": state_equal and metric_equal,
        "agree": math.isfinite(worst) and worst <= args.tolerance,
        "graphs_captured": update.captured,
        "eager_updates_per_s": timed["eager"],
        "graphed_updates_per_s": timed["graphed"],
        "speedup": timed["graphed"] / timed["eager"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("cuda_graphs.json"))
    parser.add_argument("--updates", type=int, default=40, help="updates compared per agent case")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--round-s", type=float, default=0.3, help="seconds per timing round")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest relative difference that agrees")
    parser.add_argument("--only", nargs="*", default=None, help="agent cases to run (default: all)")
    args = parser.parse_args(argv)
    refuse_without_gpu()
    device = torch.device(DEVICE)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tolerance": args.tolerance,
        "agents": {},
    }
    for case, (name, kw, model_rows) in agent_cases().items():
        if args.only is not None and case not in args.only:
            continue
        print(f"[{time.perf_counter() - started:5.1f} s] agent {case}", flush=True)
        try:
            results["agents"][case] = check_agent_case(name, kw, model_rows, args, device)
        except Exception as e:  # recorded, and the next case runs
            results["agents"][case] = {"agent": name, "agree": False, "error": f"{type(e).__name__}: {e}"}
            traceback.print_exc()
    results["wall_s"] = time.perf_counter() - started
    results["all_agree"] = all(r["agree"] for r in results["agents"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)
    print(f"wrote {args.out} ({results['wall_s']:.0f} s)")
    return 0 if results["all_agree"] else 1


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['gpu']}, torch {results['torch']} (CUDA {results['cuda']})")
    head = ("agent", "rel diff state", "metrics", "bitwise", "eager /s", "graphed /s", "x")
    print("{:<15} {:>14} {:>9} {:>8} {:>9} {:>11} {:>6}".format(*head))
    for case, r in results["agents"].items():
        if "error" in r:
            print(f"{case:<15} ERROR {r['error']}")
            continue
        print(
            f"{case:<15} {r['max_rel_diff_state']:>14.2e} {r['max_rel_diff_metrics']:>9.2e} "
            f"{r['bitwise_equal']!s:>8} {r['eager_updates_per_s']:>9.1f} {r['graphed_updates_per_s']:>11.1f} "
            f"{r['speedup']:>6.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())

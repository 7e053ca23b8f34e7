"""Resuming a run with ``cuda_graphs`` switched, on a GPU: does it continue as the uninterrupted run?

    python benchmarks/cuda_graphs_resume_check.py --dataset hopper-medium-replay --out resume.json
    python benchmarks/cuda_graphs_resume_check.py --device cpu --emulate ...   # the plumbing, on a CPU

For each agent, training jobs at ``scale=smoke`` (``--updates`` updates, a checkpoint every quarter) in one
process, one after another:

- ``eager``: the whole run eagerly, the reference;
- ``graphed``: the whole run with ``cuda_graphs=true``;
- ``eager+eager``: half the updates, then ``resume=true`` with ``total_updates`` raised to the whole (the
  control: a run extended at its end continues as the whole run);
- ``eager+graphed`` and ``graphed+eager``: half the updates with one setting, the rest with the other
  (``resume=force``, so the check runs whether or not ``cuda_graphs`` is a resume-safe key; it is one since
  this check passed on an H200).

Each run's final checkpoint (agent networks and optimiser states, the model buffer, the random states) is
compared with ``eager``'s: the largest relative difference of any tensor and whether all are bit for bit equal.
``--emulate`` replays the graphs on :class:`mbrl.testing.EmulatedGraphs` (a CPU rehearsal; it checks the
wiring, not the capture). Exit status: 0 when every run ran and agreed within ``--tolerance``, 1 otherwise,
2 without a CUDA GPU (and no ``--emulate``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: the GPU check's overlay package must win over the tree's mbrl/

from benchmarks.cuda_graphs_check import flat, refuse_without_gpu, relative_difference  # noqa: E402

PARTS = ("agent", "model_buffer", "rng")
# Agents whose update differs in what a resume must carry: SAC-family with a model buffer and a learned
# temperature (MOPO), and a delayed actor with target networks on raw data (TD3+BC).
AGENT_CASES = {"mopo": ["agent=mopo"], "td3bc": ["agent=td3bc", "dynamics=none"]}
RUNS = ("eager", "graphed", "eager+eager", "eager+graphed", "graphed+eager")


def emulate_graphs() -> None:
    """Let ``cuda_graphs=true`` run on a CPU, its graphs replayed by :class:`mbrl.testing.EmulatedGraphs`."""
    import mbrl.agents.graphed

    import mbrl.config
    from mbrl.testing import EmulatedGraphs

    mbrl.config.check_cuda_graphs = lambda cfg, device: None
    mbrl.agents.graphed.CudaGraphs = EmulatedGraphs


def run_case(base: list[str], run: str, updates: int, folder: Path) -> dict[str, Any]:
    """Train ``run`` (a name from ``RUNS``) in ``folder``; the final checkpoint's tensors."""
    from mbrl.train import compose, train

    first, _, second = run.partition("+")
    graphs = {"eager": "false", "graphed": "true"}
    if not second:
        train(compose([*base, f"cuda_graphs={graphs[first]}", f"total_updates={updates}"]), folder)
    else:
        train(compose([*base, f"cuda_graphs={graphs[first]}", f"total_updates={updates // 2}"]), folder)
        resume = "true" if first == second else "force"
        train(compose([*base, f"cuda_graphs={graphs[second]}", f"total_updates={updates}", f"resume={resume}"]), folder)
    checkpoint = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == updates, (run, checkpoint["step"])
    return {part: flat(checkpoint[part]) for part in PARTS}


def check_agent(name: str, overrides: list[str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    base = [
        "scale=smoke",
        f"dataset={args.dataset}",
        f"device={args.device}",
        f"seed={args.seed}",
        "logger.progress=false",
        f"checkpoint_every={args.updates // 4}",
        f"eval_every={args.updates}",
        *overrides,
    ]
    out: dict[str, Any] = {"overrides": base, "runs": {}}
    states: dict[str, dict[str, Any]] = {}
    for run in RUNS:
        t0 = time.time()
        try:
            states[run] = run_case(base, run, args.updates, work / name / run.replace("+", "_then_"))
            out["runs"][run] = {"ok": True, "wall_s": round(time.time() - t0, 1)}
        except Exception as e:  # recorded, and the next run goes on
            trace = traceback.format_exc()[-3000:]
            out["runs"][run] = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": trace}
    reference = states.get("eager")
    for run, state in states.items():
        if reference is None or run == "eager":
            continue
        diffs = {part: relative_difference(reference[part], state[part]) for part in PARTS}
        out["runs"][run] |= {
            "rel_diff": {part: d for part, (d, _) in diffs.items()},
            "bit_for_bit": all(same for _, same in diffs.values()),
        }
    out["agree"] = reference is not None and all(
        r["ok"] and max(r.get("rel_diff", {"": 0.0}).values()) <= args.tolerance for r in out["runs"].values()
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="hopper-medium-replay")
    p.add_argument("--device", default="cuda")
    p.add_argument("--emulate", action="store_true", help="replay on EmulatedGraphs (a CPU rehearsal)")
    p.add_argument("--updates", type=int, default=200, help="the whole run's updates (a checkpoint every quarter)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agents", nargs="+", default=list(AGENT_CASES), choices=list(AGENT_CASES))
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.emulate:
        emulate_graphs()
    else:
        refuse_without_gpu()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        agents = {name: check_agent(name, AGENT_CASES[name], args, Path(tmp)) for name in args.agents}
    results = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "emulated": args.emulate,
        "torch": torch.__version__,
        "dataset": args.dataset,
        "updates": args.updates,
        "tolerance": args.tolerance,
        "wall_s": round(time.time() - t0, 1),
        "agree": all(a["agree"] for a in agents.values()),
        "agents": agents,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name, a in agents.items():
        for run, r in a["runs"].items():
            detail = r.get("error") or ", ".join(f"{k} {v:.1e}" for k, v in r.get("rel_diff", {}).items())
            print(f"{name:6s} {run:14s} {'ok' if r['ok'] else 'FAILED':6s} {r.get('bit_for_bit', '')!s:5s} {detail}")
    print("agree" if results["agree"] else "DISAGREE", f"({results['wall_s']} s)")
    return 0 if results["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""What makes RAMBO's behaviour-cloned starting policy score what it scores: a probe of its warm-up.

RAMBO starts from a behaviour-cloned actor. On hopper-medium-replay OfflineRL-Kit's warm-up scores about twice
ours before any RL update, and its whole run ends near that score, so the warm-up decides the side-by-side
row. Its warm-up differs from ours in three ways; this probe crosses them on our own actor
(``mbrl.nn.TanhGaussianActor``, ``rambo_cpu``'s sizes and initialisation), with nothing else in the run:

- ``loss``: ``nll``, ``-log pi(a|s)`` of the dataset action (ours, and the authors' code), or ``sampled_mse``,
  the squared error of a reparameterised sample (OfflineRL-Kit ``rambo.py:84-86``; ``agent.bc_loss``);
- ``states``: ``raw``, or ``standardised`` by the dataset's mean and std + 1e-3 (both references normalise
  observations, ``run_rambo.py:150, 188``; here the actor's :class:`mbrl.nn.StateStandardiser`, what
  ``agent.normalize_states`` turns on);
- ``batches``: ``random`` rows with replacement (ours), or ``in_order``: each epoch walks the dataset in its
  stored order, because ``rambo.py:76`` shuffles an index array it never uses. A ``medium-replay`` dataset is
  stored in the order its behaviour policy learned, so each epoch ends on the best data.

Each condition trains ``agent.bc_steps`` steps (``in_order``: the nearest whole number of epochs, as the
reference) at ``agent.bc_batch_size`` and ``agent.bc_lr``, then scores the deterministic policy over
``--episodes`` episodes with the evaluation seeds of a run's update 1.

    python benchmarks/rambo_bc_probe.py --dataset hopper-medium-replay --seeds 0 1 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from mbrl.agents.rambo import behaviour_cloning_loss

from mbrl.config import resolve
from mbrl.data.loading import load_dataset
from mbrl.evaluate import evaluate
from mbrl.machine import cpu_name
from mbrl.nn import TanhGaussianActor, fit_state_standardisers
from mbrl.train import compose

RESULTS = Path(__file__).resolve().parent / "results"
CONDITIONS = list(itertools.product(("nll", "sampled_mse"), ("raw", "standardised"), ("random", "in_order")))


def probe(dataset: str, seed: int, loss: str, states: str, batches: str, episodes: int, overrides: tuple) -> dict:
    """One behaviour-cloning warm-up and the score of its deterministic policy."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = resolve(compose(["experiment=rambo_cpu", f"dataset={dataset}", f"seed={seed}", *overrides]))
    agent = cfg.agent
    data = load_dataset(cfg.dataset)
    spec, t = data.spec, data.transitions
    hidden = tuple(agent["hidden_sizes"])
    standardise = states == "standardised"
    actor = TanhGaussianActor(
        spec.obs_dim, spec.act_dim, hidden, spec.act_low, spec.act_high, agent["init"], standardise_states=standardise
    )
    fit_state_standardisers(t.obs, actor)
    obs = t.obs
    opt = torch.optim.Adam(actor.parameters(), lr=agent["bc_lr"])
    n, size = len(obs), agent["bc_batch_size"]
    per_epoch = n // size
    steps = max(1, round(agent["bc_steps"] / per_epoch)) * per_epoch if batches == "in_order" else agent["bc_steps"]
    for step in range(steps):
        if batches == "in_order":
            rows = torch.arange((step % per_epoch) * size, (step % per_epoch + 1) * size)
        else:
            rows = torch.randint(n, (size,))
        value = behaviour_cloning_loss(actor, obs[rows], t.act[rows], loss)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    with torch.no_grad():
        _, log_std = actor._head(obs)
        policy_std = float(log_std.exp().mean())
        res = evaluate(
            lambda o: actor(o, deterministic=True, with_log_prob=False)[0],
            spec.env_id,
            episodes,
            seed=10_000 * (seed + 1) + 1,
            ref_scores=(spec.ref_min_score, spec.ref_max_score),
        )
    return {
        "dataset": dataset,
        "seed": seed,
        "loss": loss,
        "states": states,
        "batches": batches,
        "steps": steps,
        "last_loss": float(value),
        "policy_std": policy_std,
        "score": float(res.normalized.mean()),
    }


def report(rows: list[dict], out: Path) -> None:
    """``out``.json with every row and ``out``.md with the mean score of each condition over the seeds."""
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# RAMBO's behaviour-cloning warm-up: what its starting policy scores",
        "",
        f"`python benchmarks/rambo_bc_probe.py` ({cpu_name()}, torch "
        f"{torch.__version__}). Normalised score of the deterministic policy after the warm-up alone (no RL update), "
        "mean over seeds, then per seed; the policy's mean std over the dataset's states.",
        "",
        "| dataset | loss | states | batches | score | per seed | policy std |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        for loss, states, batches in CONDITIONS:
            got = [
                r
                for r in rows
                if (r["dataset"], r["loss"], r["states"], r["batches"]) == (dataset, loss, states, batches)
            ]
            if not got:
                continue
            scores = [r["score"] for r in got]
            per_seed = ", ".join(f"{s:.1f}" for s in scores)
            std = np.mean([r["policy_std"] for r in got])
            lines.append(
                f"| {dataset} | {loss} | {states} | {batches} | {np.mean(scores):.1f} | {per_seed} | {std:.3f} |"
            )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hopper-medium-replay")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides after experiment=rambo_cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "rambo_bc_probe")
    args = parser.parse_args(argv)
    jobs = [(args.dataset, s, *c, args.episodes, tuple(args.overrides)) for s in args.seeds for c in CONDITIONS]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = []
        for row in pool.map(probe, *zip(*jobs, strict=True)):
            rows.append(row)
            print(json.dumps(row), flush=True)
    report(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

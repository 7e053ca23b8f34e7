"""Value overestimation of finished runs: the critics' Q at start states against the realised return.

    python benchmarks/value_error.py benchmarks/runs/oracle_cpu/*/*/seed0 --episodes 10 --out benchmarks/results/x.json

For each run folder it restores the final checkpoint, runs evaluation episodes with the
deterministic policy and reports, over those episodes, the critics' value of the start state
(``min_j Q_j(s0, pi(s0))``, the pessimistic estimate the agent trains its actor on, and the mean
over critics) beside the discounted return the policy actually obtained from there (gamma of the
agent). A Q far above the realised return is the overestimation the edge-of-reach problem causes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from mbrl.agents import AGENTS
from mbrl.agents.base import AgentSpec
from omegaconf import OmegaConf

from mbrl.checkpoint import load
from mbrl.config import TrainConfig, typed_section
from mbrl.data.loading import load_dataset
from mbrl.evaluate import evaluate


def value_error(run_dir: Path, episodes: int, seed: int = 123) -> dict:
    """Q at the start states vs the discounted return obtained, for one run folder."""
    cfg: TrainConfig = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(run_dir / "config.yaml"))
    )
    name = cfg.agent["name"]
    cls = AGENTS.get(name)
    agent_cfg = typed_section(cfg.agent, f"agent {name!r}", cls.Config)
    spec = load_dataset(cfg.dataset).spec
    agent = cls(AgentSpec(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high), agent_cfg)
    agent.load_state_dict(load(run_dir / "checkpoint.pt")["agent"])
    ref = (spec.ref_min_score, spec.ref_max_score) if spec.ref_min_score is not None else None
    env_id = cfg.eval_env or spec.env_id
    res = evaluate(lambda o: agent.act(o, deterministic=True), env_id, episodes, seed, ref, gamma=agent_cfg.gamma)
    q = agent.q_values(res.start_obs, agent.act(res.start_obs, deterministic=True))  # [N, episodes]
    return {
        "run": str(run_dir),
        "agent": name,
        "dataset": cfg.dataset,
        "dynamics": cfg.dynamics.kind,
        "num_critics": int(q.shape[0]),
        "q_start_min": float(q.min(dim=0).values.mean()),
        "q_start_mean": float(q.mean()),
        "discounted_return": float(res.discounted.mean()),
        "return": float(res.returns.mean()),
        "score": float(res.normalized.mean()) if res.normalized is not None else None,
        "episode_length": float(res.lengths.double().mean()),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [value_error(r, a.episodes) for r in a.runs]
    print("| run | agent | dynamics | Q(s0) min over critics | Q(s0) mean | discounted return | score | length |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['agent']} | {r['dynamics']} | {r['q_start_min']:.1f} | {r['q_start_mean']:.1f} | "
            f"{r['discounted_return']:.1f} | {r['score']:.1f} | {r['episode_length']:.0f} |"
        )
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

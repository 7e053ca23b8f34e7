"""Online SAC in a gymnasium env: trains the behaviour policies behind the built-in datasets.

``mbrl-train-behavior`` runs it; the shipped HalfCheetah bundle came from::

    mbrl-train-behavior --env HalfCheetah-v5 --seed 0 --total-steps 150000 --stop-fraction 0.3334 \
        --out mbrl/data/policies/halfcheetah.pt
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mbrl.agents.base import AgentSpec, make_agent
from mbrl.agents.sac import SACConfig
from mbrl.data.behavior import BehaviorBundle, Snapshot
from mbrl.data.buffer import ReplayBuffer
from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.data.transitions import Transitions
from mbrl.envs import env_family, make_env
from mbrl.evaluate import evaluate


@dataclass
class OnlineConfig:
    env_id: str = "HalfCheetah-v5"
    seed: int = 0
    total_steps: int = 200_000
    start_steps: int = 5_000  # uniform random actions before the first update
    batch_size: int = 256
    buffer_size: int = 1_000_000
    snapshot_every: int = 5_000
    eval_episodes: int = 5
    stop_fraction: float | None = None  # stop once eval return >= this fraction of the expert reference
    hidden_sizes: tuple[int, ...] = (256, 256)
    threads: int = 1


def train_online(cfg: OnlineConfig, out: str | Path, log: Path | None = None) -> BehaviorBundle:
    """Train SAC online, snapshot the actor every ``snapshot_every`` steps, save a bundle at ``out``.

    The medium snapshot is the first whose deterministic evaluation return reaches a third of the
    D4RL expert reference return of the env family (the best snapshot if none does within
    ``total_steps``); the expert one the first reaching 90 % (none if no snapshot does).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env = make_env(cfg.env_id)
    env.action_space.seed(cfg.seed)
    low, high = env.action_space.low, env.action_space.high
    spec = AgentSpec(
        env.observation_space.shape[0], env.action_space.shape[0], tuple(map(float, low)), tuple(map(float, high))
    )
    agent = make_agent("sac", spec, SACConfig(hidden_sizes=cfg.hidden_sizes))
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), spec.obs_dim, spec.act_dim)
    ref_min, ref_max = D4RL_REFERENCE_SCORES[env_family(cfg.env_id)]
    medium_target = ref_min + (ref_max - ref_min) / 3
    expert_target = ref_min + 0.9 * (ref_max - ref_min)

    snapshots: list[Snapshot] = []
    medium_index = expert_index = None
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    log_rows = []
    t0 = time.time()
    for step in range(1, cfg.total_steps + 1):
        if step <= cfg.start_steps:
            action = env.action_space.sample()
        else:
            action = agent.act(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0].numpy()
        next_obs, rew, term, trunc, _ = env.step(action)
        buffer.add(
            Transitions.from_numpy(
                obs=obs[None],
                act=action[None],
                rew=np.array([rew]),
                next_obs=next_obs[None],
                terminated=np.array([term]),
                truncated=np.array([trunc]),
            )
        )
        obs = next_obs
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
        if step > cfg.start_steps:
            agent.update(buffer.sample(cfg.batch_size))
        if step % cfg.snapshot_every == 0:
            result = evaluate(
                lambda o: agent.act(o, deterministic=True), cfg.env_id, cfg.eval_episodes, seed=10_000 + step
            )
            ret = float(result.returns.mean())
            actor_state = {k: v.detach().clone() for k, v in agent.actor.state_dict().items()}
            snapshots.append(Snapshot(step, ret, actor_state))
            if medium_index is None and ret >= medium_target:
                medium_index = len(snapshots) - 1
            if expert_index is None and ret >= expert_target:
                expert_index = len(snapshots) - 1
            row = {"step": step, "eval_return": round(ret, 2), "minutes": round((time.time() - t0) / 60, 2)}
            log_rows.append(row)
            print(row, flush=True)
            if log is not None:
                with open(log, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    w.writeheader()
                    w.writerows(log_rows)
            if cfg.stop_fraction is not None and ret >= ref_min + cfg.stop_fraction * (ref_max - ref_min):
                break
    env.close()
    if medium_index is None and snapshots:
        # The budget ran out below a third of expert: the best snapshot stands in for medium.
        medium_index = max(range(len(snapshots)), key=lambda i: snapshots[i].eval_return)
    bundle = BehaviorBundle(
        env_id=cfg.env_id,
        obs_dim=spec.obs_dim,
        act_dim=spec.act_dim,
        act_low=spec.act_low,
        act_high=spec.act_high,
        hidden_sizes=tuple(cfg.hidden_sizes),
        snapshots=snapshots,
        medium_index=medium_index,
        expert_index=expert_index,
        train_config=asdict(cfg),
    )
    bundle.save(out)
    return bundle


def main(argv: list[str] | None = None) -> None:
    d = OnlineConfig()
    p = argparse.ArgumentParser(description="Train a behaviour-policy bundle with online SAC.")
    p.add_argument("--env", default=d.env_id, help="gymnasium env id, e.g. Hopper-v5")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--total-steps", type=int, default=d.total_steps)
    p.add_argument("--start-steps", type=int, default=d.start_steps)
    p.add_argument("--snapshot-every", type=int, default=d.snapshot_every)
    p.add_argument("--eval-episodes", type=int, default=d.eval_episodes)
    p.add_argument(
        "--stop-fraction",
        type=float,
        default=None,
        help="stop once the evaluation return reaches this fraction of the expert reference",
    )
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden_sizes))
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (.pt)")
    p.add_argument("--log", type=Path, default=None, help="CSV of evaluation returns during training")
    a = p.parse_args(argv)
    cfg = OnlineConfig(
        env_id=a.env,
        seed=a.seed,
        total_steps=a.total_steps,
        start_steps=a.start_steps,
        snapshot_every=a.snapshot_every,
        eval_episodes=a.eval_episodes,
        stop_fraction=a.stop_fraction,
        hidden_sizes=tuple(a.hidden),
        threads=a.threads,
    )
    bundle = train_online(cfg, a.out, a.log)
    print(
        f"wrote {a.out}: {len(bundle.snapshots)} snapshots, medium={bundle.medium_index}, expert={bundle.expert_index}"
    )

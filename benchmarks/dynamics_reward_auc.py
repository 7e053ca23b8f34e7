"""How well MOREC's learned dynamics reward ranks held-out transitions, for given filter settings.

    python benchmarks/dynamics_reward_auc.py --dataset hopper-medium --seed 0 \
        --overrides filter.reward.r1_coef=0.1 --name r1_0.1

Fits (or loads from the cache, as a training run would) the dynamics model and the dynamics reward
of ``experiment=morec_mopo_cpu`` plus ``--overrides``, then measures on the transitions the reward's
fit held out: ROC-AUC of the true next state against a model sample for the same ``(s, a)`` and
against the true next state moved by one sigma of the model's error (``ranking_auc``); and what the
rollout filter does at a rollout's first step when the policy takes the dataset's own actions: the share
of those rows whose best of the ``K`` model candidates scores below the published threshold 0.6 and
below the real transitions' 5 % quantile (the filter would stop them), the chosen ``r_D``'s median, and
the same share for the elites' mean predictions, the candidates without their sampling noise.
It separates the filter's verdict on the model from its verdict on the policy's actions. Appends one
JSON line to ``benchmarks/results/dynamics_reward_auc.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.cache import fit_cached
from mbrl.dynamics.factory import build_dynamics

from mbrl.config import eval_env, resolve
from mbrl.data.loading import load_dataset
from mbrl.data.transitions import Transitions
from mbrl.filters.reward_consistency import (
    PUBLISHED_THRESHOLD,
    DynamicsReward,
    DynamicsRewardConfig,
    RewardConsistencyConfig,
    RewardConsistencyFilter,
)
from mbrl.train import compose

ROOT = Path(__file__).resolve().parent.parent


def first_step_stops(
    reward: DynamicsReward, dynamics: DynamicsModel, real: Transitions, samples_per_elite: int, seed: int
) -> dict[str, float]:
    """The filter's choice (the best ``r_D`` of the model's ``K`` candidates) on up to 2048 of the rows the
    reward's fit held out, at their own actions: the share below 0.6 and below the 5 % quantile of
    ``r_D`` on real transitions, and the chosen ``r_D``'s median; and the share below 0.6 of the best of
    the elites' mean predictions (the candidates without their Gaussian noise)."""
    held = real.index(reward.holdout_split(len(real))[0][:2048])
    best_of = RewardConsistencyFilter(
        RewardConsistencyConfig(samples_per_elite, select="argmax"), reward.obs_dim, reward.act_dim, seed, "cpu"
    )
    best_of.reward = reward
    best = best_of.first_step_scores(dynamics, held, torch.Generator().manual_seed(seed + 7))
    mean, _ = dynamics.predict(held.obs, held.act)  # [E, B, o+1]
    means = held.obs + mean[dynamics.elites][..., :-1].to(held.obs)  # [elites, B, o]
    e = means.shape[0]
    best_mean = reward.score(held.obs.expand(e, -1, -1), held.act.expand(e, -1, -1), means).max(dim=0).values
    return {
        "first_step_mean_below_published": float((best_mean < PUBLISHED_THRESHOLD).float().mean()),
        "first_step_best_below_published": float((best < PUBLISHED_THRESHOLD).float().mean()),
        "first_step_best_below_real_p05": float((best < reward.real_quantile(0.05)).float().mean()),
        "first_step_best_median": float(best.median()),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="hopper-medium")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overrides", nargs="*", default=[], help="training-job overrides, e.g. filter.reward.rounds=20000")
    p.add_argument("--name", default="", help="a label for the line written")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dynamics_reward_auc.jsonl")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = resolve(
        compose([f"dataset={a.dataset}", f"seed={a.seed}", "scale=cpu", "experiment=morec_mopo_cpu", *a.overrides])
    )
    data = load_dataset(cfg.dataset, device="cpu")
    spec, real = data.spec, data.transitions
    real = real.index(~(real.terminated & (real.next_obs == real.obs).all(dim=1)))  # as the training job
    dynamics = build_dynamics(cfg.dynamics.kind, cfg.dynamics, spec, eval_env(cfg, spec), cfg.seed, "cpu")
    fit_cached(dynamics, real, spec.content_hash)
    reward_cfg = DynamicsRewardConfig(**{**dict(cfg.filter["reward"]), "seed": cfg.seed})
    reward = DynamicsReward(spec.obs_dim, spec.act_dim, reward_cfg)
    t0 = time.time()
    fit_cached(reward, real, spec.content_hash, kind="filter_reward_consistency")
    ranking = reward.ranking(real, dynamics, torch.Generator().manual_seed(cfg.seed + 3))
    ranking |= first_step_stops(reward, dynamics, real, cfg.filter["samples_per_elite"], cfg.seed)
    line = {
        "name": a.name,
        "dataset": a.dataset,
        "seed": a.seed,
        "overrides": a.overrides,
        "fit_or_load_s": round(time.time() - t0),
        "snapshots": int(reward.num_snapshots),
        **ranking,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main()

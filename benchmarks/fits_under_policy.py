"""Two fitted dynamics under one policy: our run's fit and OfflineRL-Kit's fit of the same data and seed roll
the same start states with the same policy, and their model rewards are compared step by step.

    python benchmarks/fits_under_policy.py RUN_DIR --reference-fit FIT_DIR --checkout /path/to/OfflineRL-Kit \
        [--starts 5000] [--horizon 5] [--out x.json]

``RUN_DIR`` is a finished run of ours (a side-by-side ``combo``/``mopo``/``mobile`` run: its checkpoint holds the
agent and its fit); ``FIT_DIR`` is the reference's saved ``EnsembleDynamics`` (``<runs>/<dataset>/_fits/
reference/seed<k>/offlinerlkit-<digest>``). The policies: the run's final policy sampling its actions (as the
rollouts do), its mean action, and uniform random actions. Matching fits give matching rewards here; the
side-by-side's ``score-fits`` compares them on the data's own rows, this where a policy takes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import reference_drivers as drivers  # noqa: E402
from benchmarks.value_error import restore  # noqa: E402


def mean_rewards(step: Callable[[torch.Tensor, torch.Tensor], tuple], policy, starts: torch.Tensor, horizon: int):
    """Mean model reward at each of ``horizon`` steps of rolling ``starts [B, o]`` with ``policy``."""
    obs, out = starts, []
    for _ in range(horizon):
        next_obs, reward = step(obs, policy(obs))
        out.append(float(reward.mean()))
        obs = next_obs.float()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--reference-fit", type=Path, required=True)
    p.add_argument("--checkout", type=Path, required=True, help="OfflineRL-Kit")
    p.add_argument("--starts", type=int, default=5000)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    revision = drivers.import_offlinerlkit(a.checkout)
    cfg, agent, model, data, _ = restore(a.run)
    # the reference's ensemble of the run's sizes; the run's agent keys that FIXED checks are passed as they were
    fixed = [f"{k}={cfg.agent[k.split('.')[1]]}" for k in drivers.FIXED[cfg.agent["name"]] if k.startswith("agent.")]
    job = drivers.load_job(cfg.agent["name"], cfg.dataset, cfg.seed, fixed)
    kit = drivers.kit_dynamics(job, None)
    kit.load(str(a.reference_fit))
    gen = torch.Generator().manual_seed(a.seed)
    starts = data.transitions.obs[torch.randint(len(data.transitions), (a.starts,), generator=gen)]

    def ours(obs: torch.Tensor, act: torch.Tensor) -> tuple:
        s = model.sample(obs, act, gen, member_stats=False)
        return s.next_obs, s.reward

    def reference(obs: torch.Tensor, act: torch.Tensor) -> tuple:
        next_obs, reward, _, _ = kit.step(obs.numpy(), act.numpy())
        return torch.as_tensor(next_obs), torch.as_tensor(reward)

    act_dim = data.spec.act_dim
    policies = {
        "policy": agent.act,
        "policy_mean": lambda o: agent.act(o, deterministic=True),
        "uniform": lambda o: torch.rand(o.shape[0], act_dim, generator=gen) * 2 - 1,
    }
    rows = {}
    for name, policy in policies.items():
        np.random.seed(a.seed)
        rows[name] = {side: mean_rewards(step, policy, starts, a.horizon) for side, step in
                      (("ours", ours), ("reference", reference))}  # fmt: skip
        print(f"{name}: " + "; ".join(f"{s} {np.round(v, 3).tolist()}" for s, v in rows[name].items()))
    if a.out:
        a.out.write_text(json.dumps({"run": str(a.run), "reference": revision, "rewards": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

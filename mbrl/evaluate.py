"""Vectorised policy evaluation in a gymnasium env: raw and normalised per-episode returns.

Each episode also reports its start state and its discounted return from there, so a critic's
value of the start state can be checked against what the policy really obtains (value
overestimation, the symptom of the edge-of-reach problem).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mbrl.data.scores import ScoreSummary, normalized_scores, summarize
from mbrl.envs import make_vector_env
from mbrl.torch_utils import one_thread

Policy = Callable[[torch.Tensor], torch.Tensor]  # obs [B, obs_dim] -> action [B, act_dim]


@dataclass(frozen=True)
class EvalResult:
    """``returns [episodes]`` raw, ``normalized [episodes]`` or None without reference scores,
    ``lengths [episodes]``, ``start_obs [episodes, obs_dim]`` and ``discounted [episodes]``, the
    return discounted by ``gamma`` from the start state."""

    returns: torch.Tensor
    lengths: torch.Tensor
    normalized: torch.Tensor | None
    start_obs: torch.Tensor
    discounted: torch.Tensor

    def summary(self) -> dict[str, float]:
        out = {
            "return_mean": float(self.returns.double().mean()),
            "return_std": float(self.returns.double().std(unbiased=False)),
        }
        if self.normalized is not None:
            s: ScoreSummary = summarize(self.normalized)
            out.update(score_mean=s.mean, score_std=s.std, score_ci_low=s.ci_low, score_ci_high=s.ci_high)
        return out


@torch.no_grad()
def evaluate(
    policy: Policy,
    env_id: str,
    num_episodes: int = 10,
    seed: int = 0,
    ref_scores: tuple[float, float] | None = None,
    device: str | torch.device = "cpu",
    max_parallel: int = 10,
    gamma: float = 0.99,
) -> EvalResult:
    """Run ``num_episodes`` full episodes of ``policy``, up to ``max_parallel`` at a time.

    Episode ``i`` resets with seed ``seed + i``, so results do not depend on ``max_parallel``.
    Pass a deterministic policy (e.g. ``lambda o: agent.act(o, deterministic=True)``) for the
    usual evaluation protocol.
    """
    with one_thread():
        returns, lengths, starts, discounted = _run_episodes(
            policy, env_id, num_episodes, seed, device, max_parallel, gamma
        )
    ret = torch.tensor(returns, dtype=torch.float64)
    norm = normalized_scores(ret, *ref_scores) if ref_scores is not None else None
    start_obs = torch.as_tensor(np.concatenate(starts), dtype=torch.float32)
    return EvalResult(ret, torch.tensor(lengths), norm, start_obs, torch.tensor(discounted, dtype=torch.float64))


def _run_episodes(
    policy: Policy,
    env_id: str,
    num_episodes: int,
    seed: int,
    device: str | torch.device,
    max_parallel: int,
    gamma: float,
) -> tuple[list[float], list[int], list[np.ndarray], list[float]]:
    returns: list[float] = []
    lengths: list[int] = []
    starts: list[np.ndarray] = []
    discounted: list[float] = []
    for start in range(0, num_episodes, max_parallel):
        n = min(max_parallel, num_episodes - start)
        envs = make_vector_env(env_id, n)
        try:
            obs, _ = envs.reset(seed=[seed + start + i for i in range(n)])
            starts.append(obs.copy())
            ep_ret = np.zeros(n)
            ep_disc = np.zeros(n)
            ep_len = np.zeros(n, dtype=np.int64)
            alive = np.ones(n, dtype=bool)
            while alive.any():
                action = policy(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
                obs, rew, term, trunc, _ = envs.step(action)
                # Sub-envs that already finished auto-reset on this step; their data is ignored.
                ep_ret += np.where(alive, rew, 0.0)
                ep_disc += np.where(alive, gamma**ep_len * rew, 0.0)
                ep_len += alive
                alive &= ~(term | trunc)
        finally:
            envs.close()
        returns += ep_ret.tolist()
        lengths += ep_len.tolist()
        discounted += ep_disc.tolist()
    return returns, lengths, starts, discounted

"""Vectorised policy evaluation in a gymnasium env: raw and normalised per-episode returns.

Each episode also reports its start state and its discounted return from there, so a critic's
value of the start state can be checked against what the policy really obtains (value
overestimation, the symptom of the edge-of-reach problem). With ``record=True`` every step of every
episode comes back as :class:`~mbrl.data.transitions.Transitions`, for checking critics and models
along the policy's own states (``mbrl.diagnostics.on_policy_errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mbrl.data.scores import ScoreSummary, normalized_scores, summarize
from mbrl.data.transitions import Transitions
from mbrl.envs import make_vector_env
from mbrl.torch_utils import one_thread

Policy = Callable[[torch.Tensor], torch.Tensor]  # obs [B, obs_dim] -> action [B, act_dim]


@dataclass(frozen=True)
class EvalResult:
    """``returns [episodes]`` raw, ``normalized [episodes]`` or None without reference scores,
    ``lengths [episodes]``, ``start_obs [episodes, obs_dim]`` and ``discounted [episodes]``, the
    return discounted by ``gamma`` from the start state. ``steps`` (only when recorded): every step,
    episode after episode, ``episode_id`` the episode's index; an episode's last row is ``terminated``
    or ``truncated`` (time limit)."""

    returns: torch.Tensor
    lengths: torch.Tensor
    normalized: torch.Tensor | None
    start_obs: torch.Tensor
    discounted: torch.Tensor
    steps: Transitions | None = None

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
    record: bool = False,
) -> EvalResult:
    """Run ``num_episodes`` full episodes of ``policy``, up to ``max_parallel`` at a time.

    Episode ``i`` resets with seed ``seed + i``, so results do not depend on ``max_parallel``.
    Pass a deterministic policy (e.g. ``lambda o: agent.act(o, deterministic=True)``) for the
    usual evaluation protocol. ``record=True`` also returns every step (``EvalResult.steps``, on ``device``).
    """
    with one_thread():
        returns, lengths, starts, discounted, steps = _run_episodes(
            policy, env_id, num_episodes, seed, device, max_parallel, gamma, record
        )
    ret = torch.tensor(returns, dtype=torch.float64)
    norm = normalized_scores(ret, *ref_scores) if ref_scores is not None else None
    start_obs = torch.as_tensor(np.concatenate(starts), dtype=torch.float32)
    return EvalResult(ret, torch.tensor(lengths), norm, start_obs, torch.tensor(discounted, dtype=torch.float64), steps)


def _run_episodes(
    policy: Policy,
    env_id: str,
    num_episodes: int,
    seed: int,
    device: str | torch.device,
    max_parallel: int,
    gamma: float,
    record: bool,
) -> tuple[list[float], list[int], list[np.ndarray], list[float], Transitions | None]:
    returns: list[float] = []
    lengths: list[int] = []
    starts: list[np.ndarray] = []
    discounted: list[float] = []
    recorded: list[dict[str, np.ndarray]] = []  # one per episode
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
            trace: list[tuple[np.ndarray, ...]] = []  # (alive, obs, act, rew, next_obs, term, trunc) per step
            while alive.any():
                action = policy(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
                next_obs, rew, term, trunc, _ = envs.step(action)
                if record:
                    trace.append((alive.copy(), obs, action, rew, next_obs, term, trunc))
                obs = next_obs
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
        if record:
            fields = [np.stack(f) for f in zip(*trace, strict=True)]  # each [T, n, ...]
            recorded += [
                {k: f[fields[0][:, i], i] for k, f in zip(_STEP_FIELDS, fields[1:], strict=True)} for i in range(n)
            ]
    return returns, lengths, starts, discounted, _as_transitions(recorded, device) if record else None


_STEP_FIELDS = ("obs", "act", "rew", "next_obs", "terminated", "truncated")


def _as_transitions(episodes: list[dict[str, np.ndarray]], device: str | torch.device) -> Transitions:
    """Recorded episodes -> one :class:`Transitions`, ``episode_id`` the episode's index."""

    def cat(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([e[name] for e in episodes]), dtype=dtype, device=device)

    ids = np.concatenate([np.full(len(e["rew"]), i) for i, e in enumerate(episodes)])
    return Transitions(
        cat("obs", torch.float32),
        cat("act", torch.float32),
        cat("rew", torch.float32),
        cat("next_obs", torch.float32),
        cat("terminated", torch.bool),
        cat("truncated", torch.bool),
        episode_id=torch.as_tensor(ids, dtype=torch.int64, device=device),
    )

"""Branched truncated rollouts from dataset states, with the current policy in the loop.

Every ``every`` agent updates, ``batch_size`` start states are drawn from the real data and
rolled ``horizon`` steps through the dynamics model. Rows that terminate stop; the last step
of the surviving rows is marked ``truncated`` (its next state is an edge-of-reach state: it is
bootstrapped from but never regressed). With a transition filter (MOREC's reward consistency),
each step draws ``K`` candidates per row, the filter keeps one and may stop the row (a terminal
step). Everything stays on the device.

:func:`rollout` drops terminated rows from the batch as it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mbrl.data.buffer import ReplayBuffer
from mbrl.data.transitions import Transitions
from mbrl.dynamics.base import DynamicsModel
from mbrl.filters.base import TransitionFilter
from mbrl.filters.penalties import RewardPenalty


@dataclass
class RolloutConfig:
    horizon: int = 5
    batch_size: int = 50_000  # start states per rollout round
    every: int = 1000  # agent updates between rounds
    retain: int = 5  # rounds kept in the FIFO model buffer
    real_ratio: float = 0.05  # fraction of each agent batch drawn from the real data


@dataclass
class RolloutStats:
    """Per-round diagnostics: transitions produced, mean rollout length, mean model reward and penalty;
    with a filter also the fraction of transitions it stopped and their mean filter score."""

    transitions: int
    mean_length: float
    reward_mean: float
    penalty_mean: float
    stopped_fraction: float = 0.0
    filter_score_mean: float = 0.0


@dataclass
class ModelStep:
    """One rollout step of ``B`` rows: the policy's actions and the model transition kept for each row.

    ``act [B, act_dim]``, ``reward [B]`` (the model's reward minus ``penalty [B]``), ``next_obs [B, obs_dim]``,
    ``terminated [B]`` bool (the rows a filter stopped included); with a filter also ``stop [B]`` bool (the rows
    it stopped) and ``score [B]`` (its score of the chosen candidate), else ``None``.
    """

    act: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    penalty: torch.Tensor
    stop: torch.Tensor | None = None
    score: torch.Tensor | None = None


@torch.no_grad()
def model_step(
    model: DynamicsModel,
    policy: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    generator: torch.Generator,
    penalty: RewardPenalty | None = None,
    transition_filter: TransitionFilter | None = None,
    member_stats: bool = True,
) -> ModelStep:
    """One step of every row of ``obs [B, obs_dim]``: ``policy``'s action, the model's sample (or the filter's
    choice among ``K`` candidates), the rollout-stage penalty subtracted from the reward.

    ``member_stats`` asks the model for every member's prediction (what a penalty such as MOPO's reads).
    """
    act = policy(obs)
    stop = score = None
    if transition_filter is not None and transition_filter.samples_per_elite > 0:
        cand = model.sample_candidates(obs, act, transition_filter.samples_per_elite, generator)
        chosen = transition_filter(obs, act, cand, generator)
        step, stop, score = chosen.step, chosen.stop, chosen.score
    else:
        step = model.sample(obs, act, generator, member_stats=member_stats)
    pen = penalty(step) if penalty is not None else torch.zeros_like(step.reward)
    return ModelStep(act, step.reward - pen, step.next_obs, step.terminated, pen, stop, score)


def reads_member_stats(penalty: RewardPenalty | None) -> bool:
    """Whether ``penalty`` reads every member's prediction (MOPO's max std); one that does not say is assumed to."""
    return penalty is not None and getattr(penalty, "needs_member_stats", True)


@torch.no_grad()
def rollout(
    model: DynamicsModel,
    policy: Callable[[torch.Tensor], torch.Tensor],
    start_obs: torch.Tensor,
    horizon: int,
    generator: torch.Generator,
    penalty: RewardPenalty | None = None,
    transition_filter: TransitionFilter | None = None,
) -> tuple[Transitions, RolloutStats]:
    """Roll ``start_obs [B, obs_dim]`` for up to ``horizon`` steps; returns the stacked transitions.

    ``policy`` maps ``obs [b, obs_dim]`` to actions ``[b, act_dim]`` (stochastic during rollouts).
    Rewards are the model's minus ``penalty`` when given (a rollout-stage penalty). A filter that
    asks for candidates picks each step among ``K`` of them; the rows it stops end terminated.
    Terminated rows leave the batch: each step rolls the rows still running.
    """
    obs = start_obs
    parts: list[Transitions] = []
    steps: list[ModelStep] = []
    member_stats = reads_member_stats(penalty)
    for t in range(horizon):
        if obs.shape[0] == 0:
            break
        step = model_step(model, policy, obs, generator, penalty, transition_filter, member_stats)
        last = torch.full_like(step.terminated, t == horizon - 1)
        parts.append(Transitions(obs, step.act, step.reward, step.next_obs, step.terminated, last & ~step.terminated))
        steps.append(step)
        obs = step.next_obs[~step.terminated]
    data = Transitions.cat(parts)
    return data, round_stats(data, start_obs.shape[0], steps)


def round_stats(data: Transitions, n_start: int, steps: list[ModelStep]) -> RolloutStats:
    """A round's :class:`RolloutStats` from its transitions, its ``n_start`` start states and its steps (each
    holding the rows that took it; those of a filtered rollout carry ``stop`` and ``score``)."""
    stops = [s.stop for s in steps if s.stop is not None]
    scores = [s.score for s in steps if s.score is not None]
    return RolloutStats(
        transitions=len(data),
        mean_length=len(data) / max(n_start, 1),
        reward_mean=float(data.rew.mean()) if len(data) else 0.0,
        penalty_mean=float(torch.cat([s.penalty for s in steps]).mean()) if steps else 0.0,
        stopped_fraction=float(torch.cat(stops).float().mean()) if stops else 0.0,
        filter_score_mean=float(torch.cat(scores).mean()) if scores else 0.0,
    )


def model_buffer(cfg: RolloutConfig, obs_dim: int, act_dim: int, device: str | torch.device) -> ReplayBuffer:
    """A FIFO buffer holding the last ``retain`` rounds of ``batch_size * horizon`` transitions."""
    return ReplayBuffer(cfg.batch_size * cfg.horizon * cfg.retain, obs_dim, act_dim, device)


def split_batch(batch_size: int, real_ratio: float) -> tuple[int, int]:
    """``(real, model)`` rows per agent batch: ``int(batch_size * real_ratio)`` real, the rest model."""
    n_real = int(batch_size * real_ratio)
    return n_real, batch_size - n_real

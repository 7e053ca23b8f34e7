"""Branched truncated rollouts from dataset states, with the current policy in the loop.

Every ``every`` agent updates, ``batch_size`` start states are drawn from the real data and
rolled ``horizon`` steps through the dynamics model. Rows that terminate stop; the last step
of the surviving rows is marked ``truncated`` (its next state is an edge-of-reach state: it is
bootstrapped from but never regressed). With a transition filter (MOREC's reward consistency),
each step draws ``K`` candidates per row, the filter keeps one and may stop the row (a terminal
step). Everything stays on the device.

:func:`rollout` drops terminated rows from the batch as it goes. With ``cuda_graphs=true`` a round is
:class:`GraphedRollout`'s: every row steps all ``horizon`` steps at one fixed shape (terminated rows' later
steps are computed and dropped), so a CUDA graph of the step replays each step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mbrl.cuda_graphs import WARMUP_CALLS, CapturedStep, CudaGraphs, GraphBackend
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


@torch.no_grad()
def rollout_all_rows(
    step: Callable[[torch.Tensor], ModelStep], start_obs: torch.Tensor, horizon: int
) -> tuple[Transitions, RolloutStats]:
    """:func:`rollout` with every row stepped ``horizon`` times at the fixed shape ``[B]`` (what a CUDA graph
    replays): ``step`` maps ``obs [B, obs_dim]`` to a :class:`ModelStep` of ``B`` rows.

    A row that terminates keeps stepping from its last state, and those steps are dropped: the transitions,
    their order (step by step, rows in start order) and the stats are :func:`rollout`'s. The random draws are
    too while no row has terminated; after that they differ (every row draws, not only the running ones), with
    the same distribution. Nothing waits for the device until the transitions are gathered at the end.
    """
    obs = start_obs
    running = torch.ones(start_obs.shape[0], dtype=torch.bool, device=start_obs.device)
    inputs: list[torch.Tensor] = []
    took: list[torch.Tensor] = []  # [B] per step: the rows that took it
    steps: list[ModelStep] = []
    for _ in range(horizon):
        out = step(obs)
        inputs.append(obs)
        took.append(running)
        steps.append(out)
        running = running & ~out.terminated
        obs = torch.where(running.unsqueeze(1), out.next_obs, obs)
    mask = torch.stack(took)  # [h, B]

    def taken(values: list[torch.Tensor]) -> torch.Tensor:
        """``h`` tensors ``[B, ...]`` -> the rows that took each step, step by step: ``[n, ...]``."""
        return torch.stack(values)[mask]

    terminated = torch.stack([s.terminated for s in steps])
    last = torch.zeros_like(terminated)
    last[-1] = True
    data = Transitions(
        taken(inputs),
        taken([s.act for s in steps]),
        taken([s.reward for s in steps]),
        taken([s.next_obs for s in steps]),
        terminated[mask],
        (last & ~terminated)[mask],
    )
    filtered = steps[0].stop is not None
    kept = ModelStep(
        data.act,
        data.rew,
        data.next_obs,
        data.terminated,
        taken([s.penalty for s in steps]),
        taken([s.stop for s in steps]) if filtered else None,
        taken([s.score for s in steps]) if filtered else None,
    )
    return data, round_stats(data, start_obs.shape[0], [kept])


class GraphedRollout:
    """Rollout rounds of ``model`` for ``cuda_graphs=true``: :func:`rollout_all_rows` with the step replayed from
    a CUDA graph, one per number of start states.

    The step is :func:`model_step` with every member's prediction computed (a model that evaluates only each
    row's drawn member splits the rows by member on the host, which a graph cannot replay), the same step as
    :func:`rollout`'s to float rounding. A filter must be ``graph_safe`` (:class:`~mbrl.filters.base.TransitionFilter`).
    ``generator`` (the rollouts' own) is registered with the graphs.
    ``graphs`` is the backend (default: this CUDA device). Every round must pass the same ``policy`` network: a
    graph replays the one it captured.
    """

    def __init__(
        self,
        model: DynamicsModel,
        generator: torch.Generator,
        penalty: RewardPenalty | None = None,
        transition_filter: TransitionFilter | None = None,
        graphs: GraphBackend | None = None,
        warmup: int = WARMUP_CALLS,
    ) -> None:
        self.filtered = transition_filter is not None and transition_filter.samples_per_elite > 0
        if self.filtered and not getattr(transition_filter, "graph_safe", False):
            raise ValueError(f"{type(transition_filter).__name__} is not graph safe: roll out eagerly with it")
        self.model, self.generator, self.penalty, self.filter = model, generator, penalty, transition_filter
        self.graphs = graphs if graphs is not None else CudaGraphs(generators=(generator,))
        self.warmup = warmup
        self.policy: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._steps: dict[tuple[int, ...], CapturedStep] = {}

    def __call__(
        self, policy: Callable[[torch.Tensor], torch.Tensor], start_obs: torch.Tensor, horizon: int
    ) -> tuple[Transitions, RolloutStats]:
        """Roll ``start_obs [B, obs_dim]`` for ``horizon`` steps with ``policy``; as :func:`rollout_all_rows`."""
        if self.policy is None:
            self.policy = policy
        elif policy != self.policy:
            raise ValueError("GraphedRollout replays the policy of its first round; pass the same policy every round")
        shape = tuple(start_obs.shape)
        if shape not in self._steps:
            self._steps[shape] = CapturedStep(self._step_fn, self.graphs, self.warmup)
        captured = self._steps[shape]

        def step(obs: torch.Tensor) -> ModelStep:
            return ModelStep(*[t.clone() for t in captured([obs])])  # a replay's outputs are overwritten by the next

        return rollout_all_rows(step, start_obs, horizon)

    def _step_fn(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """The captured function: ``[obs]`` -> the :class:`ModelStep`'s tensors (``stop``, ``score`` if filtered)."""
        out = model_step(self.model, self.policy, tensors[0], self.generator, self.penalty, self.filter)
        tensors = [out.act, out.reward, out.next_obs, out.terminated, out.penalty]
        return [*tensors, out.stop, out.score] if self.filtered else tensors


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

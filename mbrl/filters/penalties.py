"""Reward penalties: per-transition amounts ``[B]`` subtracted from the model reward.

Two stages, told apart by the class attribute ``stage``:

* ``"rollout"`` (:class:`RewardPenalty`, e.g. MOPO): computed once from the model's own uncertainty
  when a rollout step is generated, and stored in the model buffer with the transition;
* ``"update"`` (:class:`ValuePenalty`, e.g. MOBILE): depends on the agent's current value estimate, so
  it is recomputed for every model batch just before the agent's update.

Penalties are registered by name and selected with ``penalty=<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from mbrl.dynamics.base import DynamicsModel, StepResult
from mbrl.registry import Registry


class RewardPenalty(Protocol):
    stage: ClassVar[str]  # "rollout"
    # Whether it reads ``step.info["mean"]``/``["std"]`` of every member; False lets the model skip them.
    needs_member_stats: ClassVar[bool]

    def __call__(self, step: StepResult) -> torch.Tensor:
        """``step`` of ``B`` rows -> penalty ``[B]`` (non-negative; subtracted from the reward)."""
        ...


class ValuePenalty(Protocol):
    stage: ClassVar[str]  # "update"

    def __call__(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        dynamics: DynamicsModel,
        value: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Model batch ``obs [B, o]``, ``act [B, a]`` -> penalty ``[B]``; ``value``: states ``[n, o]`` -> ``[n]``."""
        ...


PENALTIES: Registry[type] = Registry("penalty", group="mbrl.penalties")
ROLLOUT, UPDATE = "rollout", "update"  # the two stages


def by_stage(penalty: RewardPenalty | ValuePenalty) -> tuple[RewardPenalty | None, ValuePenalty | None]:
    """``(rollout-stage penalty, update-stage penalty)``, one of them ``None``: where ``penalty`` is applied.

    A penalty whose ``stage`` is not ``"update"`` is applied when the rollout step is generated.
    """
    return (None, penalty) if penalty.stage == UPDATE else (penalty, None)


@dataclass
class NoPenaltyConfig:
    pass


@PENALTIES.register("none")
class NoPenalty:
    Config = NoPenaltyConfig
    stage = "rollout"
    needs_member_stats = False

    def __init__(self, config: NoPenaltyConfig) -> None:
        self.cfg = config

    def __call__(self, step: StepResult) -> torch.Tensor:
        return torch.zeros_like(step.reward)


@dataclass
class MOPOPenaltyConfig:
    coef: float = 1.0  # lambda


@PENALTIES.register("mopo")
class MOPOPenalty:
    """MOPO (Yu et al. 2020), aleatoric form: ``lambda * max_i ||sigma_i(s, a)||_2`` over all members.

    The norm runs over the predicted std of every output dimension (next-state deltas and reward),
    as in the reference implementation; ``step.info["std"]`` is ``[E, B, obs_dim + 1]``.
    """

    Config = MOPOPenaltyConfig
    stage = "rollout"
    needs_member_stats = True

    def __init__(self, config: MOPOPenaltyConfig) -> None:
        self.cfg = config

    def __call__(self, step: StepResult) -> torch.Tensor:
        return self.cfg.coef * step.info["std"].norm(dim=-1).amax(dim=0)


@dataclass
class MOBILEPenaltyConfig:
    coef: float = 0.5  # beta
    samples_per_elite: int = 10  # next-state draws per elite model


@PENALTIES.register("mobile")
class MOBILEPenalty:
    """MOBILE (Sun et al., ICML 2023): ``beta * std_i(mean_n V(s'_{i,n}))`` over the elite models ``i``.

    ``s'_{i,n}`` is draw ``n`` of elite ``i``'s Gaussian at ``(s, a)`` and ``V`` the agent's current
    pessimistic value (SAC: ``min_j Qbar_j(s', a')`` with ``a' ~ pi(s')``). Where the models agree on
    the Bellman target the penalty vanishes, however uncertain each of them is; it grows where their
    next states lead to different values. It needs the agent's value, so it is an update-stage penalty.
    The reference code (OfflineRL-Kit) uses 10 draws per elite and ``torch.std`` (unbiased) over elites.
    """

    Config = MOBILEPenaltyConfig
    stage = "update"

    def __init__(self, config: MOBILEPenaltyConfig) -> None:
        self.cfg = config

    @torch.no_grad()
    def __call__(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        dynamics: DynamicsModel,
        value: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        n = self.cfg.samples_per_elite
        cand = dynamics.sample_candidates(obs, act, n, generator)  # next_obs [n * elites, B, o]
        k, b = cand.next_obs.shape[:2]
        if k // n < 2:  # one model (single, oracle): no disagreement to measure
            return torch.zeros(b, device=obs.device, dtype=obs.dtype)
        v = value(cand.next_obs.reshape(k * b, -1)).view(n, k // n, b)  # [draw, elite, B]
        return self.cfg.coef * v.mean(dim=0).std(dim=0)

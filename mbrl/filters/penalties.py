"""Reward penalties applied to model transitions before they enter the model buffer.

A penalty maps a model step to a per-transition penalty ``[B]`` that is subtracted from the
model reward. Penalties are registered by name and selected with ``penalty=<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from dynamics.base import StepResult
from mbrl.registry import Registry


class RewardPenalty(Protocol):
    def __call__(self, step: StepResult) -> torch.Tensor:
        """``step`` of ``B`` rows -> penalty ``[B]`` (non-negative; subtracted from the reward)."""
        ...


PENALTIES: Registry[type] = Registry("penalty", group="mbrl.penalties")


@dataclass
class NoPenaltyConfig:
    pass


@PENALTIES.register("none")
class NoPenalty:
    Config = NoPenaltyConfig

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

    def __init__(self, config: MOPOPenaltyConfig) -> None:
        self.cfg = config

    def __call__(self, step: StepResult) -> torch.Tensor:
        return self.cfg.coef * step.info["std"].norm(dim=-1).amax(dim=0)

"""The ``DynamicsModel`` contract that rollouts, filters and penalties are written against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from mbrl.data.transitions import Transitions


@dataclass
class StepResult:
    """One model step for a batch of ``B`` state-action pairs.

    ``next_obs [B, obs_dim]``, ``reward [B]``, ``terminated [B]`` bool. ``info`` holds per-sample
    diagnostics, e.g. ``"member" [B]`` (which member produced the sample), ``"std" [E, B, obs_dim+1]``
    (every member's predicted std, for uncertainty penalties).
    """

    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FitReport:
    """What fitting produced: per-member holdout MSE ``[E]``, the elite indices ``[num_elites]``,
    epochs run and the training/holdout loss history (one float per epoch)."""

    holdout_mse: torch.Tensor
    elites: torch.Tensor
    epochs: int
    train_loss: list[float]
    holdout_loss: list[float]


@runtime_checkable
class DynamicsModel(Protocol):
    """A learned (or true) transition model ``(s, a) -> (s', r, terminated)``.

    Elites are a stored index tensor (``self.elites``), passed explicitly to the code that needs
    them; no layer ever toggles an "elite mode".
    """

    elites: torch.Tensor

    def fit(self, data: Transitions) -> FitReport: ...

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, obs_dim]``, ``act [B, act_dim]`` -> mean, logvar ``[E, B, obs_dim + 1]`` of ``[Δs, r]``."""
        ...

    def sample(
        self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator, member_stats: bool = True
    ) -> StepResult:
        """One stochastic step per row: a uniformly drawn elite per row, then a Gaussian sample.

        ``member_stats``: also return every member's ``"mean"``/``"std"`` ``[E, B, o+1]`` in info (what
        uncertainty penalties read); with False a model may skip the members no row drew."""
        ...

    def sample_candidates(
        self, obs: torch.Tensor, act: torch.Tensor, samples_per_elite: int, generator: torch.Generator
    ) -> StepResult:
        """``K = samples_per_elite * len(elites)`` candidates per row: next_obs ``[K, B, o]``, reward and
        terminated ``[K, B]``, info ``"member" [K]`` (for filters and value-based penalties)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

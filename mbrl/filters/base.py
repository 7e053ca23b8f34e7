"""The ``TransitionFilter`` contract and the filter registry (``filter=<name>``).

A filter sees ``K`` candidate model transitions per rollout row, keeps one per row and says which
rows must stop. Filters that learn something from the data (MOREC's dynamics reward) list those
components in ``learned``; the training job fits them once per (dataset, config, seed) and caches
them like dynamics models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from mbrl.data.transitions import Transitions
from mbrl.dynamics.base import DynamicsModel, StepResult
from mbrl.registry import Registry


@dataclass
class FilterResult:
    """The chosen transition per row (``step`` with ``B`` rows), rows to stop ``[B]`` and their scores ``[B]``."""

    step: StepResult
    stop: torch.Tensor
    score: torch.Tensor


class TransitionFilter(Protocol):
    """Chooses, per row, one of the model's ``K`` candidate transitions and may stop the row."""

    Config: ClassVar[type]
    samples_per_elite: int  # candidates asked of each elite model; 0 = no filtering (``model.sample``)
    learned: list[Any]  # components with ``cfg``, ``fit(data)``, ``state_dict()``; fitted before rollouts

    def __call__(
        self, obs: torch.Tensor, act: torch.Tensor, cand: StepResult, generator: torch.Generator
    ) -> FilterResult:
        """``obs [B, o]``, ``act [B, a]``, candidates ``[K, B, ...]`` -> one transition per row."""
        ...


@runtime_checkable
class RankedComponent(Protocol):
    """A learned component that can say how well it ranks held-out true transitions above a model's samples.

    Optional: the training job measures it once after the fit (MOREC's dynamics reward) and logs the result.
    """

    def ranking(self, data: Transitions, model: DynamicsModel, generator: torch.Generator) -> dict[str, float]:
        """Measures on the rows of ``data`` the fit held out, e.g. ROC-AUCs; names -> values."""
        ...


@runtime_checkable
class CalibratedFilter(Protocol):
    """A filter whose stop rule is set from the fitted dynamics model (MOREC's ``threshold_quantile_of: model``).

    Optional: the training job calls ``calibrate`` once, after fitting the model and the filter's learned
    parts (again on resume, with the same generator), and logs what it returns.
    """

    def calibrate(self, model: DynamicsModel, data: Transitions, generator: torch.Generator) -> dict[str, float]:
        """Set the stop rule from ``model`` on the rows of ``data`` (the fit's); names -> values set."""
        ...


FILTERS: Registry[type] = Registry("filter", group="mbrl.filters")


@dataclass
class NoFilterConfig:
    pass


@FILTERS.register("none")
class NoFilter:
    """Rollouts take the model's own sample (a random elite per row); nothing is learned or stopped."""

    Config = NoFilterConfig
    samples_per_elite = 0

    def __init__(self, config: NoFilterConfig, obs_dim: int, act_dim: int, seed: int, device: str) -> None:
        self.cfg = config
        self.learned: list[Any] = []

    def __call__(
        self, obs: torch.Tensor, act: torch.Tensor, cand: StepResult, generator: torch.Generator
    ) -> FilterResult:
        raise RuntimeError("NoFilter asks for no candidates; rollouts use model.sample instead")

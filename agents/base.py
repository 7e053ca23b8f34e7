"""The ``Agent`` contract and the agent registry.

An agent is a class with a typed config dataclass in its ``Config`` attribute and the methods
below. It registers by ``@register_agent("name")`` or, from another installed package, through
the ``mbrl.agents`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from mbrl.data.transitions import Transitions
from mbrl.registry import Registry


@dataclass(frozen=True)
class AgentSpec:
    """What an agent needs to know about the task: sizes and action bounds, and its device."""

    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    device: str = "cpu"


@runtime_checkable
class Agent(Protocol):
    """What the training loop calls.

    ``update`` returns detached scalar tensors; the logger turns them into floats only when it
    writes, so an update never forces a device synchronisation.

    Optional hooks the training job uses when an agent has them: ``attach_dataset(transitions)``
    (called once with the whole real dataset, e.g. PRDC's neighbour search), ``attach_dynamics(model)``
    (called once after the model is fitted or loaded, e.g. RAMBO's adversarial model training; the
    agent then saves and restores the model's state itself), ``value(obs) -> [B]``
    (value-based penalties such as MOBILE's), ``q_values(obs, act) -> [N, B]`` (diagnostics) and the
    class attribute ``requires_model = True`` (refuse to run without dynamics).
    """

    Config: ClassVar[type]

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``obs [B, obs_dim]`` -> actions ``[B, act_dim]`` inside the action bounds."""
        ...

    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        """One gradient step on a real batch and an optional batch of model transitions."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


AGENTS: Registry[type] = Registry("agent", group="mbrl.agents")


def register_agent(name: str):
    """Class decorator: make an agent selectable as ``agent=<name>``."""
    return AGENTS.register(name)


def make_agent(name: str, spec: AgentSpec, config: Any | None = None) -> Agent:
    """Build a registered agent; ``config`` defaults to the agent's own ``Config()``."""
    cls = AGENTS.get(name)
    return cls(spec, config if config is not None else cls.Config())

"""The ``Agent`` contract and the agent registry.

An agent is a class with a typed config dataclass in its ``Config`` attribute and the methods
below. It registers by ``@register_agent("name")`` or, from another installed package, through
the ``mbrl.agents`` entry-point group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


def require(condition: bool, field: str, value: Any, rule: str) -> None:
    """Raise ``ValueError("<field> must be <rule>, got <value>")`` unless ``condition``.

    The one message format of the config checks. Config dataclasses call it (or :func:`check`) from
    ``__post_init__``, so a bad value is refused when the config is built, before anything runs; the
    training job reports it as a ``ConfigError`` naming the agent.
    """
    if not condition:
        raise ValueError(f"{field} must be {rule}, got {value!r}")


def _finite(value: Any) -> bool:
    return -math.inf < value < math.inf  # False for NaN; no float conversion, so huge ints pass


@dataclass(frozen=True)
class Rule:
    """A value check and the words of its message (``require``'s ``rule``)."""

    text: str
    test: Callable[[Any], bool]


POSITIVE = Rule("a finite number > 0", lambda v: _finite(v) and v > 0)
NON_NEGATIVE = Rule("a finite number >= 0", lambda v: _finite(v) and v >= 0)
FINITE_OR_NULL = Rule("a finite number or null", lambda v: v is None or _finite(v))
FINITE = Rule("a finite number", _finite)
COUNT = Rule(">= 1", lambda v: v >= 1)
STEPS = Rule(">= 0", lambda v: v >= 0)
DISCOUNT = Rule("in [0, 1]", lambda v: 0 <= v <= 1)
RATE = Rule("in (0, 1]", lambda v: 0 < v <= 1)
FRACTION = Rule("in (0, 1)", lambda v: 0 < v < 1)
SIZES = Rule("a non-empty list of sizes >= 1", lambda v: len(v) > 0 and all(h >= 1 for h in v))


def check(config: Any, rule: Rule, *fields: str) -> None:
    """``require`` ``rule`` of each of ``config``'s ``fields``."""
    for name in fields:
        value = getattr(config, name)
        require(rule.test(value), name, value, rule.text)


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

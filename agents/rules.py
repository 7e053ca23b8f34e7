"""The config checks' vocabulary: a value rule, the one message format, and the common rules.

Agent (and other component) config dataclasses call :func:`check` or :func:`require` from
``__post_init__``, so a bad value is refused when the config is built, before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
LR_SCHEDULE = Rule("constant or cosine", lambda v: v in ("constant", "cosine"))
SIZES = Rule("a non-empty list of sizes >= 1", lambda v: len(v) > 0 and all(h >= 1 for h in v))


def check(config: Any, rule: Rule, *fields: str) -> None:
    """``require`` ``rule`` of each of ``config``'s ``fields``."""
    for name in fields:
        value = getattr(config, name)
        require(rule.test(value), name, value, rule.text)


def check_init(config: Any, schemes: tuple[str, ...]) -> None:
    """``config.init``, the networks' initialisation scheme (``mbrl.nn.INITS``), is one of ``schemes``: those
    the agent's networks define (each is a reference's; ``edac_heads``, the default, is what every run made
    before the setting existed used)."""
    require(config.init in schemes, "init", config.init, f"one of {', '.join(schemes)}")


def check_actor_lr_schedule(config: Any) -> None:
    """The actor learning-rate schedule's fields (``actor_lr_schedule``, ``actor_lr_schedule_steps``,
    ``actor_lr_schedule_every``; :class:`mbrl.agents.kit.LRSchedule`): a cosine schedule needs its length."""
    check(config, LR_SCHEDULE, "actor_lr_schedule")
    check(config, COUNT, "actor_lr_schedule_every")
    if config.actor_lr_schedule != "constant":
        check(config, COUNT, "actor_lr_schedule_steps")

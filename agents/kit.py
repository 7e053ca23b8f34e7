"""What several agents repeat, written once: optimiser steps, learning-rate schedules, TD targets and losses
of critic ensembles, Polyak averaging, and saving and restoring an agent's parts.

Each function is the exact arithmetic the agents used inline (same operations, same order), so moving an
agent onto the kit changes no number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from mbrl.agents.rules import LR_SCHEDULE, require
from torch import nn

from mbrl.data.transitions import Transitions


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor, inputs: Iterable[torch.Tensor] | None = None) -> None:
    """One step of ``opt`` on ``loss`` (a scalar): clear the gradients, backpropagate, step.

    ``inputs`` limits the backward pass to those tensors (e.g. the actor's parameters when the loss also
    runs through critics whose gradients would be thrown away).
    """
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=None if inputs is None else list(inputs))
    opt.step()


class CriticQValues:
    """Mixin: the ``q_values`` capability of an agent whose critic ensemble is ``self.critic``."""

    has_q_values = True

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Every critic's ``Q(s, a)``: ``obs [B, obs_dim]``, ``act [B, act_dim]`` -> ``[N, B]``."""
        return self.critic(obs, act)


class LRSchedule:
    """The learning rate of one optimiser over training, stepped from the agent's update count.

    ``"constant"`` leaves the rate alone. ``"cosine"`` is OfflineRL-Kit's actor schedule: torch's
    ``CosineAnnealingLR`` with ``T_max = steps / every`` periods, stepped once at the end of every period of
    ``every`` updates (an epoch of ``step_per_epoch`` updates there), from the optimiser's rate down to 0
    after ``steps`` updates. Torch's own scheduler does the arithmetic, so the rates are its, bit for bit.
    Its state (the update count and the scheduler's) is saved with the agent's parts.
    """

    def __init__(self, opt: torch.optim.Optimizer, kind: str = "constant", steps: int = 0, every: int = 1) -> None:
        require(LR_SCHEDULE.test(kind), "schedule", kind, LR_SCHEDULE.text)
        self.every = every
        self.updates = 0
        self.cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps / every) if kind == "cosine" else None

    def step(self) -> None:
        """Count one update; at the end of each period of ``every`` updates, step the schedule."""
        self.updates += 1
        if self.cosine is not None and self.updates % self.every == 0:
            self.cosine.step()

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "cosine": None if self.cosine is None else self.cosine.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        if self.cosine is not None and state["cosine"] is not None:
            self.cosine.load_state_dict(state["cosine"])


def actor_lr_schedule(opt: torch.optim.Optimizer, config: Any) -> LRSchedule:
    """The :class:`LRSchedule` of an agent's actor optimiser from its config's ``actor_lr_schedule``,
    ``actor_lr_schedule_steps`` and ``actor_lr_schedule_every``."""
    return LRSchedule(opt, config.actor_lr_schedule, config.actor_lr_schedule_steps, config.actor_lr_schedule_every)


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, parameter by parameter, in place."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def bootstrap(rew: torch.Tensor, terminated: torch.Tensor, gamma: float, next_value: torch.Tensor) -> torch.Tensor:
    """TD target ``[B] = rew + gamma * (1 - terminated) * next_value`` (all ``[B]``).

    The not-terminated mask takes the values' dtype: ``.float()`` would round ``gamma`` to float32 in a
    float64 agent.
    """
    mask = (~terminated).to(torch.promote_types(rew.dtype, next_value.dtype))
    return rew + gamma * mask * next_value


def ensemble_td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared TD error of every member ``q [N, B]`` to one target ``[B]``: mean over rows, summed over members."""
    return (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def mixed_batch(real: Transitions, model: Transitions | None) -> Transitions:
    """The update's batch: the real rows, then the model rows when there are any."""
    return real if model is None else Transitions.cat([real, model])


def save_parts(owner: object, names: Sequence[str]) -> dict[str, Any]:
    """The state of ``owner``'s named attributes, in this order: modules and optimisers by their
    ``state_dict()``, tensors (e.g. a learned log-temperature) as detached copies, generators by their state,
    numbers (update counters) as they are. The one way every agent saves itself."""
    state: dict[str, Any] = {}
    for name in names:
        part = getattr(owner, name)
        if isinstance(part, torch.Tensor):
            state[name] = part.detach().clone()
        elif isinstance(part, torch.Generator):
            state[name] = part.get_state()
        elif hasattr(part, "state_dict"):
            state[name] = part.state_dict()
        else:
            state[name] = part
    return state


def load_parts(owner: object, state: dict[str, Any], names: Sequence[str]) -> None:
    """Restore what :func:`save_parts` saved: modules and optimisers load in place, tensors are copied into
    (an optimiser keeps referring to the same tensor), generators get their state back, numbers are set.
    A learning-rate schedule missing from ``state`` (saved before agents had one, at a constant rate) keeps
    its initial state."""
    for name in names:
        part = getattr(owner, name)
        if isinstance(part, LRSchedule) and name not in state:
            continue
        if isinstance(part, torch.Tensor):
            with torch.no_grad():
                part.copy_(state[name])
        elif isinstance(part, torch.Generator):
            part.set_state(state[name].cpu())  # a checkpoint loaded onto a GPU moves the state there
        elif hasattr(part, "load_state_dict"):
            part.load_state_dict(state[name])
        else:
            setattr(owner, name, state[name])


def require_model_batch(model: Transitions | None, message: str) -> Transitions:
    """``model`` if it holds rows, else ``ValueError(message)``: how an agent with ``requires_model`` refuses
    a model-free update (the generic tester checks that it does)."""
    if model is None or len(model) == 0:
        raise ValueError(message)
    return model

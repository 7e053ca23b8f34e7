"""Maximum-likelihood behaviour cloning: maximise ``log pi(a | s)`` of the dataset actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from mbrl.agents.base import Agent, AgentSpec

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor


@dataclass
class GaussianBCConfig:
    hidden_sizes: tuple[int, ...] = (256, 256)
    lr: float = 3e-4


class GaussianBCAgent(Agent):
    """Registered through the ``mbrl.agents`` entry point, not a decorator: importing mbrl is enough.

    No capability flags: it has no critics (``has_q_values``), no state value (``has_value``), needs no
    model (``requires_model``) and no ``compile()``; ``Agent.attach``'s default ignores the dataset.
    """

    Config = GaussianBCConfig

    def __init__(self, spec: AgentSpec, config: GaussianBCConfig) -> None:
        self.actor = TanhGaussianActor(
            spec.obs_dim, spec.act_dim, tuple(config.hidden_sizes), spec.act_low, spec.act_high
        ).to(spec.device)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_log_prob=False)[0]

    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        loss = -self.actor.log_prob(real.obs, real.act).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"nll": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.opt.load_state_dict(state["opt"])

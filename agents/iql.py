"""Implicit Q-Learning (Kostrikov, Nair & Levine, ICLR 2022).

Never queries Q at actions outside the data. Three losses per update:

* value: expectile regression of ``V(s)`` towards ``min_j Qbar_j(s, a)`` (``tau`` = 0.7 for locomotion);
* critics: ``Q_j(s, a) -> r + gamma * (1 - terminated) * V(s')``;
* actor: advantage-weighted regression, ``-exp(beta * (Qbar - V)) * log pi(a | s)`` with the weight
  clipped at 100 (``beta`` = 3 for locomotion).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from mbrl.agents.base import DISCOUNT, FRACTION, NON_NEGATIVE, POSITIVE, RATE, SIZES, AgentSpec, check, register_agent
from mbrl.agents.critics import VectorizedCritic
from torch import nn

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor, mlp
from mbrl.optim import adam

MAX_WEIGHT = 100.0


@dataclass
class IQLConfig:
    hidden_sizes: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 5e-3  # Polyak rate of the target critics
    expectile: float = 0.7
    beta: float = 3.0  # inverse temperature of the advantage weights

    def __post_init__(self) -> None:
        check(self, SIZES, "hidden_sizes")
        check(self, POSITIVE, "actor_lr", "critic_lr", "value_lr")
        check(self, DISCOUNT, "gamma")
        check(self, RATE, "tau")
        check(self, FRACTION, "expectile")  # 0 or 1 would drop one side of the value regression
        check(self, NON_NEGATIVE, "beta")  # 0: equal weights (behaviour cloning); < 0 favours worse actions


@register_agent("iql")
class IQLAgent:
    Config = IQLConfig

    def __init__(self, spec: AgentSpec, config: IQLConfig) -> None:
        self.cfg = config
        hidden = tuple(config.hidden_sizes)
        dev = spec.device
        self.actor = TanhGaussianActor(spec.obs_dim, spec.act_dim, hidden, spec.act_low, spec.act_high).to(dev)
        self.critic = VectorizedCritic(spec.obs_dim, spec.act_dim, hidden, num_critics=2).to(dev)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # Not ``self.value``: that name is the training job's hook for value-based penalties (``Agent``).
        self.v_net = nn.Sequential(mlp(spec.obs_dim, hidden), nn.Linear(hidden[-1], 1)).to(dev)
        self.actor_opt = adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.value_opt = adam(self.v_net.parameters(), config.value_lr)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_log_prob=False)[0]

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Both critics' ``Q(s, a)``: ``obs [B, obs_dim]``, ``act [B, act_dim]`` -> ``[2, B]`` (value check)."""
        return self.critic(obs, act)

    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        batch = real if model is None else Transitions.cat([real, model])
        cfg = self.cfg
        with torch.no_grad():
            target_q = self.target_critic(batch.obs, batch.act).min(dim=0).values

        v = self.v_net(batch.obs).squeeze(-1)
        diff = target_q - v
        weight = torch.where(diff < 0, 1 - cfg.expectile, cfg.expectile)
        value_loss = (weight * diff.pow(2)).mean()
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        with torch.no_grad():
            # Both the TD target and the advantage read the value network after its step, as the
            # authors' learner.py does (update_v, then the actor and update_q with the new value).
            next_v = self.v_net(batch.next_obs).squeeze(-1)
            target = batch.rew + cfg.gamma * (~batch.terminated).to(batch.rew.dtype) * next_v
            advantage = target_q - self.v_net(batch.obs).squeeze(-1)
        q = self.critic(batch.obs, batch.act)
        critic_loss = (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        adv_weight = torch.exp(cfg.beta * advantage).clamp(max=MAX_WEIGHT)
        actor_loss = -(adv_weight * self.actor.log_prob(batch.obs, batch.act)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        with torch.no_grad():
            torch._foreach_lerp_(list(self.target_critic.parameters()), list(self.critic.parameters()), cfg.tau)
        return {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean(),
            "adv_weight_mean": adv_weight.mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        names = ("actor", "critic", "target_critic", "v_net", "actor_opt", "critic_opt", "value_opt")
        return {name: getattr(self, name).state_dict() for name in names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            # Checkpoints written before the V network was renamed call it "value".
            getattr(self, "v_net" if name == "value" else name).load_state_dict(value)

"""TD3+BC (Fujimoto & Gu, NeurIPS 2021): TD3 whose actor also regresses the dataset actions.

Actor loss ``-lambda * Q_1(s, pi(s)) + (pi(s) - a)^2`` with ``lambda = alpha / mean|Q_1(s, pi(s))|``;
the behaviour-cloning term uses real rows only (model rows carry the current policy's own actions).
Critics: clipped double-Q with target policy smoothing; the actor and targets update every
``policy_freq`` critic updates. Published defaults: alpha 2.5, noise 0.2 clipped at 0.5, delay 2.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from mbrl.agents.base import Agent, AgentSpec, SteppedUpdate, register_agent
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.kit import CriticQValues, bootstrap, ensemble_td_loss, mixed_batch, optimise, polyak
from mbrl.agents.rules import COUNT, DISCOUNT, NON_NEGATIVE, POSITIVE, RATE, SIZES, check, check_init
from mbrl.dynamics.base import DynamicsModel
from torch import nn

from mbrl.data.transitions import Transitions
from mbrl.nn import fit_state_standardisers, mlp, state_input
from mbrl.optim import adam


class DeterministicActor(nn.Module):
    """``obs [B, obs_dim] -> action [B, act_dim]`` squashed into the action box; ``standardise_states`` puts a
    :class:`mbrl.nn.StateStandardiser` before the layers."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        low: tuple,
        high: tuple,
        standardise_states: bool = False,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(mlp(obs_dim, hidden), nn.Linear(hidden[-1], act_dim), nn.Tanh())
        low_t, high_t = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer("act_scale", (high_t - low_t) / 2)
        self.register_buffer("act_bias", (high_t + low_t) / 2)
        self.obs_in = state_input(obs_dim, standardise_states)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.obs_in(obs)) * self.act_scale + self.act_bias


@dataclass
class TD3BCConfig:
    hidden_sizes: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 5e-3
    alpha: float = 2.5  # weight of the RL term relative to behaviour cloning
    policy_noise: float = 0.2  # target smoothing noise, as a fraction of the action half-range
    noise_clip: float = 0.5
    policy_freq: int = 2
    exploration_noise: float = 0.1  # std of the noise added by act(deterministic=False)
    # Standardise the networks' state inputs by the attached dataset's mean and std + 1e-3, as the authors'
    # code, OfflineRL-Kit and CORL do (mbrl.nn.StateStandardiser); the default false is what earlier runs used.
    normalize_states: bool = False
    # How the critics are initialised (mbrl.nn.INITS, docs/fidelity.md "Initialisation"); the actor is at
    # nn.Linear's default under both. "torch": OfflineRL-Kit's, the authors' (TD3+BC, PRDC) and CORL's; the
    # default "edac_heads" (EDAC-style critics) is what runs made before the setting used.
    init: str = "edac_heads"

    def __post_init__(self) -> None:
        check(self, SIZES, "hidden_sizes")
        check_init(self, ("edac_heads", "torch"))
        check(self, POSITIVE, "actor_lr", "critic_lr")
        check(self, DISCOUNT, "gamma")
        check(self, RATE, "tau")
        # alpha 0 is pure behaviour cloning; noise stds and the clip are magnitudes.
        check(self, NON_NEGATIVE, "alpha", "policy_noise", "noise_clip", "exploration_noise")
        check(self, COUNT, "policy_freq")  # the actor updates every policy_freq critic updates


@register_agent("td3bc")
class TD3BCAgent(CriticQValues, SteppedUpdate, Agent):
    Config = TD3BCConfig
    supports_cuda_graphs = True
    state_parts = ("actor", "critic", "target_actor", "target_critic", "actor_opt", "critic_opt", "updates")

    def __init__(self, spec: AgentSpec, config: TD3BCConfig) -> None:
        self.cfg = config
        hidden = tuple(config.hidden_sizes)
        standardise = config.normalize_states
        self.actor = DeterministicActor(
            spec.obs_dim, spec.act_dim, hidden, spec.act_low, spec.act_high, standardise_states=standardise
        ).to(spec.device)
        self.critic = VectorizedCritic(
            spec.obs_dim, spec.act_dim, hidden, num_critics=2, init=config.init, standardise_states=standardise
        ).to(spec.device)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.updates = 0

    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Fit the networks' state standardisers to ``dataset.obs [N, obs_dim]`` (``normalize_states``)."""
        fit_state_standardisers(dataset.obs, self.actor, self.critic, self.target_actor, self.target_critic)

    def _clip_to_box(self, action: torch.Tensor) -> torch.Tensor:
        low = self.actor.act_bias - self.actor.act_scale
        high = self.actor.act_bias + self.actor.act_scale
        return torch.maximum(torch.minimum(action, high), low)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        action = self.actor(obs)
        if deterministic:
            return action
        noise = torch.randn_like(action) * self.cfg.exploration_noise * self.actor.act_scale
        return self._clip_to_box(action + noise)

    def before_update(self, real: Transitions, model: Transitions | None) -> bool:
        """Whether this update is an actor turn (every ``policy_freq``-th): actor and targets step too."""
        return (self.updates + 1) % self.cfg.policy_freq == 0

    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        batch = mixed_batch(real, model)
        cfg = self.cfg
        with torch.no_grad():
            scale = self.actor.act_scale
            # A clip beyond the float range (any such clip is no clip) would not convert to the tensor's dtype.
            clip = min(cfg.noise_clip, torch.finfo(batch.act.dtype).max)
            noise = (torch.randn_like(batch.act) * cfg.policy_noise).clamp(-clip, clip) * scale
            next_action = self._clip_to_box(self.target_actor(batch.next_obs) + noise)
            next_q = self.target_critic(batch.next_obs, next_action).min(dim=0).values
            target = bootstrap(batch.rew, batch.terminated, cfg.gamma, next_q)
        q = self.critic(batch.obs, batch.act)
        critic_loss = ensemble_td_loss(q, target)
        optimise(self.critic_opt, critic_loss)

        metrics = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
        if branch:
            pi = self.actor(batch.obs)
            q_pi = self.critic(batch.obs, pi)[0]
            lam = cfg.alpha / q_pi.abs().mean().detach()
            reg_name, reg = self.policy_regulariser(pi, batch, real)
            actor_loss = -lam * q_pi.mean() + reg
            optimise(self.actor_opt, actor_loss)
            polyak(self.target_actor, self.actor, cfg.tau)
            polyak(self.target_critic, self.critic, cfg.tau)
            metrics.update({"actor_loss": actor_loss.detach(), reg_name: reg.detach()})
        return metrics

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Count the update (the count decides the actor turns)."""
        self.updates += 1
        return metrics

    def policy_regulariser(self, pi: torch.Tensor, batch: Transitions, real: Transitions) -> tuple[str, torch.Tensor]:
        """The term that keeps the actor ``pi [B, act_dim]`` (on ``batch``, real rows first) near the data, and
        its metric name: behaviour cloning on the real rows (model rows carry the policy's own actions)."""
        return "bc_loss", (pi[: len(real)] - real.act).pow(2).mean()

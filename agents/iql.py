"""Implicit Q-Learning (Kostrikov, Nair & Levine, ICLR 2022).

Never queries Q at actions outside the data. Three losses per update:

* value: expectile regression of ``V(s)`` towards ``min_j Qbar_j(s, a)`` (``tau`` = 0.7 for locomotion);
* critics: ``Q_j(s, a) -> r + gamma * (1 - terminated) * V(s')``;
* actor: advantage-weighted regression, ``-exp(beta * (Qbar - V)) * log pi(a | s)`` with the weight
  clipped at 100 (``beta`` = 3 for locomotion).

``normalize_rewards`` multiplies every reward the update sees by ``1000 / (best - worst trajectory return of
the dataset)``, fitted in :meth:`IQLAgent.attach`: the authors' locomotion setting (``train_offline.py``
``normalize``), which OfflineRL-Kit (``run_iql.py:48-91``) and CORL (``iql.py`` ``modify_reward``) repeat. The
critics and V then learn in scaled units; :meth:`IQLAgent.q_values` divides the scale back out, so every
diagnostic compares them with returns in the task's own units.

``policy`` picks the actor: ``"gaussian"`` (default) is the published one, an unsquashed Gaussian with a
tanh mean and a state-independent std (:class:`~mbrl.nn.TanhMeanGaussianActor`; AWR on the unsquashed
log-density of the dataset action); ``"tanh_gaussian"`` is the tanh-squashed Gaussian with a
state-dependent std (:class:`~mbrl.nn.TanhGaussianActor`), which checkpoints saved before the option
was added hold.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
from mbrl.agents.base import Agent, AgentSpec, SteppedUpdate, register_agent
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.kit import (
    CriticQValues,
    actor_lr_schedule,
    bootstrap,
    ensemble_td_loss,
    load_parts,
    mixed_batch,
    optimise,
    polyak,
    save_parts,
)
from mbrl.agents.rules import (
    DISCOUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    SIZES,
    check,
    check_actor_lr_schedule,
    check_init,
    require,
)
from mbrl.dynamics.base import DynamicsModel
from torch import nn

from mbrl.data.transitions import Transitions, trajectory_returns
from mbrl.nn import (
    StateStandardiser,
    TanhGaussianActor,
    TanhMeanGaussianActor,
    fit_state_standardisers,
    mlp,
    orthogonal_linears,
)
from mbrl.optim import adam

MAX_WEIGHT = 100.0
# normalize_rewards: a trajectory's return span is scaled to the locomotion tasks' episode length, as the
# authors' code does (its 1000.0; CORL's max_episode_steps).
EPISODE_STEPS = 1000.0
# Earlier names of the V network in checkpoints: ``value`` (now the ``Agent.value`` capability), then ``v_net``.
LEGACY_KEYS = {"value": "value_net", "v_net": "value_net"}
POLICIES = {"gaussian": TanhMeanGaussianActor, "tanh_gaussian": TanhGaussianActor}


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
    # The actor's learning rate over training (mbrl.agents.kit.LRSchedule): "constant", or "cosine" decay
    # to 0 over actor_lr_schedule_steps updates, stepped every actor_lr_schedule_every updates: 1000 is
    # OfflineRL-Kit's run_iql.py (CosineAnnealingLR stepped once per epoch), 1 the authors' per-update decay.
    actor_lr_schedule: str = "constant"
    actor_lr_schedule_steps: int = 0  # T_max in updates; required by "cosine"
    actor_lr_schedule_every: int = 1000
    policy: str = "gaussian"  # "gaussian": tanh mean, state-independent std; "tanh_gaussian": squashed
    # How the actor, the critics and V are initialised (mbrl.nn.INITS, docs/fidelity.md "Initialisation"):
    # "orthogonal" (OfflineRL-Kit's run_iql.py), "torch" (CORL's iql.py); the default "edac_heads" (critics
    # EDAC-style, the rest at nn.Linear's default) is what runs made before the setting used.
    init: str = "edac_heads"
    # Rewards times 1000 / (best - worst trajectory return in the dataset), the published locomotion setting;
    # the default false is what runs made before the setting used.
    normalize_rewards: bool = False
    # Standardise the networks' state inputs (actor, critics, V) by the dataset's mean and std + 1e-3, as CORL's
    # iql.py (normalize=True); OfflineRL-Kit's run_iql.py and the authors' code feed raw states (the default).
    normalize_states: bool = False

    def __post_init__(self) -> None:
        check(self, SIZES, "hidden_sizes")
        check(self, POSITIVE, "actor_lr", "critic_lr", "value_lr")
        check(self, DISCOUNT, "gamma")
        check(self, RATE, "tau")
        check(self, FRACTION, "expectile")  # 0 or 1 would drop one side of the value regression
        check(self, NON_NEGATIVE, "beta")  # 0: equal weights (behaviour cloning); < 0 favours worse actions
        check_actor_lr_schedule(self)
        require(self.policy in POLICIES, "policy", self.policy, f"one of {', '.join(POLICIES)}")
        check_init(self, ("edac_heads", "torch", "orthogonal"))


@register_agent("iql")
class IQLAgent(CriticQValues, SteppedUpdate, Agent):
    Config = IQLConfig
    supports_cuda_graphs = True
    state_parts = (
        "actor",
        "critic",
        "target_critic",
        "value_net",
        "actor_opt",
        "critic_opt",
        "value_opt",
        "actor_schedule",
        "reward_scale",
    )

    def __init__(self, spec: AgentSpec, config: IQLConfig) -> None:
        self.cfg = config
        hidden = tuple(config.hidden_sizes)
        dev = spec.device
        init = config.init
        standardise = config.normalize_states
        actor = POLICIES[config.policy](
            spec.obs_dim, spec.act_dim, hidden, spec.act_low, spec.act_high, init, standardise_states=standardise
        )
        self.actor = actor.to(dev)
        self.critic = VectorizedCritic(
            spec.obs_dim, spec.act_dim, hidden, num_critics=2, init=init, standardise_states=standardise
        ).to(dev)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # V(s). Not ``self.value``: that is the ``Agent.value`` capability, which IQL does not declare. The
        # standardiser, when on, comes first (so the layers' keys are unchanged when it is off) and draws nothing.
        layers = [mlp(spec.obs_dim, hidden), nn.Linear(hidden[-1], 1)]
        value_net = nn.Sequential(*([StateStandardiser(spec.obs_dim)] if standardise else []), *layers)
        if init == "orthogonal":
            orthogonal_linears(value_net)
        self.value_net = value_net.to(dev)
        self.actor_opt = adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.value_opt = adam(self.value_net.parameters(), config.value_lr)
        self.actor_schedule = actor_lr_schedule(self.actor_opt, config)
        # A tensor, set in place by attach: CUDA graphs capture it, and it travels in the checkpoint.
        self.reward_scale = torch.ones((), device=dev)

    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Fit the networks' state standardisers (``normalize_states``) to ``dataset.obs [N, obs_dim]`` and, with
        ``normalize_rewards``, the reward scale to the dataset's trajectories."""
        fit_state_standardisers(dataset.obs, self.actor, self.critic, self.target_critic, self.value_net)
        if not self.cfg.normalize_rewards:
            return
        returns = trajectory_returns(dataset)
        span = float(returns.max() - returns.min())
        if not span > 0:
            raise ValueError(
                f"agent.normalize_rewards scales rewards by {EPISODE_STEPS:g} / (best - worst trajectory return), "
                f"but the dataset's {returns.numel()} trajectories all return {float(returns[0]):g}: "
                "set agent.normalize_rewards=false for this dataset"
            )
        self.reward_scale.fill_(EPISODE_STEPS / span)

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Every critic's ``Q(s, a)`` in the task's reward units (the scale divided out): ``obs [B, obs_dim]``,
        ``act [B, act_dim]`` -> ``[2, B]``."""
        return self.critic(obs, act) / self.reward_scale

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_log_prob=False)[0]

    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        batch = mixed_batch(real, model)
        cfg = self.cfg
        with torch.no_grad():
            target_q = self.target_critic(batch.obs, batch.act).min(dim=0).values

        v = self.value_net(batch.obs).squeeze(-1)
        diff = target_q - v
        weight = torch.where(diff < 0, 1 - cfg.expectile, cfg.expectile)
        value_loss = (weight * diff.pow(2)).mean()
        optimise(self.value_opt, value_loss)

        with torch.no_grad():
            # Both the TD target and the advantage read the value network after its step, as the
            # authors' learner.py does (update_v, then the actor and update_q with the new value).
            next_v = self.value_net(batch.next_obs).squeeze(-1)
            target = bootstrap(batch.rew * self.reward_scale, batch.terminated, cfg.gamma, next_v)
            advantage = target_q - self.value_net(batch.obs).squeeze(-1)
        q = self.critic(batch.obs, batch.act)
        critic_loss = ensemble_td_loss(q, target)
        optimise(self.critic_opt, critic_loss)

        adv_weight = torch.exp(cfg.beta * advantage).clamp(max=MAX_WEIGHT)
        actor_loss = -(adv_weight * self.actor.log_prob(batch.obs, batch.act)).mean()
        optimise(self.actor_opt, actor_loss)
        polyak(self.target_critic, self.critic, cfg.tau)
        return {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean(),
            "adv_weight_mean": adv_weight.mean(),
        }

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Step the actor's learning-rate schedule (it sets the rate of the next update's actor step)."""
        self.actor_schedule.step()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return save_parts(self, self.state_parts)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The state-dependent std head (``log_std.weight``) marks a tanh_gaussian actor.
        saved = "tanh_gaussian" if "log_std.weight" in state.get("actor", {}) else "gaussian"
        if "actor" in state and saved != self.cfg.policy:
            raise ValueError(
                f"IQL checkpoint holds a {saved!r} actor but this agent has policy={self.cfg.policy!r}: "
                f"set agent.policy={saved} to load it (checkpoints saved before the option hold tanh_gaussian)"
            )
        # Checkpoints saved before normalize_rewards existed hold no scale: their rewards were not scaled.
        state = {"reward_scale": torch.ones(()), **{LEGACY_KEYS.get(k, k): v for k, v in state.items()}}
        load_parts(self, state, self.state_parts)

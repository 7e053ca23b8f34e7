"""Soft Actor-Critic with an ``N``-critic ensemble: SAC, SAC-N (``num_critics > 2``), EDAC (``eta > 0``).

The same class trains the behaviour policies online (``mbrl.online``) and learns offline from
real and model batches; with model rollouts and no reward penalty it is RAVL (Sims et al. 2024).
EDAC (An et al. 2021) adds ``eta`` times the mean pairwise cosine similarity of the members'
action-gradients ``grad_a Q_j(s, a)``, which diversifies the ensemble so that the min over members
penalises out-of-distribution actions (and, in RAVL, edge-of-reach states).

Target: ``y = r + gamma * (1 - terminated) * (min_j Qbar_j(s', a') - alpha * log pi(a'|s'))``.
Update order (as in SAC-N/EDAC): temperature, actor, critics, Polyak averaging; the actor loss and the
target use the temperature after its step. The actor's learning-rate schedule steps after the update
(``after_update``), which is all of the update that is not tensor work (``cuda_graphs=true`` replays the rest).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import torch
from mbrl.agents.base import Agent, AgentSpec, SteppedUpdate, register_agent
from mbrl.agents.compiled import compile_sac
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.kit import CriticQValues, actor_lr_schedule, bootstrap, ensemble_td_loss, mixed_batch, optimise, polyak
from mbrl.agents.rules import (
    COUNT,
    DISCOUNT,
    FINITE_OR_NULL,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    SIZES,
    check,
    check_actor_lr_schedule,
    check_init,
)
from mbrl.dynamics.base import DynamicsModel

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor, fit_state_standardisers
from mbrl.optim import adam


@dataclass
class SACBaseConfig:
    """The fields of every agent built on :class:`SACAgent` (SAC itself, CQL and COMBO, RAMBO): networks,
    learning rates, discount, Polyak rate and the temperature; defaults are the usual SAC D4RL settings."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 5e-3
    init_alpha: float = 1.0
    auto_alpha: bool = True
    target_entropy: float | None = None  # None: -act_dim
    # The actor's learning rate over training (mbrl.agents.kit.LRSchedule): "constant", or "cosine" decay to 0
    # over actor_lr_schedule_steps updates, stepped every actor_lr_schedule_every updates (OfflineRL-Kit's
    # CosineAnnealingLR with T_max = epochs, stepped once per epoch of 1000 updates).
    actor_lr_schedule: str = "constant"
    actor_lr_schedule_steps: int = 0  # T_max in updates; required by "cosine"
    actor_lr_schedule_every: int = 1000
    # How the actor and the critics are initialised (mbrl.nn.INITS, docs/fidelity.md "Initialisation"): "torch"
    # (OfflineRL-Kit's SAC, MOPO, MOBILE, COMBO, RAMBO, CQL), "edac" (CORL, edge-of-reach), "edac_trunc_normal"
    # (OfflineRL-Kit's run_edac.py); the default "edac_heads" is what runs made before the setting used.
    init: str = "edac_heads"
    # Standardise the actor's and critics' state inputs by the attached dataset's mean and std + 1e-3
    # (mbrl.nn.StateStandardiser), as both RAMBO references do; the default false is what earlier runs used.
    normalize_states: bool = False

    def __post_init__(self) -> None:
        check(self, SIZES, "hidden_sizes")
        check_init(self, ("edac_heads", "torch", "edac", "edac_trunc_normal"))
        check(self, COUNT, "num_critics")  # the min over one critic is SAC-N with N = 1
        check(self, POSITIVE, "actor_lr", "critic_lr", "alpha_lr", "init_alpha")  # init_alpha: its log is learned
        check(self, DISCOUNT, "gamma")
        check(self, RATE, "tau")
        check(self, FINITE_OR_NULL, "target_entropy")
        check_actor_lr_schedule(self)


@dataclass
class SACConfig(SACBaseConfig):
    """Hyper-parameters; defaults are the usual SAC/SAC-N D4RL settings."""

    eta: float = 0.0  # EDAC gradient-diversity weight; 0 is plain SAC-N
    spectral_norm: bool = False  # spectrally normalised critic hidden layers (Zheng et al. 2023)
    adv_target_eps: float = 0.0  # radius of the adversarial perturbation of model next states; 0 is off
    # Leave the entropy term out of the TD target (MOBILE's authors' code, OfflineRL-Kit's
    # run_mobile.py default); the actor and temperature losses keep theirs.
    deterministic_backup: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, NON_NEGATIVE, "eta", "adv_target_eps")  # a weight and a radius; 0 turns each off


@register_agent("sac")
class SACAgent(CriticQValues, SteppedUpdate, Agent):
    Config = SACConfig
    has_value = True
    supports_compile = True
    supports_cuda_graphs = True
    # What the default state_dict saves, in this order (``Agent.state_dict``).
    state_parts: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "target_critic",
        "log_alpha",
        "actor_opt",
        "critic_opt",
        "alpha_opt",
        "actor_schedule",
    )

    def __init__(self, spec: AgentSpec, config: SACBaseConfig) -> None:
        self.spec = spec
        self.cfg = config
        dev = torch.device(spec.device)
        hidden = tuple(config.hidden_sizes)
        init = config.init
        standardise = config.normalize_states
        self.actor = TanhGaussianActor(
            spec.obs_dim, spec.act_dim, hidden, spec.act_low, spec.act_high, init, standardise_states=standardise
        ).to(dev)
        spectral_norm = isinstance(config, SACConfig) and config.spectral_norm  # a SAC option; CQL has none
        self.critic = VectorizedCritic(
            spec.obs_dim,
            spec.act_dim,
            hidden,
            config.num_critics,
            spectral_norm=spectral_norm,
            init=init,
            standardise_states=standardise,
        ).to(dev)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=dev, requires_grad=True)
        self.target_entropy = -float(spec.act_dim) if config.target_entropy is None else config.target_entropy
        self.actor_opt = adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = adam([self.log_alpha], config.alpha_lr)
        self.actor_schedule = actor_lr_schedule(self.actor_opt, config)

    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Fit the networks' state standardisers to ``dataset.obs [N, obs_dim]`` (``normalize_states``)."""
        fit_state_standardisers(dataset.obs, self.actor, self.critic, self.target_critic)

    # -- acting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        action, _ = self.actor(obs, deterministic=deterministic, with_log_prob=False)
        return action

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Pessimistic state value ``[B]`` of ``obs [B, obs_dim]``: ``min_j Qbar_j(s, a)``, ``a ~ pi(s)``
        (used by value-based penalties such as MOBILE's)."""
        action, _ = self.actor(obs, with_log_prob=False)
        return self.target_critic(obs, action).min(dim=0).values

    # -- learning ---------------------------------------------------------------------------------
    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        batch = mixed_batch(real, model)

        # Temperature and actor share one policy sample. The actor loss and the TD target use the
        # temperature after its step, as SAC-N/EDAC and RAVL's code do (edge-of-reach agent.py:284).
        q_pi, log_prob = self.actor_objective(batch.obs)
        self.temperature_step(log_prob)
        alpha = self.log_alpha.exp().detach()
        actor_loss = (alpha * log_prob - q_pi).mean()
        optimise(self.actor_opt, actor_loss)  # reaches only the actor: the objective detaches the critics' weights

        next_obs = batch.next_obs
        if self.cfg.adv_target_eps > 0 and model is not None:
            n_real = len(real)
            next_obs = torch.cat([next_obs[:n_real], self.adversarial_states(next_obs[n_real:])])
        target = self.td_target(next_obs, batch.rew, batch.terminated, alpha)
        critic_loss, q, diversity = self.critic_objective(batch.obs, batch.act, target)
        optimise(self.critic_opt, critic_loss)
        polyak(self.target_critic, self.critic, self.cfg.tau)

        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "q_mean": q.detach().mean(),
            "entropy": -log_prob.detach().mean(),
            "diversity": diversity.detach(),
        }

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Step the actor's learning-rate schedule (it sets the rate of the next update's actor step)."""
        self.actor_schedule.step()
        return metrics

    def temperature_step(self, log_prob: torch.Tensor) -> None:
        """With ``auto_alpha``, one step of ``log alpha`` towards the target entropy, given ``log pi(a|s) [B]``."""
        if self.cfg.auto_alpha:
            optimise(self.alpha_opt, -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean())

    # The three pure functions below are the update's hot path; ``compile()`` wraps them with torch.compile.
    def actor_objective(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``min_j Q_j(s, a) [B]`` and ``log pi(a|s) [B]``, ``a ~ pi(s)``: the actor loss is
        ``mean(alpha * log pi(a|s) - min_j Q_j(s, a))``, formed once the temperature has stepped.

        The critics enter with detached weights: the loss differentiates through them to the action, and
        their own weight gradients (two thirds of a backward pass) would be thrown away.
        """
        pi_action, log_prob = self.actor(obs)
        frozen = {name: p.detach() for name, p in self.critic.named_parameters()}
        q_pi = torch.func.functional_call(self.critic, frozen, (obs, pi_action)).min(dim=0).values
        return q_pi, log_prob

    @torch.no_grad()
    def td_target(
        self, next_obs: torch.Tensor, rew: torch.Tensor, terminated: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        """TD target ``y [B] = r + gamma * (1 - terminated) * (min_j Qbar_j(s', a') - alpha * log pi(a'|s'))``.

        With ``deterministic_backup`` the ``alpha * log pi`` term is left out.
        """
        next_action, next_log_prob = self.actor(next_obs)
        next_q = self.target_critic(next_obs, next_action).min(dim=0).values
        next_v = next_q if self.cfg.deterministic_backup else next_q - alpha * next_log_prob
        return bootstrap(rew, terminated, self.cfg.gamma, next_v)

    def critic_objective(
        self, obs: torch.Tensor, act: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Critic loss (per-member MSE to ``target [B]``, summed, plus ``eta`` times EDAC's diversity),
        ``q [N, B]`` and the diversity term."""
        if self.cfg.eta > 0:
            q, diversity = self.q_and_diversity(obs, act)
        else:
            q, diversity = self.critic(obs, act), torch.zeros((), device=obs.device)
        return ensemble_td_loss(q, target) + self.cfg.eta * diversity, q, diversity

    def q_and_diversity(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values ``[N, B]`` and EDAC's diversity term from one forward pass: the sum of off-diagonal
        cosine similarities of the members' action-gradients, averaged over the batch and divided by ``N - 1``."""
        n = self.cfg.num_critics
        q, grads = self.q_and_action_grads(obs, act)
        grads = grads / (grads.norm(dim=-1, keepdim=True) + 1e-10)
        cos = torch.einsum("nba,mba->bnm", grads, grads)  # [B, N, N]
        off_diagonal = cos.sum(dim=(1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(dim=-1)
        return q, off_diagonal.mean() / max(n - 1, 1)

    def q_and_action_grads(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q [N, B]`` and every member's differentiable action-gradient ``dQ_j/da [N, B, act_dim]``.

        Each member gets its own copy of the actions, so ``autograd.grad`` yields per-member gradients.
        """
        act_rep = act.unsqueeze(0).expand(self.cfg.num_critics, -1, -1).clone().requires_grad_(True)
        q = self.critic(obs, act_rep)
        (grads,) = torch.autograd.grad(q.sum(), act_rep, create_graph=True)
        return q, grads

    def adversarial_states(self, states: torch.Tensor) -> torch.Tensor:
        """``states [B, obs_dim]`` moved by ``adv_target_eps`` (L2) in the direction that lowers the value.

        The value is the target critics' min at the policy's mean action; one normalised gradient
        step stands in for the inner minimisation over the ball (Zheng et al. 2023), so targets
        bootstrap from the worst nearby model state instead of the sampled one.
        """
        s = states.detach().requires_grad_(True)
        action, _ = self.actor(s, deterministic=True, with_log_prob=False)
        value = self.target_critic(s, action).min(dim=0).values.sum()
        (grad,) = torch.autograd.grad(value, s)
        step = grad / (grad.norm(dim=-1, keepdim=True) + 1e-12)
        return (states - self.cfg.adv_target_eps * step).detach()

    def compile(self) -> None:
        """Wrap the update's hot functions with ``torch.compile`` (opt-in: ``compile=true``); see
        :func:`mbrl.agents.compiled.compile_sac`."""
        compile_sac(self)

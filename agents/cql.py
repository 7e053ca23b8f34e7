"""Conservative Q-Learning, CQL(H) (Kumar et al., NeurIPS 2020): SAC whose critics push down a soft maximum
of Q over actions and push up Q on the data.

Per critic ``i`` the loss is the Bellman error plus ``cql_weight`` times the gap

    E_s[ T * logsumexp_k((Q_i(s, a_k) - log mu(a_k | s)) / T) ] - E_(s,a)~D[ Q_i(s, a) ],

where the ``3 * num_samples`` proposals ``a_k`` per state are ``num_samples`` uniform actions, as many from
``pi(.|s)`` and as many from ``pi(.|s')`` (all scored at ``s``), each corrected by its log density: the
importance-sampled estimate of ``log integral exp Q(s, a) da`` (``min_q_version=3`` of the authors' code, and
CORL's ``cql_importance_sample``). The logsumexp runs over all proposals of a state, as in the authors' code
and CORL; OfflineRL-Kit's ``cql.py``/``combo.py`` drop a reshape and take it over 3 values per row instead.

With ``with_lagrange`` the weight becomes ``alpha' * (cql_weight * gap - target_action_gap)`` and
``alpha' >= 0`` is trained by gradient ascent on that term (CQL-Lagrange), so the gap is held near the target.

Target: ``y = r + gamma * (1 - terminated) * min_j Qbar_j(s', a')`` with ``a' ~ pi(.|s')``; the entropy bonus
``-alpha * log pi(a'|s')`` is left out (``deterministic_backup``) unless asked for. ``max_q_backup`` takes the
max over ``num_samples`` next actions instead of one. For the first ``bc_steps`` updates the actor maximises
the likelihood of the dataset actions instead of Q (the authors' ``policy_eval_start`` warm-up).

Defaults are OfflineRL-Kit's D4RL locomotion setting (``run_cql.py``: cql_weight 5 and temperature 1 "for all
D4RL-Gym tasks"): 3x256 networks, actor lr 1e-4, critic lr 3e-4, temperature lr 1e-4 with automatic tuning,
10 samples, deterministic backup, no Lagrange, no max-Q backup, no warm-up.

A model batch is treated like data: Bellman error, push-down and push-up on every row. COMBO
(``mbrl.agents.combo``) is the model-based variant that separates the two.
Update order: temperature, actor, critics (and Lagrange multiplier), Polyak averaging. The agent is SAC's
(:class:`~mbrl.agents.sac.SACAgent`: networks, optimisers, the temperature step, the actor objective and the
one-sample TD target); the actor loss uses the temperature from before its step, as OfflineRL-Kit's cql.py.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import torch
from mbrl.agents.base import Agent, AgentSpec, register_agent
from mbrl.agents.kit import bootstrap, ensemble_td_loss, mixed_batch, optimise, polyak
from mbrl.agents.rules import COUNT, FINITE, NON_NEGATIVE, POSITIVE, STEPS, check, require
from mbrl.agents.sac import SACAgent, SACBaseConfig

from mbrl.data.transitions import Transitions
from mbrl.optim import adam

LOGSUMEXP_OVER = ("state", "draw")


@dataclass
class CQLConfig(SACBaseConfig):
    """SAC's shared hyper-parameters plus CQL's; defaults are OfflineRL-Kit's CQL setting for D4RL locomotion."""

    hidden_sizes: tuple[int, ...] = (256, 256, 256)
    actor_lr: float = 1e-4
    alpha_lr: float = 1e-4
    cql_weight: float = 5.0  # weight of the conservative gap (alpha in the paper)
    temperature: float = 1.0  # of the logsumexp; 1 is the plain soft maximum
    num_samples: int = 10  # proposals per state from each of: uniform, pi(.|s), pi(.|s')
    with_lagrange: bool = False  # tune a multiplier on the gap instead of a fixed weight
    target_action_gap: float = 10.0  # the Lagrange threshold on cql_weight * gap
    cql_alpha_lr: float = 3e-4  # learning rate of the Lagrange multiplier
    max_q_backup: bool = False  # bootstrap from the max over num_samples next actions
    deterministic_backup: bool = True  # leave the entropy bonus out of the target
    bc_steps: int = 0  # initial updates in which the actor clones the dataset actions
    logsumexp_over: str = "state"  # "state": all 3n proposals of a state; "draw": the 3 of each draw (OfflineRL-Kit)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.logsumexp_over in LOGSUMEXP_OVER, "logsumexp_over", self.logsumexp_over, "state or draw")
        check(self, COUNT, "num_samples")
        check(self, POSITIVE, "cql_alpha_lr", "temperature")
        check(self, NON_NEGATIVE, "cql_weight")  # 0 is SAC; a negative weight would push Q up off the data
        check(self, FINITE, "target_action_gap")  # a threshold on the weighted gap, which may be negative
        check(self, STEPS, "bc_steps")


@register_agent("cql")
class CQLAgent(SACAgent):
    Config = CQLConfig
    # SAC's value() and compile() are not part of CQL (its update does not run SAC's compiled functions).
    has_value = False
    supports_compile = False
    value = Agent.value
    compile = Agent.compile
    state_parts: ClassVar[tuple[str, ...]] = (
        "actor",
        "critic",
        "target_critic",
        "log_alpha",
        "log_cql_alpha",
        "actor_opt",
        "critic_opt",
        "alpha_opt",
        "cql_alpha_opt",
        "updates",
        "actor_schedule",
    )

    def __init__(self, spec: AgentSpec, config: CQLConfig) -> None:
        super().__init__(spec, config)
        # The Lagrange multiplier alpha' starts at 1, as in the authors' code.
        self.log_cql_alpha = torch.zeros((), device=self.log_alpha.device, requires_grad=True)
        self.cql_alpha_opt = adam([self.log_cql_alpha], config.cql_alpha_lr)
        self.updates = 0

    # -- learning ---------------------------------------------------------------------------------
    def before_update(self, real: Transitions, model: Transitions | None) -> bool:
        """Whether this update is one of the first ``bc_steps``, in which the actor clones the data."""
        return self.updates < self.cfg.bc_steps

    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        batch = mixed_batch(real, model)
        alpha = self.log_alpha.exp().detach()  # before the temperature's step

        # Temperature and actor share one policy sample.
        q_pi, log_prob = self.actor_objective(batch.obs)
        self.temperature_step(log_prob)
        if branch:
            # Behaviour cloning on the real rows: model rows carry the policy's own actions.
            actor_loss = (alpha * log_prob).mean() - self.actor.log_prob(real.obs, real.act).mean()
        else:
            actor_loss = (alpha * log_prob - q_pi).mean()
        optimise(self.actor_opt, actor_loss)

        target = self.td_target(batch.next_obs, batch.rew, batch.terminated, alpha)
        q = self.critic(batch.obs, batch.act)  # [N, B]
        bellman_loss = ensemble_td_loss(q, target)

        down, up = self.conservative_rows(len(real), len(batch) - len(real))
        actions, log_density = self.proposals(batch.obs[down], batch.next_obs[down])
        gap = self.conservative_gap(batch.obs[down], actions, log_density, q[:, up])  # [N]
        metrics: dict[str, torch.Tensor] = {}
        if cfg.with_lagrange:
            cql_alpha = self.log_cql_alpha.exp().clamp(0.0, 1e6)
            # Ascent on alpha' * (weighted gap - threshold): alpha' grows while the gap exceeds the threshold.
            optimise(self.cql_alpha_opt, -(cql_alpha * (cfg.cql_weight * gap.detach() - cfg.target_action_gap)).mean())
            cql_loss = (cql_alpha.detach() * (cfg.cql_weight * gap - cfg.target_action_gap)).sum()
            metrics["cql_alpha"] = cql_alpha.detach()
        else:
            cql_loss = cfg.cql_weight * gap.sum()
        critic_loss = bellman_loss + cql_loss
        optimise(self.critic_opt, critic_loss)
        polyak(self.target_critic, self.critic, cfg.tau)

        return {
            "critic_loss": critic_loss.detach(),
            "bellman_loss": bellman_loss.detach(),
            "cql_loss": cql_loss.detach(),
            "cql_gap": gap.detach().mean(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "q_mean": q.detach().mean(),
            "entropy": -log_prob.detach().mean(),
            **metrics,
        }

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Step the actor's learning-rate schedule and count the update."""
        self.updates += 1
        return super().after_update(branch, metrics)

    @torch.no_grad()
    def td_target(
        self, next_obs: torch.Tensor, rew: torch.Tensor, terminated: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        """SAC's target ``[B]`` or, with ``max_q_backup``, the target from the best of ``num_samples`` next actions."""
        if not self.cfg.max_q_backup:
            return super().td_target(next_obs, rew, terminated, alpha)
        n = self.cfg.num_samples
        next_obs = next_obs.repeat_interleave(n, dim=0)  # [B * n, obs_dim]: row b repeated n times
        next_action, next_log_prob = self.actor(next_obs)
        next_q = self.target_critic(next_obs, next_action).min(dim=0).values.view(-1, n)
        next_q, best = next_q.max(dim=1)
        if not self.cfg.deterministic_backup:
            next_q = next_q - alpha * next_log_prob.view(-1, n).gather(1, best.unsqueeze(1)).squeeze(1)
        return bootstrap(rew, terminated, self.cfg.gamma, next_q)

    def conservative_rows(self, n_real: int, n_model: int) -> tuple[slice, slice]:
        """Rows of the batch (real rows first, then model rows) whose states the conservative term pushes
        down and whose ``(s, a)`` pairs it pushes up. CQL treats every row as data."""
        return slice(None), slice(None)

    @torch.no_grad()
    def proposals(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``[M, 3n, act_dim]`` at which to evaluate Q for the states ``obs [M, obs_dim]``, and their
        log densities ``[M, 3n]``: ``n`` uniform in the action box, ``n`` from ``pi(.|s)``, ``n`` from
        ``pi(.|s')`` (``next_obs [M, obs_dim]``). Sampled without gradients: only the critics learn here."""
        m, n, act_dim = obs.shape[0], self.cfg.num_samples, self.spec.act_dim
        width = 2 * self.actor.act_scale
        uniform = self.actor.act_bias - self.actor.act_scale + width * torch.rand(m, n, act_dim, device=obs.device)
        uniform_log_density = (-width.log().sum()).expand(m, n)
        states = torch.cat([obs, next_obs]).repeat_interleave(n, dim=0)  # [2 * M * n, obs_dim]
        pi_action, pi_log_prob = self.actor(states)
        pi_action, pi_log_prob = pi_action.view(2, m, n, act_dim), pi_log_prob.view(2, m, n)
        actions = torch.cat([uniform, pi_action[0], pi_action[1]], dim=1)
        log_density = torch.cat([uniform_log_density, pi_log_prob[0], pi_log_prob[1]], dim=1)
        return actions, log_density

    def conservative_gap(
        self, obs: torch.Tensor, actions: torch.Tensor, log_density: torch.Tensor, q_data: torch.Tensor
    ) -> torch.Tensor:
        """Per critic ``[N]``: ``mean_s T * logsumexp_k((Q(s, a_k) - log_density_k) / T) - mean(q_data)``, the
        logsumexp over the ``K = 3n`` proposals of a state, or (``logsumexp_over="draw"``) over the 3 of each draw
        and averaged over the n draws.

        ``obs [M, obs_dim]``, ``actions [M, K, act_dim]`` laid out as :meth:`proposals` returns them,
        ``log_density [M, K]``, ``q_data [N, D]``: the critics' values on the data pairs that are pushed up.
        """
        m, k, act_dim = actions.shape
        q = self.critic(obs.repeat_interleave(k, dim=0), actions.reshape(m * k, act_dim)).view(-1, m, k)
        t = self.cfg.temperature
        scaled = (q - log_density) / t  # [N, M, K]
        if self.cfg.logsumexp_over == "draw":
            # [uniform n | pi(s) n | pi(s') n] -> [N, M, 3, n]: draw j's three proposals share the last index.
            soft_max = t * torch.logsumexp(scaled.view(-1, m, 3, k // 3), dim=2).mean(dim=-1)  # [N, M]
        else:
            soft_max = t * torch.logsumexp(scaled, dim=-1)  # [N, M]
        return soft_max.mean(dim=1) - q_data.mean(dim=1)

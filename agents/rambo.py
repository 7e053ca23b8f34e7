"""RAMBO-RL (Rigter, Lacerda and Hawes, NeurIPS 2022): SAC on real and model data, with a dynamics model
that is trained as an adversary of the policy.

The agent is SAC with two critics (this class extends :class:`~mbrl.agents.sac.SACAgent`) learning from
batches that are half real and half model rollouts. Every ``adv_every`` agent updates the model takes
``adv_steps`` gradient steps on

    loss = adv_weight * mean_b log p_phi(s'_b, r_b | s_b, a_b) * A_b  +  supervised loss on real data,

where ``(s, a)`` walk short on-policy rollouts through the model (``adv_horizon`` steps from real
start states, actions from the current stochastic policy), ``(s', r)`` is drawn from the model itself
(a uniformly chosen elite, then its Gaussian), ``p_phi`` is the density of that draw under the uniform
mixture of the elites, and the advantage

    A = r + gamma * (1 - terminated) * min_j Q_j(s', pi_mean(s')) - min_j Q_j(s, a)

uses the current (not the target) critics, is normalised over the batch and carries no gradient.
Descending the first term is REINFORCE on the model: it moves probability towards transitions with a
low value for the policy, so the policy learns to be robust to the errors the data cannot rule out. The
supervised term (the model's own training loss, ``GaussianEnsemble.supervised_loss``: Gaussian NLL of every member
on a real batch, weight decay, ``logvar_loss_coef`` times the log-variance bounds) keeps the model
consistent with the data. The adversarial term is averaged over the batch rows, as in OfflineRL-Kit
(``rambo.py:182``, ``(log_prob * advantage).mean()``). The authors' TensorFlow code minimises the vector
``adv_weight * A_b * log p_b + supervised`` (one entry per row), whose gradient is the sum over rows: the
adversarial term summed and the supervised one counted once per row, the same ratio of the two terms (Adam
removes the common factor). So ``adv_weight`` keeps its published meaning at any batch size.

The published code behaviour-clones the actor for 50 epochs before anything else. Here the first ``update``
call does it (``bc_steps`` steps maximising the likelihood of dataset actions, with their own Adam
optimiser; not counted as updates), so a resumed run never repeats it; the only difference is that the
first rollout round, drawn before that call, comes from the initial policy.

Wiring: the training job calls ``attach(real, model)``: the real data (start states, supervised rows and
the BC data) and the model that the rollouts use, so adversarial steps change the rollouts that follow. The
model object is the job's copy in memory; the cached fit on disk is never written. The model's parameters
belong to the run, whose checkpoint saves them with the dynamics; the adversary's optimiser state is part of
the agent's ``state_dict``, so a resumed run continues exactly. Without an attached dataset (e.g. in the
generic agent tester) the agent trains as plain SAC, without an attached model as SAC after BC; either way
it logs a warning once.

Verified against OfflineRL-Kit (``policy/model_based/rambo.py``, ``run_example/run_rambo.py``,
``policy_trainer/mb_policy_trainer.py``) and the authors' TensorFlow code (``rambo/algorithms/rambo.py``):
after every 1000 agent updates, 1000 model steps, each on 256 rollout states and (OfflineRL-Kit) 256 real
rows; rollouts of the task's horizon restarted from real states and continued through terminals; next
actions deterministic, critics the current ones; the entropy left out of the advantage unless
``include_ent_in_adv``; every member (the optimiser holds every model parameter, the log-variance bounds
included) gets the supervised loss, only the elites the adversarial one; the elites are not re-chosen;
dynamics Adam lr 3e-4, actor lr 1e-4, BC lr 1e-4 and batch 256. Differences: OfflineRL-Kit keeps running
the (then purely supervised) model steps when ``adv_weight = 0``, the authors' code skips them (here they
run). Both references standardise observations by the dataset's mean and std + 1e-3 (OfflineRL-Kit
``run_rambo.py:150, 188``; the authors' ``normalize_states``): ``normalize_states: true`` in the preset
does the same for the actor's and critics' inputs (:class:`mbrl.nn.StateStandardiser`). OfflineRL-Kit also
fits its dynamics model on the standardised states, so its model's loss weighs the state dimensions by
their spread; here the model learns in raw units behind its own input scaler (the loss weighting differs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
from mbrl.agents.base import AgentSpec, register_agent
from mbrl.agents.kit import bootstrap, load_parts, require_model_batch, save_parts
from mbrl.agents.rules import COUNT, NON_NEGATIVE, POSITIVE, STEPS, check, require
from mbrl.agents.sac import SACAgent, SACConfig
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.ensemble import GaussianEnsemble

from mbrl.data.transitions import Transitions, placeholder_rows
from mbrl.nn import TanhGaussianActor
from mbrl.optim import adam

log = logging.getLogger(__name__)

# Means over the last adversarial phase, reported with every update (zeros before the first phase) so that
# each logged row has the same columns.
ADV_METRICS = ("adv_nll", "adv_log_prob", "adv_value", "adv_loss")
BC_LOSSES = ("nll", "sampled_mse")  # behaviour-cloning losses: the authors' and OfflineRL-Kit's


def behaviour_cloning_loss(actor: TanhGaussianActor, obs: torch.Tensor, act: torch.Tensor, kind: str) -> torch.Tensor:
    """The warm-up's loss of ``actor`` on dataset rows ``obs [B, obs_dim]``, ``act [B, act_dim]``: ``nll`` is
    ``-mean log pi(a|s)``; ``sampled_mse`` is ``mean (a~pi(s) - a)^2``, which also shrinks the policy's spread."""
    if kind == "nll":
        return -actor.log_prob(obs, act).mean()
    return (actor(obs, with_log_prob=False)[0] - act).pow(2).mean()


@dataclass
class RAMBOConfig(SACConfig):
    """SAC's hyper-parameters (published RAMBO values: 2 critics, actor lr 1e-4) plus the adversary's and the
    behaviour-cloning warm-up's."""

    actor_lr: float = 1e-4
    adv_weight: float = 3e-4  # weight of the adversarial term (averaged over the rows); 0 = supervised steps only
    adv_every: int = 1000  # agent updates between adversarial phases
    adv_steps: int = 1000  # model gradient steps per phase
    adv_batch_size: int = 256  # rollout states and real rows per model step
    adv_horizon: int = 5  # model steps a batch of states is rolled before fresh real start states are drawn
    adv_lr: float = 3e-4  # Adam learning rate of the model during adversarial training
    include_ent_in_adv: bool = False  # subtract alpha * log pi(a'|s') from the next-state value in the advantage
    bc_steps: int = 200_000  # BC steps before the first update (~50 epochs of a 1M-row dataset at 256 rows)
    bc_batch_size: int = 256
    bc_lr: float = 1e-4
    # "nll": -log pi(a|s) of the dataset action (the authors' code); "sampled_mse": the squared error of a
    # reparameterised sample against it (OfflineRL-Kit rambo.py:84-86).
    bc_loss: str = "nll"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.bc_loss in BC_LOSSES, "bc_loss", self.bc_loss, "nll or sampled_mse")
        check(self, COUNT, "adv_every", "adv_steps", "adv_horizon", "bc_batch_size")
        # The advantage is normalised by its standard deviation over the batch, which needs two rows.
        require(self.adv_batch_size >= 2, "adv_batch_size", self.adv_batch_size, ">= 2")
        check(self, NON_NEGATIVE, "adv_weight")  # 0: supervised model steps only
        check(self, POSITIVE, "adv_lr", "bc_lr")
        check(self, STEPS, "bc_steps")


@register_agent("rambo")
class RAMBOAgent(SACAgent):
    Config = RAMBOConfig
    # SAC on real data alone is not RAMBO: refuse to run without model rollouts.
    requires_model = True

    def __init__(self, spec: AgentSpec, config: RAMBOConfig) -> None:
        super().__init__(spec, config)
        device = self.log_alpha.device
        # Own stream for the adversary's and BC's draws (start states, real rows, model samples), seeded from
        # the global one so that the run's seed fixes it; saved with the agent for an exact resume.
        self.generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,))))
        self.updates = 0
        self.data: Transitions | None = None
        self.model_rows: torch.Tensor | None = None
        self.dynamics: GaussianEnsemble | None = None
        self.dynamics_opt: torch.optim.Adam | None = None
        self.adv_metrics = {k: torch.zeros((), device=device) for k in ADV_METRICS}

    # -- wiring -------------------------------------------------------------------------------------------
    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Keep the real data ``[N, ...]`` (a reference, not a copy) for BC, start states and supervised rows, and
        train ``dynamics`` (modified in place) adversarially from now on; it must be a learned Gaussian model.
        Without dynamics (e.g. the generic tester) there are no adversarial steps."""
        if dynamics is not None and not isinstance(dynamics, GaussianEnsemble):
            raise ValueError(
                f"agent=rambo trains its dynamics model adversarially and needs a learned one "
                f"(dynamics=ensemble or dynamics=single); got {type(dynamics).__name__}"
            )
        super().attach(dataset, dynamics)  # the state standardisers (normalize_states)
        self.data = dataset
        # D4RL's placeholder next states (terminal rows with next_obs = obs) are left out of the supervised
        # rows, as the training job leaves them out of the fit.
        self.model_rows = (~placeholder_rows(dataset)).nonzero().squeeze(1)
        if dynamics is not None:
            self.dynamics = dynamics
            self.dynamics_opt = adam(dynamics.parameters(), self.cfg.adv_lr)

    # -- learning -----------------------------------------------------------------------------------------
    # An update: behaviour cloning before the first one (before_update), SAC's step on the batch (update_step),
    # then every adv_every updates an adversarial phase of the model (after_update).
    def before_update(self, real: Transitions, model: Transitions | None) -> Hashable:
        """Refuse an update without model rows; before the first update, behaviour-clone the actor (or warn about
        what is not attached)."""
        require_model_batch(
            model, "RAMBO learns from model rollouts: set dynamics=ensemble (or single) and rollout.real_ratio < 1"
        )
        if self.updates == 0:
            if self.data is None:
                log.warning("RAMBO: no dataset attached; no behaviour cloning, no adversarial model steps (plain SAC)")
            elif self.dynamics is None:
                log.warning("RAMBO: no dynamics model attached; no adversarial model training (SAC after BC)")
            if self.data is not None and self.cfg.bc_steps > 0:
                self.behaviour_clone()
        return super().before_update(real, model)

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SAC's bookkeeping, the update count and, every ``adv_every`` updates, an adversarial phase; the
        metrics gain the last phase's."""
        metrics = super().after_update(branch, metrics)
        self.updates += 1
        if self.updates % self.cfg.adv_every == 0 and self.dynamics is not None and self.data is not None:
            self.adv_metrics = self.adversarial_phase()
        return metrics | self.adv_metrics

    def behaviour_clone(self) -> None:
        """``bc_steps`` steps of :func:`behaviour_cloning_loss` on dataset batches: the published warm-up of the
        actor."""
        cfg = self.cfg
        log.info("RAMBO: behaviour cloning the actor for %d steps", cfg.bc_steps)
        opt = adam(self.actor.parameters(), cfg.bc_lr)
        for _ in range(cfg.bc_steps):
            batch = self.data.sample(cfg.bc_batch_size, self.generator)
            loss = behaviour_cloning_loss(self.actor, batch.obs, batch.act, cfg.bc_loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log.info("RAMBO: behaviour cloning done, last batch %s %.3f", cfg.bc_loss, loss.item())

    def adversarial_phase(self) -> dict[str, torch.Tensor]:
        """``adv_steps`` model steps along on-policy model rollouts; returns the metrics' means over the phase."""
        cfg = self.cfg
        totals = {k: torch.zeros_like(v) for k, v in self.adv_metrics.items()}
        for step in range(cfg.adv_steps):
            if step % cfg.adv_horizon == 0:  # fresh start states; rollouts run through terminals, as published
                obs = self.data.obs[self._draw(len(self.data))]
            with torch.no_grad():
                act, _ = self.actor(obs, with_log_prob=False)
            real = self.data.index(self.model_rows[self._draw(len(self.model_rows))])
            obs, metrics = self.adversarial_step(obs, act, real)
            for k, v in metrics.items():
                totals[k] += v
        return {k: v / cfg.adv_steps for k, v in totals.items()}

    def adversarial_step(
        self, obs: torch.Tensor, act: torch.Tensor, real: Transitions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One model step: ``obs [B, o]``, ``act [B, a]`` (policy actions), ``real`` a batch of ``B`` data rows.

        Returns the sampled next states ``[B, o]`` (where the rollout continues) and the step's metrics.
        """
        dyn, cfg = self.dynamics, self.cfg
        step = dyn.sample(obs, act, self.generator, member_stats=False)  # no gradient: the draw alone
        drawn = torch.cat([step.next_obs - obs, step.reward[:, None]], dim=1)  # [B, o+1], the model's target space
        mean, logvar = dyn.predict(obs, act)  # [E, B, o+1], differentiable
        elites = dyn.elites
        # No argument validation: a diverged model or policy (NaN) shows in the metrics, where the training loop
        # stops on it by name, instead of failing here with a raw ValueError.
        std = (0.5 * logvar[elites]).exp()
        member_log_prob = torch.distributions.Normal(mean[elites], std, validate_args=False).log_prob(drawn)
        # Density of the draw under the process that made it: the uniform mixture of the elites.
        log_prob = torch.logsumexp(member_log_prob.sum(-1), dim=0) - math.log(len(elites))  # [B]
        with torch.no_grad():
            next_act, next_log_prob = self.actor(step.next_obs, deterministic=True)
            next_value = self.critic(step.next_obs, next_act).min(dim=0).values
            if cfg.include_ent_in_adv:
                next_value = next_value - self.log_alpha.exp() * next_log_prob
            value = bootstrap(step.reward, step.terminated, cfg.gamma, next_value)
            advantage = value - self.critic(obs, act).min(dim=0).values
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-6)
        adv_loss = (log_prob * advantage).mean()

        supervised, nll = dyn.supervised_loss(dyn.model_inputs(real.obs, real.act), dyn.targets(real).to(mean))
        self.dynamics_opt.zero_grad(set_to_none=True)
        (cfg.adv_weight * adv_loss + supervised).backward()
        self.dynamics_opt.step()
        metrics = {
            "adv_nll": nll,
            "adv_log_prob": log_prob.detach().mean(),
            "adv_value": value.mean(),
            "adv_loss": adv_loss.detach(),
        }
        return step.next_obs, metrics

    def _draw(self, n: int) -> torch.Tensor:
        """``adv_batch_size`` uniform indices below ``n`` from the agent's generator."""
        return torch.randint(n, (self.cfg.adv_batch_size,), device=self.generator.device, generator=self.generator)

    # -- persistence --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """SAC's state, the update count, the generator, the last phase's metrics and, when a model is attached,
        the adversary's optimiser. The model's parameters are not here: the run saves them with its dynamics."""
        return {
            **super().state_dict(),
            **save_parts(self, ("updates", "generator")),
            "adv_metrics": {k: v.clone() for k, v in self.adv_metrics.items()},
            "dynamics_opt": None if self.dynamics_opt is None else self.dynamics_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s state; attach the same kind of dynamics first (or none, as saved).

        A state from before the run saved the model (it holds ``dynamics``, the model's parameters) restores
        them into the attached model too.
        """
        if state["dynamics_opt"] is not None and self.dynamics is None:
            raise ValueError("this RAMBO state holds a dynamics model's optimiser: attach(dataset, model) first")
        if state["dynamics_opt"] is None and self.dynamics is not None:
            raise ValueError("this RAMBO state was saved without a dynamics model, but one is attached")
        super().load_state_dict(state)
        load_parts(self, state, ("updates", "generator"))
        self.adv_metrics = {k: v.clone().to(self.log_alpha.device) for k, v in state["adv_metrics"].items()}
        if self.dynamics is not None:
            if state.get("dynamics") is not None:
                self.dynamics.load_state_dict(state["dynamics"])
            self.dynamics_opt.load_state_dict(state["dynamics_opt"])

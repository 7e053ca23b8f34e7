"""What a run measures on its schedule, without changing what it trains: policy evaluation and diagnostics.

* Evaluation (every ``eval_every`` updates and once at the end): deterministic episodes in the eval env
  (``mbrl.evaluate``), seeded by the run's seed and the step; for an agent with critics
  (``has_q_values``) also their value of the episodes' start states against the discounted return,
  and with diagnostics on, the critics and the learned model along the episodes' states
  (``mbrl.diagnostics.on_policy_errors``, the ``policy_*`` columns).
* Diagnostics (every ``diagnostics.every`` updates, default with each evaluation; ``mbrl.diagnostics``):
  the critics on real and model data and the model's error by rollout step, against the simulator
  when one is available. They draw from their own generator (seed + 2) and restore the global RNG
  (the policy samples actions from it), so a run trains the same whether they are on or off.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from mbrl.agents.base import Agent
from mbrl.config import TrainConfig
from mbrl.data.transitions import OfflineDataset, Transitions
from mbrl.diagnostics import model_error_by_step, on_policy_errors, value_diagnostics
from mbrl.dynamics.ensemble import GaussianEnsemble
from mbrl.dynamics.oracle import OracleDynamics
from mbrl.evaluate import evaluate
from mbrl.logging import RunLogger
from mbrl.model_data import ModelData

log = logging.getLogger(__name__)


class Monitor:
    """Evaluation and diagnostics of ``agent`` for one run.

    Args:
        cfg: the run's config (schedules, episodes, seed, device, diagnostics section).
        data: the loaded dataset (reference scores, real transitions for diagnostics).
        core: the real transitions' six core fields (what agent batches are drawn from).
        eval_env: the gymnasium id episodes run in.
        agent: the agent being trained.
        agent_cfg: its typed config (its ``gamma`` discounts the evaluation returns; 0.99 if it has none).
        model_data: the run's model data (its dynamics and buffer).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: OfflineDataset,
        core: Transitions,
        eval_env: str,
        agent: Agent,
        agent_cfg: Any,
        model_data: ModelData,
    ) -> None:
        self.cfg, self.data, self.core, self.eval_env = cfg, data, core, eval_env
        self.agent, self.model_data = agent, model_data
        self.gamma = getattr(agent_cfg, "gamma", 0.99)  # agents without a discount (BC) are scored at 0.99
        spec = data.spec
        self.ref = (spec.ref_min_score, spec.ref_max_score) if spec.ref_min_score is not None else None
        self.device = torch.device(cfg.device)
        self.oracle = self._oracle()
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)

    def after_update(self, step: int, logger: RunLogger) -> dict[str, float] | None:
        """Diagnostics and evaluation when due at ``step``; returns the evaluation's scores if one ran."""
        cfg = self.cfg
        if cfg.diagnostics.enabled and step % (cfg.diagnostics.every or cfg.eval_every) == 0:
            logger.log("diagnostics", step, self.diagnostics())
        if step % cfg.eval_every == 0:
            return logger.log("eval", step, self.evaluate(step, cfg.eval_episodes))
        return None

    def evaluate(self, step: int, episodes: int) -> dict[str, float]:
        """``episodes`` deterministic episodes; the summary, with the critics' start-state value if any
        and, with diagnostics on, the critics and the model along the episodes."""
        agent, dynamics = self.agent, self.model_data.dynamics
        on_policy = self.cfg.diagnostics.enabled and (agent.has_q_values or isinstance(dynamics, GaussianEnsemble))
        res = evaluate(
            lambda o: agent.act(o, deterministic=True),
            self.eval_env,
            episodes,
            seed=10_000 * (self.cfg.seed + 1) + step,
            ref_scores=self.ref,
            device=self.device,
            gamma=self.gamma,
            record=on_policy,
        )
        out = res.summary()
        if agent.has_q_values:  # the critics' value of the start states against what the policy obtained
            start = res.start_obs.to(self.device)
            q = agent.q_values(start, agent.act(start, deterministic=True))
            out |= {"q_start": float(q.min(dim=0).values.mean()), "discounted_return": float(res.discounted.mean())}
        if res.steps is not None:
            out |= on_policy_errors(
                res.steps,
                self.gamma,
                agent.q_values if agent.has_q_values else None,
                dynamics if isinstance(dynamics, GaussianEnsemble) else None,
            )
        return out

    def final(self) -> dict[str, float]:
        """The final evaluation: ``final_eval_episodes`` episodes, seeded apart from every periodic one."""
        return self.evaluate(self.cfg.total_updates + 1, self.cfg.final_eval_episodes)

    def diagnostics(self) -> dict[str, float]:
        """Reach-aware diagnostics on fresh samples, the global RNG restored afterwards."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return self._diagnostics()

    def _diagnostics(self) -> dict[str, float]:
        rows, agent, dynamics = self.cfg.diagnostics.rows, self.agent, self.model_data.dynamics
        sample = self.model_data.sample(rows, self.generator)
        out: dict[str, Any] = dict(self.model_data.filter_ranking)
        if agent.has_q_values:
            out |= value_diagnostics(agent.q_values, agent.act, self.core.sample(rows, self.generator), sample)
        if isinstance(dynamics, GaussianEnsemble):
            out |= model_error_by_step(
                dynamics,
                self.data.transitions,
                self.cfg.rollout.horizon,
                rows,
                self.generator,
                lambda o: agent.act(o, deterministic=True),
                self.oracle,
            )
        return out

    def _oracle(self) -> OracleDynamics | None:
        """The true simulator to measure a learned model against, when asked for and available."""
        diag = self.cfg.diagnostics
        if not (diag.enabled and diag.oracle and isinstance(self.model_data.dynamics, GaussianEnsemble)):
            return None
        try:
            return OracleDynamics(self.eval_env, num_threads=1, device=str(self.device))
        except ValueError as e:  # envs without a MuJoCo model or with another observation layout
            log.info("no oracle diagnostics: %s", e)
            return None

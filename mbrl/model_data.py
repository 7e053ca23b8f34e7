"""The model half of every agent batch: the dynamics, rollouts on schedule, the model buffer, the
filter and both penalty stages.

``ModelData`` is the one place that knows how model transitions are made and changed before an agent
sees them. The training loop asks it for each update's model batch (``batch``) and merges its metrics
into the agent's (``metrics``); a model-free run has one too, with no dynamics, no buffer and no model
rows, so the loop is the same for both.

* Every ``rollout.every`` updates (``(step - 1) % every == 0``) it rolls ``rollout.batch_size`` dataset
  states through the model with the current stochastic policy (``mbrl.rollout.rollout``): a rollout-stage
  penalty (MOPO) and the filter (MOREC) act there, and the round's ``RolloutStats`` go to ``on_round``.
* Every update it draws ``n_model`` rows from the FIFO buffer; an update-stage penalty (MOBILE) is
  computed on them with the agent's current value and subtracted from their rewards, and its mean is the
  ``model_penalty`` metric of that update.

Random numbers: rollouts draw from the model data's own generator (seed + 1, saved with the checkpoint);
the model batch and the update-stage penalty from the loop's batch generator, before the real batch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch

from mbrl.agents.base import Agent
from mbrl.config import Components, TrainConfig
from mbrl.data.transitions import OfflineDataset, Transitions
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.cache import fit_cached
from mbrl.dynamics.ensemble import GaussianEnsemble
from mbrl.dynamics.factory import build_dynamics
from mbrl.filters.base import CalibratedFilter, RankedComponent, TransitionFilter
from mbrl.filters.penalties import RewardPenalty, ValuePenalty, by_stage
from mbrl.rollout import RolloutConfig, RolloutStats, model_buffer, rollout, split_batch

log = logging.getLogger(__name__)


class ModelData:
    """Makes, keeps and hands out model transitions for one run.

    Args:
        cfg: the rollout section (horizon, start states per round, period, buffer rounds, real ratio).
        batch_size: rows of an agent batch; ``n_real`` of them are real, ``n_model`` model rows.
        start_obs: dataset states ``[N, obs_dim]`` rollouts start from.
        act_dim: the action size (of the buffer's rows).
        dynamics: the fitted model, ``None`` in a model-free run.
        penalty: the run's penalty (either stage).
        transition_filter: the run's filter (``NoFilter`` keeps the model's own sample).
        seed: the run's seed; rollouts draw from a generator seeded with ``seed + 1``.
        filter_ranking: what the filter's learned parts measured after their fit (constant over the run).

    Rollouts run eagerly also under ``cuda_graphs=true``: on an H200 a graphed 50k-row round ran at half the
    eager round's speed (``docs/gpu.md``), since the eager one drops terminated rows and evaluates only each
    row's drawn member, and a step of that size is a few large kernels with no launch overhead to remove.
    """

    def __init__(
        self,
        cfg: RolloutConfig,
        batch_size: int,
        start_obs: torch.Tensor,
        act_dim: int,
        dynamics: DynamicsModel | None,
        penalty: RewardPenalty | ValuePenalty,
        transition_filter: TransitionFilter,
        seed: int,
        filter_ranking: dict[str, float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dynamics = dynamics
        self.start_obs = start_obs
        self.rollout_penalty, self.value_penalty = by_stage(penalty)
        self.filter = transition_filter
        self.filter_ranking = filter_ranking or {}
        device = start_obs.device
        self.generator = torch.Generator(device=device).manual_seed(seed + 1)
        if dynamics is not None:
            self.buffer = model_buffer(cfg, start_obs.shape[1], act_dim, device)
            self.n_real, self.n_model = split_batch(batch_size, cfg.real_ratio)
        else:
            self.buffer, self.n_real, self.n_model = None, batch_size, 0
        self.metrics: dict[str, torch.Tensor] = {}  # of the last batch: merged into the agent's metrics

    def batch(
        self, step: int, agent: Agent, generator: torch.Generator, on_round: Callable[[int, dict[str, float]], Any]
    ) -> Transitions | None:
        """The model rows ``[n_model, ...]`` of update ``step`` (``None`` without model rows).

        Runs a rollout round first when one is due and reports its stats to ``on_round(step, stats)``.
        """
        if self.dynamics is not None and (step - 1) % self.cfg.every == 0:
            on_round(step, dataclasses.asdict(self._rollout_round(agent)))
        self.metrics = {}
        if not self.n_model:
            return None
        model = self.buffer.sample(self.n_model, generator)
        if self.value_penalty is not None:
            pen = self.value_penalty(model.obs, model.act, self.dynamics, agent.value, generator)
            model = dataclasses.replace(model, rew=model.rew - pen)
            self.metrics = {"model_penalty": pen.mean()}
        return model

    def _rollout_round(self, agent: Agent) -> RolloutStats:
        """Roll ``batch_size`` dataset states ``horizon`` steps and push the transitions into the buffer."""
        idx = torch.randint(
            len(self.start_obs), (self.cfg.batch_size,), device=self.start_obs.device, generator=self.generator
        )
        new, stats = rollout(
            self.dynamics,
            lambda o: agent.act(o),
            self.start_obs[idx],
            self.cfg.horizon,
            self.generator,
            self.rollout_penalty,
            self.filter,
        )
        self.buffer.add(new)
        return stats

    def sample(self, rows: int, generator: torch.Generator) -> Transitions | None:
        """Up to ``rows`` buffered model transitions (diagnostics); ``None`` while the buffer is empty."""
        if self.buffer is None or not len(self.buffer):
            return None
        return self.buffer.sample(min(rows, len(self.buffer)), generator)

    def state_dict(self) -> dict[str, Any] | None:
        """The buffer's state (the checkpoint's ``model_buffer``); ``None`` in a model-free run."""
        return self.buffer.state_dict() if self.buffer is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.buffer is not None:
            self.buffer.load_state_dict(state)


def build_model_data(
    cfg: TrainConfig, parts: Components, data: OfflineDataset, eval_env: str, device: torch.device
) -> ModelData:
    """Build the filter, and in a model-based run build and fit the dynamics and the filter's learned parts.

    Fits are cached per dataset content, config and seed (``mbrl.dynamics.cache``) and leave out D4RL's
    placeholder next states (``OfflineDataset.model_rows``). A learned part that can rank held-out true
    transitions above the model's samples (``RankedComponent``) is measured once here: a filter that
    cannot only shortens rollouts. That measure draws from its own generator with the global RNG restored,
    as does a filter's calibration against the fitted model (``CalibratedFilter``).
    """
    spec = data.spec
    transition_filter = parts.filter_cls(parts.filter_cfg, spec.obs_dim, spec.act_dim, cfg.seed, str(device))
    dynamics: DynamicsModel | None = None
    ranking: dict[str, float] = {}
    if cfg.model_based:
        dynamics = build_dynamics(cfg.dynamics.kind, cfg.dynamics, spec, eval_env, cfg.seed, str(device))
        cache = {"enabled": cfg.dynamics.cache, "cache_dir": cfg.dynamics.cache_dir}
        fit_cached(dynamics, data.model_rows, spec.content_hash, **cache)
        for component in transition_filter.learned:  # e.g. MOREC's dynamics reward
            fit_cached(component, data.model_rows, spec.content_hash, kind=f"filter_{parts.filter_name}", **cache)
            if isinstance(component, RankedComponent) and isinstance(dynamics, GaussianEnsemble):
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    rank_gen = torch.Generator(device=device).manual_seed(cfg.seed + 3)
                    measured = component.ranking(data.model_rows, dynamics, rank_gen)
                ranking |= {f"filter_{k}": v for k, v in measured.items()}
                log.info("filter ranking on held-out transitions: %s", {k: round(v, 3) for k, v in measured.items()})
        if isinstance(transition_filter, CalibratedFilter):
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                calibration_gen = torch.Generator(device=device).manual_seed(cfg.seed + 5)
                calibrated = transition_filter.calibrate(dynamics, data.model_rows, calibration_gen)
            ranking |= {f"filter_{k}": v for k, v in calibrated.items()}
    return ModelData(
        cfg.rollout,
        cfg.batch_size,
        data.transitions.obs,
        spec.act_dim,
        dynamics,
        parts.penalty,
        transition_filter,
        cfg.seed,
        ranking,
    )

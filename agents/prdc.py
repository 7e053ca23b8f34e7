"""PRDC (Ran et al., ICML 2023): TD3+BC whose actor is pulled to the nearest dataset pair, not the row's action.

For a batch state ``s`` and ``a = pi(s)``, PRDC finds the dataset pair nearest to ``(s, a)`` in the
metric ``|| (beta * s, a) - (beta * s_i, a_i) ||_2`` and regresses ``a`` on that pair's action:

    actor loss = -lambda * Q_1(s, pi(s)) + mean((pi(s) - a_k)^2),   lambda = alpha / mean|Q_1(s, pi(s))|

(the mean over rows and action dimensions, as the official code's ``mse_loss`` and TD3+BC).

Unlike TD3+BC this constrains the policy to the dataset's support, not to the action taken in the
same state: a state may borrow an action seen in a nearby state. ``beta`` trades the two: large,
the neighbour comes from (nearly) the same state; small, from (nearly) the same action. With
``normalize_states`` (the default, as the authors' code, which standardises its replay buffer) states
enter both the metric and the networks standardised by the dataset's mean and std (``+1e-3``, as
TD3+BC), so ``beta`` has the published meaning.

The constraint needs the whole dataset: the training loop calls ``attach(transitions, dynamics)``
once, which builds an exact nearest-neighbour search (``mbrl.agents.nn_search``: chunked matrix
products by default, or a KD-tree). Without it (e.g. the generic agent tester), each update searches
its own real batch instead and logs a warning once. The constraint applies to every row, model
rows included: it needs only the state, not the row's action.

Critics, target smoothing and delayed actor updates are TD3+BC's: this class extends it and replaces
only its ``policy_regulariser``.
Published defaults (official code): beta 2.0, alpha 2.5 for hopper and walker2d (40 for
halfcheetah), one neighbour, TD3 noise 0.2 clipped at 0.5, delay 2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from mbrl.agents.base import AgentSpec, register_agent
from mbrl.agents.nn_search import SEARCH_BACKENDS, NearestNeighbourSearch, build_search, exact_nearest
from mbrl.agents.rules import NON_NEGATIVE, check, require
from mbrl.agents.td3bc import TD3BCAgent, TD3BCConfig
from mbrl.dynamics.base import DynamicsModel

from mbrl.data.transitions import Transitions
from mbrl.errors import ConfigError
from mbrl.nn import state_statistics

log = logging.getLogger(__name__)


@dataclass
class PRDCConfig(TD3BCConfig):
    """TD3+BC's hyper-parameters (networks, learning rates, ``gamma``, ``tau``, target smoothing, ``policy_freq``,
    ``exploration_noise``; ``alpha`` now weighs the RL term against the dataset constraint) plus the search's."""

    beta: float = 2.0  # weight of the (standardised) state in the search metric
    # Standardise states by the attached dataset's mean and std + 1e-3, in the networks' inputs (TD3+BC's option)
    # and in the search metric, as the authors' code does.
    normalize_states: bool = True
    search_backend: str = "auto"  # exact nearest-neighbour search: auto (= matmul), kdtree, matmul

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, NON_NEGATIVE, "beta")  # only |beta| enters the distances; 0 matches on the action alone
        backends = ", ".join(SEARCH_BACKENDS)
        require(self.search_backend in SEARCH_BACKENDS, "search_backend", self.search_backend, f"one of {backends}")


@register_agent("prdc")
class PRDCAgent(TD3BCAgent):
    Config = PRDCConfig
    # Not graph safe: the exact neighbour search reads its certificate on the host to decide which rows to
    # search again (one sync per actor update), and the KD-tree backend runs on the CPU.
    supports_cuda_graphs = False

    def __init__(self, spec: AgentSpec, config: PRDCConfig) -> None:
        super().__init__(spec, config)
        device = self.actor.act_scale.device
        self.state_mean = torch.zeros(spec.obs_dim, device=device)
        self.state_std = torch.ones(spec.obs_dim, device=device)
        self.search: NearestNeighbourSearch | None = None
        self.dataset_actions: torch.Tensor | None = None
        self._warned_no_dataset = False

    # -- the dataset constraint ---------------------------------------------------------------------
    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Index the dataset's ``(obs, act)`` pairs ``[N, ...]`` for the constraint (once, before training); the
        dynamics are not used.

        The index and the metric's statistics derive from the dataset alone, so they are not part of
        ``state_dict``: a resumed run attaches the same dataset again. The networks' standardisers (TD3+BC's
        ``attach``) are.
        """
        super().attach(dataset, dynamics)
        if self.cfg.normalize_states:
            mean, std = state_statistics(dataset.obs)
            self.state_mean, self.state_std = mean.to(self.state_mean), std.to(self.state_std)
        keys = self._keys(dataset.obs.to(self.state_mean.device), dataset.act.to(self.state_mean.device))
        if not torch.isfinite(keys).all() and torch.isfinite(dataset.obs).all() and torch.isfinite(dataset.act).all():
            states = "standardised states" if self.cfg.normalize_states else "states"
            raise ConfigError(
                f"agent.beta={self.cfg.beta} is too large for this dataset: beta times the {states} overflows "
                "float32 in the neighbour search; use a smaller agent.beta (the published value is 2)"
            )
        self.search = build_search(keys, self.cfg.search_backend)
        self.dataset_actions = dataset.act.to(self.state_mean.device)

    def _keys(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``obs [B, obs_dim]``, ``act [B, act_dim]`` -> points of the search metric ``[B, obs_dim + act_dim]``."""
        return torch.cat([self.cfg.beta * (obs - self.state_mean) / self.state_std, act], dim=1)

    @torch.no_grad()
    def nearest_dataset_actions(self, obs: torch.Tensor, act: torch.Tensor, fallback: Transitions) -> torch.Tensor:
        """The action ``[B, act_dim]`` of the dataset pair nearest to each ``(obs, act)`` row.

        Searches the attached dataset or, when none is attached, the pairs of ``fallback`` (the real
        batch), with raw states in the metric.
        """
        if self.search is not None:
            return self.dataset_actions[self.search.query(self._keys(obs, act))]
        if not self._warned_no_dataset:
            log.warning("PRDC: no dataset attached; the constraint searches each real batch instead")
            self._warned_no_dataset = True
        return fallback.act[exact_nearest(self._keys(fallback.obs, fallback.act), self._keys(obs, act))]

    # -- learning -----------------------------------------------------------------------------------
    def policy_regulariser(self, pi: torch.Tensor, batch: Transitions, real: Transitions) -> tuple[str, torch.Tensor]:
        """The dataset constraint: squared distance of ``pi [B, act_dim]`` to the action of the nearest
        dataset pair, on every row (it needs only the state, so model rows count too)."""
        # The search sees the current action but is not differentiated through: a_k is a fixed target.
        return "dc_loss", (pi - self.nearest_dataset_actions(batch.obs, pi, real)).pow(2).mean()

"""Behaviour cloning: regress the dataset's actions with a deterministic tanh policy.

The floor every offline agent should beat; it ignores rewards and model data alike.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import torch
from mbrl.agents.base import Agent, AgentSpec, SteppedUpdate, register_agent
from mbrl.agents.kit import optimise
from mbrl.agents.rules import POSITIVE, SIZES, check, check_init
from mbrl.dynamics.base import DynamicsModel

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor, fit_state_standardisers
from mbrl.optim import adam


@dataclass
class BCConfig:
    hidden_sizes: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    # How the actor is initialised (mbrl.nn.INITS, docs/fidelity.md "Initialisation"): "torch" (OfflineRL-Kit's
    # run_bc.py); the default "edac_heads" (mean and log-std heads U(+-1e-3)) is what runs made before the
    # setting used.
    init: str = "edac_heads"
    # Standardise the actor's state input by the dataset's mean and std + 1e-3, as CORL's any_percent_bc.py
    # (normalize=True); OfflineRL-Kit's run_bc.py feeds raw states (the default).
    normalize_states: bool = False

    def __post_init__(self) -> None:
        check(self, SIZES, "hidden_sizes")
        check_init(self, ("edac_heads", "torch"))
        check(self, POSITIVE, "lr")


@register_agent("bc")
class BCAgent(SteppedUpdate, Agent):
    Config = BCConfig
    supports_cuda_graphs = True
    state_parts = ("actor", "opt")

    def __init__(self, spec: AgentSpec, config: BCConfig) -> None:
        self.cfg = config
        self.actor = TanhGaussianActor(
            spec.obs_dim,
            spec.act_dim,
            tuple(config.hidden_sizes),
            spec.act_low,
            spec.act_high,
            config.init,
            standardise_states=config.normalize_states,
        ).to(spec.device)
        self.opt = adam(self.actor.parameters(), config.lr)

    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Fit the actor's state standardiser (``normalize_states``) to ``dataset.obs [N, obs_dim]``."""
        fit_state_standardisers(dataset.obs, self.actor)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        # The mean action either way: BC has no exploration noise worth sampling.
        return self.actor(obs, deterministic=True, with_log_prob=False)[0]

    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        pred, _ = self.actor(real.obs, deterministic=True, with_log_prob=False)
        # Mean over batch and action dimensions, as OfflineRL-Kit's bc.py and CORL's any_percent_bc.py.
        loss = (pred - real.act).pow(2).mean()
        optimise(self.opt, loss)
        return {"bc_loss": loss.detach()}

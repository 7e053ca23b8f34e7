"""COMBO (Yu et al., NeurIPS 2021): CQL whose conservative term pushes Q down on model-generated states and
up on the real data.

Everything else is ``mbrl.agents.cql``: SAC on the mixed real + model batch (Bellman error and actor on every row)
plus, per critic, ``cql_weight * (E_s~rho[soft max_a Q(s, a)] - E_(s,a)~D[Q(s, a)])``, the soft maximum being
CQL's importance-sampled logsumexp over uniform, ``pi(.|s)`` and ``pi(.|s')`` proposals. Only the rows differ:
the push-up term uses the real rows alone, the push-down term the states of ``rho_s``: ``"mix"`` (real and
model rows, OfflineRL-Kit's default) or ``"model"`` (model rows only: the paper's ``rho``, the state
distribution of model rollouts under ``pi``).

Defaults are OfflineRL-Kit's (``run_combo.py``), the same as its CQL: 3x256 networks, actor lr 1e-4, critic
lr 3e-4, deterministic backup, no Lagrange, cql_weight 5 (its per-task table, with the rollout horizon, is in
``configs/agent/combo.yaml``). The real-data share of each batch (0.5) is a rollout setting,
``rollout.real_ratio``, set by that preset. OfflineRL-Kit also anneals the actor learning rate with a cosine
schedule over training; this agent keeps it constant.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from mbrl.agents.base import register_agent
from mbrl.agents.cql import CQLAgent, CQLConfig
from mbrl.agents.kit import require_model_batch
from mbrl.agents.rules import require

from mbrl.data.transitions import Transitions

RHO_S = ("mix", "model")


@dataclass
class COMBOConfig(CQLConfig):
    """CQL's hyper-parameters plus the choice of states for the push-down term."""

    rho_s: str = "mix"  # "mix": real and model states; "model": model states only

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.rho_s in RHO_S, "rho_s", self.rho_s, f"one of {', '.join(RHO_S)}")


@register_agent("combo")
class COMBOAgent(CQLAgent):
    Config = COMBOConfig
    requires_model = True  # its push-down term is defined on model states

    def before_update(self, real: Transitions, model: Transitions | None) -> Hashable:
        """Refuse batches without model rows or without real rows; then CQL's decisions."""
        require_model_batch(
            model,
            "COMBO needs model rollouts: set dynamics=ensemble (or single/oracle) and rollout.real_ratio < 1; "
            "for the model-free algorithm use agent=cql",
        )
        if len(real) == 0:
            raise ValueError("COMBO pushes Q up on real data: set rollout.real_ratio > 0 (COMBO uses 0.5)")
        return super().before_update(real, model)

    def conservative_rows(self, n_real: int, n_model: int) -> tuple[slice, slice]:
        down = slice(n_real, None) if self.cfg.rho_s == "model" else slice(None)
        return down, slice(0, n_real)

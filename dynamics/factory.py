"""Build the dynamics model a run asks for: ``ensemble``, ``single``, ``oracle`` (or ``none``)."""

from __future__ import annotations

import dataclasses

from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble
from mbrl.dynamics.oracle import OracleDynamics
from mbrl.dynamics.termination import TERMINATION_FNS

from mbrl.data.transitions import DatasetSpec
from mbrl.envs import env_family

DYNAMICS_KINDS = ("ensemble", "single", "oracle", "none")


def ensemble_config(section: EnsembleConfig, spec: DatasetSpec, seed: int, single: bool = False) -> EnsembleConfig:
    """The ensemble hyper-parameters of ``section`` (any subclass), with the run's seed and the
    dataset's termination rule; ``single=True`` gives the one-member model of the single-model line."""
    fields = {f.name: getattr(section, f.name) for f in dataclasses.fields(EnsembleConfig)}
    cfg = EnsembleConfig(**fields)
    family = env_family(spec.env_id)
    cfg = dataclasses.replace(
        cfg, seed=seed, termination=cfg.termination or (family if family in TERMINATION_FNS else None)
    )
    if single:
        cfg = dataclasses.replace(cfg, ensemble_size=1, num_elites=1)
    return cfg


def build_dynamics(
    kind: str, section: EnsembleConfig, spec: DatasetSpec, eval_env: str, seed: int, device: str = "cpu"
) -> DynamicsModel:
    """A fresh (unfitted) model of ``kind`` for data described by ``spec``."""
    if kind in ("ensemble", "single"):
        cfg = ensemble_config(section, spec, seed, single=kind == "single")
        return GaussianEnsemble(spec.obs_dim, spec.act_dim, cfg, device=device)
    if kind == "oracle":
        return OracleDynamics(eval_env, device=device)
    raise ValueError(f"unknown dynamics kind {kind!r}; choose one of {', '.join(DYNAMICS_KINDS)}")

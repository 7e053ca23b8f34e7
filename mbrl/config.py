"""The typed schema of a training run, validated before anything runs.

Kept apart from ``mbrl.train`` so that the classes have a stable import path: Hydra launchers that
run jobs in worker processes (joblib, submitit) pickle the config by reference to them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dynamics.ensemble import EnsembleConfig
from dynamics.factory import DYNAMICS_KINDS
from mbrl.data.builtin import DEFAULT_DATASET
from mbrl.diagnostics import DiagnosticsConfig
from mbrl.logging import LoggerConfig
from mbrl.rollout import RolloutConfig


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or inconsistent; the message names the fix."""


@dataclass
class DynamicsSection(EnsembleConfig):
    """Which dynamics to use (``kind``) and, for learned ones, the ensemble's hyper-parameters."""

    kind: str = "ensemble"  # ensemble | single | oracle | none
    cache: bool = True
    cache_dir: str | None = None  # default: $MBRL_CACHE or ~/.cache/mbrl


@dataclass
class TrainConfig:
    """The full, typed schema of a run. Hydra composes ``configs/`` onto it."""

    dataset: str = DEFAULT_DATASET  # built-in name, D4RL HDF5 path or name, or Minari id
    download: bool = False  # allow Minari to download a dataset that is not on disk
    allow_version_mismatch: bool = False  # e.g. D4RL's Hopper-v3 data evaluated in Hopper-v5
    eval_env: str | None = None  # default: the dataset's env (D4RL: the family's v5 env)
    dynamics: DynamicsSection = field(default_factory=DynamicsSection)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    agent: dict[str, Any] = field(default_factory=lambda: {"name": "sac"})
    penalty: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    filter: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    scale: str = "cpu"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    compile: bool = False  # torch.compile the agent's update (opt-in; agrees with eager to float rounding)
    total_updates: int = 100_000
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10
    final_eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 5_000
    resume: bool = False


# configs/config.yaml starts from this schema, so every key and type is checked before training.
ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def typed_section(section: dict[str, Any] | DictConfig, registry_name: str, cls: type) -> Any:
    """Validate ``section`` (minus its ``name``) against the dataclass ``cls``; returns an instance."""
    params = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    params.pop("name", None)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), params))
    except OmegaConfBaseException as e:
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{registry_name}: {str(e).splitlines()[0]}. Valid options: {fields}") from None


def validate(cfg: TrainConfig) -> None:
    """Checks the types alone cannot express (positive sizes, known kinds, ratios in range)."""
    if cfg.dynamics.kind not in DYNAMICS_KINDS:
        raise ConfigError(f"dynamics.kind={cfg.dynamics.kind!r} is unknown; choose one of {', '.join(DYNAMICS_KINDS)}")
    positive = {
        "total_updates": cfg.total_updates,
        "batch_size": cfg.batch_size,
        "eval_every": cfg.eval_every,
        "log_every": cfg.log_every,
        "checkpoint_every": cfg.checkpoint_every,
        "rollout.horizon": cfg.rollout.horizon,
        "rollout.batch_size": cfg.rollout.batch_size,
        "rollout.every": cfg.rollout.every,
        "rollout.retain": cfg.rollout.retain,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if not 0.0 <= cfg.rollout.real_ratio <= 1.0:
        raise ConfigError(f"rollout.real_ratio must lie in [0, 1], got {cfg.rollout.real_ratio}")

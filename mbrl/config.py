"""The typed schema of a training run, validated before anything runs.

Kept apart from ``mbrl.train`` so that the classes have a stable import path: Hydra launchers that
run jobs in worker processes (joblib, submitit) pickle the config by reference to them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mbrl.agents import AGENTS
from mbrl.agents.base import graphs_can_replay
from mbrl.data.builtin import DEFAULT_DATASET
from mbrl.data.transitions import DatasetSpec
from mbrl.diagnostics import DiagnosticsConfig
from mbrl.dynamics.ensemble import EnsembleConfig
from mbrl.dynamics.factory import DYNAMICS_KINDS
from mbrl.envs import ENV_FAMILIES
from mbrl.errors import ConfigError
from mbrl.filters import FILTERS, PENALTIES, RewardPenalty
from mbrl.filters.penalties import UPDATE
from mbrl.logging import LoggerConfig
from mbrl.registry import RegistryError
from mbrl.rollout import RolloutConfig
from mbrl.run_folder import flatten

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
RESUME_MODES = ("auto", "true", "false", "force")


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
    env_id: str | None = None  # the env a D4RL file comes from, when its name and metadata do not say
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
    # Agent network widths a scale preset sets, taken only by agent presets whose hidden_sizes is
    # ${mbrl.hidden_sizes:[...]} (mbrl/resolvers.py); None keeps each preset's own size.
    agent_hidden_sizes: list[int] | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    compile: bool = False  # torch.compile the agent's update (opt-in; agrees with eager to float rounding)
    # Replay the agent's update step from CUDA graphs (opt-in; device=cuda; rollouts stay eager; docs/gpu.md).
    cuda_graphs: bool = False
    total_updates: int = 100_000
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10
    final_eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 5_000
    # auto: continue from the run folder's checkpoint if there is one; true: insist on one; false:
    # refuse a folder that holds a run; force: continue even if the config differs (see RESUME_SAFE).
    resume: str = "auto"

    @property
    def model_based(self) -> bool:
        """Whether the run has a dynamics model (and so model rollouts)."""
        return self.dynamics.kind != "none"


# configs/config.yaml starts from this schema, so every key and type is checked before training.
ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def typed_section(section: dict[str, Any] | DictConfig, registry_name: str, cls: type) -> Any:
    """Validate ``section`` (minus ``name`` and ``preset``) against the dataclass ``cls``; returns an instance.

    ``name`` (the registered class) and ``preset`` (the preset file that chose it, the label reports
    show) are the framework's keys: component configs never see them. A ``ValueError`` from the
    dataclass's ``__post_init__`` (its value checks) becomes a ``ConfigError`` naming the component.
    """
    params = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    params.pop("name", None)
    params.pop("preset", None)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), params))
    except OmegaConfBaseException as e:
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{registry_name}: {_first_line(e)}. Valid options: {fields}") from None
    except (ValueError, OverflowError) as e:  # a __post_init__ value check; a number too big for a float
        raise ConfigError(f"{registry_name}: {str(e).splitlines()[0]}") from None


def _first_line(e: OmegaConfBaseException) -> str:
    """OmegaConf's message without its multi-line context, naming the key it is about."""
    key = getattr(e, "full_key", None)
    return f"{key}: {str(e).splitlines()[0]}" if key else str(e).splitlines()[0]


def resolve(config: DictConfig | TrainConfig) -> TrainConfig:
    """The typed config of a run, every key and value checked; raises ``ConfigError`` before anything runs."""
    if isinstance(config, DictConfig):
        unknown_keys(config)
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), config))
        except OmegaConfBaseException as e:
            raise ConfigError(str(e)) from None
        except (ValueError, OverflowError) as e:  # e.g. EnsembleConfig's value checks
            raise ConfigError(str(e)) from None
    else:
        cfg = config
    validate(cfg)
    return cfg


def as_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as plain containers: what a run's ``config.yaml`` holds, and what a rerun is checked
    against."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def eval_env(cfg: TrainConfig, spec: DatasetSpec) -> str:
    """The env a run is evaluated in: ``eval_env`` if set, else the dataset's (D4RL: its family's v5 env)."""
    if cfg.eval_env:
        return cfg.eval_env
    if spec.source == "d4rl" and spec.env_name.lower() in ENV_FAMILIES:
        return f"{ENV_FAMILIES[spec.env_name.lower()]}-v5"
    return spec.env_id


def unknown_keys(config: DictConfig, schema: type = TrainConfig, prefix: str = "") -> None:
    """Refuse keys the schema has no field for, ``+key=...`` included.

    Hydra's ``+`` adds a key to the composed config, and merging onto the schema keeps it, so a
    misspelt ``+total_update=10`` would otherwise train with the defaults. The free-form sections
    (``agent``, ``penalty``, ``filter``) are checked against their component's config by ``typed_section``.
    """
    hints = typing.get_type_hints(schema)
    for key in config:
        if key not in hints:
            valid = sorted(hints)
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown config key {prefix}{key}{hint}; a '+' in front does not make a key valid. "
                f"Valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}"
            )
        if dataclasses.is_dataclass(hints[key]) and isinstance(config[key], DictConfig):
            unknown_keys(config[key], hints[key], f"{prefix}{key}.")


def validate(cfg: TrainConfig) -> None:
    """Checks the types alone cannot express (positive sizes, known kinds, ratios in range, a usable device)."""
    if cfg.dynamics.kind not in DYNAMICS_KINDS:
        raise ConfigError(f"dynamics.kind={cfg.dynamics.kind!r} is unknown; choose one of {', '.join(DYNAMICS_KINDS)}")
    positive = {
        "total_updates": cfg.total_updates,
        "batch_size": cfg.batch_size,
        "eval_every": cfg.eval_every,
        "log_every": cfg.log_every,
        "checkpoint_every": cfg.checkpoint_every,
        "eval_episodes": cfg.eval_episodes,
        "final_eval_episodes": cfg.final_eval_episodes,
        "threads": 1 if cfg.threads is None else cfg.threads,
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
    for key, value in cfg.penalty.items():
        if key.endswith("coef") and isinstance(value, int | float) and value < 0:
            raise ConfigError(
                f"penalty.{key} must be >= 0, got {value}: it scales the uncertainty subtracted from model "
                "rewards, so a negative value would reward leaving the data"
            )
    resume = str(cfg.resume).lower()
    if resume not in RESUME_MODES:
        raise ConfigError(f"resume={cfg.resume!r} is unknown; choose one of {', '.join(RESUME_MODES)}")
    cfg.resume = resume
    check_cuda_graphs(cfg, check_device(cfg.device))


def check_cuda_graphs(cfg: TrainConfig, device: torch.device) -> None:
    """``cuda_graphs=true`` needs a CUDA device and cannot be combined with ``compile=true``."""
    if not cfg.cuda_graphs:
        return
    if device.type != "cuda":
        raise ConfigError(
            f"cuda_graphs=true replays GPU work from CUDA graphs and needs device=cuda, got device={cfg.device!r}; "
            "set cuda_graphs=false (or device=cuda on a GPU machine)"
        )
    if cfg.compile:
        raise ConfigError(
            "cuda_graphs=true and compile=true cannot be combined (a graph of torch.compile's kernels has never been "
            "checked here); set one of them to false"
        )


def check_device(name: str) -> torch.device:
    """``torch.device(name)`` if this machine can run on it, else a ``ConfigError`` that says what it can use."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device name; use cpu, cuda or cuda:<index>") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device={name!r}: only cpu and cuda devices are supported; use device=cpu or device=cuda")
    if not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"device={name!r} but no CUDA GPU is usable here (torch {torch.__version__} is {build}); "
            "use device=cpu, or on a GPU machine install a CUDA build of torch (make setup TORCH=torch)"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def agent_presets() -> list[str]:
    """Every ``agent=<preset>`` Hydra can select: ``configs/agent/*.yaml`` and the plugins' ``agent/`` configs."""
    names = {p.stem for p in (CONFIG_DIR / "agent").glob("*.yaml")}
    for ep in entry_points(group="mbrl.configs"):
        folder = resources.files(ep.value) / "agent"
        if folder.is_dir():
            names |= {Path(f.name).stem for f in folder.iterdir() if f.name.endswith(".yaml")}
    return sorted(names)


@dataclass
class Components:
    """What a run's ``agent``, ``penalty`` and ``filter`` sections select: registered classes, typed configs."""

    agent_name: str
    agent_cls: type
    agent_cfg: Any
    penalty: RewardPenalty
    filter_name: str
    filter_cls: type
    filter_cfg: Any


def published_task_overrides(method: str, dataset: str) -> list[str]:
    """The published per-task settings of ``dataset``'s D4RL namesake for ``method``, as overrides: every
    key of ``configs/experiment/paper/<method>/<dataset>.yaml`` but its ``defaults`` and ``dataset``
    (MOBILE on hopper-medium-replay: ``rollout.horizon=5 penalty.coef=0.1``). Empty where the method's
    reference publishes none for that task (RAVL everywhere, COMBO and EDAC on ``random``)."""
    path = CONFIG_DIR / "experiment" / "paper" / method / f"{dataset}.yaml"
    if not path.exists():
        return []
    task = OmegaConf.to_container(OmegaConf.load(path)) or {}
    task = {k: v for k, v in task.items() if k not in ("defaults", "dataset")}
    return [f"{k}={json.dumps(v)}" for k, v in flatten(task).items()]


def components(cfg: TrainConfig) -> Components:
    """Type the free-form sections against their components' configs and check them against each other."""
    agent_name = cfg.agent.get("name", "sac")
    agent_cls = agent_class(agent_name)
    agent_cfg = typed_section(cfg.agent, f"agent {agent_name!r}", agent_cls.Config)
    penalty_name = cfg.penalty.get("name", "none")
    penalty_cls = _lookup(PENALTIES, penalty_name, "penalty")
    penalty = penalty_cls(typed_section(cfg.penalty, f"penalty {penalty_name!r}", penalty_cls.Config))
    filter_name = cfg.filter.get("name", "none")
    filter_cls = _lookup(FILTERS, filter_name, "filter")
    filter_cfg = typed_section(cfg.filter, f"filter {filter_name!r}", filter_cls.Config)
    for group, name in (("penalty", penalty_name), ("filter", filter_name)):
        if name != "none" and not cfg.model_based:
            raise ConfigError(f"{group}={name} needs model rollouts; set dynamics=ensemble (or single/oracle)")
    # Capability flags of the agent contract (mbrl.agents.base.Agent), read on the class: no agent exists yet.
    if agent_cls.requires_model and not cfg.model_based:
        raise ConfigError(f"agent={agent_name} learns from model rollouts; set dynamics=ensemble (or single/oracle)")
    if penalty.stage == UPDATE and not agent_cls.has_value:
        raise ConfigError(
            f"penalty={penalty_name} needs an agent with a value(obs) method (e.g. agent=sac); {agent_name!r} has none"
        )
    if cfg.compile and not agent_cls.supports_compile:
        raise ConfigError(f"compile=true: agent {agent_name!r} has no compile() method (SAC-based agents do)")
    if cfg.cuda_graphs and not graphs_can_replay(agent_cls):
        able = ", ".join(name for name in AGENTS.names() if graphs_can_replay(AGENTS.get(name)))
        raise ConfigError(
            f"cuda_graphs=true: agent {agent_name!r} does not support CUDA graphs (its update is not declared "
            f"graph safe); set cuda_graphs=false. Agents that support them: {able}"
        )
    return Components(agent_name, agent_cls, agent_cfg, penalty, filter_name, filter_cls, filter_cfg)


def default_values(cfg: TrainConfig) -> dict[str, Any]:
    """Flattened (``agent.tau``, ...): the value each key of ``cfg`` takes when nothing sets it, from the
    schema and the config classes of the agent, penalty and filter ``cfg`` selects."""
    parts = components(cfg)
    tree = OmegaConf.to_container(OmegaConf.structured(TrainConfig), resolve=True)
    for section, config in (
        ("agent", parts.agent_cls.Config()),
        ("penalty", type(parts.penalty).Config()),
        ("filter", parts.filter_cls.Config()),
    ):
        tree[section] = dataclasses.asdict(config)
    return flatten(tree)


def _lookup(registry: Any, name: str, group: str) -> type:
    try:
        return registry.get(name)
    except RegistryError as e:
        raise ConfigError(f"{group}.name: {e}") from None


def agent_class(name: str) -> type:
    """The registered agent class ``agent.name`` names; an unknown name lists the classes and the presets."""
    try:
        return AGENTS.get(name)
    except RegistryError:
        raise ConfigError(
            f"unknown agent {name!r}. Choose a preset with agent=<preset> (it sets the class and its "
            f"hyper-parameters): {', '.join(agent_presets())}; or set agent.name to a registered class: "
            f"{', '.join(AGENTS.names())}. Plugins add classes through the 'mbrl.agents' entry-point group."
        ) from None

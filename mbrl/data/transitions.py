"""The tensors every stage of the pipeline trusts: ``Transitions`` and ``DatasetSpec``."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mbrl.data.scores import normalized_scores


class DatasetError(ValueError):
    """A dataset is malformed or does not fit the environment it is used with.

    The message always names the offending field and how to fix it.
    """


_FLOAT_FIELDS = ("obs", "act", "rew", "next_obs")
_BOOL_FIELDS = ("terminated", "truncated")
_OPTIONAL_FIELDS = ("episode_id", "qpos", "qvel")


@dataclass(frozen=True)
class Transitions:
    """Equally long tensors of single-step transitions, all on one device.

    ``terminated`` marks a true terminal state (no bootstrapping from ``next_obs``);
    ``truncated`` marks a time-limit cut, after which ``next_obs`` is still a real state.
    The two are never merged: a timeout never becomes a terminal.

    Shapes (``N`` transitions):
        obs ``[N, obs_dim]`` float32, act ``[N, act_dim]`` float32, rew ``[N]`` float32,
        next_obs ``[N, obs_dim]`` float32, terminated ``[N]`` bool, truncated ``[N]`` bool,
        episode_id ``[N]`` int64 (optional), qpos ``[N, nq]`` / qvel ``[N, nv]`` float64
        (optional, the simulator state that produced ``obs``).
    """

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode_id: torch.Tensor | None = None
    qpos: torch.Tensor | None = None
    qvel: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.rew.shape[0]
        for name in _FLOAT_FIELDS + _BOOL_FIELDS + _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise DatasetError(f"Transitions.{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.shape[0] != n:
                raise DatasetError(
                    f"Transitions.{name} has {value.shape[0]} rows but rew has {n}; "
                    "every field must hold one row per transition"
                )
        if self.obs.shape != self.next_obs.shape:
            raise DatasetError(f"obs {tuple(self.obs.shape)} and next_obs {tuple(self.next_obs.shape)} differ in shape")
        if self.obs.dim() != 2 or self.act.dim() != 2 or self.rew.dim() != 1:
            raise DatasetError(
                "expected obs [N, obs_dim], act [N, act_dim], rew [N]; got "
                f"{tuple(self.obs.shape)}, {tuple(self.act.shape)}, {tuple(self.rew.shape)}"
            )
        for name in _BOOL_FIELDS:
            if getattr(self, name).dtype != torch.bool:
                raise DatasetError(f"Transitions.{name} must be bool, got {getattr(self, name).dtype}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_numpy(cls, device: str | torch.device = "cpu", **arrays: np.ndarray | None) -> Transitions:
        """Build from numpy arrays (floats become float32, flags bool, ids int64; qpos/qvel keep float64)."""
        tensors: dict[str, torch.Tensor | None] = {}
        for name, value in arrays.items():
            if value is None:
                tensors[name] = None
                continue
            if name in _BOOL_FIELDS:
                t = torch.as_tensor(np.asarray(value, dtype=bool))
            elif name == "episode_id":
                t = torch.as_tensor(np.asarray(value, dtype=np.int64))
            elif name in ("qpos", "qvel"):
                t = torch.as_tensor(np.asarray(value, dtype=np.float64))
            else:
                t = torch.as_tensor(np.asarray(value, dtype=np.float32))
            tensors[name] = t.to(device)
        return cls(**tensors)

    @classmethod
    def cat(cls, parts: list[Transitions]) -> Transitions:
        """Concatenate along the transition axis; optional fields survive only if all parts have them."""
        out: dict[str, torch.Tensor | None] = {}
        for f in dataclasses.fields(cls):
            values = [getattr(p, f.name) for p in parts]
            out[f.name] = None if any(v is None for v in values) else torch.cat(values)
        return cls(**out)

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rew.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.act.shape[1])

    @property
    def device(self) -> torch.device:
        return self.obs.device

    def index(self, idx: torch.Tensor | slice) -> Transitions:
        """Rows ``idx`` of every field (a view for slices, a gather for index tensors)."""
        return Transitions(**{k: (None if v is None else v[idx]) for k, v in self._items()})

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """Uniformly sample ``batch_size`` rows with replacement using ``generator`` (on this device)."""
        idx = torch.randint(len(self), (batch_size,), device=self.device, generator=generator)
        return self.index(idx)

    def to(self, device: str | torch.device) -> Transitions:
        return Transitions(**{k: (None if v is None else v.to(device)) for k, v in self._items()})

    def _items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def content_hash(self) -> str:
        """SHA-256 over the raw bytes of every field, in a fixed order (device independent)."""
        h = hashlib.sha256()
        for name, value in self._items():
            if value is None:
                continue
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def placeholder_rows(data: Transitions) -> torch.Tensor:
    """Rows ``[N]`` (bool) whose ``next_obs`` is only a placeholder: terminal rows with ``next_obs == obs``.

    D4RL files without ``next_observations`` store ``next_obs = obs`` on terminal rows (``mbrl.data.d4rl``).
    An agent may use them (a terminal is never bootstrapped from), but a dynamics model must not learn
    "stand still" from them, so model fits leave them out.
    """
    return data.terminated & (data.next_obs == data.obs).all(dim=1)


def trajectory_returns(data: Transitions) -> torch.Tensor:
    """The summed reward ``[num_trajectories]`` (float64) of each run of consecutive rows.

    A trajectory ends after a terminated or truncated row, after a row whose ``next_obs`` is not the next
    row's ``obs`` (files that drop their time-limit rows, as D4RL's ``qlearning_dataset`` does), and at the
    last row: the split of IQL's authors (``split_into_trajectories``), OfflineRL-Kit's ``run_iql.py`` and
    CORL's ``return_reward_range``, from the rows alone (``episode_id`` is not needed).
    """
    ends = data.terminated | data.truncated
    ends[:-1] |= (data.next_obs[:-1] - data.obs[1:]).norm(dim=1) > 1e-6  # the references' tolerance
    ends[-1] = True
    trajectory = torch.cumsum(ends, 0) - ends.long()  # the index of each row's trajectory
    returns = torch.zeros(int(ends.sum()), dtype=torch.float64, device=data.rew.device)
    return returns.index_add_(0, trajectory, data.rew.double())


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: where it came from, which env it belongs to, and how to score it.

    ``env_id`` is a gymnasium id with its version (``"Hopper-v5"``). Reference returns give the
    normalised score ``100 * (R - ref_min) / (ref_max - ref_min)``; ``None`` when unknown.
    """

    name: str
    env_id: str
    source: str  # "d4rl" | "minari"
    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    ref_min_score: float | None
    ref_max_score: float | None
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def env_name(self) -> str:
        """The env family without version, e.g. ``"Hopper"``."""
        return self.env_id.rsplit("-v", 1)[0]

    @property
    def env_version(self) -> str:
        return self.env_id.rsplit("-v", 1)[1] if "-v" in self.env_id else ""


@dataclass(frozen=True)
class OfflineDataset:
    """A loaded dataset: its transitions, its spec, and the return of every source episode.

    ``episode_returns`` ``[num_episodes]`` sums every reward of each episode in the file, including a
    final step that had to be dropped from ``transitions`` for lack of a true next state.
    """

    transitions: Transitions
    spec: DatasetSpec
    episode_returns: torch.Tensor
    num_terminals: int
    num_timeouts: int

    @functools.cached_property
    def model_rows(self) -> Transitions:
        """The transitions a model may be fitted on: every row but the placeholders (``placeholder_rows``).

        Computed once per loaded dataset (a frozen dataclass still has a ``__dict__`` to cache in).
        """
        return self.transitions.index(~placeholder_rows(self.transitions))

    def _normalized_mean(self, returns: torch.Tensor) -> float | None:
        """Mean normalised episode return (the behaviour policy's score), if reference returns exist."""
        lo, hi = self.spec.ref_min_score, self.spec.ref_max_score
        if lo is None or hi is None or hi == lo or not returns.numel():
            return None
        return float(normalized_scores(returns, lo, hi).mean())

    def summary(self) -> dict[str, Any]:
        """The numbers ``mbrl-dataset info`` prints."""
        returns = self.episode_returns.double()
        return {
            "name": self.spec.name,
            "source": self.spec.source,
            "env_id": self.spec.env_id,
            "transitions": len(self.transitions),
            "episodes": int(returns.numel()),
            "terminals": self.num_terminals,
            "timeouts": self.num_timeouts,
            "obs_dim": self.spec.obs_dim,
            "act_dim": self.spec.act_dim,
            "return_mean": float(returns.mean()) if returns.numel() else float("nan"),
            "return_std": float(returns.std(unbiased=False)) if returns.numel() else float("nan"),
            "return_min": float(returns.min()) if returns.numel() else float("nan"),
            "return_max": float(returns.max()) if returns.numel() else float("nan"),
            "ref_min_score": self.spec.ref_min_score,
            "ref_max_score": self.spec.ref_max_score,
            "score_mean": self._normalized_mean(returns),
            "has_qpos_qvel": self.transitions.qpos is not None,
            "content_hash": self.spec.content_hash,
        }

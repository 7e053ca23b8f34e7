"""Behaviour-policy bundles: the actor snapshots of one online SAC run, saved for dataset generation.

A bundle holds the actor weights at regular steps of training. ``medium`` is the snapshot whose
evaluation return first reached a third of the expert reference return; the snapshots up to it
stand in for the replay buffer of that run (``medium-replay``). ``expert`` is set only when a run
reached at least 90 % of the expert reference.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mbrl.nn import TanhGaussianActor

PACKAGED_DIR = Path(__file__).with_name("policies")


@dataclass
class Snapshot:
    step: int
    eval_return: float
    actor: dict[str, torch.Tensor]


@dataclass
class BehaviorBundle:
    env_id: str
    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    hidden_sizes: tuple[int, ...]
    snapshots: list[Snapshot]
    medium_index: int | None
    expert_index: int | None
    train_config: dict[str, Any] = field(default_factory=dict)

    def actor(self, index: int) -> TanhGaussianActor:
        """The actor of snapshot ``index`` on the CPU, in eval mode."""
        net = TanhGaussianActor(self.obs_dim, self.act_dim, self.hidden_sizes, self.act_low, self.act_high)
        net.load_state_dict(self.snapshots[index].actor)
        return net.eval()

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a crash leaves the previous file intact."""
        state = asdict(self)
        buf = io.BytesIO()
        torch.save(state, buf)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BehaviorBundle:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"behaviour-policy bundle {path} not found; "
                f"train one with `mbrl-train-behavior --env <Env-v5> --out {path}`"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["snapshots"] = [Snapshot(**s) for s in state["snapshots"]]
        state["act_low"] = tuple(state["act_low"])
        state["act_high"] = tuple(state["act_high"])
        state["hidden_sizes"] = tuple(state["hidden_sizes"])
        return cls(**state)


def packaged_bundle_path(family: str) -> Path:
    """Where the bundle shipped with the package for an env family (``"hopper"``) lives."""
    return PACKAGED_DIR / f"{family}.pt"

"""Atomic checkpoints: a crash while writing leaves the previous checkpoint intact."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Serialise to memory, write a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}; start a fresh run (drop resume=true) or point hydra.run.dir at the run folder"
        )
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state(*generators: torch.Generator) -> dict[str, Any]:
    """The global torch RNG (and CUDA's, if present) plus the given generators."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in generators]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], *generators: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

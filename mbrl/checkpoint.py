"""Atomic checkpoints: a crash while writing leaves the previous checkpoint intact.

Checkpoints (and cached fits) are read with ``weights_only=True``: only tensors and plain containers are
unpickled, so a tampered file cannot run code when a run resumes.
"""

from __future__ import annotations

import io
import os
import pickle
import re
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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely: empty, truncated or holding more than tensors and plain data."""


def unreadable_reason(path: Path, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words.

    Torch's own message for a refused object advises ``weights_only=False``, which would run the file's code.
    """
    if path.exists() and path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(err, pickle.UnpicklingError) and str(err).startswith("Weights only load failed"):
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        named = f" (a reference to {found[1].rstrip('.')})" if found else ""
        return f"it holds objects other than tensors and plain data{named}"
    return f"it is truncated or corrupt ({first_sentence(err)})"


def first_sentence(err: BaseException) -> str:
    """``Type: first sentence`` of an error, at most 200 characters: torch's messages run to a paragraph."""
    text = " ".join(str(err).split()).split(". ")[0]
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_atomic``; raises ``CheckpointError`` naming the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}; start a fresh run (drop resume=true) or point hydra.run.dir at the run folder"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises OSError, EOFError, KeyError, UnpicklingError, ... by how the file is broken
        raise _refused(path, unreadable_reason(path, e)) from e
    if not isinstance(state, dict):
        raise _refused(path, f"it holds a {type(state).__name__}, not a checkpoint dict")
    return state


def _refused(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"cannot load the checkpoint {path} safely: {reason}. Nothing in it was run. Move it away or delete it to "
        "start this run afresh, or point hydra.run.dir at another folder."
    )


def rng_state(*generators: torch.Generator) -> dict[str, Any]:
    """The global torch RNG (and CUDA's, if present) plus the given generators."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in generators]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], *generators: torch.Generator) -> None:
    """Set what :func:`rng_state` saved. Every RNG state is a CPU byte tensor, whatever the generator's device: a
    checkpoint loaded with ``map_location="cuda"`` holds them on the GPU, so they are moved back first."""
    torch.set_rng_state(state["torch"].cpu())
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s.cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

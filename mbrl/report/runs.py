"""Run folders: finding them beneath a sweep's folders and reading one into a :class:`Run`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


class ReportError(ValueError):
    """No runs to report, an unknown ``--group-by`` key or an unreadable run file; the message says which."""


@dataclass(frozen=True)
class Run:
    """One finished run: its folder, the flattened resolved config and ``final.json``."""

    path: Path
    config: dict[str, Any]  # dotted keys -> leaf values (lists stay whole)
    final: dict[str, Any]

    @property
    def dataset(self) -> str:
        return str(self.final.get("dataset", self.config.get("dataset")))

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def has_score(self) -> bool:
        return self.final["final"].get("score_mean") is not None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"name": "bc"}} -> {"agent.name": "bc"}``; lists are values, not branches."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def find_runs(folders: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Run folders beneath ``folders``: (finished, unfinished), each sorted.

    A folder is a run folder if it holds ``config.yaml``, ``final.json`` or Hydra's ``.hydra/``;
    it is finished if it holds both ``config.yaml`` and ``final.json``. Hidden folders (``.hydra``)
    and ``wandb`` folders are not searched: both hold a ``config.yaml`` of their own.
    """
    finished, unfinished = set(), set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            here = Path(dirpath)
            is_run = "config.yaml" in filenames or "final.json" in filenames or ".hydra" in dirnames
            if is_run:
                done = "config.yaml" in filenames and "final.json" in filenames
                (finished if done else unfinished).add(here)
                dirnames.clear()  # a run folder holds no other runs
            else:
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "wandb")
    return sorted(finished), sorted(unfinished)


def load_run(path: Path) -> Run:
    """The finished run in folder ``path``; a ``ReportError`` naming the file when it is not one of mbrl-train's."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=True)
        final = json.loads((path / "final.json").read_text())
    except Exception as e:
        raise ReportError(f"cannot read run folder {path}: {e}") from None
    if not isinstance(final.get("final"), dict) or "return_mean" not in final["final"]:
        raise ReportError(f"{path / 'final.json'} has no 'final' section with 'return_mean'; is it from mbrl-train?")
    if "seed" not in config:
        raise ReportError(f"{path / 'config.yaml'} has no 'seed'; is it from mbrl-train?")
    flat = flatten(config)
    if "agent.name" in flat:  # runs from before presets recorded themselves, and plugin presets without one
        flat.setdefault("agent.preset", flat["agent.name"])
    return Run(path, flat, final)

"""Fit a dynamics model once per (dataset, model config, seed) and reuse it across runs.

Agent ablations then only pay for the cheap stage. The cache is safe under concurrent runs of a
sweep: the first run to take the file lock fits and writes the model atomically; the others wait
and load it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from dynamics.base import DynamicsModel, FitReport
from dynamics.ensemble import GaussianEnsemble
from mbrl.checkpoint import save_atomic
from mbrl.data.transitions import Transitions

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when a change to the model code makes old cached fits invalid


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or os.environ.get("MBRL_CACHE") or Path.home() / ".cache" / "mbrl")


def cache_key(model: GaussianEnsemble, dataset_hash: str) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "dataset": dataset_hash,
        "config": dataclasses.asdict(model.cfg),
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def fit_cached(
    model: DynamicsModel,
    data: Transitions,
    dataset_hash: str,
    *,
    enabled: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> FitReport | None:
    """Fit ``model`` on ``data`` or load the cached fit; returns the report of a fresh fit, else None.

    Models without learned parameters (the oracle) are left as they are.
    """
    if not isinstance(model, GaussianEnsemble):
        return None
    if not enabled:
        return model.fit(data)
    root = cache_root(cache_dir) / "dynamics"
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(model, dataset_hash)
    path = root / f"{key}.pt"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs of a sweep wait here for the first fit
        if path.exists():
            state = torch.load(path, map_location=model.device, weights_only=False)
            model.load_state_dict(state["model"])
            log.info("loaded cached dynamics %s", path)
            return None
        report = model.fit(data)
        save_atomic({"model": model.state_dict(), "report": dataclasses.asdict(report)}, path)
        log.info("fitted dynamics in %d epochs; cached at %s", report.epochs, path)
        return report

"""Fit a learned component once per (dataset, config, seed) and reuse it across runs.

Used for dynamics models and for MOREC's dynamics reward, so agent ablations only pay for the
cheap stage. The cache is safe under concurrent runs of a
sweep: the first run to take the file lock fits and writes the model atomically; the others wait
and load it. An entry that cannot be read (empty, truncated, tampered with, or not a fit of this model)
counts as a miss: it is moved aside and the model refitted.

An entry's key holds everything that decides what the fit learns: the dataset's content hash, the model's
config (its seed included), its sizes, the torch version, the source of the code that fits it as its
files read when the fit is looked up (see :func:`fit_sources`), and the hardware doing the arithmetic
(:func:`mbrl.machine.arithmetic`). So an edit to that code, a comment included, refits once instead of
silently reusing a model that the edited code would not have learned; and a cache shared by machines of
several processor types (a sweep on a cluster) gives each run the fit its own machine makes, so a score
does not depend on which machine fitted first.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import hashlib
import inspect
import itertools
import json
import logging
import os
import sys
import time
import types
from pathlib import Path
from typing import Any, Protocol

import torch

from mbrl.checkpoint import first_sentence, save_atomic, unreadable_reason
from mbrl.data.transitions import Transitions
from mbrl.machine import arithmetic

log = logging.getLogger(__name__)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or os.environ.get("MBRL_CACHE") or Path.home() / ".cache" / "mbrl")


class Fittable(Protocol):
    """A component learned from data: a dataclass config (seed included), sizes, ``fit`` and a state dict."""

    cfg: Any
    obs_dim: int
    act_dim: int
    device: torch.device

    def fit(self, data: Transitions) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def fit_sources(cls: type) -> dict[str, str]:
    """Module name -> source file of the code that decides what a fit of ``cls`` learns.

    That is the modules defining ``cls`` and its base classes, every module they use by name from the same
    packages (the framework's and, for a plug-in, its own), and this module (the entry's layout). A
    dependency reached only through another module is not followed: the modules a fit calls by name are
    where its numbers are decided, and following every import would refit on any edit anywhere.
    """
    packages = {"mbrl", cls.__module__.split(".")[0]}

    def ours(obj: object) -> str | None:
        name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        return name if isinstance(name, str) and name.split(".")[0] in packages else None

    roots = {name for c in cls.__mro__ if (name := ours(c))}
    names = roots | {__name__}
    for module in filter(None, map(sys.modules.get, roots)):  # a class made at run time may have no module
        names.update(name for value in vars(module).values() if (name := ours(value)))
    modules = (sys.modules.get(n) for n in names)
    return {m.__name__: inspect.getfile(m) for m in modules if m is not None and getattr(m, "__file__", None)}


def code_fingerprint(cls: type) -> str:
    """A hash of the torch version and of the sources :func:`fit_sources` names (by module name, so two
    checkouts of the same code share their entries)."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name, path in sorted(fit_sources(cls).items()):
        digest.update(name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def cache_key(model: Fittable, dataset_hash: str) -> str:
    payload = {
        "code": code_fingerprint(type(model)),
        "dataset": dataset_hash,
        "config": dataclasses.asdict(model.cfg),
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "hardware": arithmetic(torch.device(model.device)),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def fit_cached(
    model: Fittable,
    data: Transitions,
    dataset_hash: str,
    *,
    kind: str = "dynamics",
    enabled: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Fit ``model`` on ``data`` or load the cached fit; returns the report of a fresh fit, else None.

    Fits live in ``<cache root>/<kind>/<key>.pt``, with the fit's wall seconds as ``fit_s`` (so that a job
    that loads a fit can still count what the fit cost; entries written before the key existed lack it
    and load all the same). Objects without a ``cfg`` have nothing learned to cache (the oracle
    simulator): their ``fit`` only checks the data.
    """
    if not enabled or getattr(model, "cfg", None) is None:
        return model.fit(data)
    root = cache_root(cache_dir) / kind
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(model, dataset_hash)
    path = root / f"{key}.pt"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs of a sweep wait here for the first fit
        if path.exists() and _load_entry(model, path, kind):
            return None
        start = time.perf_counter()
        report = model.fit(data)
        fit_s = time.perf_counter() - start
        summary = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else report
        save_atomic({"model": model.state_dict(), "report": summary, "fit_s": fit_s}, path)
        log.info("fitted %s in %.1f s; cached at %s", kind, fit_s, path)
        return report


def _load_entry(model: Fittable, path: Path, kind: str) -> bool:
    """Load the cached fit at ``path`` into ``model``, or move an unreadable entry aside and return False.

    The entry is renamed, not deleted, so that a tampered or damaged file can still be looked at.
    """
    before = copy.deepcopy(model.state_dict())  # a strict load that fails may have copied some tensors already
    try:
        # weights_only: a tampered entry must not run code on every run that hits its key.
        state = torch.load(path, map_location=model.device, weights_only=True)
    except Exception as e:  # OSError, EOFError, KeyError, UnpicklingError, ... by how the file is broken
        reason = unreadable_reason(path, e)
    else:
        try:
            model.load_state_dict(state["model"])
            log.info("loaded cached %s %s", kind, path)
            return True
        except Exception as e:  # a payload of another layout, keys or shapes
            model.load_state_dict(before)
            reason = f"it is not a cached fit of this model ({first_sentence(e)})"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in itertools.count(1):  # never overwrite an entry moved aside earlier in the same second
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, aside)
    log.warning("cached %s %s is unreadable: %s; moved it to %s and fitting afresh", kind, path, reason, aside)
    return False

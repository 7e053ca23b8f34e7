"""A run folder belongs to one process at a time and to one config for its whole life.

``RunFolder`` takes an exclusive lock on the folder (a second process writing the same folder
would interleave every log row) and binds the folder to the resolved config of the run that
created it: a rerun may continue the run only if it differs in resume-safe keys, so a checkpoint
can never be relabelled with another seed or method. ``InterruptFlag`` turns Ctrl-C during the
training loop into a request honoured between two updates, so the checkpoint written then is exact.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from omegaconf import OmegaConf

from mbrl.checkpoint import load

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
# Keys that change what is logged or how fast, never what is trained: a rerun may change them and
# continue. ``total_updates`` may grow (train longer) but not fall below the checkpoint's step;
# ``threads`` may change float rounding, not the method. ``cuda_graphs`` replays the eager update's kernels:
# on an H200 a run resumed with it switched either way ended bit for bit where the uninterrupted eager run
# did (benchmarks/cuda_graphs_resume_check.py, benchmarks/results/cuda_graphs_resume_h200.json).
RESUME_SAFE = (
    "resume",
    "logger",
    "diagnostics",
    "eval_every",
    "eval_episodes",
    "final_eval_episodes",
    "log_every",
    "checkpoint_every",
    "threads",
    "cuda_graphs",
    "download",
    "total_updates",
    "dynamics.cache",
    "dynamics.cache_dir",
)


class RunFolderError(RuntimeError):
    """The run folder is in use, bound to another config, or does not hold what ``resume`` asks for."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"name": "sac"}} -> {"agent.name": "sac"}``; lists are values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_keys(config: dict[str, Any]) -> dict[str, Any]:
    """``flatten(config)`` without the keys the run never reads: in a model-free run (``dynamics.kind:
    none``) the rest of the ``dynamics`` section, which configures a model that is not built, so that a
    change of the `cpu` scale's fit does not make every model-free run another experiment."""
    flat = flatten(config)
    if flat.get("dynamics.kind") != "none":
        return flat
    return {k: v for k, v in flat.items() if not k.startswith("dynamics.") or k == "dynamics.kind"}


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between two resolved configs, resume-safe keys and keys neither run
    reads (:func:`read_keys`) left out.

    A key the old config lacks is taken to be a newer version's addition at its default, not a change.
    """
    before, after = read_keys(old), read_keys(new)
    safe = tuple(k + "." for k in RESUME_SAFE)
    changes = {}
    for key in sorted(before.keys() | after.keys()):
        if key in RESUME_SAFE or key.startswith(safe) or key not in before:
            continue
        if before[key] != after.get(key, "<absent>"):
            changes[key] = (before[key], after.get(key, "<absent>"))
    return changes


def same_experiment(run: dict[str, Any], target: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether a finished run with resolved config ``run`` is a run of ``target`` (both nested dicts), so
    that a benchmark may use it instead of training ``target`` again.

    Keys that change only what is logged or how fast are left out (``RESUME_SAFE`` but
    ``total_updates``: a longer or shorter run is another experiment), and so are the keys neither run
    reads (:func:`read_keys`). A key ``run`` lacks was added to the framework after the run was made,
    which therefore ran at that key's default: it matches only where ``target`` is at the default
    (``defaults``, flattened, from :func:`mbrl.config.default_values`). Stricter than resuming, which takes
    every new key as unchanged.
    """
    ignored = tuple(k for k in RESUME_SAFE if k != "total_updates")
    prefixes = tuple(k + "." for k in ignored)

    def kept(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in read_keys(config).items() if k not in ignored and not k.startswith(prefixes)}

    old, new = kept(run), kept(target)
    if old.keys() - new.keys():
        return False
    return all(old[k] == v if k in old else k in defaults and defaults[k] == v for k, v in new.items())


class RunFolder:
    """Lock ``path`` for this process, check it may hold a run of ``resolved`` and load its checkpoint.

    ``resolved`` is the run's config as a plain dict. ``resume`` is its mode: ``auto`` continues a
    checkpoint if there is one, ``true`` insists on one, ``false`` refuses a folder that already
    holds a run, ``force`` continues even when the config differs in keys that are not resume-safe.
    After entering, ``state`` is the checkpoint to continue from (``None`` for a fresh run), loaded
    and checked before the run spends anything on data or dynamics.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolved: dict[str, Any],
        resume: str,
        checkpoint: str,
        map_location: str | torch.device = "cpu",
    ) -> None:
        self.path = Path(path)
        self.resolved = resolved
        self.resume = resume
        self.checkpoint = self.path / checkpoint
        self.map_location = map_location
        self.changes: dict[str, tuple[Any, Any]] = {}  # what resume=force let through
        self.state: dict[str, Any] | None = None
        self._lock: Any = None

    def __enter__(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / LOCK_FILE, "a+")  # held until __exit__
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise RunFolderError(
                f"run folder {self.path} is in use by {holder}; wait for that run to finish, or give this one "
                "another folder (hydra.run.dir=... or train(..., run_dir=...))"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._lock.flush()
        try:
            self._check()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def _check(self) -> None:
        config_file = self.path / CONFIG_FILE
        if self.resume == "true" and not self.has_checkpoint:
            raise RunFolderError(
                f"resume=true but {self.checkpoint} does not exist; drop resume=true to start a fresh run, or point "
                "hydra.run.dir at the folder of the run to continue"
            )
        held = self.has_checkpoint or config_file.exists()
        if self.resume == "false" and held:
            raise RunFolderError(
                f"resume=false but {self.path} already holds a run; give this one another folder (hydra.run.dir=...), "
                "or drop resume=false to continue that run"
            )
        if config_file.exists():
            self._check_config(config_file)
        if self.has_checkpoint:
            self.state = load(self.checkpoint, map_location=self.map_location)
            self._check_step(self.resolved["total_updates"], self.state["step"])

    def _check_config(self, config_file: Path) -> None:
        changes = config_changes(OmegaConf.to_container(OmegaConf.load(config_file)), self.resolved)
        if changes and self.resume != "force":
            listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
            raise RunFolderError(
                f"run folder {self.path} holds a run of another config ({listed}). Continuing it would label its "
                "results with the new values. Give this run another folder (hydra.run.dir=...), or add "
                "resume=force to continue that run under the new config. Keys that may change on resume: "
                f"{', '.join(RESUME_SAFE)}"
            )
        self.changes = changes

    def check_dataset(self, name: str, content_hash: str) -> None:
        """Refuse to continue a checkpoint on other data than it was trained on (the same name, changed content)."""
        saved = (self.state or {}).get("dataset_hash")
        if saved is None or saved == content_hash or self.resume == "force":
            return
        raise RunFolderError(
            f"the checkpoint in {self.path} was trained on dataset {name!r} with content hash {saved[:12]}, but "
            f"{name!r} now has content hash {content_hash[:12]}: the data changed (a rebuilt or edited dataset). "
            "Give this run another folder (hydra.run.dir=...), or add resume=force to continue on the new data"
        )

    def _check_step(self, total_updates: int, step: int) -> None:
        """Refuse to shorten a run: a checkpoint at ``step`` cannot become a run of ``total_updates < step``."""
        if total_updates < step:
            raise RunFolderError(
                f"total_updates={total_updates} but the checkpoint in {self.path} is at update {step}; a run "
                f"cannot be shortened. Use total_updates>={step}, or another folder (hydra.run.dir=...)"
            )


class InterruptFlag:
    """While active, the first Ctrl-C (SIGINT) only sets ``requested``; a second one interrupts at once.

    The training loop checks the flag between updates, so the checkpoint it writes before exiting is
    one an uninterrupted run would have passed through. Outside the main thread (where signal
    handlers cannot be installed) it does nothing and Ctrl-C raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was written; the message says how to resume."""

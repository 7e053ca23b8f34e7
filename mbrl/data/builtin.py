"""The built-in datasets: regenerated locally, deterministically, from the packaged policy bundles.

Each is a Minari dataset ``mbrl/<family>/<level>-v0`` stored under ``MINARI_DATASETS_PATH``
(Minari's default ``~/.minari/datasets`` otherwise). The first use builds it (tens of seconds);
later uses load it from disk.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mbrl.data.behavior import BehaviorBundle, packaged_bundle_path
from mbrl.data.generate import level_episodes, write_minari
from mbrl.envs import ENV_FAMILIES

log = logging.getLogger(__name__)
DEFAULT_DATASET = "halfcheetah-medium"
BUILTIN_LEVELS = ("random", "medium", "medium-replay")
BUILTIN_SIZE = 100_000  # transitions of the random and medium levels
DATASET_VERSION = 0  # bump when the generation recipe changes
RECORDED_HASHES = Path(__file__).with_name("builtin_hashes.json")


@dataclass(frozen=True)
class BuiltinDataset:
    family: str
    level: str
    seed: int = 0
    num_transitions: int = BUILTIN_SIZE

    @property
    def env_id(self) -> str:
        return f"{ENV_FAMILIES[self.family]}-v5"

    @property
    def minari_id(self) -> str:
        return f"mbrl/{self.family}/{self.level}-v{DATASET_VERSION}"


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    f"{family}-{level}": BuiltinDataset(family, level) for family in ENV_FAMILIES for level in BUILTIN_LEVELS
}


def _datasets_root(root: str | os.PathLike | None) -> Path:
    return Path(root or os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def builtin_exists(name: str, root: str | os.PathLike | None = None) -> bool:
    ds = BUILTIN_DATASETS[name]
    return (_datasets_root(root) / ds.minari_id / "data" / "metadata.json").exists()


def build_builtin(
    name: str, root: str | os.PathLike | None = None, bundle_path: str | os.PathLike | None = None
) -> str:
    """(Re)generate built-in dataset ``name``; returns its Minari id."""
    ds = BUILTIN_DATASETS[name]
    bundle = BehaviorBundle.load(bundle_path or packaged_bundle_path(ds.family))
    episodes, behavior = level_episodes(bundle, ds.level, ds.num_transitions, ds.seed)
    description = (
        f"mbrl built-in dataset {name}: {ds.env_id}, level {ds.level}, seed {ds.seed}. "
        f"Behaviour policy: {behavior}. Reference scores: D4RL {ds.family} random/expert returns."
    )
    write_minari(
        ds.minari_id, episodes, ds.env_id, f"mbrl-sac/{ds.family}/{ds.level}", description, _datasets_root(root)
    )
    log.info("checking the content hash of %s against %s", name, RECORDED_HASHES.name)
    content_hash = builtin_hash(name, root)
    expected = recorded_hashes().get(name)
    if expected is not None and expected != content_hash:
        log.warning(
            "built-in dataset %s regenerated with content hash %s, but %s records %s: the data differ from the "
            "published ones, most likely because gymnasium or mujoco differ from the pinned versions",
            name,
            content_hash[:12],
            RECORDED_HASHES.name,
            expected[:12],
        )
    return ds.minari_id


def builtin_hash(name: str, root: str | os.PathLike | None = None) -> str:
    """The content hash of built-in dataset ``name`` as it is on disk."""
    from mbrl.data.generate import minari_root
    from mbrl.data.minari_io import load_minari

    with minari_root(_datasets_root(root)):
        return load_minari(BUILTIN_DATASETS[name].minari_id).spec.content_hash


def recorded_hashes() -> dict[str, str]:
    """The content hashes of the built-in datasets as published with this version of the package."""
    return json.loads(RECORDED_HASHES.read_text()) if RECORDED_HASHES.exists() else {}


def ensure_builtin(name: str, root: str | os.PathLike | None = None) -> str:
    """The Minari id of built-in dataset ``name``, generating it first if it is not on disk."""
    if name not in BUILTIN_DATASETS:
        raise KeyError(f"unknown built-in dataset {name!r}; built-in: {', '.join(sorted(BUILTIN_DATASETS))}")
    if not builtin_exists(name, root):
        folder = _datasets_root(root)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs of a sweep: one builds, the others wait
            if not builtin_exists(name, root):
                log.info("building built-in dataset %s (first use only)", name)
                build_builtin(name, root)
    return BUILTIN_DATASETS[name].minari_id

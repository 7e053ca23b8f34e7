"""The built-in datasets: regenerated locally, deterministically, from the packaged policy bundles.

Each is a Minari dataset ``mbrl/<family>/<level>-v<DATASET_VERSION>`` stored under
``MINARI_DATASETS_PATH`` (Minari's default ``~/.minari/datasets`` otherwise). The first use builds
it (tens of seconds); later uses load it from disk. Its content hash is checked against the one
recorded in ``builtin_hashes.json`` (once per build, then remembered beside the dataset) and a
mismatch is logged as a warning that says how to rebuild it.

The generation does not depend on the CPU (its SIMD or BLAS code path; see
``mbrl.data.generate.ACTION_GRID``); it does depend on the versions of gymnasium, mujoco, numpy
and torch (the simulator, the random-number algorithms), so a mismatch means other versions than
``RECORDED_WITH``, a dataset built by an earlier recipe, or changed files.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mbrl.data.behavior import BehaviorBundle, packaged_bundle_path
from mbrl.data.generate import ACTION_GRID, level_episodes, write_minari
from mbrl.envs import ENV_FAMILIES

log = logging.getLogger(__name__)
DEFAULT_DATASET = "halfcheetah-medium"
BUILTIN_LEVELS = ("random", "medium", "medium-replay")
BUILTIN_SIZE = 100_000  # transitions of the random and medium levels
# Bump when the generation recipe changes. 1: policy actions in float64, rounded to a grid (CPU-independent).
DATASET_VERSION = 1
RECORDED_HASHES = Path(__file__).with_name("builtin_hashes.json")
# The versions builtin_hashes.json was recorded with (update both together); other versions may
# generate other data (gymnasium and mujoco are pinned in setup.cfg, numpy and torch are not).
RECORDED_WITH = {"gymnasium": "1.4.0", "mujoco": "4.0.0", "numpy": "2.4.6", "torch": "2.13.0"}
HASH_STAMP = "mbrl-content-hash.json"  # beside a built-in dataset's data/ folder: its hash, checked once


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
        f"Behaviour policy: {behavior}; policy actions computed in float64 and rounded to multiples of "
        f"{ACTION_GRID:g} (the same on every CPU). Reference scores: D4RL {ds.family} random/expert returns."
    )
    write_minari(
        ds.minari_id, episodes, ds.env_id, f"mbrl-sac/{ds.family}/{ds.level}", description, _datasets_root(root)
    )
    log.info("checking the content hash of %s against %s", name, RECORDED_HASHES.name)
    content_hash = builtin_hash(name, root)
    _write_stamp(name, root, content_hash)
    _warn_if_unrecorded(name, root, content_hash, built_now=True)
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


def builtin_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of built-in dataset ``name`` (deleting it makes the next use rebuild it)."""
    return _datasets_root(root) / BUILTIN_DATASETS[name].minari_id


def installed_versions() -> dict[str, str]:
    """The installed versions of the packages in ``RECORDED_WITH``."""
    out = {}
    for package in RECORDED_WITH:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _warn_if_unrecorded(name: str, root: str | os.PathLike | None, content_hash: str, built_now: bool) -> None:
    """Warn when ``content_hash`` is not the recorded hash of ``name``, naming the likely cause and the fix."""
    expected = recorded_hashes().get(name)
    if expected is None or expected == content_hash:
        return
    installed = installed_versions()
    # A local version label (torch's "+cpu", "+cu126") names the build, not the code that generates.
    differing = [
        f"{p} {installed[p]} (recorded with {v})" for p, v in RECORDED_WITH.items() if installed[p].split("+")[0] != v
    ]
    versions = (
        f"these installed versions differ from the recorded ones: {', '.join(differing)}"
        if differing
        else f"the installed versions are the recorded ones ({', '.join(f'{p} {v}' for p, v in RECORDED_WITH.items())})"
    )
    folder = builtin_folder(name, root)
    if built_now and differing:
        cause = (
            f"it was just generated, so the difference comes from the library versions: {versions}. "
            f"Fix: install the recorded versions and rebuild it (delete {folder}, or `mbrl-make-dataset {name} "
            "--force`); results on this dataset are not comparable with results on the published one"
        )
    elif built_now:
        cause = (
            f"it was just generated and {versions}, so the generation itself differs: the generation code was "
            f"changed since {RECORDED_HASHES.name} was recorded (record it again: `mbrl-make-dataset --all --force "
            "--record-hashes`), or this platform computes differently (another OS, C library or processor "
            "architecture); results on this dataset are not comparable with results on the published one"
        )
    else:
        cause = (
            "the copy on disk was built by another version of this package, with other library versions, or "
            f"its files were changed ({versions}). It is used as it is. Fix: delete {folder} (the next use rebuilds "
            f"it) or run `mbrl-make-dataset {name} --force`; if the rebuilt dataset still differs, install the "
            "recorded versions"
        )
    log.warning(
        "built-in dataset %s has content hash %s, but %s records %s for it: %s",
        name,
        content_hash[:12],
        RECORDED_HASHES.name,
        expected[:12],
        cause,
    )


def _data_files_state(name: str, root: str | os.PathLike | None) -> dict[str, list[int]]:
    """Size and modification time of every file of the dataset's ``data/`` folder (what its stamp vouches for)."""
    data = builtin_folder(name, root) / "data"
    files = sorted(p for p in data.rglob("*") if p.is_file())
    return {str(p.relative_to(data)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _write_stamp(name: str, root: str | os.PathLike | None, content_hash: str) -> None:
    folder = builtin_folder(name, root)
    stamp = {"content_hash": content_hash, "files": _data_files_state(name, root)}
    tmp = folder / f".{HASH_STAMP}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    os.replace(tmp, folder / HASH_STAMP)


def _stamped_hash(name: str, root: str | os.PathLike | None) -> str | None:
    """The content hash remembered beside the dataset, if its data files are unchanged since."""
    try:
        stamp = json.loads((builtin_folder(name, root) / HASH_STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("files") != _data_files_state(name, root):
        return None
    content_hash = stamp.get("content_hash")
    return content_hash if isinstance(content_hash, str) else None


def check_builtin(name: str, root: str | os.PathLike | None = None) -> str:
    """The content hash of built-in dataset ``name`` on disk; warns when it is not the recorded one.

    The hash is computed once (a full read of the dataset) and remembered in ``HASH_STAMP`` beside
    the dataset's files until they change.
    """
    content_hash = _stamped_hash(name, root)
    if content_hash is None:
        log.info("checking the content hash of built-in dataset %s against %s", name, RECORDED_HASHES.name)
        content_hash = builtin_hash(name, root)
        _write_stamp(name, root, content_hash)
    _warn_if_unrecorded(name, root, content_hash, built_now=False)
    return content_hash


def ensure_builtin(name: str, root: str | os.PathLike | None = None) -> str:
    """The Minari id of built-in dataset ``name``, generating it first if it is not on disk.

    A dataset already on disk is checked against its recorded content hash (``check_builtin``):
    a mismatch is logged as a warning naming the fix, and the dataset is used as it is.
    """
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
    check_builtin(name, root)
    return BUILTIN_DATASETS[name].minari_id

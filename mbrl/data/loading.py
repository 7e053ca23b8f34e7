"""One entry point for every dataset: built-in names, D4RL files and names, Minari ids."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from mbrl.data.builtin import BUILTIN_DATASETS, ensure_builtin
from mbrl.data.d4rl import HDF5_SUFFIXES, d4rl_env_id, load_d4rl
from mbrl.data.minari_io import load_minari
from mbrl.data.transitions import DatasetError, OfflineDataset
from mbrl.data.validate import check_env_match

# D4RL names are dash-separated words ending in a version: hopper-medium-v2, antmaze-umaze-diverse-v0.
_D4RL_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-v\d+$")


def load_dataset(
    name_or_path: str,
    *,
    download: bool = False,
    env_id: str | None = None,
    allow_version_mismatch: bool = False,
    device: str | torch.device = "cpu",
) -> OfflineDataset:
    """Load ``name_or_path``, trying in order:

    1. a built-in dataset name (``"halfcheetah-medium"``): generated locally on first use, then
       loaded as its Minari dataset;
    2. an existing file (or any ``.hdf5``/``.h5`` path): a D4RL HDF5 file;
    3. an id with a ``/`` (``"mujoco/hopper/medium-v0"``): a Minari dataset (``download`` fetches it);
    4. a D4RL name, ``<words>-v<N>`` (``"hopper-medium-v2"``): fetched by the optional ``d4rl`` package.

    Anything else is refused with the list of built-in names and the accepted forms.

    Both loaders refuse actions outside the dataset's action bounds. ``env_id`` is the evaluation
    env: when given, the dataset must match it (``check_env_match``; a version difference only
    with ``allow_version_mismatch``). A D4RL file whose source env cannot be told from its name
    or metadata is taken to come from ``env_id``.

    Raises:
        DatasetError: the dataset cannot be found, is malformed, or does not match ``env_id``.
    """
    dataset = _dispatch(name_or_path, download=download, env_id=env_id, device=device)
    if env_id is not None:
        check_env_match(dataset.spec, env_id, allow_version_mismatch=allow_version_mismatch)
    return dataset


def _dispatch(name_or_path: str, *, download: bool, env_id: str | None, device: str | torch.device) -> OfflineDataset:
    if name_or_path in BUILTIN_DATASETS:
        return load_minari(ensure_builtin(name_or_path), download=False, device=device)
    path = Path(name_or_path).expanduser()
    if path.is_file() or path.suffix in HDF5_SUFFIXES:
        return load_d4rl(name_or_path, env_id=d4rl_env_id(name_or_path) or env_id, device=device)
    if "/" in name_or_path:
        return load_minari(name_or_path, download=download, device=device)
    if _D4RL_NAME_RE.match(name_or_path):
        return load_d4rl(name_or_path, env_id=d4rl_env_id(name_or_path) or env_id, device=device)
    raise DatasetError(
        f"unknown dataset {name_or_path!r}: not a built-in dataset, not an existing file, and not a Minari id. "
        f"Pass one of: a built-in name ({', '.join(sorted(BUILTIN_DATASETS))}); the path to a D4RL .hdf5 file "
        "(e.g. ~/.d4rl/datasets/hopper_medium-v2.hdf5); a Minari id with '/' (e.g. mujoco/hopper/medium-v0, "
        "stored under MINARI_DATASETS_PATH or fetched with download=true / --download); or a D4RL name such as "
        "hopper-medium-v2 (needs the d4rl package)."
    )

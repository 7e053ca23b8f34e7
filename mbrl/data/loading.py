"""One entry point for every dataset: built-in names, D4RL files and names, Minari ids."""

from __future__ import annotations

from pathlib import Path

import torch

from mbrl.data.builtin import BUILTIN_DATASETS, ensure_builtin
from mbrl.data.d4rl import HDF5_SUFFIXES, d4rl_env_id, load_d4rl
from mbrl.data.minari_io import load_minari
from mbrl.data.transitions import OfflineDataset
from mbrl.data.validate import check_env_match


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
    4. anything else: a D4RL name (needs the optional ``d4rl`` package).

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
    return load_d4rl(name_or_path, env_id=d4rl_env_id(name_or_path) or env_id, device=device)

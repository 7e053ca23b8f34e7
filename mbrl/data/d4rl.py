"""Load D4RL-format HDF5 files (``hopper_medium-v2.hdf5``) into an ``OfflineDataset``.

Layout (``N`` rows, one per environment step, episodes back to back):
``observations [N, obs]``, ``actions [N, act]``, ``rewards [N]``, ``terminals [N]``, ``timeouts [N]``;
optional ``next_observations [N, obs]``, ``infos/qpos [N, nq]``, ``infos/qvel [N, nv]``.

An episode ends at a row flagged terminal or timeout (or at the file's last row). Without
``next_observations`` the next state of a row is the following row, which is only true inside an
episode; the final row of each episode is therefore handled like this:

* terminal: kept, with ``next_obs = obs`` as a placeholder (``terminated=True`` stops bootstrapping,
  so its value is never used; model fitting should mask terminated rows' next state);
* timeout, or the file's last row: dropped, because its real next state is not in the file (the
  following row is the next episode's reset state, and must never be paired with it).

With ``next_observations`` every row is a real transition and kept; a timeout row keeps
``truncated=True``. Terminals and timeouts stay separate flags throughout.

A file left without a usable transition (a row whose next state is in the file: e.g. every row a
timeout, or a single row) is refused at load time (``check_usable``), not deep inside training.

``d4rl`` itself is optional: it is only used to fetch a dataset by D4RL name when no file is given.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import torch

from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.data.transitions import DatasetError, DatasetSpec, OfflineDataset, Transitions
from mbrl.data.validate import (
    D4RL_REQUIRED_KEYS,
    check_actions_in_bounds,
    check_usable,
    env_spaces,
    require_keys,
    validate_arrays,
)
from mbrl.envs import ENV_FAMILIES, env_family

HDF5_SUFFIXES = (".hdf5", ".h5")
OPTIONAL_KEYS = ("next_observations", "infos/qpos", "infos/qvel")
# The MuJoCo envs the D4RL v2 locomotion datasets were collected in (gym, mujoco-py).
D4RL_SOURCE_ENV_VERSION = 3
# HDF5 attributes (on the file or a ``metadata`` group) that may name the source env.
_ENV_ATTRS = ("env_id", "env_name", "env")
_GYM_ID_RE = re.compile(r"^(?P<name>[A-Za-z0-9]+)-v(?P<version>\d+)$")
# What h5py raises on a file that has the HDF5 signature but cannot be read (cut short, corrupt).
_H5_READ_ERRORS = (OSError, RuntimeError, KeyError)
# Why rows of a file without next_observations are dropped or not counted as usable.
_NO_NEXT_OBS_HINT = (
    "Without next_observations, a row that ends its episode by a timeout (or is the file's last row) has no "
    "next state in the file and is dropped, and a terminal row's next_obs is only a placeholder. Fix: use a "
    "file whose episodes have 2 or more steps, or store next_observations [N, obs_dim] (the true next state "
    "of every row)."
)


def load_d4rl(path_or_name: str, *, env_id: str | None = None, device: str | torch.device = "cpu") -> OfflineDataset:
    """Load a D4RL HDF5 file, or (only if ``d4rl`` is installed) a D4RL dataset by name.

    Args:
        path_or_name: path to the ``.hdf5`` file, or a D4RL name such as ``"hopper-medium-v2"``.
        env_id: gym id of the env the data came from; inferred from the HDF5 metadata or the
            file name (``hopper*`` -> ``Hopper-v3``) when not given.
        device: where the transition tensors live.

    Raises:
        DatasetError: file missing (and no d4rl), not HDF5 or unreadable (truncated, corrupt), malformed
            arrays, no usable transition (see ``check_usable``), or env not inferable.
    """
    path = Path(path_or_name).expanduser()
    if path.is_file():
        name = path.stem
        arrays, file_env_id = _read_hdf5(path)
        source = str(path)
    else:
        name = path_or_name
        arrays, file_env_id = _fetch_with_d4rl(path_or_name), None
        source = f"d4rl dataset {path_or_name!r}"
    arrays = validate_arrays(arrays, source)
    env_id = env_id or file_env_id or d4rl_env_id_from_name(name)
    if env_id is None:
        raise DatasetError(
            f"cannot tell which environment {source} comes from (no env attribute in the file and no known env "
            f"family {sorted(ENV_FAMILIES)} in its name). Fix: pass the env it was collected in, a gymnasium id: "
            "env_id=<Env-vN> for mbrl-train, --env-id <Env-vN> for mbrl-dataset (e.g. Hopper-v5)."
        )
    return _build_dataset(arrays, name, env_id, source, device)


def d4rl_env_id(path_or_name: str) -> str | None:
    """The source env of a D4RL file or name, from its HDF5 metadata or its name; ``None`` if unknown."""
    path = Path(path_or_name).expanduser()
    if path.is_file() and h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                found = _env_id_from_attrs(f)
        except _H5_READ_ERRORS as exc:
            raise _unreadable(path, exc) from exc
        if found:
            return found
        return d4rl_env_id_from_name(path.stem)
    return d4rl_env_id_from_name(path_or_name)


def d4rl_env_id_from_name(name: str) -> str | None:
    """``"hopper_medium-v2"``, ``"walker2d-medium-replay-v2"`` -> ``"Hopper-v3"``, ``"Walker2d-v3"``; else ``None``."""
    for token in re.split(r"[-_./\s]+", name.lower()):
        if token in ENV_FAMILIES:
            return f"{ENV_FAMILIES[token]}-v{D4RL_SOURCE_ENV_VERSION}"
    return None


def _read_hdf5(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """The required and optional arrays of ``path`` and the env id its metadata names (if any)."""
    if not h5py.is_hdf5(path):
        raise DatasetError(
            f"{path} is not an HDF5 file (it does not start with the HDF5 signature); a D4RL dataset is an HDF5 "
            f"file of {list(D4RL_REQUIRED_KEYS)}. Fix: check the path, or download or copy the file again."
        )
    try:
        with h5py.File(path, "r") as f:
            present: list[str] = []
            f.visititems(lambda key, obj: present.append(key) if isinstance(obj, h5py.Dataset) else None)
            require_keys(present, D4RL_REQUIRED_KEYS, str(path))
            arrays = {key: f[key][()] for key in D4RL_REQUIRED_KEYS + OPTIONAL_KEYS if key in present}
            return arrays, _env_id_from_attrs(f)
    except _H5_READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> DatasetError:
    """The error for a file with the HDF5 signature that h5py cannot open or read."""
    return DatasetError(
        f"{path}: not a readable HDF5 file: truncated or corrupt ({exc}). Fix: download or copy the file again "
        "(an interrupted transfer leaves it cut short) and check that its size matches the original's."
    )


def _env_id_from_attrs(f: h5py.File) -> str | None:
    """An env named by a file or ``metadata`` attribute/dataset: a gym id as is, a D4RL name mapped."""
    holders = [f.attrs]
    if isinstance(f.get("metadata"), h5py.Group):
        holders += [f["metadata"].attrs, f["metadata"]]
    for holder in holders:
        for key in _ENV_ATTRS:
            if key in holder:
                value = holder[key]
                value = value[()] if isinstance(value, h5py.Dataset) else value
                value = value.decode() if isinstance(value, bytes) else str(value)
                match = _GYM_ID_RE.match(value)
                found = value if match and match["name"] in ENV_FAMILIES.values() else d4rl_env_id_from_name(value)
                if found:
                    return found
    return None


def _fetch_with_d4rl(name: str) -> dict[str, np.ndarray]:
    """``gym.make(name).get_dataset()`` via the optional ``d4rl`` package (never required)."""
    if Path(name).suffix in HDF5_SUFFIXES:
        raise DatasetError(f"D4RL file not found: {name}. Fix: check the path to the .hdf5 file.")
    try:
        import d4rl  # noqa: F401  (registers the D4RL envs with gym)
        import gym
    except ImportError as exc:
        raise DatasetError(
            f"{name!r} is not an existing file, and the d4rl package is not installed ({exc}), so it cannot be "
            "fetched by D4RL name. Fix: pass the path to the D4RL HDF5 file (e.g. "
            "~/.d4rl/datasets/hopper_medium-v2.hdf5), or a Minari dataset id."
        ) from exc
    data = gym.make(name).get_dataset()
    return {key: np.asarray(data[key]) for key in D4RL_REQUIRED_KEYS + OPTIONAL_KEYS if key in data}


def _build_dataset(
    arrays: dict[str, np.ndarray], name: str, env_id: str, source: str, device: str | torch.device
) -> OfflineDataset:
    """Split the rows into episodes, drop rows without a true next state, and wrap them up."""
    low, high = _action_bounds(env_id, arrays["actions"])
    check_actions_in_bounds(arrays["actions"], low, high, source=source)
    terminals = arrays["terminals"].astype(bool)
    timeouts = arrays["timeouts"].astype(bool)
    ends = terminals | timeouts
    ends[-1] = True  # the file's last row ends its episode whether flagged or not
    # Rows with a real next state: all of them with next_observations; else only rows inside an episode
    # (timeout and last rows are dropped below, terminal rows kept with a placeholder next_obs).
    has_next = "next_observations" in arrays
    check_usable(
        source,
        rows=len(ends),
        terminals=int(terminals.sum()),
        timeouts=int(timeouts.sum()),
        usable=len(ends) if has_next else int((~ends).sum()),
        hint=_NO_NEXT_OBS_HINT,
    )
    # Row i belongs to episode (number of episode ends before row i): [N] int64.
    episode_id = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)
    episode_returns = np.bincount(episode_id, weights=arrays["rewards"].astype(np.float64))
    keep, next_obs = _next_states(arrays, ends, terminals)

    qpos, qvel = arrays.get("infos/qpos"), arrays.get("infos/qvel")
    transitions = Transitions.from_numpy(
        device,
        obs=arrays["observations"][keep],
        act=arrays["actions"][keep],
        rew=arrays["rewards"][keep],
        next_obs=next_obs[keep],
        terminated=terminals[keep],
        truncated=timeouts[keep],
        episode_id=episode_id[keep],
        qpos=None if qpos is None else qpos[keep],
        qvel=None if qvel is None else qvel[keep],
    )
    family = env_family(env_id)
    ref_min, ref_max = D4RL_REFERENCE_SCORES.get(family, (None, None))
    spec = DatasetSpec(
        name=name,
        env_id=env_id,
        source="d4rl",
        obs_dim=transitions.obs_dim,
        act_dim=transitions.act_dim,
        act_low=low,
        act_high=high,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        content_hash=transitions.content_hash(),
        metadata={"source_path": source, "has_next_observations": has_next},
    )
    return OfflineDataset(
        transitions=transitions,
        spec=spec,
        episode_returns=torch.as_tensor(episode_returns, dtype=torch.float64),
        num_terminals=int(terminals.sum()),
        num_timeouts=int(timeouts.sum()),
    )


def _next_states(
    arrays: dict[str, np.ndarray], ends: np.ndarray, terminals: np.ndarray
) -> tuple[np.ndarray | slice, np.ndarray]:
    """Which rows to keep (a bool mask ``[N]``, or every row) and the next state of each row ``[N, obs]``."""
    if "next_observations" in arrays:
        return slice(None), arrays["next_observations"]  # a slice keeps views: no copy of large arrays
    obs = arrays["observations"]
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]  # only true inside an episode; the final rows are fixed or dropped below
    next_obs[terminals] = obs[terminals]  # placeholder: never bootstrapped from (terminated=True)
    # A timeout (or the unflagged last) row has no true next state in the file: the next row is a reset.
    return ~ends | terminals, next_obs


def _action_bounds(env_id: str, actions: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The action bounds of the env family (its v5 env has the same ones), else of ``env_id`` itself.

    Only when ``env_id`` cannot be built are the data's min/max taken: the bounds of the env the
    data is evaluated in are what the agent must act within, and what the env check compares.
    """
    family = env_family(env_id)
    if family in ENV_FAMILIES:
        _, _, low, high = env_spaces(f"{ENV_FAMILIES[family]}-v5")
        return low, high
    try:
        _, _, low, high = env_spaces(env_id)
        return low, high
    except DatasetError:  # an env this install cannot build (unregistered, missing dependency)
        return tuple(float(x) for x in actions.min(axis=0)), tuple(float(x) for x in actions.max(axis=0))

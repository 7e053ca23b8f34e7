"""Load Minari datasets into an ``OfflineDataset``.

A Minari episode of ``T`` steps stores ``T + 1`` observations (the reset state, then one per step),
so every step has its true next state: ``obs = observations[:-1]``, ``next_obs = observations[1:]``,
and no row is dropped. ``terminations``/``truncations`` become ``terminated``/``truncated`` as they
are. Episodes whose infos hold ``qpos``/``qvel`` (``T + 1`` rows aligned with the observations, as
this framework's generated datasets store them, or ``T`` rows) keep the simulator state of ``obs``.
"""

from __future__ import annotations

import errno
import importlib
import socket
from typing import Any

import numpy as np
import torch

from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.data.transitions import DatasetError, DatasetSpec, OfflineDataset, Transitions
from mbrl.data.validate import check_actions_in_bounds, check_usable, validate_arrays
from mbrl.envs import env_family

MINARI_KEYS = ("observations", "next_observations", "actions", "rewards", "terminations", "truncations")
# Dataset metadata worth carrying into DatasetSpec.metadata (all JSON-friendly strings).
_METADATA_KEYS = ("algorithm_name", "description", "minari_version", "code_permalink")
_STATE_KEYS = ("qpos", "qvel")
# The extra of this package that installs what Minari's remote download imports (huggingface_hub).
DOWNLOAD_EXTRA_INSTALL = 'pip install -e ".[download]"'
# Errors of the HTTP clients Minari's remotes use (requests, httpx; huggingface_hub 2 uses httpx2) that
# mean "no connection"; each is looked up only if its module is installed.
_NETWORK_ERROR_NAMES = {
    "requests.exceptions": ("ConnectionError", "Timeout"),
    "httpx": ("TransportError",),
    "httpx2": ("TransportError",),
    "urllib3.exceptions": ("NewConnectionError", "MaxRetryError", "TimeoutError"),
}
# Socket errors without an OSError subclass of their own that still mean "no route to the server".
_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN})


def load_minari(dataset_id: str, *, download: bool = False, device: str | torch.device = "cpu") -> OfflineDataset:
    """Load Minari dataset ``dataset_id`` (e.g. ``"mujoco/hopper/medium-v0"``) from the local store.

    Args:
        dataset_id: the Minari id, ``namespace/name-vN``.
        download: fetch it from the Minari server if it is not stored locally.
        device: where the transition tensors live.

    Raises:
        DatasetError: dataset absent (without ``download``), non-Box spaces, malformed episodes,
            no env spec, or actions outside the action space.
    """
    ds = _open(dataset_id, download)
    source = f"Minari dataset {dataset_id!r}"
    for what, space in (("observation", ds.observation_space), ("action", ds.action_space)):
        _require_flat_box(space, what, source)
    env_id = _env_id(ds, source)
    raw, episode_id = _episode_arrays(ds, source)
    arrays = validate_arrays(raw, source, required=MINARI_KEYS)
    terminated, truncated = arrays["terminations"].astype(bool), arrays["truncations"].astype(bool)
    # Every Minari step stores its next observation (truncated steps too): every row is usable.
    rows = len(terminated)
    check_usable(source, rows=rows, terminals=int(terminated.sum()), timeouts=int(truncated.sum()), usable=rows)
    low = tuple(float(x) for x in ds.action_space.low)
    high = tuple(float(x) for x in ds.action_space.high)
    check_actions_in_bounds(arrays["actions"], low, high, source=source)
    transitions = Transitions.from_numpy(
        device,
        obs=arrays["observations"],
        act=arrays["actions"],
        rew=arrays["rewards"],
        next_obs=arrays["next_observations"],
        terminated=terminated,
        truncated=truncated,
        episode_id=episode_id,
        qpos=arrays.get("qpos"),
        qvel=arrays.get("qvel"),
    )
    returns = np.bincount(episode_id, weights=arrays["rewards"].astype(np.float64), minlength=len(ds))
    return OfflineDataset(
        transitions=transitions,
        spec=_spec(ds, env_id, transitions, low, high),
        episode_returns=torch.as_tensor(returns, dtype=torch.float64),
        num_terminals=int(terminated.sum()),
        num_timeouts=int(truncated.sum()),
    )


def _open(dataset_id: str, download: bool) -> Any:
    """``minari.load_dataset`` with Minari's errors turned into ``DatasetError`` that say how to fix them."""
    import minari
    from minari.storage import get_dataset_path

    try:
        return minari.load_dataset(dataset_id, download=download)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"Minari dataset {dataset_id!r} is not stored locally (searched {get_dataset_path()}, the "
            "MINARI_DATASETS_PATH folder, default ~/.minari/datasets). Fix: download it with download=true "
            "(mbrl-train: download=true; mbrl-dataset: --download), point MINARI_DATASETS_PATH at the folder "
            "that holds it, or create it (built-in datasets: mbrl-make-dataset NAME)."
        ) from exc
    except ValueError as exc:  # unreadable metadata or a Minari version this install cannot read
        raise DatasetError(f"cannot read Minari dataset {dataset_id!r}: {exc}") from exc
    except ImportError as exc:  # a remote's client library, imported only when a download starts
        raise DatasetError(
            f"downloading Minari dataset {dataset_id!r} needs packages that are not installed ({exc}). "
            f"Fix: install this package's download extra: {DOWNLOAD_EXTRA_INSTALL} (in the repository), or "
            f"place the dataset locally under MINARI_DATASETS_PATH (now {get_dataset_path()})."
        ) from exc
    except Exception as exc:
        if not _is_network_error(exc):
            raise
        raise DatasetError(
            f"cannot download Minari dataset {dataset_id!r}: the network is unreachable ({type(exc).__name__}: "
            f"{exc}). Fix: on a machine with internet, run `minari download {dataset_id}`; copy the datasets folder "
            f"it fills (~/.minari/datasets, at least its {dataset_id} folder, keeping that path) to this machine; "
            f"and set MINARI_DATASETS_PATH to the copy (now {get_dataset_path()}). Then load it without download."
        ) from exc


def _is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it was raised from (cause or context) is a failed connection."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror]
    for module_name, names in _NETWORK_ERROR_NAMES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        kinds += [getattr(module, name) for name in names if isinstance(getattr(module, name, None), type)]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, tuple(kinds)) or (isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS):
            return True
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return False


def _require_flat_box(space: Any, what: str, source: str) -> None:
    import gymnasium as gym

    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise DatasetError(
            f"{source} has {what} space {space}; only flat Box {what} spaces are supported. "
            "Fix: flatten the space when creating the dataset (e.g. gymnasium.wrappers.FlattenObservation)."
        )


def _episode_arrays(ds: Any, source: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Concatenate all episodes, aligning Minari's ``T + 1`` observations into (obs, next_obs) pairs.

    Returns the arrays ``observations``/``next_observations`` ``[N, obs]``, ``actions [N, act]``,
    ``rewards``/``terminations``/``truncations`` ``[N]`` and, only if every episode has both,
    ``qpos``/``qvel`` ``[N, n]``; and the episode index of each row, ``[N]`` int64.
    """
    parts: dict[str, list[np.ndarray | None]] = {key: [] for key in MINARI_KEYS + _STATE_KEYS}
    lengths = []
    for ep in ds.iterate_episodes():
        steps = len(ep.rewards)
        observations = np.asarray(ep.observations)
        if observations.shape[0] != steps + 1:
            raise DatasetError(
                f"{source}: episode {ep.id} has {observations.shape[0]} observations for {steps} steps; Minari "
                "episodes must store steps + 1 (the reset state, then one per step). Fix: recreate the dataset."
            )
        parts["observations"].append(observations[:-1])
        parts["next_observations"].append(observations[1:])
        for key in ("actions", "rewards", "terminations", "truncations"):
            parts[key].append(np.asarray(getattr(ep, key)))
        for key in _STATE_KEYS:
            parts[key].append(_state_rows(ep, key, steps, source))
        lengths.append(steps)
    if not lengths:
        raise DatasetError(f"{source} holds no episodes; there is nothing to learn from.")
    # A half simulator state cannot restart the simulator: keep qpos/qvel only if every episode has both.
    if any(v is None for key in _STATE_KEYS for v in parts[key]):
        del parts["qpos"], parts["qvel"]
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    return arrays, np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _state_rows(ep: Any, key: str, steps: int, source: str) -> np.ndarray | None:
    """Rows ``[:steps]`` of ``infos[key]`` (the state of each ``obs``), or ``None`` if the episode lacks it."""
    value = ep.infos.get(key) if isinstance(ep.infos, dict) else None
    if value is None:
        return None
    value = np.asarray(value)
    if value.shape[0] not in (steps, steps + 1):
        raise DatasetError(
            f"{source}: episode {ep.id} has infos['{key}'] with {value.shape[0]} rows for {steps} steps; "
            f"it must have {steps + 1} (one per observation) or {steps}. Fix: recreate the dataset."
        )
    return value[:steps]


def _env_id(ds: Any, source: str) -> str:
    """The gymnasium id of the env that generated the data, from the dataset's env spec."""
    if ds.env_spec is None:
        raise DatasetError(
            f"{source} records no environment (env_spec is None), so it cannot be checked against or "
            "evaluated in one. Fix: recreate it with env=<gymnasium id>."
        )
    return ds.env_spec.id


def _spec(
    ds: Any, env_id: str, transitions: Transitions, low: tuple[float, ...], high: tuple[float, ...]
) -> DatasetSpec:
    """Reference scores from the dataset metadata, else D4RL's for the env family (else none)."""
    meta = ds.storage.metadata
    ref_min, ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
    if ref_min is not None and ref_max is not None:
        ref_source = "dataset"
    elif env_family(env_id) in D4RL_REFERENCE_SCORES:
        (ref_min, ref_max), ref_source = D4RL_REFERENCE_SCORES[env_family(env_id)], "d4rl"
    else:
        ref_min, ref_max, ref_source = None, None, None
    metadata = {key: meta[key] for key in _METADATA_KEYS if key in meta}
    metadata.update(data_path=ds.spec.data_path, ref_source=ref_source)
    return DatasetSpec(
        name=ds.spec.dataset_id,
        env_id=env_id,
        source="minari",
        obs_dim=transitions.obs_dim,
        act_dim=transitions.act_dim,
        act_low=low,
        act_high=high,
        ref_min_score=None if ref_min is None else float(ref_min),
        ref_max_score=None if ref_max is None else float(ref_max),
        content_hash=transitions.content_hash(),
        metadata=metadata,
    )

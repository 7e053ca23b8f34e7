"""Checks every dataset passes before training trusts it; each failure names the field and the fix.

Used by the D4RL and Minari loaders (raw arrays, action bounds) and by training (dataset env vs
evaluation env). All checks are vectorised: datasets have a million rows and more.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import torch

from mbrl.data.transitions import DatasetError, DatasetSpec
from mbrl.envs import env_family, make_env

D4RL_REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")

# Per-row scalars: stored as [N] (a trailing singleton axis, [N, 1], is accepted and squeezed).
SCALAR_KEYS = frozenset({"rewards", "terminals", "timeouts", "terminations", "truncations"})
# Episode-end flags: bool, or numbers that are exactly 0 or 1.
FLAG_KEYS = frozenset({"terminals", "timeouts", "terminations", "truncations"})
# Training draws uniform batches of transitions (``Transitions.sample``): it needs at least one row.
MIN_USABLE_TRANSITIONS = 1


def validate_arrays(
    arrays: dict[str, np.ndarray], source: str, *, required: tuple[str, ...] = D4RL_REQUIRED_KEYS
) -> dict[str, np.ndarray]:
    """Check raw per-row arrays and return them with scalar fields squeezed to ``[N]``.

    Keys in ``SCALAR_KEYS`` must be ``[N]`` or ``[N, 1]``; every other key (observations, actions,
    next_observations, qpos, qvel) must be ``[N, dim]``. All keys must hold ``N`` rows, numeric
    (or bool) dtype, and only finite values. ``source`` (a path or id) prefixes every message.

    Raises:
        DatasetError: naming the missing key, the bad dtype or shape, each key's length, or the
            key and first row holding NaN/inf.
    """
    require_keys(arrays, required, source)
    out = {key: _check_shape(key, _check_dtype(key, np.asarray(arr), source), source) for key, arr in arrays.items()}
    _check_lengths(out, source)
    for key, value in out.items():
        _check_finite(key, value, source)
        if key in FLAG_KEYS:
            _check_flag_values(key, value, source)
    return out


def check_usable(
    source: str,
    *,
    rows: int,
    terminals: int,
    timeouts: int,
    usable: int,
    hint: str = "Fix: use a dataset with more steps.",
) -> None:
    """Refuse a dataset with fewer than ``MIN_USABLE_TRANSITIONS`` usable transitions.

    A usable transition is a kept row whose ``next_obs`` is the real next state: a truncated row
    counts when its next state is stored, a terminal row whose ``next_obs`` is only a placeholder
    does not. ``rows``/``terminals``/``timeouts`` count the source's rows and episode-end flags;
    ``hint`` (the loader's rule for dropped rows, and the fix) ends the message.

    Raises:
        DatasetError: giving the counts and what is needed.
    """
    if usable >= MIN_USABLE_TRANSITIONS:
        return
    raise DatasetError(
        f"{source}: no usable transition: {rows} row(s), {terminals} terminal(s), {timeouts} timeout(s), "
        f"{usable} usable transition(s). Training samples transitions (obs, action, reward, next_obs) and "
        f"needs at least {MIN_USABLE_TRANSITIONS} whose next_obs is the real next state. {hint}"
    )


def require_keys(present: Iterable[str], required: tuple[str, ...], source: str) -> None:
    """Raise ``DatasetError`` listing the missing ``required`` keys and the keys ``present``."""
    names = sorted(present)
    missing = [key for key in required if key not in names]
    if missing:
        raise DatasetError(
            f"{source}: missing required key(s) {missing}; keys present: {names}. A dataset needs {list(required)}."
        )


def _check_dtype(key: str, value: np.ndarray, source: str) -> np.ndarray:
    if value.dtype == np.bool_ or np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating):
        return value
    raise DatasetError(
        f"{source}: '{key}' has non-numeric dtype {value.dtype}; it must hold numbers (float/int/bool). "
        "Fix: rewrite the dataset with numeric arrays."
    )


def _check_shape(key: str, value: np.ndarray, source: str) -> np.ndarray:
    if key in SCALAR_KEYS:
        if value.ndim == 2 and value.shape[1] == 1:
            return value[:, 0]
        if value.ndim != 1:
            raise DatasetError(
                f"{source}: '{key}' has shape {value.shape}; it must be [N] (or [N, 1]), one value per transition."
            )
        return value
    if value.ndim != 2:
        raise DatasetError(
            f"{source}: '{key}' has shape {value.shape}; it must be 2-D [N, dim]. "
            "Fix: reshape it to one flat row per transition (e.g. a 1-D array to [N, 1])."
        )
    return value


def _check_lengths(arrays: dict[str, np.ndarray], source: str) -> None:
    lengths = {key: int(value.shape[0]) for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{key}={n}" for key, n in lengths.items())
        raise DatasetError(
            f"{source}: arrays have mismatched lengths ({listing}); every key must hold one row per transition. "
            "Fix: truncate or regenerate the dataset so all keys have the same number of rows."
        )
    if 0 in lengths.values():
        raise DatasetError(f"{source}: the dataset is empty (0 rows); there is nothing to learn from.")


def _check_finite(key: str, value: np.ndarray, source: str) -> None:
    if not np.issubdtype(value.dtype, np.floating):
        return  # ints and bools cannot hold NaN or inf
    finite = np.isfinite(value).reshape(value.shape[0], -1).all(axis=1)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite)
    first = int(bad_rows[0])
    kind = "NaN" if np.isnan(value[first]).any() else "inf"
    raise DatasetError(
        f"{source}: '{key}' contains {kind} (first at row {first}; {bad_rows.size} bad row(s) in all). "
        "Fix: drop or repair those rows (or the episodes they belong to) before loading."
    )


def _check_flag_values(key: str, value: np.ndarray, source: str) -> None:
    if value.dtype == np.bool_:
        return
    bad_rows = np.flatnonzero((value != 0) & (value != 1))
    if bad_rows.size:
        first = int(bad_rows[0])
        raise DatasetError(
            f"{source}: '{key}' must be 0/1 or bool, but row {first} holds {value[first]!r} "
            f"({bad_rows.size} such row(s)). Fix: store the episode-end flags as booleans."
        )


def check_actions_in_bounds(
    act: np.ndarray | torch.Tensor,
    low: np.ndarray | tuple[float, ...],
    high: np.ndarray | tuple[float, ...],
    atol: float = 1e-5,
    *,
    source: str = "dataset",
) -> None:
    """Refuse actions ``[N, act_dim]`` outside ``[low, high]`` (each ``[act_dim]``) by more than ``atol``.

    Raises:
        DatasetError: naming how many rows violate the bounds, the worst value and the bounds.
    """
    a = act.detach().cpu().numpy() if isinstance(act, torch.Tensor) else np.asarray(act)
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != lo.size:
        raise DatasetError(
            f"{source}: actions have shape {a.shape} but the action bounds have {lo.size} dimensions. "
            "Fix: use the environment the data was collected in (or pass its env_id)."
        )
    excess = np.maximum(a - hi, lo - a)  # > 0 where outside the box; [N, act_dim]
    bad_rows = (excess > atol).any(axis=1)
    if not bad_rows.any():
        return
    row, dim = np.unravel_index(int(np.argmax(excess)), excess.shape)
    raise DatasetError(
        f"{source}: {int(bad_rows.sum())} of {a.shape[0]} action rows lie outside the action bounds "
        f"low={lo.tolist()} high={hi.tolist()} (atol {atol}); the worst is {float(a[row, dim])!r} "
        f"at row {int(row)}, dimension {int(dim)} (bounds [{lo[dim]}, {hi[dim]}]). "
        "Fix: clip the dataset's actions to the bounds, or use the environment the data was collected in."
    )


def check_env_match(spec: DatasetSpec, env_id: str, *, allow_version_mismatch: bool = False) -> None:
    """Refuse to use a dataset collected in another environment than ``env_id`` (the evaluation env).

    A different family (Hopper vs Walker2d) is always refused; a different version (Hopper-v3 vs
    Hopper-v5) only unless ``allow_version_mismatch``. Observation/action sizes and action bounds
    must agree with the spaces of ``env_id``.

    Raises:
        DatasetError: naming both env ids (or the sizes/bounds that differ) and the fix.
    """
    if env_family(spec.env_id) != env_family(env_id):
        raise DatasetError(
            f"dataset {spec.name!r} was collected in {spec.env_id} but the evaluation env is {env_id}: "
            "different environments. Fix: pick a dataset of the evaluation env's family, or change the env."
        )
    if _env_version(spec.env_id) != _env_version(env_id) and not allow_version_mismatch:
        raise DatasetError(
            f"dataset {spec.name!r} was collected in {spec.env_id} but the evaluation env is {env_id}: "
            "the env versions differ (dynamics, rewards or observations may differ). If you accept that, "
            "pass allow_version_mismatch=true (mbrl-train override: allow_version_mismatch=true; "
            "mbrl-dataset: --allow-version-mismatch)."
        )
    obs_dim, act_dim, low, high = env_spaces(env_id)
    if (spec.obs_dim, spec.act_dim) != (obs_dim, act_dim):
        raise DatasetError(
            f"dataset {spec.name!r} has obs_dim={spec.obs_dim}, act_dim={spec.act_dim} but {env_id} has "
            f"obs_dim={obs_dim}, act_dim={act_dim}. Fix: use a dataset collected in {env_id}."
        )
    if not (np.allclose(spec.act_low, low) and np.allclose(spec.act_high, high)):
        raise DatasetError(
            f"dataset {spec.name!r} has action bounds low={list(spec.act_low)} high={list(spec.act_high)} "
            f"but {env_id} has low={list(low)} high={list(high)}. Fix: use a dataset collected in {env_id}."
        )


def _env_version(env_id: str) -> str:
    return env_id.rsplit("-v", 1)[1] if "-v" in env_id else ""


@lru_cache(maxsize=32)
def env_spaces(env_id: str) -> tuple[int, int, tuple[float, ...], tuple[float, ...]]:
    """``(obs_dim, act_dim, act_low, act_high)`` of gymnasium env ``env_id`` (built once, then cached).

    Raises:
        DatasetError: if ``env_id`` cannot be built or its spaces are not flat Boxes.
    """
    import gymnasium as gym

    try:
        env = make_env(env_id)
    except (gym.error.Error, ImportError) as exc:
        raise DatasetError(f"cannot build env {env_id!r} to check the dataset against it: {exc}") from exc
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    for what, space in (("observation", obs_space), ("action", act_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DatasetError(f"env {env_id} has {what} space {space}; only flat Box spaces are supported")
    low = tuple(float(x) for x in act_space.low)
    high = tuple(float(x) for x in act_space.high)
    return int(obs_space.shape[0]), int(act_space.shape[0]), low, high

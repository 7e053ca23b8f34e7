"""Gymnasium environment helpers: construction, naming, and MuJoCo's log file."""

from __future__ import annotations

import gymnasium as gym

# The locomotion families the framework knows reference scores and termination rules for.
ENV_FAMILIES = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}


def _silence_mujoco_log() -> None:
    """Route MuJoCo warnings to Python instead of a MUJOCO_LOG.TXT in the working directory."""
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a hard dependency; be lenient for non-MuJoCo envs
        return
    import warnings

    mujoco.set_mju_user_warning(lambda msg: warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=1))


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gym.make`` with MuJoCo logging kept out of the working directory."""
    _silence_mujoco_log()
    return gym.make(env_id, **kwargs)


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    """A synchronous vector env (processes would only fight for the same cores here)."""
    _silence_mujoco_log()
    return gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(num_envs)])


def env_family(env_id: str) -> str:
    """``"Hopper-v5"``, ``"hopper-medium-v2"`` or ``"mbrl/hopper/medium-v0"`` -> ``"hopper"``."""
    parts = env_id.split("/")
    head = parts[-2] if len(parts) >= 2 else parts[0]
    return head.split("-")[0].lower()

"""Gymnasium environment helpers: construction, naming, and MuJoCo's log file."""

from __future__ import annotations

import logging

import gymnasium as gym

# The locomotion families the framework knows reference scores and termination rules for.
ENV_FAMILIES = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}


def _silence_mujoco_log() -> None:
    """Route MuJoCo warnings to the ``mujoco`` logger instead of a MUJOCO_LOG.TXT in the working directory.

    They are logged at debug level: gymnasium's own model files trigger deprecation notices on
    every env construction, which say nothing a user can act on.
    """
    import mujoco

    mujoco.set_mju_user_warning(_log_mujoco_warning)


def _log_mujoco_warning(msg: str) -> None:
    logging.getLogger("mujoco").debug(msg)


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

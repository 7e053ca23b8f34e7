"""Hand-written termination rules for model rollouts, matching gymnasium 1.4's MuJoCo **v5** envs.

Every function maps ``(obs [B, o], act [B, a], next_obs [B, o]) -> terminated [B]`` bool and looks at
``next_obs`` only (the envs decide health after the step). The rules are copied from
``gymnasium/envs/mujoco/{hopper,walker2d,half_cheetah}_v5.py`` with their default arguments:

* The v5 observation is ``[qpos[1:], qvel]`` (the x position is excluded), so ``obs[0]`` is the torso
  height ``z = qpos[1]`` and ``obs[1]`` the torso angle ``qpos[2]``.
* Hopper and Walker2d clip the *observed* velocities to ±10 (HalfCheetah does not clip).
* Every range is **open**: the code tests ``low < x < high`` although the v5 docstrings speak of a
  closed interval. A value exactly on a bound is therefore unhealthy, and so is NaN (every comparison
  with NaN is False), exactly as in the env.

Hopper-v5 is healthy iff ``0.7 < z < inf``, ``-0.2 < angle < 0.2`` and every entry of
``state_vector()[2:] = [qpos[2:], qvel]`` lies in ``(-100, 100)``. In observation coordinates that
vector is ``next_obs[1:]``, so the state-range check is ``-100 < next_obs[:, 1:] < 100`` (public code
has the precedence bug ``np.abs(next_obs[:, 1:] < 100)``, which takes ``abs`` of a boolean and so
never flags values ``<= -100``). Known gap: the env checks the *unclipped* ``qvel``, but a real observation holds
velocities clipped to ±10, so a true velocity beyond ±100 (env terminates) cannot be seen in a real
``next_obs``. A learned model, which does not know about the clipping, can and does predict such
velocities, and then the rule fires as the env would on the true state.

Walker2d-v5 is healthy iff ``0.8 < z < 2.0`` and ``-1 < angle < 1`` (v5 has no state-range check,
unlike the ``|s| < 100`` some public code adds). HalfCheetah-v5 never terminates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mbrl.registry import RegistryError

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# gymnasium 1.4 v5 defaults (constructor arguments of HopperEnv / Walker2dEnv).
HOPPER_HEALTHY_Z_RANGE = (0.7, math.inf)
HOPPER_HEALTHY_ANGLE_RANGE = (-0.2, 0.2)
HOPPER_HEALTHY_STATE_RANGE = (-100.0, 100.0)
WALKER2D_HEALTHY_Z_RANGE = (0.8, 2.0)
WALKER2D_HEALTHY_ANGLE_RANGE = (-1.0, 1.0)


def _inside(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Open-interval test ``low < x < high`` (False for NaN), as the envs write it."""
    low, high = bounds
    return (x > low) & (x < high)


def hopper_termination(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Hopper-v5: ``next_obs [B, 11]`` -> terminated ``[B]`` (see the module docstring for the velocity gap)."""
    healthy = (
        _inside(next_obs[:, 0], HOPPER_HEALTHY_Z_RANGE)
        & _inside(next_obs[:, 1], HOPPER_HEALTHY_ANGLE_RANGE)
        & _inside(next_obs[:, 1:], HOPPER_HEALTHY_STATE_RANGE).all(dim=1)
    )
    return ~healthy


def walker2d_termination(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Walker2d-v5: ``next_obs [B, 17]`` -> terminated ``[B]``; only torso height and angle matter."""
    healthy = _inside(next_obs[:, 0], WALKER2D_HEALTHY_Z_RANGE) & _inside(next_obs[:, 1], WALKER2D_HEALTHY_ANGLE_RANGE)
    return ~healthy


def halfcheetah_termination(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """HalfCheetah-v5 never terminates: all False ``[B]``."""
    return torch.zeros(next_obs.shape[0], dtype=torch.bool, device=next_obs.device)


TERMINATION_FNS: dict[str, TerminationFn] = {
    "halfcheetah": halfcheetah_termination,
    "hopper": hopper_termination,
    "walker2d": walker2d_termination,
}


def get_termination_fn(family: str) -> TerminationFn:
    """The termination rule of an env family (``mbrl.envs.env_family`` gives the family of an env id).

    Raises:
        RegistryError (a ``KeyError``): unknown family; the message lists the known ones.
    """
    try:
        return TERMINATION_FNS[family]
    except KeyError:
        known = ", ".join(sorted(TERMINATION_FNS))
        raise RegistryError(
            f"no termination function for env family {family!r}; known families: {known}. "
            "Add one to mbrl.dynamics.termination.TERMINATION_FNS or set termination=None (never terminate)."
        ) from None

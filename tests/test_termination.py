"""The hand-written termination rules agree with gymnasium 1.4's v5 MuJoCo envs step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mbrl.dynamics.termination import (
    HOPPER_HEALTHY_ANGLE_RANGE,
    HOPPER_HEALTHY_STATE_RANGE,
    HOPPER_HEALTHY_Z_RANGE,
    TERMINATION_FNS,
    WALKER2D_HEALTHY_ANGLE_RANGE,
    WALKER2D_HEALTHY_Z_RANGE,
    get_termination_fn,
)

from mbrl.envs import env_family, make_env

ENV_IDS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")

# (qpos index, value) overrides applied to the reset state; each drives the env to (or next to) a terminal state.
FORCED_STATES = {
    "Hopper-v5": [(1, 0.5), (1, 0.71), (2, 0.3), (2, -0.3), (2, 0.19), (3, -2.0)],
    "Walker2d-v5": [(1, 0.5), (1, 2.5), (1, 1.99), (2, 1.2), (2, -1.2), (2, 0.95)],
    "HalfCheetah-v5": [(1, -0.6), (1, 3.0), (2, math.pi)],
}


def _unclipped_obs(env) -> np.ndarray:
    """The observation the env would give without its ±10 velocity clip: ``[qpos[1:], qvel]``."""
    data = env.unwrapped.data
    return np.concatenate([data.qpos[1:], data.qvel])


def _collect(env_id: str, steps: int = 250, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random-action episodes plus one step from each forced state.

    Returns ``obs, act, next_obs, next_unclipped [N, o]`` float64 and ``terminated [N]`` bool.
    """
    env = make_env(env_id)
    unwrapped = env.unwrapped
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "next_obs", "next_unclipped", "terminated")}

    def step(obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        next_obs, _, terminated, truncated, _ = env.step(act)
        for key, value in zip(rows, (obs, act, next_obs, _unclipped_obs(env), terminated), strict=True):
            rows[key].append(value)
        return next_obs, terminated, truncated

    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        # Alternate gentle and violent actions so both long healthy stretches and falls appear.
        scale = 0.3 if rng.random() < 0.5 else 1.0
        obs, terminated, truncated = step(obs, rng.uniform(-scale, scale, size=env.action_space.shape))
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    for index, value in FORCED_STATES[env_id]:
        env.reset(seed=int(rng.integers(1 << 30)))
        qpos = unwrapped.data.qpos.copy()
        qpos[index] = value
        unwrapped.set_state(qpos, unwrapped.data.qvel.copy())
        step(unwrapped._get_obs(), rng.uniform(-1, 1, size=env.action_space.shape))
    env.close()
    return {k: torch.as_tensor(np.stack(v)) for k, v in rows.items()}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_termination_matches_env_steps(env_id: str):
    data = _collect(env_id)
    fn = get_termination_fn(env_family(env_id))
    expected = data["terminated"]
    # On the true (unclipped) next state the rule is exact for every step.
    torch.testing.assert_close(fn(data["obs"], data["act"], data["next_unclipped"]), expected)
    # On the observation it is exact wherever no true velocity left the ±100 range (see the module docstring).
    decidable = data["next_unclipped"].abs().max(dim=1).values < 100
    got = fn(data["obs"], data["act"], data["next_obs"])
    torch.testing.assert_close(got[decidable], expected[decidable])
    assert decidable.float().mean() > 0.9
    if env_id == "HalfCheetah-v5":
        assert not expected.any()
    else:
        assert expected.sum() >= 5 and (~expected).sum() >= 100, "the rollout should contain both outcomes"


def _set_and_check(env_id: str, qpos_overrides: dict[int, float], qvel_overrides: dict[int, float] | None = None):
    """Set a state, return (``not env.is_healthy``, the observation ``[1, o]``)."""
    env = make_env(env_id)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    qpos, qvel = unwrapped.init_qpos.copy(), unwrapped.init_qvel.copy()
    for i, v in qpos_overrides.items():
        qpos[i] = v
    for i, v in (qvel_overrides or {}).items():
        qvel[i] = v
    unwrapped.set_state(qpos, qvel)
    unhealthy = not unwrapped.is_healthy
    obs = torch.as_tensor(unwrapped._get_obs())[None]
    env.close()
    return unhealthy, obs


def _buggy_hopper(next_obs: torch.Tensor) -> torch.Tensor:
    """OfflineRL-Kit/MOREC's rule with ``np.abs(next_obs[:, 1:] < 100)`` (abs of a boolean)."""
    x = next_obs.numpy()
    height, angle = x[:, 0], x[:, 1]
    bugged_range = np.abs(x[:, 1:] < 100).all(axis=-1)
    not_done = np.isfinite(x).all(axis=-1) & bugged_range & (height > 0.7) & (np.abs(angle) < 0.2)
    return torch.as_tensor(~not_done)


def test_hopper_state_range_catches_large_negative_values_unlike_the_precedence_bug():
    # A thigh joint angle of -150 rad: the env calls it unhealthy only through healthy_state_range.
    unhealthy, obs = _set_and_check("Hopper-v5", {3: -150.0})
    assert unhealthy
    assert obs[0, 0] > 0.7 and abs(obs[0, 1]) < 0.2  # height and angle are fine
    fn = get_termination_fn("hopper")
    assert fn(obs, obs, obs).item() is True
    assert _buggy_hopper(obs).item() is False  # the bug calls it healthy
    # The same on a model-style next state with a large negative velocity.
    model_next = obs.clone()
    model_next[0, 2] = 0.0
    model_next[0, 8] = -150.0
    assert fn(obs, obs, model_next).item() is True and _buggy_hopper(model_next).item() is False


@pytest.mark.parametrize(
    ("env_id", "qpos"),
    [
        ("Hopper-v5", {1: HOPPER_HEALTHY_Z_RANGE[0]}),
        ("Hopper-v5", {2: HOPPER_HEALTHY_ANGLE_RANGE[1]}),
        ("Hopper-v5", {2: HOPPER_HEALTHY_ANGLE_RANGE[0]}),
        ("Hopper-v5", {4: HOPPER_HEALTHY_STATE_RANGE[1]}),
        ("Walker2d-v5", {1: WALKER2D_HEALTHY_Z_RANGE[0]}),
        ("Walker2d-v5", {1: WALKER2D_HEALTHY_Z_RANGE[1]}),
        ("Walker2d-v5", {2: WALKER2D_HEALTHY_ANGLE_RANGE[0]}),
        ("Walker2d-v5", {2: WALKER2D_HEALTHY_ANGLE_RANGE[1]}),
        ("Walker2d-v5", {3: -150.0}),  # v5 walker has no state range: healthy
    ],
)
def test_bounds_are_open_intervals_like_the_env(env_id: str, qpos: dict[int, float]):
    unhealthy, obs = _set_and_check(env_id, qpos)
    assert get_termination_fn(env_family(env_id))(obs, obs, obs).item() is unhealthy


def test_hopper_velocity_beyond_100_is_the_documented_gap():
    # A true velocity of -150 terminates the env, but the observation shows it clipped to -10.
    env = make_env("Hopper-v5")
    env.reset(seed=0)
    unwrapped = env.unwrapped
    qvel = unwrapped.init_qvel.copy()
    qvel[3] = -150.0
    unwrapped.set_state(unwrapped.init_qpos.copy(), qvel)
    obs = torch.as_tensor(unwrapped._get_obs())[None]
    next_obs, _, terminated, _, _ = env.step(np.zeros(3))
    unclipped = torch.as_tensor(_unclipped_obs(env))[None]
    env.close()
    fn = get_termination_fn("hopper")
    assert terminated
    assert fn(obs, obs, unclipped).item() is True
    assert fn(obs, obs, torch.as_tensor(next_obs)[None]).item() is False


def test_defaults_match_the_installed_envs():
    hopper = make_env("Hopper-v5").unwrapped
    walker = make_env("Walker2d-v5").unwrapped
    assert hopper._healthy_z_range == HOPPER_HEALTHY_Z_RANGE
    assert hopper._healthy_angle_range == HOPPER_HEALTHY_ANGLE_RANGE
    assert hopper._healthy_state_range == HOPPER_HEALTHY_STATE_RANGE
    assert walker._healthy_z_range == WALKER2D_HEALTHY_Z_RANGE
    assert walker._healthy_angle_range == WALKER2D_HEALTHY_ANGLE_RANGE


@pytest.mark.parametrize("family", ["hopper", "walker2d"])
def test_non_finite_states_terminate(family: str):
    obs = torch.ones(3, 17 if family == "walker2d" else 11)
    obs[:, 0] = 1.2
    obs[:, 1] = 0.0
    obs[0, 0] = float("nan")
    obs[1, 1] = float("nan")
    got = get_termination_fn(family)(obs, obs, obs)
    assert got.tolist() == [True, True, False]


def test_halfcheetah_never_terminates_and_keeps_device():
    next_obs = torch.full((4, 17), 1e6)
    got = TERMINATION_FNS["halfcheetah"](next_obs, next_obs, next_obs)
    assert got.dtype == torch.bool and got.shape == (4,) and not got.any()


def test_unknown_family_lists_known_ones():
    with pytest.raises(KeyError, match="halfcheetah, hopper, walker2d"):
        get_termination_fn("ant")

"""OracleDynamics reproduces gymnasium's v5 step from dataset-like states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.oracle import OracleDynamics

from mbrl.data.transitions import Transitions
from mbrl.envs import make_env

ENV_IDS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")


def real_steps(env_id: str, steps: int = 300, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-action rollout of the real env, recorded like a dataset with its qpos/qvel.

    ``obs`` is rebuilt from the recorded simulator state (``[qpos[1:], clipped qvel]``), float64.
    Returns obs, act, next_obs ``[N, ·]``, reward ``[N]``, terminated ``[N]``, qvel ``[N, nv]``.
    """
    env = make_env(env_id)
    data = env.unwrapped.data
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "next_obs", "reward", "terminated", "qvel")}
    env.reset(seed=seed)
    for _ in range(steps):
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        clip = qvel if env_id.startswith("HalfCheetah") else np.clip(qvel, -10, 10)
        act = rng.uniform(-0.6, 0.6, size=env.action_space.shape)
        next_obs, reward, terminated, truncated, _ = env.step(act)
        for key, value in zip(
            rows, (np.concatenate([qpos[1:], clip]), act, next_obs, reward, terminated, qvel), strict=True
        ):
            rows[key].append(value)
        if terminated or truncated:
            env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    return {k: torch.as_tensor(np.stack(v)) for k, v in rows.items()}


@pytest.fixture(scope="module", params=ENV_IDS)
def env_data(request) -> tuple[str, dict[str, torch.Tensor]]:
    return request.param, real_steps(request.param)


def test_sample_reproduces_the_real_step(env_data):
    env_id, data = env_data
    # A clipped observed velocity does not determine the state (documented approximation): leave those rows out.
    exact = torch.ones(len(data["reward"]), dtype=torch.bool)
    if not env_id.startswith("HalfCheetah"):
        exact = data["qvel"].abs().max(dim=1).values < 10
    assert exact.sum() >= 50
    oracle = OracleDynamics(env_id)
    obs, act = data["obs"][exact], data["act"][exact]
    step = oracle.sample(obs, act, torch.Generator().manual_seed(0))
    torch.testing.assert_close(step.next_obs, data["next_obs"][exact], rtol=0, atol=1e-6)
    torch.testing.assert_close(step.reward, data["reward"][exact], rtol=0, atol=1e-6)
    assert torch.equal(step.terminated, data["terminated"][exact])
    if not env_id.startswith("HalfCheetah"):
        assert step.terminated.any() and not step.terminated.all()
    assert step.next_obs.dtype == torch.float64
    assert not step.info["member"].any() and not step.info["std"].any()
    oracle.close()


def test_predict_is_the_true_mean_with_no_uncertainty(env_data):
    env_id, data = env_data
    oracle = OracleDynamics(env_id, num_threads=1)
    obs, act = data["obs"][:40], data["act"][:40]
    mean, logvar = oracle.predict(obs, act)
    step = oracle.sample(obs, act)
    assert mean.shape == logvar.shape == (1, 40, obs.shape[1] + 1)
    torch.testing.assert_close(mean[0, :, :-1], step.next_obs - obs)
    torch.testing.assert_close(mean[0, :, -1], step.reward)
    assert (logvar == OracleDynamics.ZERO_LOGVAR).all()
    oracle.close()


def test_threads_do_not_change_results_and_float32_stays_float32():
    data = real_steps("Hopper-v5", steps=60)
    single, pooled = OracleDynamics("Hopper-v5", num_threads=1), OracleDynamics("Hopper-v5", num_threads=2)
    a, b = single.sample(data["obs"], data["act"]), pooled.sample(data["obs"], data["act"])
    torch.testing.assert_close(a.next_obs, b.next_obs, rtol=0, atol=0)
    step32 = single.sample(data["obs"].float(), data["act"].float())
    assert step32.next_obs.dtype == step32.reward.dtype == torch.float32
    # Dataset-style float32 states carry ~1e-7 rounding into the step; the result stays close.
    torch.testing.assert_close(step32.next_obs.double(), a.next_obs, rtol=0, atol=1e-3)


def test_protocol_fit_and_state():
    oracle = OracleDynamics("HalfCheetah-v5", num_threads=1)
    assert isinstance(oracle, DynamicsModel)
    assert oracle.elites.tolist() == [0]
    n = 5
    flags = torch.zeros(n, dtype=torch.bool)
    data = Transitions(torch.zeros(n, 17), torch.zeros(n, 6), torch.zeros(n), torch.zeros(n, 17), flags, flags)
    report = oracle.fit(data)
    assert report.epochs == 0 and report.elites.tolist() == [0]
    oracle.load_state_dict(oracle.state_dict())
    with pytest.raises(ValueError, match="Hopper-v5"):
        oracle.load_state_dict({"env_id": "Hopper-v5"})
    with pytest.raises(ValueError, match=r"obs \[B, 17\]"):
        oracle.sample(torch.zeros(2, 11), torch.zeros(2, 6))


@pytest.mark.parametrize("env_id", ["Ant-v5", "Hopper-v4"])
def test_unsupported_env_is_refused(env_id: str):
    with pytest.raises(ValueError, match="v5 envs of the families halfcheetah, hopper, walker2d"):
        OracleDynamics(env_id)

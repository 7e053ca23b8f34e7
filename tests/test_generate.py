import copy

import numpy as np
import pytest
import torch

from mbrl.data.behavior import BehaviorBundle, packaged_bundle_path
from mbrl.data.generate import (
    ACTION_GRID,
    collect,
    float64_actor,
    level_episodes,
    minari_root,
    policy_actions,
    write_minari,
)
from mbrl.data.minari_io import load_minari
from mbrl.envs import make_env
from mbrl.nn import TanhGaussianActor
from tests.helpers import ENV, tiny_bundle


def test_collect_spends_the_budget_exactly_and_cuts_running_episodes():
    episodes = collect(ENV, None, num_steps=437, seed=0)
    assert sum(len(ep.actions) for ep in episodes) == 437
    for ep in episodes:
        assert len(ep.observations) == len(ep.actions) + 1 == len(ep.qpos) == len(ep.qvel)
        assert ep.terminations[-1] or ep.truncations[-1]
        assert not any(ep.terminations[:-1]) and not any(ep.truncations[:-1])


def test_stored_simulator_state_reproduces_the_next_observation():
    ep = collect(ENV, None, num_steps=30, seed=1)[0]
    env = make_env(ENV)
    env.reset(seed=0)
    for t in (0, len(ep.actions) // 2):
        env.unwrapped.set_state(ep.qpos[t], ep.qvel[t])
        np.testing.assert_allclose(env.unwrapped._get_obs(), ep.observations[t], atol=1e-10)
        obs, *_ = env.step(ep.actions[t])
        np.testing.assert_allclose(obs, ep.observations[t + 1], atol=1e-8)


def test_medium_replay_is_warmup_plus_one_slice_per_earlier_snapshot():
    bundle = tiny_bundle()
    episodes, behavior = level_episodes(bundle, "medium-replay", num_transitions=0, seed=0)
    assert sum(len(ep.actions) for ep in episodes) == 25 + 2 * 40
    assert "replay" in behavior


def test_expert_level_without_expert_snapshot_explains_the_fix():
    with pytest.raises(ValueError, match="no expert snapshot"):
        level_episodes(tiny_bundle(), "expert", 100, 0)


def test_regeneration_is_deterministic_and_loads_back(tmp_path):
    bundle = tiny_bundle()
    hashes = []
    for run in ("a", "b"):
        episodes, behavior = level_episodes(bundle, "medium", num_transitions=300, seed=5)
        write_minari("test/hopper/medium-v0", episodes, ENV, behavior, "test", tmp_path / run)
        with minari_root(tmp_path / run):
            data = load_minari("test/hopper/medium-v0")
        hashes.append(data.spec.content_hash)
        assert data.spec.env_id == ENV
        assert len(data.transitions) == 300
        assert data.transitions.qpos is not None and data.transitions.qpos.shape == (300, 6)
    assert hashes[0] == hashes[1]
    other, _ = level_episodes(bundle, "medium", num_transitions=300, seed=6)
    write_minari("test/hopper/medium-v0", other, ENV, "x", "test", tmp_path / "c")
    with minari_root(tmp_path / "c"):
        assert load_minari("test/hopper/medium-v0").spec.content_hash != hashes[0]


def test_bundle_save_load_round_trip(tmp_path):
    bundle = tiny_bundle()
    bundle.save(tmp_path / "b.pt")
    back = BehaviorBundle.load(tmp_path / "b.pt")
    obs = torch.randn(4, bundle.obs_dim)
    torch.testing.assert_close(back.actor(1)(obs, deterministic=True)[0], bundle.actor(1)(obs, deterministic=True)[0])
    with pytest.raises(FileNotFoundError, match="mbrl-train-behavior"):
        BehaviorBundle.load(tmp_path / "missing.pt")


class ChunkedLinear(torch.nn.Module):
    """``nn.Linear`` summing its inputs in chunks of ``chunk`` (another summation order than the BLAS kernel's)."""

    def __init__(self, linear: torch.nn.Linear, chunk: int) -> None:
        super().__init__()
        self.weight, self.bias, self.chunk = linear.weight, linear.bias, chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [
            x[:, i : i + self.chunk] @ self.weight[:, i : i + self.chunk].T for i in range(0, x.shape[1], self.chunk)
        ]
        return torch.stack(parts).sum(0) + self.bias


def _chunked(actor: TanhGaussianActor, chunk: int) -> TanhGaussianActor:
    other = copy.deepcopy(actor)
    for holder in (other.trunk, other):
        for key, module in list(holder.named_children()):
            if isinstance(module, torch.nn.Linear):
                setattr(holder, key, ChunkedLinear(module, chunk))
    return other


def _permuted(actor: TanhGaussianActor, seed: int) -> TanhGaussianActor:
    """The same function with every hidden layer's units in another order (changes the next layer's sums)."""
    other = copy.deepcopy(actor)
    gen = torch.Generator().manual_seed(seed)
    linears = [m for m in other.trunk if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for k, layer in enumerate(linears):
            perm = torch.randperm(layer.out_features, generator=gen)
            layer.weight.copy_(layer.weight[perm])
            layer.bias.copy_(layer.bias[perm])
            for consumer in [linears[k + 1]] if k + 1 < len(linears) else [other.mu, other.log_std]:
                consumer.weight.copy_(consumer.weight[:, perm])
    return other


def _float32_actions(actor: TanhGaussianActor, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The previous generation's step: the policy in float32 (whose bits differed between CPUs)."""
    h = actor.trunk(obs)
    mu = actor.mu(h)
    std = actor.log_std(h).clamp(actor.LOG_STD_MIN, actor.LOG_STD_MAX).exp()
    return torch.tanh(mu + std * noise.float()) * actor.act_scale + actor.act_bias


def _hopper_policy_inputs(n: int, seed: int) -> tuple[TanhGaussianActor, torch.Tensor, torch.Tensor]:
    bundle = BehaviorBundle.load(packaged_bundle_path("hopper"))
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, bundle.obs_dim, generator=gen)
    noise = torch.randn(n, bundle.act_dim, generator=gen, dtype=torch.float64)
    return bundle.actor(bundle.medium_index), obs, noise


@pytest.mark.parametrize("variant", ["hidden units permuted", "sums in chunks of 64", "sums in chunks of 5"])
def test_policy_step_is_bit_identical_when_the_matmul_sums_in_another_order(variant):
    # Another CPU runs other BLAS kernels (AVX-512, AVX2, SSE, ...) that sum the matmul's products in
    # another order. Reordering the sums here must not change a single bit of the generated actions.
    actor, obs, noise = _hopper_policy_inputs(4096, 0)
    other = _permuted(actor, 0) if variant == "hidden units permuted" else _chunked(actor, int(variant.split()[-1]))
    with torch.no_grad():
        a = policy_actions(float64_actor(actor), obs, noise)
        b = policy_actions(float64_actor(other), obs, noise)
        # The reordering is a real perturbation: the float32 forward of before gives other bits.
        assert not torch.equal(_float32_actions(actor, obs, noise), _float32_actions(other, obs, noise))
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.equal(torch.round(a / ACTION_GRID) * ACTION_GRID, a)  # on the grid, exactly
    assert a.abs().max() <= 1


def test_policy_step_does_not_depend_on_the_batch_it_is_in():
    # The last steps of a budget step fewer than NUM_PARALLEL_ENVS envs, and BLAS picks kernels by
    # shape: the actions of one observation must not depend on the batch it is in.
    actor, obs, noise = _hopper_policy_inputs(1000, 1)
    actor64 = float64_actor(actor)
    with torch.no_grad():
        whole = policy_actions(actor64, obs, noise)
        for size in (1, 7, 10):
            parts = [policy_actions(actor64, obs[i : i + size], noise[i : i + size]) for i in range(0, 1000, size)]
            assert torch.equal(torch.cat(parts), whole)

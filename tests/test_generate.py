import numpy as np
import pytest
import torch

from agents.actor import TanhGaussianActor
from mbrl.data.behavior import BehaviorBundle, Snapshot
from mbrl.data.generate import collect, level_episodes, minari_root, write_minari
from mbrl.data.minari_io import load_minari
from mbrl.envs import make_env

ENV = "Hopper-v5"


def tiny_bundle(num_snapshots=3, every=40, warmup=25) -> BehaviorBundle:
    env = make_env(ENV)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    snaps = []
    for k in range(num_snapshots):
        torch.manual_seed(k)
        actor = TanhGaussianActor(obs_dim, act_dim, (16,), (-1.0,) * act_dim, (1.0,) * act_dim)
        snaps.append(Snapshot(step=warmup + (k + 1) * every, eval_return=float(k), actor=actor.state_dict()))
    return BehaviorBundle(
        ENV,
        obs_dim,
        act_dim,
        (-1.0,) * act_dim,
        (1.0,) * act_dim,
        (16,),
        snaps,
        medium_index=num_snapshots - 1,
        expert_index=None,
        train_config={"snapshot_every": every, "start_steps": warmup},
    )


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

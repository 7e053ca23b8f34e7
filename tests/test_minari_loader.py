"""The Minari loader on datasets created offline: N+1 alignment, flags, state, spec, and errors."""

from __future__ import annotations

import dataclasses
import sys

import gymnasium as gym
import numpy as np
import pytest

from mbrl.data import loading
from mbrl.data.loading import load_dataset
from mbrl.data.minari_io import load_minari
from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.data.transitions import DatasetError
from mbrl.envs import make_env
from tests.helpers import collect_minari_hopper, minari_episode_buffers, minari_from_buffers


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def collected(minari_root):
    """Three random Hopper-v5 episodes: one terminal, one terminal at the time limit, one truncated."""
    return collect_minari_hopper("test/hopper/random-v0", num_episodes=3, max_episode_steps=20, seed=1)


@pytest.mark.slow
def test_collected_dataset_aligns_observations_with_next_observations(collected):
    ds = load_minari("test/hopper/random-v0")
    tr = ds.transitions
    episodes = list(collected.iterate_episodes())
    assert len(tr) == sum(len(ep) for ep in episodes)
    for index, ep in enumerate(episodes):
        rows = (tr.episode_id == index).numpy()
        np.testing.assert_array_equal(tr.obs.numpy()[rows], ep.observations[:-1].astype(np.float32))
        np.testing.assert_array_equal(tr.next_obs.numpy()[rows], ep.observations[1:].astype(np.float32))
        np.testing.assert_array_equal(tr.act.numpy()[rows], ep.actions)
        np.testing.assert_array_equal(tr.terminated.numpy()[rows], ep.terminations)
        np.testing.assert_array_equal(tr.truncated.numpy()[rows], ep.truncations)
        np.testing.assert_array_equal(tr.qpos.numpy()[rows], ep.infos["qpos"][:-1])
    np.testing.assert_allclose(ds.episode_returns.numpy(), [float(np.sum(ep.rewards)) for ep in episodes])
    assert ds.num_terminals == sum(int(ep.terminations.sum()) for ep in episodes) >= 1
    assert ds.num_timeouts == sum(int(ep.truncations.sum()) for ep in episodes) >= 1


def test_collected_qpos_qvel_is_the_state_of_obs(collected):
    tr = load_minari("test/hopper/random-v0").transitions
    # Hopper-v5 observes qpos[1:] and clip(qvel, -10, 10): the stored state must produce obs, not next_obs.
    expected = np.concatenate([tr.qpos.numpy()[:, 1:], np.clip(tr.qvel.numpy(), -10, 10)], axis=1)
    np.testing.assert_allclose(tr.obs.numpy(), expected.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_collected_spec(collected):
    ds = load_minari("test/hopper/random-v0")
    spec = ds.spec
    assert (spec.name, spec.env_id, spec.source) == ("test/hopper/random-v0", "Hopper-v5", "minari")
    assert (spec.obs_dim, spec.act_dim) == (11, 3)
    assert spec.act_low == (-1.0,) * 3 and spec.act_high == (1.0,) * 3
    # No reference scores in the dataset: D4RL's for the family, marked as such.
    assert (spec.ref_min_score, spec.ref_max_score) == D4RL_REFERENCE_SCORES["hopper"]
    assert spec.metadata["ref_source"] == "d4rl"
    assert spec.metadata["algorithm_name"] == "uniform-random"
    assert spec.metadata["minari_version"] == collected.spec.minari_version
    assert spec.metadata["data_path"] == collected.spec.data_path
    assert spec.content_hash == ds.transitions.content_hash()


@pytest.mark.parametrize("state_rows", ["T+1", "T"])
def test_dataset_from_buffers(minari_root, state_rows):
    buffers = minari_episode_buffers([4, 6, 3], terminal_last=[True, False, True], state_rows=state_rows)
    minari_from_buffers("test/hopper/buffers-v0", buffers, ref_min_score=-5.0, ref_max_score=50.0)
    ds = load_minari("test/hopper/buffers-v0")
    tr = ds.transitions
    assert len(tr) == 13
    starts = np.cumsum([0, 4, 6])
    for buf, start in zip(buffers, starts, strict=True):
        steps = len(buf.rewards)
        rows = slice(start, start + steps)
        np.testing.assert_array_equal(tr.obs.numpy()[rows], buf.observations[:-1].astype(np.float32))
        np.testing.assert_array_equal(tr.next_obs.numpy()[rows], buf.observations[1:].astype(np.float32))
        np.testing.assert_array_equal(tr.qpos.numpy()[rows], buf.infos["qpos"][:steps])
        np.testing.assert_array_equal(tr.qvel.numpy()[rows], buf.infos["qvel"][:steps])
        assert bool(tr.terminated[start + steps - 1]) == bool(buf.terminations[-1])
        assert bool(tr.truncated[start + steps - 1]) == bool(buf.truncations[-1])
    assert (ds.num_terminals, ds.num_timeouts) == (2, 1)
    assert (ds.spec.ref_min_score, ds.spec.ref_max_score) == (-5.0, 50.0)
    assert ds.spec.metadata["ref_source"] == "dataset"
    assert ds.spec.metadata["description"] == "tiny test dataset"


def test_dataset_without_state_infos_has_no_qpos(minari_root):
    minari_from_buffers(
        "test/hopper/nostate-v0", minari_episode_buffers([3, 2], terminal_last=[True, False], state_rows="none")
    )
    tr = load_minari("test/hopper/nostate-v0").transitions
    assert tr.qpos is None and tr.qvel is None


def test_absent_dataset_without_download_names_id_folder_and_fix(minari_root):
    with pytest.raises(DatasetError) as info:
        load_minari("mujoco/hopper/medium-v0")
    message = str(info.value)
    assert "mujoco/hopper/medium-v0" in message
    assert str(minari_root) in message and "MINARI_DATASETS_PATH" in message
    assert "download=true" in message and "mbrl-train: download=true" in message


def test_non_box_action_space_is_refused(minari_root):
    buffers = minari_episode_buffers([3], terminal_last=[True])
    discrete = [dataclasses.replace(b, actions=[0, 1, 2]) for b in buffers]
    minari_from_buffers(
        "test/hopper/discrete-v0",
        discrete,
        env=None,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (11,)),
        action_space=gym.spaces.Discrete(3),
    )
    with pytest.raises(DatasetError, match=r"action space Discrete\(3\); only flat Box"):
        load_minari("test/hopper/discrete-v0")


def test_dataset_without_env_spec_is_refused(minari_root):
    env = make_env("Hopper-v5")
    minari_from_buffers(
        "test/hopper/noenv-v0",
        minari_episode_buffers([3], terminal_last=[True]),
        env=None,
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    with pytest.raises(DatasetError, match="records no environment"):
        load_minari("test/hopper/noenv-v0")


def test_qpos_with_wrong_row_count_is_refused(minari_root):
    buffers = minari_episode_buffers([4], terminal_last=[True])
    bad = [dataclasses.replace(b, infos={k: v[:2] for k, v in b.infos.items()}) for b in buffers]
    minari_from_buffers("test/hopper/badstate-v0", bad)
    with pytest.raises(DatasetError, match=r"infos\['qpos'\] with 2 rows for 4 steps"):
        load_minari("test/hopper/badstate-v0")


def test_load_dataset_routes_ids_and_builtin_names(minari_root, monkeypatch):
    minari_from_buffers("test/hopper/builtin-v0", minari_episode_buffers([3, 2], terminal_last=[True, False]))
    assert load_dataset("test/hopper/builtin-v0").spec.source == "minari"
    # A built-in name resolves through ensure_builtin to its Minari id (here: a tiny stand-in).
    monkeypatch.setattr(loading, "BUILTIN_DATASETS", {"hopper-tiny": None})
    monkeypatch.setattr(loading, "ensure_builtin", {"hopper-tiny": "test/hopper/builtin-v0"}.__getitem__)
    ds = load_dataset("hopper-tiny", env_id="Hopper-v5")
    assert ds.spec.name == "test/hopper/builtin-v0"


def test_bare_unknown_name_is_taken_for_d4rl_and_explains_it_is_missing(minari_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "d4rl", None)  # import raises ImportError
    with pytest.raises(DatasetError, match="d4rl package is not installed"):
        load_dataset("hopper-medium-v2")


# -- download=true: missing packages and no network ----------------------------------------------------


def test_download_without_the_download_extra_names_the_extra(minari_root, monkeypatch):
    # Minari's default remote (Hugging Face) imports huggingface_hub only when a download starts.
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    monkeypatch.delitem(sys.modules, "minari.storage.remotes.huggingface", raising=False)
    with pytest.raises(DatasetError, match="needs packages that are not installed") as info:
        load_dataset("mujoco/hopper/medium-v0", download=True)
    message = str(info.value)
    assert "'mujoco/hopper/medium-v0'" in message
    assert 'pip install -e ".[download]"' in message and "huggingface_hub" in message


def _network_errors():
    import requests

    wrapped = RuntimeError("remote listing failed")
    wrapped.__cause__ = ConnectionError("[Errno 101] Network is unreachable")
    return [
        ConnectionError("[Errno 101] Network is unreachable"),
        requests.exceptions.ConnectionError("Max retries exceeded with url: /api/datasets"),
        wrapped,
    ]


@pytest.mark.parametrize("error", _network_errors(), ids=["builtin", "requests", "wrapped"])
def test_download_without_network_says_so_and_how_to_place_the_data(minari_root, monkeypatch, error):
    import minari.storage.hosting as hosting

    def unreachable(*args, **kwargs):
        raise error

    # The first remote call of a download lists the remote's versions of the dataset.
    monkeypatch.setattr(hosting, "list_remote_datasets", unreachable)
    with pytest.raises(DatasetError, match="network is unreachable") as info:
        load_dataset("mujoco/hopper/medium-v0", download=True)
    message = str(info.value)
    assert "'mujoco/hopper/medium-v0'" in message
    assert "MINARI_DATASETS_PATH" in message and str(minari_root) in message


def test_other_download_failures_are_not_called_network_errors(minari_root, monkeypatch):
    import minari.storage.hosting as hosting

    def refuse(*args, **kwargs):
        raise PermissionError("[Errno 13] Permission denied: '/datasets'")

    monkeypatch.setattr(hosting, "list_remote_datasets", refuse)
    with pytest.raises(PermissionError):
        load_dataset("mujoco/hopper/medium-v0", download=True)

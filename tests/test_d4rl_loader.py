"""The D4RL HDF5 loader: episode ends, next states, flags, env inference, and how ``load_dataset`` routes to it."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
import torch

from mbrl.data.d4rl import d4rl_env_id, load_d4rl
from mbrl.data.loading import load_dataset
from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.data.transitions import DatasetError
from tests.helpers import write_d4rl_hdf5, write_hdf5

# Every kind of episode end, the file ending on an unflagged (cut) episode.
EPISODES = [(5, "timeout"), (4, "terminal"), (3, "both"), (4, "timeout"), (2, "none")]


def _episode_index(arrays: dict[str, np.ndarray]) -> list[int]:
    """Episode of each row, computed row by row (independently of the loader)."""
    index, current = [], 0
    for term, timeout in zip(arrays["terminals"], arrays["timeouts"], strict=True):
        index.append(current)
        current += int(term or timeout)
    return index


def _expected_kept_rows(arrays: dict[str, np.ndarray], with_next: bool) -> list[int]:
    """Rows that have a true next state: all with next_observations; else not timeout/last-row ends."""
    n = len(arrays["rewards"])
    if with_next:
        return list(range(n))
    kept = []
    for i in range(n):
        ends_episode = bool(arrays["terminals"][i] or arrays["timeouts"][i]) or i == n - 1
        if not ends_episode or arrays["terminals"][i]:
            kept.append(i)
    return kept


@pytest.fixture
def hopper_file(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    return path, write_d4rl_hdf5(path, EPISODES, qpos=True)


def test_without_next_observations_drops_rows_without_a_true_next_state(hopper_file):
    path, arrays = hopper_file
    ds = load_d4rl(str(path))
    kept = _expected_kept_rows(arrays, with_next=False)
    tr = ds.transitions
    assert len(tr) == len(kept)
    obs = arrays["observations"]
    np.testing.assert_array_equal(tr.obs.numpy(), obs[kept])
    np.testing.assert_array_equal(tr.act.numpy(), arrays["actions"][kept])
    np.testing.assert_array_equal(tr.rew.numpy(), arrays["rewards"][kept])
    for row, i in enumerate(kept):
        expected_next = obs[i] if arrays["terminals"][i] else obs[i + 1]
        np.testing.assert_array_equal(tr.next_obs[row].numpy(), expected_next)


def test_timeout_row_is_never_paired_with_the_next_episodes_first_state(hopper_file):
    path, arrays = hopper_file
    tr = load_d4rl(str(path)).transitions
    obs = arrays["observations"]
    episode = _episode_index(arrays)
    first_rows = [i for i in range(1, len(episode)) if episode[i] != episode[i - 1]]
    for first in first_rows:
        # No transition may lead into the first state of an episode (resets are not transitions).
        assert not (tr.next_obs.numpy() == obs[first]).all(axis=1).any()
    # The final rows of timeout-ended episodes are gone.
    for i in np.flatnonzero(arrays["timeouts"] & ~arrays["terminals"]):
        assert not (tr.obs.numpy() == obs[i]).all(axis=1).any()


def test_terminal_rows_are_kept_and_timeouts_never_become_terminals(hopper_file):
    path, arrays = hopper_file
    ds = load_d4rl(str(path))
    tr = ds.transitions
    kept = _expected_kept_rows(arrays, with_next=False)
    np.testing.assert_array_equal(tr.terminated.numpy(), arrays["terminals"][kept])
    np.testing.assert_array_equal(tr.truncated.numpy(), arrays["timeouts"][kept])
    # The one row flagged both terminal and timeout is kept as terminated and truncated.
    both = np.flatnonzero(arrays["terminals"] & arrays["timeouts"])
    assert len(both) == 1 and both[0] in kept
    assert bool(tr.terminated[kept.index(both[0])]) and bool(tr.truncated[kept.index(both[0])])
    assert ds.num_terminals == int(arrays["terminals"].sum())
    assert ds.num_timeouts == int(arrays["timeouts"].sum())
    timeout_only = arrays["timeouts"] & ~arrays["terminals"]
    assert not tr.terminated[torch.as_tensor(timeout_only[kept])].any()


def test_with_next_observations_every_row_is_kept(tmp_path):
    path = tmp_path / "walker2d-medium-replay-v2.hdf5"
    arrays = write_d4rl_hdf5(path, EPISODES, next_observations=True, obs_dim=17, act_dim=6)
    ds = load_d4rl(str(path))
    tr = ds.transitions
    assert len(tr) == len(arrays["rewards"])
    np.testing.assert_array_equal(tr.next_obs.numpy(), arrays["next_observations"])
    np.testing.assert_array_equal(tr.terminated.numpy(), arrays["terminals"])
    np.testing.assert_array_equal(tr.truncated.numpy(), arrays["timeouts"])
    assert ds.spec.env_id == "Walker2d-v3" and ds.spec.metadata["has_next_observations"]
    assert tr.qpos is None and tr.qvel is None


def test_episode_returns_ids_and_simulator_state(hopper_file):
    path, arrays = hopper_file
    ds = load_d4rl(str(path))
    episode = _episode_index(arrays)
    expected_returns = [0.0] * (episode[-1] + 1)
    for i, e in enumerate(episode):  # includes the rows dropped for lack of a next state
        expected_returns[e] += float(arrays["rewards"][i])
    np.testing.assert_allclose(ds.episode_returns.numpy(), expected_returns, rtol=1e-6)
    kept = _expected_kept_rows(arrays, with_next=False)
    np.testing.assert_array_equal(ds.transitions.episode_id.numpy(), [episode[i] for i in kept])
    np.testing.assert_array_equal(ds.transitions.qpos.numpy(), arrays["infos/qpos"][kept])
    np.testing.assert_array_equal(ds.transitions.qvel.numpy(), arrays["infos/qvel"][kept])
    assert ds.transitions.qpos.dtype == torch.float64


def test_spec_of_a_known_family(hopper_file):
    path, _ = hopper_file
    ds = load_d4rl(str(path))
    spec = ds.spec
    assert (spec.name, spec.env_id, spec.source) == ("hopper_medium-v2", "Hopper-v3", "d4rl")
    assert (spec.ref_min_score, spec.ref_max_score) == D4RL_REFERENCE_SCORES["hopper"]
    assert spec.act_low == (-1.0,) * 3 and spec.act_high == (1.0,) * 3  # Hopper-v5's bounds
    assert (spec.obs_dim, spec.act_dim) == (11, 3)
    assert spec.content_hash == ds.transitions.content_hash()


def test_unknown_family_uses_the_given_env_id_and_its_bounds(tmp_path):
    path = tmp_path / "pendulum_swing.hdf5"
    write_d4rl_hdf5(path, [(6, "timeout"), (5, "none")], next_observations=True, obs_dim=3, act_dim=1)
    ds = load_d4rl(str(path), env_id="Pendulum-v1")
    assert ds.spec.env_id == "Pendulum-v1"
    assert ds.spec.ref_min_score is None and ds.spec.ref_max_score is None
    assert ds.spec.act_low == (-2.0,) and ds.spec.act_high == (2.0,)


def test_unknown_family_that_cannot_be_built_uses_the_data_bounds(tmp_path):
    path = tmp_path / "pendulum_swing.hdf5"
    arrays = write_d4rl_hdf5(path, [(6, "timeout"), (5, "none")], next_observations=True, obs_dim=3, act_dim=1)
    ds = load_d4rl(str(path), env_id="LabPendulum-v0")  # not a registered gymnasium env
    assert ds.spec.env_id == "LabPendulum-v0"
    assert ds.spec.ref_min_score is None and ds.spec.ref_max_score is None
    assert ds.spec.act_low == (float(arrays["actions"].min()),)
    assert ds.spec.act_high == (float(arrays["actions"].max()),)


@pytest.mark.parametrize(
    ("file_name", "env_id", "obs_dim", "act_dim"),
    [
        ("hopper_medium-v2.hdf5", "Hopper-v3", 11, 3),
        ("hopper-medium-v2.hdf5", "Hopper-v3", 11, 3),
        ("halfcheetah_medium_expert-v2.h5", "HalfCheetah-v3", 17, 6),
        ("walker2d-random-v2.hdf5", "Walker2d-v3", 17, 6),
    ],
)
def test_env_inferred_from_file_name(tmp_path, file_name, env_id, obs_dim, act_dim):
    write_d4rl_hdf5(tmp_path / file_name, [(3, "timeout"), (3, "terminal")], obs_dim=obs_dim, act_dim=act_dim)
    assert load_d4rl(str(tmp_path / file_name)).spec.env_id == env_id


def test_env_from_hdf5_metadata(tmp_path):
    gym_id = tmp_path / "data.hdf5"
    write_d4rl_hdf5(gym_id, [(3, "terminal")], attrs={"env_id": "Hopper-v5"})
    assert load_d4rl(str(gym_id)).spec.env_id == "Hopper-v5"
    d4rl_name = tmp_path / "other.hdf5"
    write_d4rl_hdf5(d4rl_name, [(3, "terminal")], obs_dim=17, act_dim=6)
    with h5py.File(d4rl_name, "a") as f:
        f.create_group("metadata").attrs["env_name"] = "halfcheetah-medium-v2"
    assert d4rl_env_id(str(d4rl_name)) == "HalfCheetah-v3"
    assert load_d4rl(str(d4rl_name)).spec.env_id == "HalfCheetah-v3"


def test_uninferable_env_asks_for_env_id(tmp_path):
    path = tmp_path / "dataset.hdf5"
    write_d4rl_hdf5(path, [(3, "terminal")])
    with pytest.raises(DatasetError, match="env_id"):
        load_d4rl(str(path))


def test_missing_file_without_d4rl_explains_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "d4rl", None)  # make `import d4rl` fail even if it were installed
    with pytest.raises(DatasetError, match="d4rl package is not installed") as info:
        load_d4rl("hopper-medium-v2")
    assert "path to the D4RL HDF5 file" in str(info.value)
    with pytest.raises(DatasetError, match="d4rl package is not installed"):
        load_dataset("hopper-medium-v2")


def test_missing_hdf5_path_is_reported_as_not_found(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(str(tmp_path / "nowhere" / "hopper_medium-v2.hdf5"))


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "hopper.hdf5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_d4rl(str(path))


def test_missing_required_key_lists_keys_present(tmp_path):
    arrays = write_d4rl_hdf5(tmp_path / "ok.hdf5", [(3, "terminal")])
    del arrays["timeouts"]
    path = write_hdf5(tmp_path / "hopper_bad.hdf5", arrays)
    with pytest.raises(DatasetError, match=r"missing required key\(s\) \['timeouts'\]") as info:
        load_d4rl(str(path))
    assert "terminals" in str(info.value)  # the keys that are present are listed


def test_load_dataset_routes_files_and_uses_env_id_for_unknown_origin(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, EPISODES)
    assert load_dataset(str(path)).spec.env_id == "Hopper-v3"
    anonymous = tmp_path / "recorded.h5"
    write_d4rl_hdf5(anonymous, EPISODES)
    ds = load_dataset(str(anonymous), env_id="Hopper-v5")
    assert ds.spec.env_id == "Hopper-v5"


# -- datasets with no usable transition ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("episodes", "counts"),
    [
        # Every row ends its episode by a timeout: no row has its next state in the file.
        ([(1, "timeout")] * 5, "5 row(s), 0 terminal(s), 5 timeout(s), 0 usable transition(s)"),
        # One unflagged row: the file's last row, whose next state is not in the file.
        ([(1, "none")], "1 row(s), 0 terminal(s), 0 timeout(s), 0 usable transition(s)"),
        # Terminal rows are kept, but their next_obs is only a placeholder.
        ([(1, "terminal")] * 3, "3 row(s), 3 terminal(s), 0 timeout(s), 0 usable transition(s)"),
    ],
)
def test_a_file_without_a_usable_transition_is_refused_with_its_counts(tmp_path, episodes, counts):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, episodes)
    with pytest.raises(DatasetError, match="no usable transition") as info:
        load_d4rl(str(path))
    message = str(info.value)
    assert str(path) in message and counts in message
    assert "needs at least 1" in message and "next_observations" in message
    with pytest.raises(DatasetError, match="no usable transition"):
        load_dataset(str(path))


def test_timeout_rows_with_next_observations_are_usable(tmp_path):
    # With next_observations a timeout row keeps its real next state: it is a usable transition.
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, [(1, "timeout")] * 3, next_observations=True)
    ds = load_d4rl(str(path))
    assert len(ds.transitions) == 3 and bool(ds.transitions.truncated.all())


def test_one_usable_row_is_enough(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, [(2, "timeout")])
    assert len(load_d4rl(str(path)).transitions) == 1


# -- unreadable files ---------------------------------------------------------------------------------


def _cut_in_half(tmp_path):
    whole = tmp_path / "whole.hdf5"
    write_d4rl_hdf5(whole, EPISODES * 20)
    data = whole.read_bytes()
    path = tmp_path / "hopper_medium-v2.hdf5"
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage_with_signature(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(4096))
    return path


@pytest.mark.parametrize("make", [_cut_in_half, _garbage_with_signature])
def test_a_truncated_or_corrupt_file_is_a_dataset_error(tmp_path, make):
    path = make(tmp_path)
    for load in (load_d4rl, load_dataset, d4rl_env_id):
        with pytest.raises(DatasetError, match="not a readable HDF5 file: truncated or corrupt") as info:
            load(str(path))
        assert str(path) in str(info.value) and "Fix:" in str(info.value)


def test_garbage_without_the_hdf5_signature_says_how_to_fix_it(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError, match="not an HDF5 file") as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


# -- env_id for files that name no env ----------------------------------------------------------------


def test_uninferable_env_names_both_ways_to_pass_it(tmp_path):
    path = tmp_path / "dataset.hdf5"
    write_d4rl_hdf5(path, [(3, "terminal")])
    with pytest.raises(DatasetError) as info:
        load_dataset(str(path))
    assert "env_id=<Env-vN>" in str(info.value) and "--env-id <Env-vN>" in str(info.value)


def test_unknown_family_with_a_buildable_env_id_loads_end_to_end(tmp_path):
    # A Pendulum file that names no env: its bounds are Pendulum-v1's, so it matches that env.
    path = tmp_path / "recorded.hdf5"
    write_d4rl_hdf5(path, [(6, "timeout"), (5, "none")], next_observations=True, obs_dim=3, act_dim=1)
    ds = load_dataset(str(path), env_id="Pendulum-v1")
    assert ds.spec.env_id == "Pendulum-v1"
    assert ds.spec.act_low == (-2.0,) and ds.spec.act_high == (2.0,)


# -- names that are no dataset ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["foo", "hopper-medum", "Hopper"])
def test_a_name_that_is_no_dataset_lists_the_accepted_forms(name):
    with pytest.raises(DatasetError, match=f"unknown dataset '{name}'") as info:
        load_dataset(name)
    message = str(info.value)
    assert "halfcheetah-medium" in message and "walker2d-medium-replay" in message  # built-in names
    assert ".hdf5" in message and "mujoco/hopper/medium-v0" in message
    assert "is not installed" not in message  # not taken for a D4RL name

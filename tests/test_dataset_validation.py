"""Bad datasets get a ``DatasetError`` that names the problem: arrays, action bounds, env mismatch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mbrl.data.d4rl import load_d4rl
from mbrl.data.loading import load_dataset
from mbrl.data.transitions import DatasetError
from mbrl.data.validate import check_actions_in_bounds, check_env_match, validate_arrays
from tests.helpers import d4rl_arrays, write_d4rl_hdf5, write_hdf5

EPISODES = [(4, "timeout"), (3, "terminal")]


@pytest.fixture
def arrays():
    return d4rl_arrays(EPISODES, next_observations=True)


def test_valid_arrays_pass_and_column_rewards_are_squeezed(arrays):
    arrays["rewards"] = arrays["rewards"][:, None]
    out = validate_arrays(arrays, "test")
    assert out["rewards"].shape == (7,)
    np.testing.assert_array_equal(out["rewards"], arrays["rewards"][:, 0])


def test_missing_key(arrays):
    del arrays["actions"]
    with pytest.raises(DatasetError, match=r"missing required key\(s\) \['actions'\]") as info:
        validate_arrays(arrays, "test")
    assert "'observations'" in str(info.value)  # lists what is present


def test_mismatched_lengths_name_each_length(arrays):
    arrays["rewards"] = arrays["rewards"][:-2]
    with pytest.raises(DatasetError, match="mismatched lengths") as info:
        validate_arrays(arrays, "test")
    assert "rewards=5" in str(info.value) and "observations=7" in str(info.value)


@pytest.mark.parametrize(("value", "kind"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_values_name_key_and_first_row(arrays, value, kind):
    arrays["next_observations"][5, 2] = value
    arrays["next_observations"][6, 0] = value
    with pytest.raises(DatasetError, match=rf"'next_observations' contains {kind} \(first at row 5; 2 bad row"):
        validate_arrays(arrays, "test")


def test_nan_in_a_file_is_reported_by_the_loader(tmp_path, arrays):
    arrays["rewards"][3] = np.nan
    path = write_hdf5(tmp_path / "hopper_nan.hdf5", arrays)
    with pytest.raises(DatasetError, match=r"'rewards' contains NaN \(first at row 3"):
        load_d4rl(str(path))


def test_non_numeric_dtype(arrays):
    arrays["terminals"] = np.array(["no"] * 7)
    with pytest.raises(DatasetError, match="'terminals' has non-numeric dtype"):
        validate_arrays(arrays, "test")


def test_non_numeric_dtype_in_a_file(tmp_path, arrays):
    arrays["actions"] = np.array([b"abc"] * 7)
    path = write_hdf5(tmp_path / "hopper_bytes.hdf5", arrays)
    with pytest.raises(DatasetError, match="'actions' has non-numeric dtype"):
        load_d4rl(str(path))


@pytest.mark.parametrize(
    ("key", "shape", "expected"),
    [
        ("rewards", (7, 2), r"'rewards' has shape \(7, 2\); it must be \[N\]"),
        ("observations", (7,), r"'observations' has shape \(7,\); it must be 2-D"),
        ("actions", (7, 3, 1), r"'actions' has shape \(7, 3, 1\); it must be 2-D"),
    ],
)
def test_wrong_shape(arrays, key, shape, expected):
    arrays[key] = np.zeros(shape, dtype=np.float32)
    with pytest.raises(DatasetError, match=expected):
        validate_arrays(arrays, "test")


def test_flags_must_be_zero_or_one(arrays):
    arrays["timeouts"] = np.full(7, 2.0)
    with pytest.raises(DatasetError, match="'timeouts' must be 0/1 or bool"):
        validate_arrays(arrays, "test")


def test_actions_inside_bounds_within_tolerance_pass():
    check_actions_in_bounds(np.array([[1.0 + 1e-6, -1.0]]), (-1.0, -1.0), (1.0, 1.0))


def test_actions_outside_bounds_name_count_worst_value_and_bounds():
    act = np.zeros((10, 2), dtype=np.float32)
    act[3, 1] = 1.5
    act[7, 0] = -1.2
    with pytest.raises(DatasetError) as info:
        check_actions_in_bounds(act, (-1.0, -1.0), (1.0, 1.0))
    message = str(info.value)
    assert "2 of 10 action rows" in message
    assert "1.5 at row 3, dimension 1" in message and "bounds [-1.0, 1.0]" in message
    assert "clip" in message


def test_loader_refuses_actions_outside_the_env_bounds(tmp_path):
    arrays = d4rl_arrays(EPISODES)
    arrays["actions"][2, 0] = 1.25
    path = write_hdf5(tmp_path / "hopper_medium-v2.hdf5", arrays)
    with pytest.raises(DatasetError, match=r"1 of 7 action rows .* worst is 1.25"):
        load_d4rl(str(path))


@pytest.fixture
def hopper_v3_spec(tmp_path):
    write_d4rl_hdf5(tmp_path / "hopper_medium-v2.hdf5", EPISODES)
    return load_d4rl(str(tmp_path / "hopper_medium-v2.hdf5")).spec


@pytest.mark.parametrize("allow", [False, True])
def test_env_family_mismatch_is_always_refused(hopper_v3_spec, allow):
    with pytest.raises(DatasetError, match="collected in Hopper-v3 but the evaluation env is Walker2d-v5"):
        check_env_match(hopper_v3_spec, "Walker2d-v5", allow_version_mismatch=allow)


def test_env_version_mismatch_is_refused_unless_allowed(hopper_v3_spec):
    with pytest.raises(DatasetError, match="Hopper-v3 but the evaluation env is Hopper-v5") as info:
        check_env_match(hopper_v3_spec, "Hopper-v5")
    assert "allow_version_mismatch=true" in str(info.value)
    assert "mbrl-train override: allow_version_mismatch=true" in str(info.value)
    check_env_match(hopper_v3_spec, "Hopper-v5", allow_version_mismatch=True)


def test_env_space_mismatch_is_refused(hopper_v3_spec):
    v5 = dataclasses.replace(hopper_v3_spec, env_id="Hopper-v5")
    check_env_match(v5, "Hopper-v5")
    with pytest.raises(DatasetError, match="obs_dim=12, act_dim=3 but Hopper-v5 has obs_dim=11, act_dim=3"):
        check_env_match(dataclasses.replace(v5, obs_dim=12), "Hopper-v5")
    with pytest.raises(DatasetError, match="action bounds"):
        check_env_match(dataclasses.replace(v5, act_high=(2.0, 2.0, 2.0)), "Hopper-v5")


def test_load_dataset_checks_the_evaluation_env(tmp_path):
    path = str(tmp_path / "hopper_medium-v2.hdf5")
    write_d4rl_hdf5(path, EPISODES)
    with pytest.raises(DatasetError, match="Hopper-v3 but the evaluation env is Walker2d-v5"):
        load_dataset(path, env_id="Walker2d-v5")
    with pytest.raises(DatasetError, match="allow_version_mismatch"):
        load_dataset(path, env_id="Hopper-v5")
    assert load_dataset(path, env_id="Hopper-v5", allow_version_mismatch=True).spec.env_id == "Hopper-v3"


def test_check_usable_gives_the_counts_and_what_is_needed():
    from mbrl.data.validate import check_usable

    check_usable("data.hdf5", rows=3, terminals=1, timeouts=1, usable=1)
    with pytest.raises(DatasetError, match="no usable transition") as info:
        check_usable("data.hdf5", rows=2, terminals=0, timeouts=2, usable=0, hint="Fix: record more steps.")
    message = str(info.value)
    assert message.startswith("data.hdf5: ")
    assert "2 row(s), 0 terminal(s), 2 timeout(s), 0 usable transition(s)" in message
    assert "needs at least 1" in message and message.endswith("Fix: record more steps.")

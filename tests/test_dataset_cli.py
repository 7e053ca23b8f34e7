"""``mbrl-dataset info``: JSON and readable summaries, and clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mbrl.data.cli import main
from tests.helpers import minari_episode_buffers, minari_from_buffers, write_d4rl_hdf5

EPISODES = [(6, "timeout"), (3, "terminal"), (5, "both"), (4, "timeout"), (2, "none")]


def _expected(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The summary numbers, computed row by row from the arrays written (no next_observations)."""
    n = len(arrays["rewards"])
    returns, current, kept = [], 0.0, 0
    for i in range(n):
        current += float(arrays["rewards"][i])
        ends = bool(arrays["terminals"][i] or arrays["timeouts"][i]) or i == n - 1
        kept += int(not ends or bool(arrays["terminals"][i]))
        if ends:
            returns.append(current)
            current = 0.0
    return {
        "transitions": kept,
        "episodes": len(returns),
        "terminals": int(np.count_nonzero(arrays["terminals"])),
        "timeouts": int(np.count_nonzero(arrays["timeouts"])),
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }


def test_info_json_on_a_d4rl_file(tmp_path, capsys):
    path = tmp_path / "hopper_medium-v2.hdf5"
    arrays = write_d4rl_hdf5(path, EPISODES)
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    expected = _expected(arrays)
    for key in ("transitions", "episodes", "terminals", "timeouts"):
        assert summary[key] == expected[key], key
    assert summary["return_mean"] == pytest.approx(expected["return_mean"], rel=1e-6)
    assert summary["return_std"] == pytest.approx(expected["return_std"], rel=1e-6)
    assert summary["obs_dim"] == arrays["observations"].shape[1]
    assert summary["act_dim"] == arrays["actions"].shape[1]
    assert summary["env_id"] == "Hopper-v3" and summary["source"] == "d4rl"


def test_info_readable_on_a_minari_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    minari_from_buffers("test/hopper/cli-v0", minari_episode_buffers([4, 3], terminal_last=[True, False]))
    assert main(["info", "test/hopper/cli-v0"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert lines["transitions"] == "7" and lines["episodes"] == "2"
    assert lines["env_id"] == "Hopper-v5" and lines["source"] == "minari"


@pytest.mark.parametrize(
    ("target", "expected"),
    [("{tmp}/nowhere/hopper_medium-v2.hdf5", "not found"), ("absent/hopper/none-v0", "not stored locally")],
)
def test_errors_print_one_line_and_exit_2(tmp_path, monkeypatch, capsys, target, expected):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    target = target.format(tmp=tmp_path)
    assert main(["info", target, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and expected in captured.err
    assert "Traceback" not in captured.err


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def _run_error(argv, capsys) -> str:
    """Run ``mbrl-dataset`` expecting a dataset error: exit 2, one ``error:`` message, no traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    return captured.err


def test_env_id_for_a_file_that_names_no_env(tmp_path, capsys):
    path = tmp_path / "recorded.hdf5"
    arrays = write_d4rl_hdf5(path, EPISODES)
    err = _run_error(["info", str(path), "--json"], capsys)
    assert "env_id=<Env-vN>" in err and "--env-id <Env-vN>" in err
    assert main(["info", str(path), "--json", "--env-id", "Hopper-v5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["env_id"] == "Hopper-v5" and summary["transitions"] == _expected(arrays)["transitions"]


def test_env_id_of_an_unknown_family(tmp_path, capsys):
    path = tmp_path / "recorded.hdf5"
    write_d4rl_hdf5(path, [(6, "timeout"), (5, "none")], next_observations=True, obs_dim=3, act_dim=1)
    assert main(["info", str(path), "--json", "--env-id", "Pendulum-v1"]) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == "Pendulum-v1"


def test_env_id_is_checked_against_the_file_and_versions_may_be_allowed(tmp_path, capsys):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, EPISODES)
    err = _run_error(["info", str(path), "--env-id", "Walker2d-v5"], capsys)
    assert "different environments" in err
    err = _run_error(["info", str(path), "--env-id", "Hopper-v5"], capsys)
    assert "--allow-version-mismatch" in err
    assert main(["info", str(path), "--json", "--env-id", "Hopper-v5", "--allow-version-mismatch"]) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == "Hopper-v3"


def test_a_truncated_file_exits_2(tmp_path, capsys):
    whole = tmp_path / "whole.hdf5"
    write_d4rl_hdf5(whole, EPISODES * 20)
    path = tmp_path / "hopper_medium-v2.hdf5"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    err = _run_error(["info", str(path)], capsys)
    assert "not a readable HDF5 file: truncated or corrupt" in err and str(path) in err


def test_a_file_without_a_usable_transition_exits_2(tmp_path, capsys):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, [(1, "timeout")] * 4)
    err = _run_error(["info", str(path)], capsys)
    assert "no usable transition" in err and "4 row(s), 0 terminal(s), 4 timeout(s)" in err


def test_a_name_that_is_no_dataset_exits_2(capsys):
    err = _run_error(["info", "foo"], capsys)
    assert "unknown dataset 'foo'" in err and "halfcheetah-medium" in err


def test_download_without_the_extra_exits_2(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.delitem(sys.modules, "minari.storage.remotes.huggingface", raising=False)
    err = _run_error(["info", "mujoco/hopper/medium-v0", "--download"], capsys)
    assert 'pip install -e ".[download]"' in err

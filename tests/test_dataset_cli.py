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

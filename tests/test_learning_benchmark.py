"""The learning benchmark's runner: conditions with per-dataset overrides, run through the training job."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmarks.learning import condition_overrides, main, parse_conditions
from tests.helpers import TINY_DATASET


def test_per_dataset_overrides_follow_the_condition_and_the_extras_come_last():
    conditions = parse_conditions(["bc"], ["prdc=experiment=prdc_cpu", "prdc@hopper-medium=agent.alpha=2.5 seed=3"])
    assert condition_overrides(conditions["prdc"], "hopper-medium", ["x=1"]) == [
        "experiment=prdc_cpu",
        "agent.alpha=2.5",
        "seed=3",
        "x=1",
    ]
    assert condition_overrides(conditions["prdc"], "halfcheetah-medium", []) == ["experiment=prdc_cpu"]
    assert condition_overrides(conditions["bc"], "hopper-medium", []) == ["agent=bc"]


@pytest.mark.parametrize("items", [["prdc@hopper-medium=agent.alpha=2.5"], ["prdc"], ["=agent=bc"]])
def test_malformed_conditions_name_the_expected_form(items):
    with pytest.raises(SystemExit, match=r"prdc=|name="):
        parse_conditions([], items)


@pytest.mark.slow
def test_a_grid_runs_with_its_dataset_overrides_and_is_summarised(tmp_path, env_vars, monkeypatch, capsys):
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    argv = ["--datasets", TINY_DATASET, "--seeds", "0", "--scale", "smoke", "--workers", "1", "--name", "grid"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--conditions"]
    # The other dataset's override is not a valid key: the run would fail if it leaked onto this dataset.
    argv += ["bc=agent=bc", f"bc@{TINY_DATASET}=total_updates=20 eval_every=10", "bc@other=agent.no_such_key=1"]
    main(argv)
    assert "bc@other matches none of --datasets" in capsys.readouterr().err

    run = tmp_path / "runs" / "grid" / TINY_DATASET / "bc" / "seed0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["total_updates"] == 20 and config["agent"]["name"] == "bc"
    result = json.loads((tmp_path / "results" / "grid.json").read_text())
    (row,) = result["rows"]
    assert row["overrides"] == ["agent=bc", "total_updates=20", "eval_every=10"]
    assert row["seeds"] == [0] and [step for step, _ in row["curve"]] == [10, 20]
    assert "| bc | " in (table := (tmp_path / "results" / "grid.md").read_text()) and "(one seed)" in table

    # Finished runs are never rerun: a second invocation leaves the run folder as it was.
    stamp = (run / "final.json").stat().st_mtime_ns
    main(argv)
    assert (run / "final.json").stat().st_mtime_ns == stamp

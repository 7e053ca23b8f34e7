"""The learning benchmark's runner (``benchmarks/learning.py``, run as a script as its users run it):
conditions with per-dataset overrides, run through the training job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, TINY_DATASET

SCRIPT = ROOT / "benchmarks" / "learning.py"


def learning(argv: list[str], env_vars: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python benchmarks/learning.py ARGV`` from the repository root."""
    env = {**os.environ, **(env_vars or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=ROOT, env=env, capture_output=True, text=True)


def finished(run: Path) -> None:
    """A stand-in for a finished run: the ``final.json`` the summary reads."""
    run.mkdir(parents=True)
    (run / "final.json").write_text(json.dumps({"final": {"score_mean": 10.0}, "behaviour_score_mean": 5.0}))


def test_per_dataset_overrides_follow_the_condition_and_the_extras_come_last(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    datasets = ["hopper-medium", "halfcheetah-medium"]
    for dataset in datasets:
        for condition in ("bc", "prdc"):
            finished(runs / "grid" / dataset / condition / "seed0")
    argv = ["--report-only", "--name", "grid", "--seeds", "0", "--runs-dir", str(runs), "--results-dir", str(results)]
    argv += ["--datasets", *datasets, "--agents", "bc", "--extra", "x=1", "--conditions"]
    argv += ["prdc=experiment=prdc_cpu", "prdc@hopper-medium=agent.alpha=2.5 seed=3"]
    done = learning(argv)
    assert done.returncode == 0, done.stderr
    rows = json.loads((results / "grid.json").read_text())["rows"]
    overrides = {(row["dataset"], row["condition"]): row["overrides"] for row in rows}
    assert overrides == {
        ("hopper-medium", "bc"): ["agent=bc", "x=1"],
        ("hopper-medium", "prdc"): ["experiment=prdc_cpu", "agent.alpha=2.5", "seed=3", "x=1"],
        ("halfcheetah-medium", "bc"): ["agent=bc", "x=1"],
        ("halfcheetah-medium", "prdc"): ["experiment=prdc_cpu", "x=1"],
    }


@pytest.mark.parametrize("items", [["prdc@hopper-medium=agent.alpha=2.5"], ["prdc"], ["=agent=bc"]])
def test_malformed_conditions_name_the_expected_form(items, tmp_path):
    done = learning(
        ["--report-only", "--runs-dir", str(tmp_path), "--results-dir", str(tmp_path), "--conditions", *items]
    )
    assert done.returncode != 0
    assert "prdc=" in done.stderr or "name=" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_grid_runs_with_its_dataset_overrides_and_is_summarised(tmp_path, env_vars):
    argv = ["--datasets", TINY_DATASET, "--seeds", "0", "--scale", "smoke", "--workers", "1", "--name", "grid"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--conditions"]
    # The other dataset's override is not a valid key: the run would fail if it leaked onto this dataset.
    argv += ["bc=agent=bc", f"bc@{TINY_DATASET}=total_updates=20 eval_every=10", "bc@other=agent.no_such_key=1"]
    done = learning(argv, env_vars)
    assert done.returncode == 0, done.stderr
    assert "bc@other matches none of --datasets" in done.stderr

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
    assert learning(argv, env_vars).returncode == 0
    assert (run / "final.json").stat().st_mtime_ns == stamp


def test_an_archived_run_keeps_its_value_check_in_the_report(tmp_path):
    # An archived run keeps final.json but not final.csv or train.csv: the report still sets the critics' value
    # of the start states against the return obtained, and has no training Q to show.
    run = tmp_path / "runs" / "kept" / TINY_DATASET / "ravl" / "seed0"
    run.mkdir(parents=True)
    final = {"score_mean": 3.0, "q_start": 150.0, "discounted_return": 66.0}
    (run / "final.json").write_text(json.dumps({"final": final, "behaviour_score_mean": 32.5}))
    argv = ["--datasets", TINY_DATASET, "--seeds", "0", "--name", "kept", "--agents", "ravl", "--report-only"]
    done = learning([*argv, "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")])
    assert done.returncode == 0, done.stderr
    (row,) = json.loads((tmp_path / "results" / "kept.json").read_text())["rows"]
    assert (row["q_start"], row["discounted_return"], row["q_last"]) == ([150.0], [66.0], [None])
    assert "| 150 vs 66 |" in (tmp_path / "results" / "kept.md").read_text()

    # A final.json without the check falls back on final.csv's last row.
    (run / "final.json").write_text(json.dumps({"final": {"score_mean": 3.0}, "behaviour_score_mean": 32.5}))
    (run / "final.csv").write_text("step,score_mean,q_start,discounted_return\n35000,3.0,120.0,40.0\n")
    done = learning([*argv, "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")])
    assert done.returncode == 0, done.stderr
    (row,) = json.loads((tmp_path / "results" / "kept.json").read_text())["rows"]
    assert (row["q_start"], row["discounted_return"]) == ([120.0], [40.0])

"""The fit-curve benchmark (``benchmarks/fit_curve.py``) records, summarises and plots a fit end to end
(its replay of the stopping rule is tested with the ensemble: ``replay_stopping``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mbrl.config import resolve
from mbrl.train import compose
from tests.helpers import ROOT, TINY_DATASET


@pytest.mark.slow
def test_the_script_records_every_epoch_and_reports_each_rule(tmp_path, env_vars):
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--datasets", TINY_DATASET, "--medium-dataset", TINY_DATASET, "--fractions", "1", "0.5"]
    argv += ["--epochs", "3", "--runs-dir", str(runs), "--results-dir", str(results)]
    script = [sys.executable, str(ROOT / "benchmarks" / "fit_curve.py")]
    env = {**os.environ, **env_vars}
    done = subprocess.run([*script, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    full = json.loads((runs / TINY_DATASET / "f1_seed0.json").read_text())
    half = json.loads((runs / TINY_DATASET / "f0.5_seed0.json").read_text())
    assert full["complete"] and half["complete"]
    assert len(full["commit"]) == 40 and full["commit"][:10] in (tmp_path / "results" / "fit_curve_cpu.md").read_text()
    assert half["n_train"] == round(full["n_train"] / 2)
    assert len(full["holdout"]) == len(full["test"]) == len(full["medium"]) == 3
    assert all(len(per_epoch) == full["dynamics"]["ensemble_size"] for per_epoch in full["test"])
    summary = json.loads((results / "fit_curve_cpu.json").read_text())
    assert [job["fraction"] for job in summary["jobs"]] == [0.5, 1.0]
    rules = summary["jobs"][1]["rules"]
    cpu = resolve(compose(["scale=cpu"])).dynamics  # the rule the `cpu` scale fits with
    assert rules[f"cpu: {cpu.max_epochs} epochs, patience {cpu.max_epochs_since_update}"] == {"stopped": None}
    assert rules["lowest recorded"]["stopped"] in (1, 2, 3)
    assert "| 3 epochs |" not in (results / "fit_curve_cpu.md").read_text()  # only the listed epoch caps
    assert (results / "fit_curve_cpu.png").stat().st_size > 0

    # A finished job is never refitted.
    stamp = (runs / TINY_DATASET / "f1_seed0.json").stat().st_mtime_ns
    assert subprocess.run([*script, *argv], cwd=ROOT, env=env, capture_output=True).returncode == 0
    assert (runs / TINY_DATASET / "f1_seed0.json").stat().st_mtime_ns == stamp

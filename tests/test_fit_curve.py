"""The fit-curve benchmark (``benchmarks/fit_curve.py``): its replay of the stopping rule is the rule
the fit runs, and the script records, summarises and plots a fit end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from mbrl.dynamics.ensemble import GaussianEnsemble

from benchmarks.fit_curve import replay
from tests.helpers import ROOT, SMALL_ENSEMBLE, TINY_DATASET
from tests.test_dynamics_ensemble import toy_transitions


def test_replaying_the_recorded_curves_stops_and_keeps_what_the_fit_does():
    torch.set_num_threads(1)
    data, holdout = toy_transitions(600, seed=0), toy_transitions(200, seed=1)
    stopping = dataclasses.replace(SMALL_ENSEMBLE, max_epochs=60, max_epochs_since_update=2, improvement_threshold=0.05)
    stopped = GaussianEnsemble(1, 1, stopping)
    report = stopped.fit(data, holdout=holdout)
    assert report.epochs < 60, "the rule must stop the fit early for this test to test it"

    curves: list[list[float]] = []
    recorded = GaussianEnsemble(1, 1, dataclasses.replace(stopping, max_epochs_since_update=61))
    recorded.fit(data, holdout=holdout, on_epoch=lambda epoch, mse: curves.append(mse.tolist()))
    assert len(curves) == 60

    epoch, kept = replay(curves, cap=60, patience=2, threshold=0.05)
    assert epoch == report.epochs
    kept_mse = torch.tensor([curves[at - 1][m] for m, at in enumerate(kept)])
    torch.testing.assert_close(kept_mse, stopped.holdout_mse, rtol=0, atol=0)
    assert replay(curves[: report.epochs - 1], cap=None, patience=2, threshold=0.05) is None
    assert replay(curves, cap=3, patience=2, threshold=0.05)[0] == min(3, report.epochs)


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
    assert half["n_train"] == round(full["n_train"] / 2)
    assert len(full["holdout"]) == len(full["test"]) == len(full["medium"]) == 3
    assert all(len(per_epoch) == full["dynamics"]["ensemble_size"] for per_epoch in full["test"])
    summary = json.loads((results / "fit_curve_cpu.json").read_text())
    assert [job["fraction"] for job in summary["jobs"]] == [0.5, 1.0]
    rules = summary["jobs"][1]["rules"]
    assert rules["cpu: 25 epochs, patience 5"] == {"stopped": None}  # not stopped within 3 epochs
    assert rules["lowest recorded"]["stopped"] in (1, 2, 3)
    assert "| 3 epochs |" not in (results / "fit_curve_cpu.md").read_text()  # only the listed epoch caps
    assert (results / "fit_curve_cpu.png").stat().st_size > 0

    # A finished job is never refitted.
    stamp = (runs / TINY_DATASET / "f1_seed0.json").stat().st_mtime_ns
    assert subprocess.run([*script, *argv], cwd=ROOT, env=env, capture_output=True).returncode == 0
    assert (runs / TINY_DATASET / "f1_seed0.json").stat().st_mtime_ns == stamp

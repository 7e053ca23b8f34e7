"""The dynamics reward's ranking benchmark (``benchmarks/dynamics_reward_auc.py``), end to end on a tiny dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import MOREC_SMOKE, ROOT, TINY_DATASET


@pytest.mark.slow
def test_the_script_measures_the_ranking_and_the_filters_first_step(tmp_path, env_vars):
    out = tmp_path / "auc.jsonl"
    argv = ["--dataset", TINY_DATASET, "--name", "tiny", "--out", str(out)]
    argv += ["--overrides", "dynamics.max_epochs=2", *MOREC_SMOKE]
    script = [sys.executable, str(ROOT / "benchmarks" / "dynamics_reward_auc.py")]
    env = {**os.environ, **env_vars}
    for _ in range(2):  # the second run loads both fits from the cache and appends a second line
        done = subprocess.run([*script, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    first, again = (json.loads(line) for line in out.read_text().splitlines())
    assert first["name"] == "tiny" and first["dataset"] == TINY_DATASET
    for key in ("auc_model_sample", "auc_perturbed", "real_below_published"):
        assert 0.0 <= first[key] <= 1.0
    shares = ("first_step_best_below_published", "first_step_best_below_real_p05", "first_step_mean_below_published")
    assert all(0.0 <= first[k] <= 1.0 for k in shares)
    # r_D lies in [0.31, 1.31]; a threshold at or under 0.6 stops no more rows than 0.6 does.
    assert 0.3 <= first["first_step_best_median"] <= 1.32
    if first["real_p05"] <= 0.6:
        assert first["first_step_best_below_real_p05"] <= first["first_step_best_below_published"]
    # Seeded: the cached fits and the candidates' draws repeat the measurement exactly.
    assert {k: v for k, v in again.items() if k != "fit_or_load_s"} == {
        k: v for k, v in first.items() if k != "fit_or_load_s"
    }

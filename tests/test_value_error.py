"""The on-policy check of finished runs (``benchmarks/value_error.py``), end to end on smoke-scale runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.helpers import ROOT, SMOKE


@pytest.mark.slow
def test_the_script_measures_critics_model_and_reach_along_the_policy_episodes(tmp_path, env_vars, train_here):
    runs = {agent: tmp_path / agent for agent in ("mopo", "mobile", "td3bc")}
    for agent, run in runs.items():
        train_here([*SMOKE, f"agent={agent}"], run)
    out = tmp_path / "rows.json"
    script = [sys.executable, str(ROOT / "benchmarks" / "value_error.py"), *map(str, runs.values())]
    done = subprocess.run(
        [*script, "--episodes", "2", "--trace", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **env_vars},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    mopo, mobile, td3bc = json.loads(out.read_text())
    assert [mopo["agent"], td3bc["agent"]] == ["sac", "td3bc"] and mopo["dynamics"] == "ensemble"
    for row in (mopo, mobile, td3bc):
        assert row["q_start_min"] <= row["q_start_mean"]
        assert math.isfinite(row["policy_q"]) and math.isfinite(row["policy_return_to_go"])
        assert row["policy_reach"] >= 0 and row["data_spacing"] > 0
    # The model is judged where the policy goes and on the data; a model-free run has no model to judge.
    model_keys = {f"{where}_{what}" for where in ("policy", "data") for what in ("model_error", "reward_bias")}
    assert model_keys <= set(mopo) and not model_keys & set(td3bc)
    assert mopo["policy_model_error"] >= 0 and mopo["data_model_uncertainty"] > 0
    # Each run's own penalty where the policy goes and on the data: MOPO's is lambda times the uncertainty
    # measured on the same pairs (a rollout-stage penalty on the model's step); MOBILE's is the elites'
    # disagreement on the critics' targets (update stage), positive wherever the elites differ.
    coef = OmegaConf.load(runs["mopo"] / "config.yaml").penalty.coef
    for where in ("policy", "data"):
        assert mopo[f"{where}_penalty"] == pytest.approx(coef * mopo[f"{where}_model_uncertainty"], rel=1e-5)
        assert mobile[f"{where}_penalty"] > 0
    assert "policy_penalty" not in td3bc
    # The trace is the first episode alone (only its last step may end it), step by step; the model's
    # termination rule is judged only where there is a model.
    for row in (mopo, mobile, td3bc):
        trace = row["trace"]
        assert trace and not any(step["terminated"] for step in trace[:-1])
        assert all(step["to_data"] >= 0 and step["to_rollout_starts"] >= 0 for step in trace)
        assert ("model_terminated" in trace[0]) == (row is not td3bc)
    assert done.stdout.count("first episode:") == 3
    table = [line for line in done.stdout.splitlines() if line.startswith(f"| {tmp_path}")]
    assert len(table) == 3 and table[2].count(" – / – ") == 4  # td3bc: no model columns

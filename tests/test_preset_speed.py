"""The preset-speed benchmark runs presets through the training job and reports their cost in MOPO updates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY_DATASET


@pytest.mark.slow
def test_each_preset_is_timed_against_mopo_and_scaled_by_a_full_run(tmp_path, env_vars):
    calibration = tmp_path / "full_mopo_run"
    calibration.mkdir()
    (calibration / "train.csv").write_text("step,updates_per_s\n1000,3.0\n2000,4.0\n")
    argv = ["--presets", "td3bc", "--dataset", TINY_DATASET, "--updates", "20"]
    argv += ["--calibrate", str(calibration), "--results-dir", str(tmp_path / "results")]
    env = {**os.environ, **env_vars}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "preset_speed.py"), *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "results" / "preset_speed_cpu.json").read_text())
    mopo, td3bc = result["rows"]
    assert [mopo["preset"], td3bc["preset"]] == ["mopo", "td3bc"]  # MOPO first: the unit
    assert [len(c) for c in result["machine"]["commits"]] == [40]  # the commit the runs were made at
    assert mopo["cost_in_mopo_updates"] == 1.0 and result["calibration_rate"] == 4.0
    assert td3bc["cost_in_mopo_updates"] == pytest.approx(mopo["updates_per_s"] / td3bc["updates_per_s"])
    # Full-run minutes: the preset's own updates at its rate, scaled by the full MOPO run's 4.0/s.
    scaled = td3bc["updates_per_s"] * 4.0 / mopo["updates_per_s"]
    assert td3bc["expected_min"] == pytest.approx(td3bc["total_updates"] / scaled / 60)
    assert "| td3bc |" in (tmp_path / "results" / "preset_speed_cpu.md").read_text()

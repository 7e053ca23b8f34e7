"""The headline benchmark's cells: each agent's cpu preset plus its reference's published settings for the
dataset's D4RL namesake (``published_task_overrides``), and finished runs in a cell's folder that no
longer match it are refused (the script, run as its users run it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from mbrl.config import CONFIG_DIR, as_dict, published_task_overrides, resolve
from mbrl.run_folder import flatten
from mbrl.train import compose
from tests.helpers import ROOT


@pytest.mark.parametrize(("method", "dataset"), [("mobile", "hopper-medium"), ("morec_mopo", "hopper-random")])
def test_a_cell_takes_the_published_settings_of_its_task(method, dataset):
    task = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "experiment" / "paper" / method / f"{dataset}.yaml"))
    published = {k: v for k, v in flatten(task).items() if not k.startswith(("defaults", "dataset"))}
    assert published, "the published file sets task keys"
    preset = [f"experiment={method}_cpu"]
    overrides = published_task_overrides(method, dataset)
    config = flatten(as_dict(resolve(compose([f"dataset={dataset}", *preset, *overrides]))))
    assert {k: config[k] for k in published} == published
    assert config["total_updates"] == as_dict(resolve(compose(preset)))["total_updates"]


def test_methods_without_published_task_settings_run_their_preset():
    assert published_task_overrides("ravl", "hopper-medium-replay") == []
    assert published_task_overrides("combo", "halfcheetah-random") == []


def test_a_finished_run_made_with_other_settings_is_refused_not_reported(tmp_path):
    run = tmp_path / "runs" / "headline_cpu" / "hopper-random" / "bc" / "seed0"
    run.mkdir(parents=True)
    overrides = ["dataset=hopper-random", "seed=0", "scale=cpu", "agent=bc", "threads=1", "logger.progress=false"]
    cell = as_dict(resolve(compose(overrides)))
    (run / "config.yaml").write_text(yaml.safe_dump({**cell, "total_updates": cell["total_updates"] + 1}))
    (run / "final.json").write_text(json.dumps({"final": {"score_mean": 1.0}}))
    argv = ["--agents", "BC", "--datasets", "hopper-random", "--seeds", "0", "--report-only", "--reuse"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "headline.py"), *argv],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "made with other settings" in done.stderr, done.stderr
    assert str(run) in done.stderr and (run / "final.json").exists()
    assert not (tmp_path / "results").exists()

"""The headline benchmark's cells: each agent's cpu preset plus its reference's published settings for the
dataset's D4RL namesake, and finished runs in a cell's folder that no longer match it are refused."""

from __future__ import annotations

import json

import pytest
import yaml
from omegaconf import OmegaConf

import benchmarks.headline as headline
from mbrl.config import as_dict, resolve
from mbrl.run_folder import flatten
from mbrl.train import compose


@pytest.mark.parametrize(("label", "dataset"), [("MOBILE", "hopper-medium"), ("MOREC-MOPO", "hopper-random")])
def test_a_cell_takes_the_published_settings_of_its_task(label, dataset):
    folder, agent = headline.AGENTS[label]
    task = OmegaConf.to_container(OmegaConf.load(headline.PAPER / folder / f"{dataset}.yaml"))
    published = {k: v for k, v in flatten(task).items() if not k.startswith(("defaults", "dataset"))}
    assert published, "the published file sets task keys"
    overrides = headline.task_overrides(folder, dataset)
    config = flatten(as_dict(resolve(compose([f"dataset={dataset}", "scale=cpu", *agent, *overrides]))))
    assert {k: config[k] for k in published} == published
    assert config["total_updates"] == as_dict(resolve(compose([*agent, "scale=cpu"])))["total_updates"]


def test_agents_without_published_task_settings_run_their_preset():
    assert headline.task_overrides("ravl", "hopper-medium-replay") == []
    assert headline.task_overrides("bc", "halfcheetah-random") == []


def test_a_finished_run_made_with_other_settings_is_refused_not_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(headline, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(headline, "RESULTS", tmp_path / "results")
    run = tmp_path / "runs" / headline.NAME / "hopper-random" / "bc" / "seed0"
    run.mkdir(parents=True)
    cell = as_dict(
        resolve(compose(["dataset=hopper-random", "seed=0", "scale=cpu", "agent=bc", *headline.RUN_OVERRIDES]))
    )
    (run / "config.yaml").write_text(yaml.safe_dump({**cell, "total_updates": cell["total_updates"] + 1}))
    (run / "final.json").write_text(json.dumps({"final": {"score_mean": 1.0}}))
    argv = ["--agents", "BC", "--datasets", "hopper-random", "--seeds", "0", "--report-only", "--reuse"]
    with pytest.raises(SystemExit, match="made with other settings") as stop:
        headline.main(argv)
    assert str(run) in str(stop.value) and (run / "final.json").exists()

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


def headline(argv: list[str]) -> subprocess.CompletedProcess:
    """The script, run as its users run it."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "headline.py"), *argv]
    return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)


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
    done = headline(argv)
    assert done.returncode != 0 and "made with other settings" in done.stderr, done.stderr
    assert str(run) in done.stderr and (run / "final.json").exists()
    assert not (tmp_path / "results").exists()


def test_a_finished_cell_is_archived_and_survives_losing_its_run_folder(tmp_path):
    run = tmp_path / "runs" / "headline_cpu" / "hopper-random" / "bc" / "seed0"
    run.mkdir(parents=True)
    overrides = ["dataset=hopper-random", "seed=0", "scale=cpu", "agent=bc", "threads=1", "logger.progress=false"]
    (run / "config.yaml").write_text(yaml.safe_dump(as_dict(resolve(compose(overrides)))))
    final = {"dataset": "hopper-random", "final": {"return_mean": 300.0, "score_mean": 7.5}}
    (run / "final.json").write_text(json.dumps({**final, "behaviour_score_mean": 1.2}))
    (run / "eval.csv").write_text("step,score_mean\n1000,3.0\n2000,7.5\n")
    (run / "checkpoint.pt").write_bytes(b"large")
    results = tmp_path / "results"
    argv = ["--agents", "BC", "--datasets", "hopper-random", "--seeds", "0", "--reuse"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results), "--bootstrap", "50"]

    def report() -> dict:
        done = headline(argv)
        assert done.returncode == 0, done.stderr
        return json.loads((results / "headline_cpu.json").read_text())

    archived = results / "headline_cpu_archive" / "hopper-random" / "bc" / "seed0"
    first = report()
    assert sorted(p.name for p in archived.iterdir()) == ["config.yaml", "eval.csv", "final.json"]
    assert [g["scores"] for g in first["groups"]] == [[7.5]]
    for path in run.iterdir():
        path.unlink()
    run.rmdir()
    again = report()  # not --report-only: a cell with an archived run must not be trained again
    assert not run.exists()
    assert [g["scores"] for g in again["groups"]] == [[7.5]]
    cells = json.loads((results / "headline_cpu_runs.json").read_text())
    assert cells["cells"][0]["archived"].endswith("hopper-random/bc/seed0")
    assert "BC hopper-random seed0" not in cells["missing"]
    assert {"BC hopper-random seed1", "MOPO hopper-random seed0"} <= set(cells["missing"])  # the whole table's
    assert "## Targets" in (results / "headline_cpu.md").read_text() and "targets" in again
    argv[argv.index("--seeds") + 1] = "1"
    argv.append("--report-only")
    other = report()  # reporting another cell keeps the archived one in the table
    assert [g["scores"] for g in other["groups"]] == [[7.5]]

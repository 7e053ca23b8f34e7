"""Sweeps: W&B labels of multirun jobs, and a multirun through submitit's local executor."""

import json

import pytest
from omegaconf import OmegaConf

from mbrl.logging import LoggerConfig, RunLogger, sweep_labels
from tests.helpers import multirun


def test_sweep_labels_group_by_sweep_and_name_the_ablation_without_the_seed():
    group, ablation = sweep_labels(["seed=2", "agent=mopo", "penalty.coef=5", "logger=wandb"], "multirun/d/t")
    assert (group, ablation) == ("d/t", "agent=mopo,penalty.coef=5")
    assert sweep_labels(["seed=0", "hydra.launcher.n_jobs=2"], "/abs/multirun/d/t2") == ("d/t2", "default")
    # Runs that differ only in the seed share both labels.
    assert sweep_labels(["agent=bc", "seed=0"], "s/x") == sweep_labels(["seed=1", "agent=bc"], "s/x")


@pytest.mark.slow
def test_wandb_runs_get_group_job_type_and_the_git_tag(tmp_path, monkeypatch):
    import wandb

    seen = {}

    class FakeRun:
        id = "abc"

    def fake_init(**kwargs):
        seen.update(kwargs)
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    cfg = LoggerConfig(wandb=True, group="d/t", job_type="agent=mopo")
    RunLogger(tmp_path, cfg, {"seed": 3}, git_revision="0123456789abcdef")
    assert seen["group"] == "d/t" and seen["job_type"] == "agent=mopo" and seen["name"] == "agent=mopo seed=3"
    assert "git-0123456789" in seen["tags"] and seen["mode"] == "offline"


@pytest.mark.slow
def test_multirun_through_submitits_local_executor(env_vars, tmp_path):
    launcher = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    runs = multirun(launcher, tmp_path, ["agent=bc", "seed=0,1"], env_vars)
    assert len(runs) == 2
    configs = [OmegaConf.load(r / "config.yaml") for r in runs]
    assert sorted(c.seed for c in configs) == [0, 1]
    # Both runs carry the sweep's W&B labels (used when logger=wandb): same group, same ablation.
    labels = {(c.logger.group, c.logger.job_type) for c in configs}
    assert len(labels) == 1 and next(iter(labels))[1].startswith("agent=bc")
    assert all("score_mean" in json.loads((r / "final.json").read_text())["final"] for r in runs)


def test_slurm_launcher_preset_composes_onto_submitit():
    from hydra import compose, initialize_config_dir

    import mbrl.config  # noqa: F401  (registers the run schema the config starts from)
    from mbrl.train import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 4320

"""A run folder is bound to one config and one process; Ctrl-C and divergence leave what they say."""

import json
import os
import signal
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

import mbrl.run_state
from mbrl.checkpoint import load, save_atomic
from mbrl.config import as_dict, default_values, resolve
from mbrl.machine import describe
from mbrl.run_folder import InterruptFlag, RunFolder, RunFolderError, config_changes, same_experiment
from mbrl.train import TrainingDivergedError, compose, train
from tests.helpers import SMOKE, run_cli, start_training

pytestmark = pytest.mark.slow
FAST = [*SMOKE, "agent=sac", "dynamics=none"]  # model-free: no dynamics fit, a run takes seconds


def _actor(run_dir):
    return load(run_dir / "checkpoint.pt")["agent"]["actor"]


def test_rerun_with_another_seed_is_refused_and_the_run_is_untouched(in_env, tmp_path):
    train(compose([*FAST, "seed=3"]), tmp_path)
    before = _actor(tmp_path)
    with pytest.raises(RunFolderError, match=r"seed: 3 -> 4.*another folder \(hydra\.run\.dir=.*resume=force"):
        train(compose([*FAST, "seed=4"]), tmp_path)
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["seed"] == 3 and final["machine"] == describe()  # the processor, not just the architecture
    assert OmegaConf.load(tmp_path / "config.yaml").seed == 3
    after = _actor(tmp_path)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_recorded_commit_is_the_one_the_process_imported(in_env, tmp_path, monkeypatch):
    """A commit landing while a run fits its model does not relabel the run: the revision is read at import."""
    monkeypatch.setattr(mbrl.run_state, "git_revision", lambda: "a commit made after the import")
    train(compose(FAST), tmp_path)
    assert (tmp_path / "git_revision.txt").read_text().strip() == mbrl.run_state.IMPORTED_REVISION


def test_a_run_cannot_be_shortened_but_may_be_extended(in_env, tmp_path):
    train(compose([*FAST, "total_updates=40"]), tmp_path)
    with pytest.raises(RunFolderError, match=r"total_updates=20 but the checkpoint .* is at update 40"):
        train(compose([*FAST, "total_updates=20"]), tmp_path)
    assert load(tmp_path / "checkpoint.pt")["step"] == 40
    loop_s_at_40 = load(tmp_path / "checkpoint.pt")["loop_s"]
    # Resume-safe keys may change: evaluation and logging settings, and a longer run.
    result = train(compose([*FAST, "total_updates=60", "eval_episodes=2", "log_every=20"]), tmp_path)
    assert load(tmp_path / "checkpoint.pt")["step"] == 60 and result["seed"] == 0
    # The loop's wall time carries on from the checkpoint's.
    assert 0 < result["timing"]["earlier_sessions_s"] == loop_s_at_40 < result["timing"]["loop_s"]


def test_a_run_resumed_from_a_checkpoint_without_timing_reports_none(in_env, tmp_path):
    """Checkpoints written before the loop's time was recorded: the total is unknown, not understated."""
    train(compose([*FAST, "total_updates=20"]), tmp_path)
    state = load(tmp_path / "checkpoint.pt")
    del state["loop_s"]
    save_atomic(state, tmp_path / "checkpoint.pt")
    result = train(compose([*FAST, "total_updates=40"]), tmp_path)
    assert result["timing"] == {"loop_s": None, "earlier_sessions_s": None}


def test_resume_force_continues_under_the_new_config(in_env, tmp_path):
    train(compose([*FAST, "total_updates=20"]), tmp_path)
    train(compose([*FAST, "total_updates=40", "batch_size=16", "resume=force"]), tmp_path)
    assert OmegaConf.load(tmp_path / "config.yaml").batch_size == 16
    assert load(tmp_path / "checkpoint.pt")["step"] == 40


def test_a_checkpoint_is_not_continued_on_changed_data(in_env, tmp_path):
    train(compose([*FAST, "total_updates=20"]), tmp_path)
    state = load(tmp_path / "checkpoint.pt")
    state["dataset_hash"] = "0" * 64  # as if the dataset had been rebuilt with other content since
    save_atomic(state, tmp_path / "checkpoint.pt")
    with pytest.raises(RunFolderError, match=r"content hash 000000000000, but .* now has content hash"):
        train(compose([*FAST, "total_updates=40"]), tmp_path)
    assert load(tmp_path / "checkpoint.pt")["step"] == 20
    train(compose([*FAST, "total_updates=40", "resume=force"]), tmp_path)
    assert load(tmp_path / "checkpoint.pt")["step"] == 40


def test_resume_false_refuses_a_folder_that_holds_a_run(in_env, tmp_path):
    train(compose([*FAST, "total_updates=20"]), tmp_path)
    with pytest.raises(RunFolderError, match=r"resume=false but .* already holds a run"):
        train(compose([*FAST, "total_updates=20", "resume=false"]), tmp_path)


def test_second_process_on_a_folder_in_use_gets_a_named_error(env_vars, tmp_path):
    resolved = OmegaConf.to_container(compose(FAST))
    with RunFolder(tmp_path, resolved, "auto", "checkpoint.pt"):
        out = run_cli([*FAST, f"hydra.run.dir={tmp_path}"], env_vars)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"error: run folder {tmp_path} is in use by pid {os.getpid()}" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "train.csv").exists() and not (tmp_path / "checkpoint.pt").exists()


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_130(env_vars, tmp_path):
    args = [*FAST, "total_updates=100000", "eval_every=100000", "checkpoint_every=100000", "log_every=10"]
    proc = start_training(args, tmp_path, env_vars, "train.csv", stderr=subprocess.PIPE, text=True)  # in the loop
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    step = load(tmp_path / "checkpoint.pt")["step"]
    assert 10 <= step < 100000
    assert f"interrupted at update {step}; checkpoint written to {tmp_path / 'checkpoint.pt'}" in err
    assert f"hydra.run.dir={tmp_path}" in err


class InterruptAtUpdate37(InterruptFlag):
    """As if Ctrl-C arrived during update 37: the loop reads the flag once after each update."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    @property
    def requested(self) -> bool:
        self.reads += 1
        return self.reads == 37

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def test_interrupted_run_resumes_to_the_same_parameters(in_env, tmp_path, monkeypatch):
    """The checkpoint of an interrupt lies between two updates: continuing it equals never stopping."""
    args = [*FAST, "total_updates=60", "checkpoint_every=1000", "eval_every=1000"]
    train(compose(args), tmp_path / "full")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt, match="interrupted at update 37"):
        patch.setattr("mbrl.run_state.InterruptFlag", InterruptAtUpdate37)
        train(compose(args), tmp_path / "cut")
    assert load(tmp_path / "cut" / "checkpoint.pt")["step"] == 37
    train(compose(args), tmp_path / "cut")
    a, b = _actor(tmp_path / "full"), _actor(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_before_the_first_checkpoint_says_nothing_is_kept(in_env, tmp_path):
    args = [*FAST, "total_updates=200", "checkpoint_every=1000", "log_every=10", "agent.critic_lr=1e30"]
    with pytest.raises(TrainingDivergedError, match="before the first checkpoint: nothing of this run is kept") as e:
        train(compose(args), tmp_path)
    assert "last good checkpoint" not in str(e.value)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_config_changes_ignore_resume_safe_keys_and_new_keys():
    old = {
        "seed": 0,
        "logger": {"wandb": False},
        "agent": {"name": "sac", "tau": 0.005},
        "eval_episodes": 5,
        "cuda_graphs": False,
    }
    new = {
        "seed": 0,
        "logger": {"wandb": True},
        "agent": {"name": "sac", "tau": 0.01},
        "eval_episodes": 10,
        "cuda_graphs": True,  # the same kernels replayed: a speed key (checked on a GPU across resumes)
        "env_id": None,  # a key a newer version added
    }
    assert config_changes(old, new) == {"agent.tau": (0.005, 0.01)}
    assert config_changes(old, {**new, "agent": {"name": "bc"}}) == {
        "agent.name": ("sac", "bc"),
        "agent.tau": (0.005, "<absent>"),
    }


def test_same_experiment_is_stricter_than_resume_about_keys_a_run_lacks():
    """A benchmark may take a finished run for a cell only if it trained the same thing: logging and speed
    keys aside, every key equal; a key the run lacks (added later) only where the cell is at its default."""
    cfg = resolve(compose(["experiment=mobile_cpu", "dataset=hopper-medium-replay", "seed=1"]))
    target, defaults = as_dict(cfg), default_values(cfg)
    assert defaults["agent.deterministic_backup"] is False and target["agent"]["deterministic_backup"] is True
    assert defaults["agent.tau"] == target["agent"]["tau"]  # MOBILE keeps SAC's tau
    assert same_experiment(target, target, defaults)
    # Logged or speed-only keys may differ; the number of updates may not.
    other_logging = {**target, "logger": {**target["logger"], "progress": True}, "threads": 2, "eval_episodes": 1}
    assert same_experiment(other_logging, target, defaults)
    assert not same_experiment({**target, "total_updates": target["total_updates"] * 2}, target, defaults)
    assert not same_experiment({**target, "seed": 2}, target, defaults)
    # An older run without deterministic_backup ran without it: not MOBILE as the preset has it now.
    older = {**target, "agent": {k: v for k, v in target["agent"].items() if k != "deterministic_backup"}}
    assert not same_experiment(older, target, defaults)
    assert config_changes(older, target) == {}  # while resuming takes the new key as unchanged
    # A key it lacks that the cell leaves at its default: the same experiment.
    without_tau = {**target, "agent": {k: v for k, v in target["agent"].items() if k != "tau"}}
    assert same_experiment(without_tau, target, defaults)
    # A key only the run has (e.g. one since removed) is not the cell's experiment either.
    assert not same_experiment({**target, "agent": {**target["agent"], "old_knob": 1}}, target, defaults)


def test_a_model_free_run_ignores_the_dynamics_section_it_never_reads():
    """The `cpu` scale's dynamics fit may change without making every model-free run another experiment,
    while the same change does make a model-based run another one."""
    for preset, model_free in (("experiment=td3bc_cpu", True), ("experiment=mopo_cpu", False)):
        cfg = resolve(compose([preset, "scale=cpu", "dataset=hopper-medium-replay"]))
        target, defaults = as_dict(cfg), default_values(cfg)
        assert (target["dynamics"]["kind"] == "none") == model_free
        shorter = {**target, "dynamics": {**target["dynamics"], "max_epochs": target["dynamics"]["max_epochs"] // 4}}
        assert same_experiment(shorter, target, defaults) == model_free
        assert (config_changes(shorter, target) == {}) == model_free
    # The kind itself is read: a model-free run is not a run with a model.
    cfg = resolve(compose(["experiment=td3bc_cpu", "scale=cpu"]))
    model_free_run = as_dict(cfg)
    with_model = {**model_free_run, "dynamics": {**model_free_run["dynamics"], "kind": "ensemble"}}
    assert not same_experiment(model_free_run, with_model, default_values(cfg))

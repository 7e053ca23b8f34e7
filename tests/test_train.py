"""The training job end to end at smoke scale: every agent preset through the Hydra command,
exact kill-and-resume, config errors and divergence handling."""

import csv
import json
from pathlib import Path

import pytest
import torch
from mbrl.agents import AGENTS
from omegaconf import OmegaConf

from mbrl.checkpoint import load
from mbrl.run_folder import RunFolderError
from mbrl.train import ConfigError, TrainingDivergedError, compose, train
from tests.helpers import MOREC_SMOKE, ROOT, SMOKE, multirun, resume_killed_run, run_cli

# Two presets go through the ``mbrl-train`` command, the others through ``train`` in this process
# (see the ``train_here`` fixture).
THROUGH_THE_COMMAND = {"ravl", "morec-mopo"}


SMOKE_CASES = {
    "ravl": ["agent=ravl"],
    "mopo": ["agent=mopo"],
    "mbpo-sac": ["agent=sac"],
    "sac-model-free": ["agent=sac", "dynamics=none"],
    "ravl-single": ["agent=ravl", "dynamics=single"],
    "sac-oracle": ["agent=sac", "dynamics=oracle"],
    "bc": ["agent=bc"],
    "td3bc": ["agent=td3bc"],
    "iql": ["agent=iql"],
    "edac": ["agent=edac"],
    "single-lipschitz": ["agent=sac", "dynamics=single", "agent.spectral_norm=true", "agent.adv_target_eps=0.01"],
    "mobile": ["agent=mobile"],
    "morec-mopo": ["agent=mopo", "filter=reward_consistency", *MOREC_SMOKE],
    "morec-ravl": ["agent=ravl", "filter=reward_consistency", "filter.select=softmax", *MOREC_SMOKE],
    "morec-mopo-model-quantile": [
        "agent=mopo",
        "filter=reward_consistency",
        *MOREC_SMOKE,
        "filter.threshold_quantile=0.05",
        "filter.threshold_quantile_of=model",
    ],
}


@pytest.mark.parametrize("case", SMOKE_CASES)
@pytest.mark.slow
def test_smoke_run_of_every_agent_preset(case, env_vars, train_here, tmp_path):
    overrides = [*SMOKE, *SMOKE_CASES[case]]
    if case in THROUGH_THE_COMMAND:
        out = run_cli([*overrides, f"hydra.run.dir={tmp_path}"], env_vars)
        assert out.returncode == 0, out.stderr[-3000:]
        printed = out.stdout
    else:
        printed = train_here(overrides, tmp_path)
    result = json.loads((tmp_path / "final.json").read_text())
    assert "score_mean" in result["final"] and result["behaviour_score_mean"] is not None
    assert "final normalised score" in printed
    for name in ("config.yaml", "git_revision.txt", "train.csv", "eval.csv", "metrics.jsonl", "checkpoint.pt"):
        assert (tmp_path / name).exists(), name
    resolved = OmegaConf.load(tmp_path / "config.yaml")
    assert (result["agent"], result["agent_class"]) == (resolved.agent.preset, resolved.agent.name)
    assert (tmp_path / "rollout.csv").exists() == (resolved.dynamics.kind != "none")
    with open(tmp_path / "final.csv", newline="") as f:
        final = list(csv.DictReader(f))[-1]
    # Every agent with critics writes its value of the start states beside the return obtained.
    assert ("q_start" in final and "discounted_return" in final) == (resolved.agent.name != "bc")
    if resolved.filter.name != "none":
        with open(tmp_path / "rollout.csv", newline="") as f:
            rounds = list(csv.DictReader(f))
        assert all(1.3134 > float(r["filter_score_mean"]) > 0.313 for r in rounds)  # the range of r_D
        # How well r_D ranks held-out transitions, measured once after its fit, is in the results.
        assert 0 <= result["filter_ranking"]["filter_auc_model_sample"] <= 1
        # A threshold calibrated against the fitted model is in the results, inside r_D's range.
        calibrated = result["filter_ranking"].get("filter_model_quantile_threshold")
        assert (calibrated is not None) == (resolved.filter.threshold_quantile_of == "model")
        assert calibrated is None or 1.3134 > calibrated > 0.313


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load(run_dir / "checkpoint.pt")["agent"]["actor"]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_parameters(env_vars, train_here, tmp_path):
    args = [*SMOKE, "agent=ravl", "total_updates=200", "checkpoint_every=20", "eval_every=1000"]
    full = tmp_path / "full"
    train_here(args, full)  # in this process; the killed run and its resume are commands

    killed = tmp_path / "killed"
    resume_killed_run(args, killed, env_vars, total_updates=200)
    a, b = _params(full), _params(killed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The loop's wall time adds the killed session's, up to the checkpoint the resume continued.
    full_t, killed_t = (json.loads((d / "final.json").read_text())["timing"] for d in (full, killed))
    assert full_t["earlier_sessions_s"] == 0 and full_t["loop_s"] > 0
    assert 0 < killed_t["earlier_sessions_s"] < killed_t["loop_s"]
    steps = [int(line.split(",")[0]) for line in (killed / "train.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)), "logged rows must not repeat after resume"


@pytest.mark.slow
def test_same_seed_same_result_different_seed_different(in_env, tmp_path):
    def final_actor(seed, name):
        cfg = compose([*SMOKE, "agent=mopo", f"seed={seed}"])
        train(cfg, tmp_path / name)
        return _params(tmp_path / name)

    a, b, c = final_actor(0, "a"), final_actor(0, "b"), final_actor(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_misspelt_key_fails_before_training(env_vars, tmp_path):
    out = run_cli([*SMOKE, "total_update=5", f"hydra.run.dir={tmp_path}"], env_vars)
    assert out.returncode != 0 and "total_update" in out.stderr
    assert not (tmp_path / "checkpoint.pt").exists()


def test_wrong_type_and_unknown_agent_option_are_named(in_env, tmp_path):
    with pytest.raises(Exception, match="total_updates"):
        train(compose([*SMOKE, "total_updates=many"]), tmp_path)
    with pytest.raises(ConfigError, match=r"num_critic.*Valid options.*num_critics"):
        train(compose([*SMOKE, "+agent.num_critic=3"]), tmp_path)
    with pytest.raises(ConfigError, match=r"rollout\.real_ratio"):
        train(compose([*SMOKE, "rollout.real_ratio=1.5"]), tmp_path)


def test_unknown_agent_lists_presets_and_registered_classes(in_env, tmp_path):
    presets = sorted(p.stem for p in (ROOT / "configs" / "agent").glob("*.yaml"))
    with pytest.raises(ConfigError, match=r"agent=<preset>.*: " + ", ".join(presets) + r";.*registered class: .*sac"):
        train(compose([*SMOKE, "agent.name=nope"]), tmp_path)


def test_resume_without_checkpoint_is_refused(in_env, tmp_path):
    with pytest.raises(RunFolderError, match="drop resume=true"):
        train(compose([*SMOKE, "resume=true"]), tmp_path / "empty")


@pytest.mark.slow
def test_divergence_stops_with_a_clear_error_and_keeps_the_good_checkpoint(in_env, tmp_path, monkeypatch):
    base = [*SMOKE, "agent=sac", "dynamics=none", "checkpoint_every=20", "log_every=10", "total_updates=200"]
    train(compose([*base, "total_updates=20"]), tmp_path)
    good = load(tmp_path / "checkpoint.pt")
    # Continue the run with an update whose critic loss blows up (a learning rate in the checkpoint's
    # optimiser state cannot be raised by the config, so the blow-up is injected).
    sac = AGENTS.get("sac")
    update = sac.update
    monkeypatch.setattr(sac, "update", lambda self, *a: {**update(self, *a), "critic_loss": float("nan")})
    with pytest.raises(TrainingDivergedError, match=r"non-finite critic_loss at update 30; the last good checkpoint"):
        train(compose(base), tmp_path)
    kept = load(tmp_path / "checkpoint.pt")
    assert kept["step"] == good["step"] == 20
    for k, v in kept["agent"]["actor"].items():
        assert torch.equal(v, good["agent"]["actor"][k])


def test_command_line_penalty_wins_over_the_preset():
    assert compose(["agent=mopo"]).penalty.name == "mopo"
    assert compose(["agent=mopo", "penalty=none"]).penalty.name == "none"
    assert compose(["agent=ravl"]).penalty.name == "none"


@pytest.mark.slow
def test_parallel_multirun_with_the_joblib_launcher(env_vars, tmp_path):
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    runs = multirun(launcher, tmp_path, ["agent=bc,td3bc", "seed=0,1"], env_vars)
    assert len(runs) == 4
    combos = {(OmegaConf.load(r / "config.yaml").agent.name, OmegaConf.load(r / "config.yaml").seed) for r in runs}
    assert combos == {("bc", 0), ("bc", 1), ("td3bc", 0), ("td3bc", 1)}

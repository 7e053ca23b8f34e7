"""Experiment presets: every file under configs/experiment/ composes into a valid run config, and the
per-task paper presets (configs/experiment/paper/<method>/<task>.yaml) carry the published values.

The per-task files are the single source of the published tables; the spot checks below repeat a few
cells from the cited sources, so a mistyped or mis-generated file fails here.
"""

import functools
import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mbrl.config import components, resolve
from mbrl.data.d4rl import d4rl_env_id
from mbrl.train import compose, train
from tests.helpers import write_d4rl_hdf5

EXPERIMENTS = Path(__file__).resolve().parent.parent / "configs" / "experiment"
PRESET_SPEED = EXPERIMENTS.parent.parent / "benchmarks" / "results" / "preset_speed_cpu.json"
PRESETS = sorted(p.relative_to(EXPERIMENTS).with_suffix("").as_posix() for p in EXPERIMENTS.rglob("*.yaml"))
CPU_PRESETS = [p for p in PRESETS if p.endswith("_cpu")]

ENVS = ("halfcheetah", "hopper", "walker2d")
ALL_TASKS = {f"{env}-{level}" for env in ENVS for level in ("random", "medium", "medium-replay", "medium-expert")}
NO_RANDOM = {task for task in ALL_TASKS if not task.endswith("-random")}
SOURCE_ENVS = {"halfcheetah": "HalfCheetah-v3", "hopper": "Hopper-v3", "walker2d": "Walker2d-v3"}  # D4RL's v2 data

# method -> (its paper preset, the tasks its source publishes settings for, the keys a task may change)
METHODS = {
    # run_mopo.py has no random settings; those come from the MOPO authors' code (tianheyu927/mopo)
    "mopo": ("mopo_paper", ALL_TASKS, {"rollout.horizon", "penalty.coef"}),
    "mobile": (
        "mobile_paper",
        ALL_TASKS,
        {"rollout.horizon", "penalty.coef", "agent.auto_alpha", "agent.init_alpha", "dynamics.max_epochs"},
    ),
    "combo": ("combo_paper", NO_RANDOM, {"rollout.horizon", "agent.cql_weight"}),  # run_combo.py: no random
    "edac": ("edac_paper", NO_RANDOM, {"agent.num_critics", "agent.eta"}),  # run_edac.py: no random
    "morec_mopo": ("morec_mopo_paper", ALL_TASKS, {"penalty.coef", "filter.select"}),
    "morec_mobile": ("morec_mobile_paper", ALL_TASKS, {"penalty.coef", "rollout.real_ratio", "dynamics.max_epochs"}),
    "prdc": ("prdc_paper", ALL_TASKS, {"agent.alpha"}),
    # One setting for every locomotion dataset: the per-task file only names the data.
    "td3bc": ("td3bc_paper", ALL_TASKS, set()),
    "cql": ("cql_paper", ALL_TASKS, set()),
    "iql": ("iql_paper", ALL_TASKS, set()),
}
PER_TASK = [p for p in PRESETS if p.startswith("paper/") and p.split("/")[1] in METHODS]

# Cells of the published tables, copied from the sources named in each comment.
SPOT_CHECKS = [
    # OfflineRL-Kit run_example/run_mopo.py, "suggested hypers" (horizon, lambda)
    ("mopo", "hopper-medium", {"rollout.horizon": 5, "penalty.coef": 5.0}),
    ("mopo", "walker2d-medium-replay", {"rollout.horizon": 1, "penalty.coef": 2.5}),
    ("mopo", "halfcheetah-medium-expert", {"rollout.horizon": 5, "penalty.coef": 2.5}),
    # tianheyu927/mopo examples/config/d4rl/<env>_random.py (rollout_length, penalty_coeff)
    ("mopo", "halfcheetah-random", {"rollout.horizon": 5, "penalty.coef": 0.5}),
    ("mopo", "hopper-random", {"rollout.horizon": 5, "penalty.coef": 1.0}),
    ("mopo", "walker2d-random", {"rollout.horizon": 1, "penalty.coef": 1.0}),
    # OfflineRL-Kit run_example/run_mobile.py (horizon, beta; hopper-medium "auto-alpha=False")
    ("mobile", "hopper-random", {"rollout.horizon": 5, "penalty.coef": 5.0, "agent.auto_alpha": True}),
    ("mobile", "hopper-medium", {"rollout.horizon": 5, "penalty.coef": 1.5, "agent.auto_alpha": False}),
    ("mobile", "walker2d-medium-expert", {"rollout.horizon": 1, "penalty.coef": 1.5}),
    ("mobile", "halfcheetah-medium-replay", {"rollout.horizon": 5, "penalty.coef": 0.1}),
    # OfflineRL-Kit run_example/run_combo.py (horizon, cql_weight)
    ("combo", "walker2d-medium", {"rollout.horizon": 1, "agent.cql_weight": 5.0, "rollout.real_ratio": 0.5}),
    ("combo", "halfcheetah-medium", {"rollout.horizon": 5, "agent.cql_weight": 0.5}),
    ("combo", "hopper-medium-replay", {"rollout.horizon": 5, "agent.cql_weight": 0.5}),
    # OfflineRL-Kit run_example/run_edac.py; CORL configs/offline/edac (N, eta)
    ("edac", "hopper-medium-expert", {"agent.num_critics": 50, "agent.eta": 1.0}),
    ("edac", "halfcheetah-medium-expert", {"agent.num_critics": 10, "agent.eta": 5.0}),
    ("edac", "walker2d-medium", {"agent.num_critics": 10, "agent.eta": 1.0}),
    # polixir/morec generate_tmuxp_morec_mopo.py (lambda, selection), horizon 100 from 2000 states
    ("morec_mopo", "hopper-medium", {"penalty.coef": 15.0, "filter.select": "softmax", "rollout.horizon": 100}),
    ("morec_mopo", "hopper-random", {"penalty.coef": 10.0, "filter.select": "argmax", "rollout.batch_size": 2000}),
    ("morec_mopo", "walker2d-medium-replay", {"penalty.coef": 0.25, "filter.select": "argmax"}),
    # polixir/morec generate_tmuxp_morec_mobile.py (beta; halfcheetah-medium-expert with real ratio 0.5)
    ("morec_mobile", "halfcheetah-medium-expert", {"penalty.coef": 1.0, "rollout.real_ratio": 0.5}),
    ("morec_mobile", "hopper-random", {"penalty.coef": 7.5, "rollout.real_ratio": 0.05}),
    ("morec_mobile", "walker2d-medium-replay", {"penalty.coef": 0.1, "filter.select": "softmax"}),
    # PRDC README: alpha 40 for halfcheetah, 2.5 for hopper and walker2d, beta 2
    ("prdc", "halfcheetah-random", {"agent.alpha": 40.0, "agent.beta": 2.0}),
    ("prdc", "walker2d-medium-expert", {"agent.alpha": 2.5, "agent.beta": 2.0}),
    # IQL configs/mujoco_config.py: expectile 0.7, temperature 3 on every locomotion dataset
    ("iql", "hopper-medium-expert", {"agent.expectile": 0.7, "agent.beta": 3.0, "total_updates": 1_000_000}),
    # TD3+BC: alpha 2.5, 1M updates; OfflineRL-Kit run_cql.py: cql-weight 5, temperature 1, 1000 epochs
    ("td3bc", "hopper-random", {"agent.alpha": 2.5, "total_updates": 1_000_000}),
    ("cql", "walker2d-medium", {"agent.cql_weight": 5.0, "agent.temperature": 1.0, "total_updates": 1_000_000}),
]


def flat(overrides: list[str]) -> dict:
    """The composed config as ``{"a.b": value}``, interpolations resolved."""
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(compose(overrides), resolve=True), "")
    return out


@functools.cache
def method_preset(name: str) -> dict:
    """``flat`` of a method's paper preset, composed once (it names no dataset, so no env var reaches it)."""
    return flat([f"experiment={name}"])


def d4rl_file(task: str) -> str:
    """D4RL's file name of a task: ``hopper-medium-replay`` -> ``hopper_medium_replay-v2.hdf5``."""
    env, level = task.split("-", 1)
    return f"{env}_{level.replace('-', '_')}-v2.hdf5"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_into_a_valid_run_config(preset):
    # The run's own checks: every key and value, each component's section, and the sections against each other.
    components(resolve(compose([f"experiment={preset}"])))


def test_each_method_has_a_preset_for_every_published_task():
    for method, (_, tasks, _) in METHODS.items():
        found = {Path(p).name for p in PER_TASK if p.split("/")[1] == method}
        assert found == tasks, method


@pytest.mark.parametrize("preset", PER_TASK)
def test_per_task_preset_changes_only_the_published_columns_and_the_data(preset, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", "/data/d4rl")
    _, method, task = preset.split("/")
    paper, _, columns = METHODS[method]
    base, tuned = method_preset(paper), flat([f"experiment={preset}"])
    assert set(tuned) == set(base)
    changed = {key for key in tuned if tuned[key] != base[key]}
    assert changed - columns == {"dataset"}
    assert tuned["dataset"] == f"/data/d4rl/{d4rl_file(task)}"
    assert d4rl_env_id(tuned["dataset"]) == SOURCE_ENVS[task.split("-")[0]]


def test_per_task_dataset_defaults_to_the_d4rl_download_folder(monkeypatch):
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    assert flat(["experiment=paper/mopo/walker2d-medium-replay"])["dataset"] == (
        "~/.d4rl/datasets/walker2d_medium_replay-v2.hdf5"
    )


@pytest.mark.parametrize(("method", "task", "published"), SPOT_CHECKS, ids=[f"{m}/{t}" for m, t, _ in SPOT_CHECKS])
def test_per_task_preset_matches_the_published_table(method, task, published):
    cfg = flat([f"experiment=paper/{method}/{task}"])
    assert {key: cfg[key] for key in published} == published
    assert cfg["scale"] == "paper"


def test_command_line_wins_over_a_per_task_preset():
    cfg = flat(["experiment=paper/mopo/hopper-medium", "penalty.coef=1.0", "dataset=/data/hopper_medium-v2.hdf5"])
    assert cfg["penalty.coef"] == 1.0 and cfg["dataset"] == "/data/hopper_medium-v2.hdf5"
    assert cfg["rollout.horizon"] == 5 and cfg["penalty.name"] == "mopo"


@pytest.mark.parametrize("preset", CPU_PRESETS)
def test_cpu_presets_run_on_one_thread_at_the_cpu_scale(preset):
    cfg = flat([f"experiment={preset}"])
    assert cfg["scale"] == "cpu" and cfg["threads"] == 1 and cfg["device"] == "cpu"
    assert cfg["total_updates"] <= 50_000 and cfg["total_updates"] % cfg["eval_every"] == 0
    if cfg["dynamics.kind"] != "none":
        assert cfg["dynamics.max_epochs"] is not None  # an uncapped fit would dominate a CPU run
    header = (EXPERIMENTS / f"{preset}.yaml").read_text().split("defaults:")[0]
    stated = re.search(r"Expected wall time, two runs sharing a 2-core CPU: about (\d+) min", header)
    assert stated, "the header gives the expected wall time"
    # ... and it is what the recorded measurement of the preset's cost says, to within a factor of 1.5.
    measured = {row["preset"]: row for row in json.loads(PRESET_SPEED.read_text())["rows"]}
    row = measured[preset.removesuffix("_cpu")]
    minutes = row["expected_min"] * cfg["total_updates"] / row["total_updates"]  # the measured cost, today's length
    assert 1 / 1.5 <= int(stated.group(1)) / minutes <= 1.5, f"{preset}: measured {minutes:.0f} min"
    # The same method as the published preset, only smaller.
    paper = method_preset(preset.removesuffix("_cpu") + "_paper")
    same = ("agent.name", "penalty.name", "filter.name", "dynamics.kind", "rollout.horizon", "rollout.real_ratio")
    assert {key: cfg[key] for key in same} == {key: paper[key] for key in same}


def test_per_task_headers_say_how_to_use_a_local_file():
    for preset in PER_TASK:
        header = (EXPERIMENTS / f"{preset}.yaml").read_text().split("defaults:")[0]
        assert "allow_version_mismatch=true" in header and "dataset=/path/to/" in header, preset


@pytest.mark.slow
def test_a_per_task_preset_trains_on_the_file_in_the_d4rl_folder(tmp_path, monkeypatch):
    """The published hopper-medium MOBILE preset finds ``hopper_medium-v2.hdf5`` through $D4RL_DATASET_DIR
    (a small D4RL-layout stand-in) and runs end to end at smoke size."""
    write_d4rl_hdf5(tmp_path / "hopper_medium-v2.hdf5", [(60, "timeout")] * 10 + [(40, "terminal")] * 5)
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    overrides = ["experiment=paper/mobile/hopper-medium", "scale=smoke", "allow_version_mismatch=true"]
    result = train(
        compose([*overrides, "logger.progress=false", f"dynamics.cache_dir={tmp_path / 'cache'}"]), tmp_path / "run"
    )
    assert result["dataset"] == str(tmp_path / "hopper_medium-v2.hdf5")
    assert result["eval_env"] == "Hopper-v5" and "score_mean" in result["final"]
    run = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert run.penalty.coef == 1.5 and run.agent.auto_alpha is False and run.total_updates == 60

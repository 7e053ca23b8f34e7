"""The side-by-side harness pins its budget: whatever the `cpu` presets become, both sides of every row
train with the updates, evaluation, rollout rounds and fit epochs the grid began with (the script, run
as its users run it, shows each method's overrides)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest

from mbrl.config import as_dict, resolve
from mbrl.run_folder import flatten
from mbrl.train import compose
from tests.helpers import ROOT

METHODS = ("mopo", "mobile", "ravl", "combo", "rambo", "edac")


def sidebyside(argv: list[str]) -> str:
    """The script, run as its users run it; its standard output."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reference_sidebyside.py"), *argv]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def shown() -> dict[str, list[str]]:
    return json.loads(sidebyside(["--show-overrides", "--overrides", "seed=3", "mobile:total_updates=7"]))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_its_pinned_budget(method, shown):
    overrides = shown[method]
    budget = overrides[: overrides.index("seed=3")]  # the pinned budget comes first
    pinned = dict(item.split("=") for item in budget)
    assert {"total_updates", "eval_every", "eval_episodes", "final_eval_episodes"} <= pinned.keys()
    assert int(pinned["total_updates"]) <= 15000  # the grid's budget, not the grown presets'
    config = flatten(
        as_dict(resolve(compose([f"experiment={method}_cpu", "dataset=hopper-medium-replay", *overrides])))
    )
    if method == "mobile":  # an override given for one method comes after the budget and wins there only
        assert config["total_updates"] == 7 and overrides[-1] == "total_updates=7"
        pinned.pop("total_updates")
    else:
        assert "total_updates=7" not in overrides
    assert {key: str(config[key]) for key in pinned} == pinned
    assert config["seed"] == 3


def test_finished_rows_are_archived_and_survive_losing_the_run_folders(tmp_path):
    runs, results = tmp_path / "runs" / "sbs", tmp_path / "results"
    fit = "hopper-medium-replay/_fits/ours/seed0/ours-abc"
    (runs / fit).mkdir(parents=True)
    (runs / fit / "fit.json").write_text(json.dumps({"fit_s": 60.0}))
    (runs / fit / "model.pt").write_bytes(b"large")
    for side, score in (("ours", 12.5), ("reference", 11.5)):
        run = runs / "hopper-medium-replay" / "mopo" / side / "seed0"
        run.mkdir(parents=True)
        timing = {"timing": {"loop_s": 100.0, "earlier_sessions_s": 0.0}} if side == "ours" else {}
        (run / "final.json").write_text(json.dumps({"final": {"score_mean": score}, **timing}))
        (run / "eval.csv").write_text(f"step,score_mean\n500,{score - 5}\n1000,{score}\n")
        (run / "wall.json").write_text(json.dumps({"run_s": 240.0, "fit": fit if side == "ours" else None}))
        (run / "checkpoint.pt").write_bytes(b"large")
        # each side's trace of its updates; only the reference's driver logs its critics' losses apart
        extra = "critic_loss" if side == "ours" else "critic1_loss"
        (run / "train.csv").write_text(f"step,q_mean,alpha,{extra}\n500,{score},0.9,1\n1000,{2 * score},0.8,1\n")
    argv = ["--methods", "mopo", "--datasets", "hopper-medium-replay", "--seeds", "0", "--name", "sbs"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)]

    def rows(*extra: str) -> list[dict]:
        sidebyside([*argv, *extra])
        return json.loads((results / "sbs.json").read_text())["rows"]

    first = rows("--report-only", "--overrides", "penalty.coef=0.5")
    assert [first[0][side]["scores"] for side in ("ours", "reference")] == [[12.5], [11.5]]
    assert "with `penalty.coef=0.5`" in (results / "sbs.md").read_text()  # the report says what was overridden
    assert first[0]["ours"]["wall_s"] == [300.0] and first[0]["ours"]["fit_s"] == [60.0]
    assert first[0]["reference"]["wall_s"] == [240.0]  # its final.json has no timing: never resumed
    assert first[0]["ours"]["curve"] == [[500, 7.5], [1000, 12.5]]
    assert first[0]["reference"]["trace"] == {"q_mean": [[500, 11.5], [1000, 23.0]], "alpha": [[500, 0.9], [1000, 0.8]]}
    assert (results / "sbs_mopo_hopper-medium-replay_trace.png").exists()
    assert (results / "sbs_archive" / "hopper-medium-replay" / "mopo" / "ours" / "seed0" / "train.csv").exists()
    assert (results / "sbs_archive" / fit / "fit.json").exists()
    assert not list((results / "sbs_archive").rglob("*.pt"))
    for path in sorted(tmp_path.joinpath("runs").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert rows("--sides", "ours") == first  # not --report-only: an archived run is not trained again
    assert not (runs / "hopper-medium-replay" / "mopo" / "ours" / "seed0").exists()


def test_a_run_of_one_cell_reports_every_archived_row(tmp_path):
    results = tmp_path / "results"
    archive = results / "sbs_archive"
    for dataset, method, seed, score in (
        ("hopper-medium-replay", "edac", 1, 16.5),
        ("halfcheetah-medium", "mopo", 0, -9.0),  # a dataset outside the grid
        ("hopper-medium-replay", "mopo", 0, 12.5),
    ):
        for side in ("ours", "reference"):
            run = archive / dataset / method / side / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "final.json").write_text(json.dumps({"final": {"score_mean": score}}))
    argv = ["--report-only", "--methods", "mopo", "--datasets", "hopper-medium-replay", "--seeds", "0"]
    argv += ["--name", "sbs", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)]
    sidebyside(argv)
    rows = json.loads((results / "sbs.json").read_text())["rows"]
    # grid order: MOPO on its grid dataset, then on the one outside the grid, then EDAC
    assert [(r["method"], r["dataset"], r["ours"]["seeds"]) for r in rows] == [
        ("mopo", "hopper-medium-replay", [0]),
        ("mopo", "halfcheetah-medium", [0]),
        ("edac", "hopper-medium-replay", [1]),
    ]


def test_a_run_keeps_the_seconds_of_the_fit_it_used_when_that_fit_is_remade(tmp_path):
    """A fit shared by several runs can be remade for a later run (its folder lost, the fit redone): the
    archived record of the fit then holds the new fit's seconds, and an earlier run must keep its own."""
    runs, results = tmp_path / "runs" / "sbs", tmp_path / "results"
    fit = "hopper-medium-replay/_fits/reference/seed0/offlinerlkit-abc"
    (runs / fit).mkdir(parents=True)
    (runs / fit / "fit.json").write_text(json.dumps({"fit_s": 90.0}))  # the remade fit
    for side, kept in (("ours", None), ("reference", 60.0)):
        run = runs / "hopper-medium-replay" / "combo" / side / "seed0"
        run.mkdir(parents=True)
        timing = {"timing": {"loop_s": 100.0, "earlier_sessions_s": 0.0}} if side == "ours" else {}
        (run / "final.json").write_text(json.dumps({"final": {"score_mean": 10.0}, **timing}))
        wall = {"run_s": 240.0, "fit": fit} | ({"fit_s": kept} if kept is not None else {})
        (run / "wall.json").write_text(json.dumps(wall))
    argv = ["--report-only", "--methods", "combo", "--datasets", "hopper-medium-replay", "--seeds", "0"]
    sidebyside([*argv, "--name", "sbs", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)])
    row = json.loads((results / "sbs.json").read_text())["rows"][0]
    assert row["reference"]["fit_s"] == [60.0] and row["reference"]["wall_s"] == [300.0]
    assert row["ours"]["fit_s"] == [90.0]  # recorded before runs kept it: the fit's own record


def test_the_fits_table_shows_the_spread_scores_where_a_fit_has_them(tmp_path):
    """Fits scored before the NLL and variance ratio were recorded still report, with a dash there."""
    # The side by side pins the 25-epoch fit its runs were made with (its ``_MODEL`` overrides).
    cfg = resolve(compose(["experiment=mopo_cpu", "dataset=hopper-medium-replay", "seed=0", "dynamics.max_epochs=25"]))
    section = {k: v for k, v in dataclasses.asdict(cfg.dynamics).items() if k not in ("cache", "cache_dir")}
    digest = hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:10]
    results = tmp_path / "results"
    mse = {"ours_elites": 0.03, "ours_all": 0.031, "reference_elites": 0.025, "reference_all": 0.026}
    spread = {"ours_elites_nll": -2.5, "reference_elites_nll": -2.25}
    spread |= {"ours_elites_var_over_mse": 0.8, "reference_elites_var_over_mse": 0.75}
    for seed, scores in ((0, mse | spread), (1, mse)):
        fit = results / "sbs_archive" / "hopper-medium-replay" / "_fits" / "reference" / f"seed{seed}"
        (fit / f"offlinerlkit-{digest}").mkdir(parents=True)
        record = {"reference": "OfflineRL-Kit@abc", "scores": {"hopper-medium-replay": scores}}
        (fit / f"offlinerlkit-{digest}" / "scores.json").write_text(json.dumps(record))
    argv = ["--report-only", "--methods", "mopo", "--datasets", "hopper-medium-replay", "--seeds", "0", "1"]
    sidebyside([*argv, "--name", "sbs", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)])
    rows = [line for line in (results / "sbs.md").read_text().splitlines() if "| OfflineRL-Kit |" in line]
    assert [row.split(" | ")[-2:] for row in rows] == [["-2.500 / -2.250", "0.80 / 0.75 |"], ["–", "– |"]]
    assert all(" | 1.20 | " in row for row in rows)  # ours / reference MSE, 0.03 / 0.025

"""mbrl-report: run discovery, grouping, the IQM and bootstrap statistics, the written files, and a
real Hydra multirun reported end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mbrl.data.scores import summarize
from mbrl.report import (
    condition_keys,
    condition_label,
    find_runs,
    iqm,
    load_run,
    main,
    parse_group_by,
    stratified_bootstrap_ci,
    write_report,
)
from mbrl.report.runs import ReportError
from mbrl.train import compose
from tests.helpers import ROOT, SMOKE, run_cli

AGENT_PARAMS = {"bc": {"lr": 1e-3}, "td3bc": {"actor_lr": 3e-4, "alpha": 2.5}, "mopo": {"actor_lr": 3e-4}}
AGENT_CLASS = {"bc": "bc", "td3bc": "td3bc", "mopo": "sac"}  # as configs/agent/*.yaml set agent.name


def fake_run(
    folder, dataset="hopper-medium", agent="bc", seed=0, coef=None, final_score=10.0, scored=True, config=None
):
    """A run folder as mbrl-train writes it: resolved config.yaml (``config``, else one of preset ``agent``),
    an eval.csv curve ending at ``final_score``."""
    folder.mkdir(parents=True)
    penalty = {"name": "mopo", "coef": coef} if coef is not None else {"name": "none"}
    config = config or {
        "dataset": dataset,
        "seed": seed,
        "agent": {"name": AGENT_CLASS[agent], "preset": agent, "hidden_sizes": [32, 32], **AGENT_PARAMS[agent]},
        "penalty": penalty,
        "dynamics": {"kind": "ensemble" if agent == "mopo" else "none", "cache_dir": str(folder)},
        "logger": {"project": "mbrl", "progress": seed % 2 == 0},  # varies, but never a condition
        "scale": "smoke",
        "resume": False,
    }
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    ref = (0.0, 1000.0)  # return -> normalised score: 100 * (R - 0) / 1000
    steps = [30, 60, 90]
    curve = [final_score * s / steps[-1] for s in steps]
    header = "step,return_mean,return_std" + (",score_mean,score_std,score_ci_low,score_ci_high" if scored else "")
    rows = []
    for step, score in zip(steps, curve, strict=True):
        ret = score * ref[1] / 100
        rows.append(f"{step},{ret},0.0" + (f",{score},0.0,{score},{score}" if scored else ""))
    (folder / "eval.csv").write_text("\n".join([header, *rows]) + "\n")
    final = {"return_mean": final_score * ref[1] / 100, "return_std": 0.0}
    if scored:
        final.update(score_mean=final_score, score_std=0.0, score_ci_low=final_score, score_ci_high=final_score)
    result = {
        "dataset": dataset,
        "agent": agent,
        "seed": seed,
        "final": final,
        "behaviour_score_mean": 31.5 if scored else None,
        "behaviour_return_mean": 315.0,
    }
    (folder / "final.json").write_text(json.dumps(result))
    return folder


def sweep(root, scores):
    """``scores``: {(dataset, agent, coef): [final score per seed]} -> numbered job folders as in a multirun."""
    job = 0
    for (dataset, agent, coef), per_seed in scores.items():
        for seed, score in enumerate(per_seed):
            fake_run(root / str(job), dataset, agent, seed, coef, score)
            job += 1
    return root


SCORES = {
    ("hopper-medium", "bc", None): [30.0, 34.0, 31.0],
    ("hopper-medium", "td3bc", None): [40.0, 12.0, 45.0, 47.0, 41.0],
    ("hopper-medium", "mopo", 1.0): [5.0, 9.0],
    ("hopper-medium", "mopo", 2.5): [20.0, 26.0],
    ("walker2d-medium", "bc", None): [20.0, 22.0],
    ("walker2d-medium", "td3bc", None): [60.0, 50.0],
}


def test_iqm_matches_brute_force():
    """Proportional trimming equals the plain middle-half mean of the sample with every value repeated 4 times."""
    g = torch.Generator().manual_seed(0)
    for n in range(1, 14):
        x = torch.randn(n, generator=g, dtype=torch.float64) * 10
        brute = x.repeat_interleave(4).sort().values[n : 3 * n].mean()
        torch.testing.assert_close(iqm(x), brute)
        if n % 4 == 0:  # then it is also rliable's definition: drop the lowest and highest quarter
            torch.testing.assert_close(iqm(x), x.sort().values[n // 4 : n - n // 4].mean())
    batch = torch.randn(6, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(iqm(batch), torch.stack([iqm(row) for row in batch]))
    assert float(iqm(torch.tensor([1.0, 2.0, 3.0, 4.0, 1e6]))) < 4.0  # an outlier barely moves it


def test_stratified_bootstrap_with_one_stratum_reuses_the_resamples_of_summarize():
    x = torch.tensor([3.0, 9.0, 4.0, 12.0, 7.0], dtype=torch.float64)
    s = summarize(x, num_bootstrap=500, seed=3)
    lo, hi = stratified_bootstrap_ci([x], lambda xs: xs[0].mean(dim=-1), num_bootstrap=500, seed=3)
    assert (lo, hi) == pytest.approx((s.ci_low, s.ci_high))
    lo, hi = stratified_bootstrap_ci([x], lambda xs: iqm(xs[0]), num_bootstrap=500, seed=3)
    assert lo <= float(iqm(x)) <= hi and lo < hi


def test_stratified_bootstrap_resamples_within_each_stratum():
    low, high = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([100.0, 101.0, 102.0, 103.0])
    # Every resample keeps 3 values from the first stratum and 4 from the second.
    lo, hi = stratified_bootstrap_ci([low, high], lambda xs: (torch.cat(xs, -1) > 50).sum(-1).double(), 300, 0)
    assert lo == hi == 4.0


def test_run_discovery_skips_unfinished_and_ignores_hydra_and_wandb_folders(tmp_path):
    run = fake_run(tmp_path / "sweep" / "0")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run / "wandb" / "offline-run-1" / "files").mkdir(parents=True)
    (run / "wandb" / "offline-run-1" / "files" / "config.yaml").write_text("seed: 0\n")
    killed = fake_run(tmp_path / "sweep" / "1")
    (killed / "final.json").unlink()
    failed = tmp_path / "sweep" / "2"
    (failed / ".hydra").mkdir(parents=True)
    finished, unfinished = find_runs([tmp_path / "sweep"])
    assert finished == [run]
    assert unfinished == [killed, failed]


def test_condition_is_the_smallest_set_of_varying_keys(tmp_path):
    runs = [load_run(p) for p in find_runs([sweep(tmp_path, SCORES)])[0]]
    # agent.preset separates bc, td3bc and mopo (their hyper-parameters and penalty.name follow from it);
    # penalty.coef separates the two mopo settings. seed, logger.* and cache_dir vary but are never conditions.
    assert condition_keys(runs) == ["agent.preset", "penalty.coef"]
    assert parse_group_by("agent, dataset", runs) == ["agent.preset"]
    with pytest.raises(ValueError, match=r"agent\.nme.*agent\.preset, penalty\.coef"):
        parse_group_by("agent.nme", runs)


def test_one_condition_falls_back_to_the_agent_preset(tmp_path):
    runs = [load_run(fake_run(tmp_path / str(s), seed=s)) for s in range(2)]
    assert condition_keys(runs) == ["agent.preset"]


def test_runs_are_labelled_by_the_preset_not_the_class(tmp_path):
    """MOPO, RAVL and MOBILE all train the ``sac`` class: their resolved configs (as the training job writes
    them) are told apart, and labelled, by the preset."""
    runs = []
    for preset in ("mopo", "ravl", "mobile"):
        config = OmegaConf.to_container(compose([f"agent={preset}", "scale=smoke"]), resolve=True)
        assert config["agent"]["name"] == "sac" and config["agent"]["preset"] == preset
        runs.append(load_run(fake_run(tmp_path / preset, config=config)))
    keys = condition_keys(runs)
    assert keys[0] == "agent.preset"
    assert [condition_label(run.config, keys[:1]) for run in runs] == ["agent=mopo", "agent=ravl", "agent=mobile"]
    assert condition_label(runs[0].config, condition_keys(runs[:1])) == "agent=mopo"  # a MOPO run alone


def test_runs_without_a_preset_are_labelled_by_the_class(tmp_path):
    """Runs from before presets recorded themselves, and plugin presets without ``preset``, keep ``agent.name``."""
    old = fake_run(tmp_path / "old", agent="mopo", coef=2.5)
    config = OmegaConf.load(old / "config.yaml")
    del config.agent.preset
    OmegaConf.save(config, old / "config.yaml")
    runs = [load_run(old), load_run(fake_run(tmp_path / "new", agent="bc"))]
    assert runs[0].config["agent.preset"] == "sac"
    assert [condition_label(run.config, condition_keys(runs)) for run in runs] == ["agent=sac", "agent=bc"]


def test_report_numbers_markdown_json_and_plots(tmp_path, capsys):
    root = sweep(tmp_path / "sweep", SCORES)
    fake_run(root / "unscored", dataset="custom/env-v0", scored=False, final_score=7.0)
    (root / "killed" / ".hydra").mkdir(parents=True)
    out = tmp_path / "report"
    assert main([str(root), "--out", str(out), "--bootstrap", "400"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert printed == (out / "report.md").read_text()
    assert report["num_runs"] == sum(len(v) for v in SCORES.values()) + 1
    assert report["skipped_unfinished"] == [str(root / "killed")]
    groups = {(g["dataset"], g["condition"]): g for g in report["groups"]}
    assert set(groups) == {
        ("custom/env-v0", "agent=bc"),
        ("hopper-medium", "agent=bc"),
        ("hopper-medium", "agent=td3bc"),
        ("hopper-medium", "agent=mopo penalty.coef=1.0"),
        ("hopper-medium", "agent=mopo penalty.coef=2.5"),
        ("walker2d-medium", "agent=bc"),
        ("walker2d-medium", "agent=td3bc"),
    }
    for (dataset, agent, coef), per_seed in SCORES.items():
        label = f"agent={agent}" + (f" penalty.coef={coef}" if coef is not None else "")
        g = groups[(dataset, label)]
        x = torch.tensor(per_seed, dtype=torch.float64)
        assert g["num_seeds"] == len(per_seed) and sorted(g["scores"]) == sorted(per_seed)
        assert g["mean"] == pytest.approx(float(x.mean())) and g["std"] == pytest.approx(float(x.std(unbiased=False)))
        assert g["iqm"] == pytest.approx(float(iqm(x)))
        assert g["mean_ci"][0] <= g["mean"] <= g["mean_ci"][1]
        assert g["iqm_ci"][0] <= g["iqm"] <= g["iqm_ci"][1]
        assert g["behaviour"] == 31.5 and g["metric"] == "score"
        row = f"| {dataset} | {label} | {len(per_seed)} | {g['mean']:.1f} ± {g['std']:.1f} |"
        assert row in printed
    td3bc = groups[("hopper-medium", "agent=td3bc")]
    assert td3bc["iqm"] > td3bc["mean"]  # the 12.0 seed drags the mean down, not the IQM
    unscored = groups[("custom/env-v0", "agent=bc")]
    assert unscored["metric"] == "return" and unscored["mean"] == pytest.approx(70.0)
    assert "| custom/env-v0 (return) | agent=bc | 1 |" in printed
    # Two datasets with normalised scores: an aggregate over them for each condition run on both.
    aggregate = {a["condition"]: a for a in report["aggregate"]}
    assert set(aggregate) == {"agent=bc", "agent=td3bc"}
    bc = aggregate["agent=bc"]
    assert bc["datasets"] == ["hopper-medium", "walker2d-medium"] and bc["num_runs"] == 5
    assert bc["mean_of_means"] == pytest.approx((sum(SCORES[("hopper-medium", "bc", None)]) / 3 + 21.0) / 2)
    assert bc["mean_ci"][0] <= bc["mean_of_means"] <= bc["mean_ci"][1]
    assert str(root / "killed") in printed
    assert set(report["curves"]) == {"custom/env-v0", "hopper-medium", "walker2d-medium"}
    for name in report["curves"].values():
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
        assert f"]({name})" in printed
    assert (out / "curves_custom_env-v0.png").exists()


def test_value_and_model_error_sections_appear_for_the_cells_that_measured_them(tmp_path):
    root = sweep(tmp_path / "sweep", {k: v for k, v in SCORES.items() if k[0] == "hopper-medium"})
    mopo = sorted(
        (r for r in root.iterdir() if load_run(r).config["agent.preset"] == "mopo"), key=lambda r: int(r.name)
    )
    for i, run in enumerate(mopo):  # the MOPO runs recorded what mbrl-train writes for a model-based agent
        final = json.loads((run / "final.json").read_text())
        final["final"] |= {"q_start": 100.0 + i, "discounted_return": 50.0}
        (run / "final.json").write_text(json.dumps(final))
        rows = ["step,data_step1,oracle_step1", "30,1.0,0.5", f"60,1.0,{2.0 + i}"]
        (run / "diagnostics.csv").write_text("\n".join(rows) + "\n")
    result, markdown = write_report([root], tmp_path / "out", num_bootstrap=50)

    coefs = {"agent=mopo penalty.coef=1.0": (0, 1), "agent=mopo penalty.coef=2.5": (2, 3)}  # seeds' run order
    for label, (a, b) in coefs.items():
        assert result["values"][label]["hopper-medium"] == {
            "q_start": 100.0 + (a + b) / 2,
            "discounted_return": 50.0,
            "num_seeds": 2,
        }
        assert result["model_error"][label]["hopper-medium"]["final"] == pytest.approx(2.0 + (a + b) / 2)
    assert set(result["values"]) == set(coefs) == set(result["model_error"])  # BC, TD3+BC measured neither
    values, errors = markdown.index("## Value estimates"), markdown.index("## Model error along the policy's rollouts")
    assert markdown.index("| hopper-medium |") < values < errors < markdown.index("## Learning curves")
    assert "| agent=mopo penalty.coef=1.0 | 100 / 50 (2) |" in markdown

    baselines = sweep(tmp_path / "baselines", {("hopper-medium", "bc", None): [30.0, 34.0]})
    result, markdown = write_report([baselines], tmp_path / "out2", num_bootstrap=50)
    assert result["values"] == result["model_error"] == {} and "## Value estimates" not in markdown


def test_group_by_merges_conditions(tmp_path, capsys):
    root = sweep(tmp_path, {k: v for k, v in SCORES.items() if k[0] == "hopper-medium"})
    assert main([str(root), "--group-by", "agent", "--bootstrap", "100"]) == 0
    report = json.loads((root / "report.json").read_text())  # --out defaults to the first folder
    mopo = next(g for g in report["groups"] if g["condition"] == "agent=mopo")
    assert sorted(mopo["scores"]) == [5.0, 9.0, 20.0, 26.0]
    assert report["grouping"] == {"rule": "group-by", "keys": ["agent.preset"]}


def test_grid_table_puts_conditions_down_and_datasets_across(tmp_path, capsys):
    root = sweep(tmp_path / "sweep", SCORES)
    assert main([str(root), "--out", str(tmp_path / "r"), "--bootstrap", "200", "--name", "headline"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "headline.json").read_text())
    assert printed == (tmp_path / "r" / "headline.md").read_text()
    assert not (tmp_path / "r" / "report.md").exists()
    assert sorted(report["curves"].values()) == [
        "headline_curves_hopper-medium.png",
        "headline_curves_walker2d-medium.png",
    ]
    grid = printed[printed.index("## By condition and dataset") :]
    assert "| condition | hopper-medium (behaviour 31.5) | walker2d-medium (behaviour 31.5) |" in grid
    cell = {(g["condition"], g["dataset"]): g for g in report["groups"]}
    bc_h, bc_w = cell[("agent=bc", "hopper-medium")], cell[("agent=bc", "walker2d-medium")]
    lo, hi = bc_w["iqm_ci"]
    assert (
        f"| agent=bc | {bc_h['iqm']:.1f} [{bc_h['iqm_ci'][0]:.1f}, {bc_h['iqm_ci'][1]:.1f}] (n=3) "
        f"| {bc_w['iqm']:.1f} [{lo:.1f}, {hi:.1f}] (n=2) |" in grid
    )
    mopo = cell[("agent=mopo penalty.coef=2.5", "hopper-medium")]
    assert f"| agent=mopo penalty.coef=2.5 | {mopo['iqm']:.1f} " in grid and "(n=2) | – |" in grid


def test_labels_from_the_caller_name_and_order_the_conditions(tmp_path):
    """A benchmark's own condition names group runs whose configs differ per dataset (per-task settings)."""
    a = fake_run(tmp_path / "a0", "hopper-medium", "mopo", 0, coef=1.0, final_score=5.0)
    b = fake_run(tmp_path / "a1", "hopper-medium", "mopo", 1, coef=1.0, final_score=7.0)
    c = fake_run(tmp_path / "b0", "walker2d-medium", "mopo", 0, coef=2.5, final_score=9.0)
    d = fake_run(tmp_path / "z0", "hopper-medium", "bc", 0, final_score=30.0)
    e = fake_run(tmp_path / "y0", "walker2d-medium", "td3bc", 0, final_score=40.0)
    labels = {e: "TD3+BC", d: "BC", a: "MOPO", b: "MOPO", c: "MOPO"}
    result, markdown = write_report([tmp_path], tmp_path / "out", num_bootstrap=100, labels=labels)
    assert [(g["dataset"], g["condition"], g["num_seeds"]) for g in result["groups"]] == [
        ("hopper-medium", "BC", 1),
        ("hopper-medium", "MOPO", 2),
        ("walker2d-medium", "TD3+BC", 1),
        ("walker2d-medium", "MOPO", 1),
    ]
    # Every table lists the conditions in the labels' order, even one absent from the first dataset.
    assert result["conditions"] == ["TD3+BC", "BC", "MOPO"]
    grid = markdown[markdown.index("## By condition and dataset") :]
    assert grid.index("| TD3+BC | – |") < grid.index("| BC |") < grid.index("| MOPO |")
    assert result["grouping"] == {"rule": "labels", "keys": []}
    assert "the condition named by the benchmark that ran it" in markdown
    assert "| BC | 30.0 [30.0, 30.0] (n=1) | – |" in markdown
    with pytest.raises(ReportError, match=r"no condition label for the finished runs .*z0"):
        write_report([tmp_path], tmp_path / "out", num_bootstrap=100, labels={a: "MOPO", b: "MOPO", c: "MOPO"})


def test_tables_false_plots_but_leaves_the_tables_to_the_caller(tmp_path):
    """A benchmark appends its own sections and writes ``<name>.md`` once; the numbers are those of the tables."""
    fake_run(tmp_path / "runs" / "a0", "hopper-medium", "mopo", 0, coef=1.0, final_score=5.0)
    fake_run(tmp_path / "runs" / "a1", "hopper-medium", "mopo", 1, coef=2.5, final_score=7.0)
    made, made_md = write_report([tmp_path / "runs"], tmp_path / "made", num_bootstrap=100, name="h", tables=False)
    assert sorted(p.name for p in (tmp_path / "made").iterdir()) == ["h_curves_hopper-medium.png"]
    written, written_md = write_report([tmp_path / "runs"], tmp_path / "written", num_bootstrap=100, name="h")
    assert (tmp_path / "written" / "h.md").read_text() == written_md == made_md
    assert json.loads((tmp_path / "written" / "h.json").read_text())["groups"] == made["groups"] == written["groups"]


def test_a_run_without_eval_csv_leaves_its_group_curve_to_the_others(tmp_path):
    """A run whose curve was not kept (an archived record) still counts in the table; the plot draws the rest."""
    a = fake_run(tmp_path / "a0", "hopper-medium", "mopo", 0, coef=1.0, final_score=5.0)
    b = fake_run(tmp_path / "a1", "hopper-medium", "mopo", 1, coef=1.0, final_score=7.0)
    c = fake_run(tmp_path / "b0", "walker2d-medium", "mopo", 0, coef=2.5, final_score=9.0)
    for run in (a, c):
        (run / "eval.csv").unlink()
    labels = {a: "MOPO", b: "MOPO", c: "MOPO"}
    result, _ = write_report([tmp_path], tmp_path / "out", num_bootstrap=100, labels=labels)
    assert [g["scores"] for g in result["groups"]] == [[5.0, 7.0], [9.0]]
    assert list(result["curves"]) == ["hopper-medium"]  # walker2d-medium has no curve left to draw


def test_errors_name_the_problem(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_real_multirun_reported_from_the_command_line(env_vars, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}", *SMOKE]
    out = run_cli([*args, "agent=bc,td3bc", "seed=0,1"], env_vars)
    assert out.returncode == 0, out.stderr[-3000:]
    cli = [sys.executable, "-m", "mbrl.report", str(sweep_dir), "--out", str(tmp_path / "report"), "--bootstrap", "200"]
    rep = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["grouping"]["keys"] == ["agent.preset"] and report["skipped_unfinished"] == []
    assert [(g["condition"], g["seeds"]) for g in report["groups"]] == [("agent=bc", [0, 1]), ("agent=td3bc", [0, 1])]
    for g in report["groups"]:
        finals = [json.loads((Path(r) / "final.json").read_text()) for r in g["runs"]]
        assert g["scores"] == [f["final"]["score_mean"] for f in finals]
        assert g["behaviour"] == pytest.approx(finals[0]["behaviour_score_mean"])
        assert f"| {g['dataset']} | {g['condition']} | 2 |" in rep.stdout
    (png,) = (tmp_path / "report").glob("curves_*.png")
    assert png.stat().st_size > 5000
    assert set(report["values"]) == {"agent=td3bc"} and "## Value estimates" in rep.stdout  # BC has no critics

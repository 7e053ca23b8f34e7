"""benchmarks/gpu_budget_report.py: the GPU check's budget archive becomes a table of each job's progress and curve."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import yaml

from tests.helpers import ROOT


def write_job(folder, evals, steps_per_s):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        yaml.safe_dump({"cuda_graphs": True, "total_updates": 3000000, "dynamics": {"max_epochs": 25}})
    )
    (folder / "eval.csv").write_text("step,score_mean\n" + "".join(f"{s},{v}\n" for s, v in evals))
    (folder / "train.csv").write_text(f"step,updates_per_s\n10000,{steps_per_s / 2}\n{evals[-1][0]},{steps_per_s}\n")
    (folder / "rc.txt").write_text("124\n")


def test_the_report_reads_the_archive_and_gives_each_jobs_progress_best_and_last(tmp_path):
    budget = tmp_path / "out" / "budget"
    write_job(budget / "mopo_hopper-medium-replay", [(10000, 10.3), (20000, 24.1), (30000, 19.0)], 182.0)
    write_job(budget / "td3bc_hopper-medium-replay", [(10000, 13.5)], 312.0)
    (budget / "smi.csv").write_text("2026/12/04 18:00:00.000, 90, 10000\n2026/12/04 18:00:02.000, 100, 10898\n")
    with tarfile.open(tmp_path / "budget.tar.gz", "w:gz") as tar:
        tar.add(budget, arcname="budget")
    name = tmp_path / "report"  # an absolute name: the files go there, not into benchmarks/results
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_budget_report.py"), str(tmp_path / "budget.tar.gz")]
    done = subprocess.run([*cmd, "--name", str(name)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads(name.with_suffix(".json").read_text())
    jobs = {j["method"]: j for j in report["jobs"]}
    assert jobs["mopo"]["updates_reached"] == 30000 and jobs["mopo"]["updates_per_s"] == 182.0
    assert jobs["mopo"]["best"] == {"step": 20000, "score": 24.1} and jobs["mopo"]["last"]["score"] == 19.0
    assert jobs["td3bc"]["dataset"] == "hopper-medium-replay" and jobs["td3bc"]["exit"] == "124"
    assert report["gpu_util_mean_pct"] == 95.0 and report["gpu_memory_max_mib"] == 10898.0
    md = name.with_suffix(".md").read_text()
    assert "| hopper-medium-replay | mopo | 30000 | 182 | 24.1 (20000) | 19.0 (30000) |" in md
    assert "hopper-medium-replay mopo: 10k 10.3, 20k 24.1, 30k 19" in md
    assert name.with_suffix(".png").exists()

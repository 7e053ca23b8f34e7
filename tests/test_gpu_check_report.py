"""The summary of benchmarks/gpu_check.sh (``benchmarks/gpu_check_report.py summary``, run as the script runs
it): the RAVL projection and the files it reads and writes."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check_report.py"
PAPER_UPDATES = 3_000_000  # the published RAVL run: 3000 epochs x 1000 updates


def write_train_csv(path, rows):
    """rows: (step, loop seconds at that step) -> train.csv with the cumulative updates_per_s the job logs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["step,critic_loss,updates_per_s"] + [f"{s},1.0,{s / t}" for s, t in rows]
    path.write_text("\n".join(lines) + "\n")


def summary(tmp_path, quick=False, device="cuda", ravl_updates=4000, wall_s=420):
    """Run ``summary OUT WORK ...`` on ``tmp_path/out`` and ``tmp_path/work``; the results it wrote."""
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    argv = [str(out), str(work), device, "1" if quick else "0", str(ravl_updates), str(wall_s)]
    done = subprocess.run([sys.executable, str(SCRIPT), "summary", *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "results.json").read_text())


def test_projection_is_the_steady_state_time_per_update_times_3m(tmp_path):
    # 30 s of warm-up and first rollout round before step 1000, then 20 s per 1000 updates with their round.
    write_train_csv(
        tmp_path / "work" / "runs" / "ravl" / "train.csv", [(1000, 50.0), (2000, 70.0), (3000, 90.0), (4000, 110.0)]
    )
    out = summary(tmp_path)["ravl"]
    assert out["steady_window"] == [1000, 4000]
    assert out["steady_s_per_update_with_rollouts"] == pytest.approx(0.02)
    assert out["projected_hours_3M_updates"] == pytest.approx(0.02 * PAPER_UPDATES / 3600)
    assert out["loop_s"] == pytest.approx(110.0)
    assert "QUICK" in summary(tmp_path, quick=True)["ravl"]["projection_note"]


def test_no_projection_from_one_row_or_no_file(tmp_path):
    assert "loop_s" not in summary(tmp_path)["ravl"]
    write_train_csv(tmp_path / "work" / "runs" / "ravl" / "train.csv", [(1000, 50.0)])
    ravl = summary(tmp_path)["ravl"]
    assert ravl["loop_s"] == pytest.approx(50.0) and "projected_hours_3M_updates" not in ravl


def test_fields_pad_missing_columns(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "items.tsv").write_text("ok\t0\t12\nskipped\t\t0\nwheels\n")
    items = summary(tmp_path)["items"]
    assert items == [
        {"item": "ok", "status": "0", "exit": "12", "wall_s": 0},
        {"item": "skipped", "status": "", "exit": "0", "wall_s": 0},
        {"item": "wheels", "status": "", "exit": "", "wall_s": 0},
    ]


def test_gpu_samples_skip_unreadable_lines(tmp_path):
    (tmp_path / "work").mkdir()
    smi = tmp_path / "work" / "ravl_smi.csv"
    smi.write_text("2026/01/01 00:00:00.000, 40, 1000\n2026/01/01 00:00:01.000, 60, 3000\n[N/A], [N/A]\n")
    ravl = summary(tmp_path)["ravl"]
    assert ravl["gpu_util_mean_pct"] == 50.0 and ravl["gpu_memory_max_mib"] == 3000.0
    smi.unlink()
    assert "gpu_util_mean_pct" not in summary(tmp_path)["ravl"]


def test_summary_reads_items_smoke_jobs_and_the_ravl_run(tmp_path, monkeypatch):
    monkeypatch.setenv("RAVL_OVERRIDES", "cuda_graphs=true  seed=3")
    out, work = tmp_path / "out", tmp_path / "work"
    (work / "smoke").mkdir(parents=True)
    (work / "runs" / "smoke_agent_bc").mkdir(parents=True)
    (work / "runs" / "ravl").mkdir(parents=True)
    items = ["wheels\tok\t0\t3", "smoke\tfailed\t1\t90", "ravl\tok\t0\t30", "throughput\tskipped\t\t0"]
    (work / "items.tsv").write_text("\n".join(items) + "\n")
    (work / "smoke" / "agent_bc.status").write_text("ok\t0\t21\n")
    (work / "runs" / "smoke_agent_bc" / "final.json").write_text(json.dumps({"final": {"return_mean": 12.5}}))
    (work / "smoke" / "agent_cql.status").write_text("timeout\t124\t150\n")
    (work / "smoke" / "agent_cql.log").write_text("starting\nRuntimeError: expected all tensors on cuda:0\n\n")
    write_train_csv(work / "runs" / "ravl" / "train.csv", [(1000, 40.0), (4000, 100.0)])

    results = summary(tmp_path)

    assert [i["status"] for i in results["items"]] == ["ok", "failed", "ok", "skipped"]
    by_job = {r["job"]: r for r in results["smoke"]}
    assert by_job["agent_bc"]["final_return"] == 12.5 and "error" not in by_job["agent_bc"]
    assert by_job["agent_cql"]["error"] == "RuntimeError: expected all tensors on cuda:0"
    assert results["ravl"]["projected_hours_3M_updates"] == pytest.approx(0.02 * PAPER_UPDATES / 3600)
    assert results["wall_s"] == 420
    md = (out / "summary.md").read_text()
    assert "| agent_cql | timeout | 150 |  |" in md
    assert "16.7 h projected for 3M updates" in md
    assert results["ravl"]["overrides"] == ["cuda_graphs=true", "seed=3"]
    assert "## RAVL, experiment=ravl_paper cuda_graphs=true seed=3 on hopper-medium" in md

    # Without the ravl item (ONLY left it out) there is no RAVL section.
    (work / "items.tsv").write_text("wheels\tok\t0\t3\nsmoke\tfailed\t1\t90\n")
    summary(tmp_path)
    assert "## RAVL" not in (out / "summary.md").read_text()


def test_summary_reports_the_resume_check(tmp_path):
    """cuda_graphs_resume_check.py's file becomes a section: one row per run, failures with their error."""
    out = tmp_path / "out"
    out.mkdir()
    runs = {
        "eager": {"ok": True},
        "graphed+eager": {"ok": True, "rel_diff": {"agent": 0.0, "rng": 2e-3}, "bit_for_bit": False},
        "eager+graphed": {"ok": False, "error": "TypeError: RNG state must be a torch.ByteTensor"},
    }
    resume = {"agree": False, "wall_s": 57.0, "agents": {"mopo": {"runs": runs}}}
    (out / "cuda_graphs_resume.json").write_text(json.dumps(resume))
    summary(tmp_path)
    md = (out / "summary.md").read_text()
    assert "NOT every run agrees; 57.0 s." in md
    assert "| mopo | graphed+eager | True | False | 2.0e-03 |  |" in md
    assert "| mopo | eager+graphed | False |  |  | TypeError: RNG state must be a torch.ByteTensor |" in md


def test_summary_reports_cuda_graphs_and_the_ratios_to_offlinerl_kit(tmp_path):
    """cuda_graphs_check.py's file (one agent, one failed case) and throughput.py's OfflineRL-Kit
    sections become summary sections."""
    out = tmp_path / "out"
    out.mkdir()
    agent = {
        "max_rel_diff_state": 0.0,
        "max_rel_diff_metrics": 0.0,
        "bitwise_equal": True,
        "agree": True,
        "eager_updates_per_s": 150.0,
        "graphed_updates_per_s": 600.0,
        "speedup": 4.0,
    }
    cuda_graphs = {
        "tolerance": 1e-4,
        "wall_s": 41.0,
        "all_agree": False,
        "agents": {"edac_n10": agent, "td3bc": {"agree": False, "error": "RuntimeError: capture failed"}},
    }
    (out / "cuda_graphs.json").write_text(json.dumps(cuda_graphs))
    reference = {"commit": "e3ce6970000"}
    throughput = {
        "offlinerl_kit_side_by_side": {"rows": 20000, "ratio": 1.5, "reference": reference,
                                       "offlinerl_kit": {"median_rate": 400.0}},
        "offlinerl_kit_edac": {"ratio": 1.2, "ratio_cuda_graphs": 4.8, "reference": reference,
                               "offlinerl_kit": {"median_rate": 120.0}},
    }  # fmt: skip
    (out / "throughput.json").write_text(json.dumps(throughput))

    results = summary(tmp_path)

    assert results["cuda_graphs"]["agents"]["edac_n10"]["speedup"] == 4.0
    assert results["throughput"]["offlinerl_kit_edac"]["ratio_cuda_graphs"] == 4.8
    md = (out / "summary.md").read_text()
    assert "NOT everything agrees (relative tolerance 0.0001)" in md
    assert "| edac_n10 | 0.0e+00 | 0.0e+00 | True | 150 | 600 | x4.00 |" in md
    assert "td3bc: `RuntimeError: capture failed`" in md
    assert "- EDAC update (N=10, 3x256): ours x1.20, with cuda_graphs x4.80 of OfflineRL-Kit e3ce697" in md
    assert "- ensemble fit (20000 rows, one epoch): ours x1.50 of OfflineRL-Kit e3ce697 (400.0 steps/s)" in md

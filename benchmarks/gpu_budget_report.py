"""The budget probe of a GPU window (``gpu_check.sh``'s ``budget`` item) as a table, a plot and a JSON file.

    python benchmarks/gpu_budget_report.py OUT_DIR --name gpu_budget_h200
    python benchmarks/gpu_budget_report.py benchmarks/results/gpu_budget_h200.tar.gz --name gpu_budget_h200

OUT_DIR is the GPU check's output folder (its ``budget.tar.gz``, or the folder ``budget/`` it holds) or such
an archive itself, kept in ``benchmarks/results/`` with the report. In it ``budget/<method>_<dataset>/`` holds
each job's ``config.yaml``, ``eval.csv``, ``train.csv`` and exit status, ``budget/smi.csv`` the GPU's
utilisation. Each job ran a method's published setting (``experiment=<method>_paper`` with its per-task values,
seed 0) until the window's deadline stopped it, so a job is the first part of the published run, evaluated
every ``eval_every`` updates. Per job the report gives how far it got, its rate, the score at each evaluation
(best and last), and beside it the same method's `cpu` preset (final normalised score, IQM over seeds, from
``headline_cpu.json``), so the two budgets can be read together. Writes ``benchmarks/results/<name>.{md,json}``
and ``<name>.png`` (the curves).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.headline import AGENTS, method  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def job(folder: Path) -> dict[str, Any]:
    """One job's setting, progress and curve."""
    method, _, dataset = folder.name.partition("_")
    config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml")) if (folder / "config.yaml").exists() else {}
    evals = [(int(r["step"]), float(r["score_mean"])) for r in rows(folder / "eval.csv")]
    train = rows(folder / "train.csv")
    rc = (folder / "rc.txt").read_text().strip() if (folder / "rc.txt").exists() else None
    out: dict[str, Any] = {
        "method": method,
        "dataset": dataset,
        "exit": rc,
        "cuda_graphs": config.get("cuda_graphs"),
        "total_updates_configured": config.get("total_updates"),
        "updates_reached": int(train[-1]["step"]) if train else 0,
        "updates_per_s": float(train[-1]["updates_per_s"]) if train else None,
        "curve": evals,
    }
    if evals:
        best = max(evals, key=lambda e: e[1])
        out |= {"best": {"step": best[0], "score": best[1]}, "last": {"step": evals[-1][0], "score": evals[-1][1]}}
    return out


def cpu_presets() -> dict[tuple[str, str], dict[str, Any]]:
    """(dataset, headline row) -> the `cpu` preset's final IQM, its CI and seeds (headline_cpu.json)."""
    path = RESULTS / "headline_cpu.json"
    groups = json.loads(path.read_text())["groups"] if path.exists() else []
    return {(g["dataset"], g["condition"]): g for g in groups}


def gpu_utilisation(path: Path) -> dict[str, float]:
    util, mem = [], []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].replace(".", "").isdigit():
            util.append(float(parts[1]))
            mem.append(float(parts[2]))
    return {"gpu_util_mean_pct": sum(util) / len(util), "gpu_memory_max_mib": max(mem)} if util else {}


def markdown(report: dict[str, Any], name: str) -> str:
    md = [
        f"# The published settings for a GPU window's length ({name})",
        "",
        f"Made by `python benchmarks/gpu_budget_report.py benchmarks/results/{name}.tar.gz --name {name}` from "
        "`benchmarks/gpu_check.sh`'s `budget` item (its jobs' logs, curves and configs are in that archive): "
        "every job at once on one GPU, seed 0, each method's `experiment=<method>_paper` with the "
        "per-task values of the dataset's D4RL namesake, the dynamics fit capped at "
        f"{report['fit_epochs']} epochs (the `cpu` preset's), `cuda_graphs={report['cuda_graphs']}`, stopped by the "
        "window's deadline. A job is the first part of the published run (its schedules are the 3M-update run's).",
        "",
        "cpu preset: the same method's `cpu` preset on the same dataset, final score IQM over its seeds with the "
        "95 % CI (`headline_cpu.md`), for the budget that preset has.",
        "",
        "| dataset | method | updates reached | updates/s | best (at update) | last (at update) | cpu preset |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in report["jobs"]:
        cpu = j.get("cpu_preset")
        lo, hi = cpu["iqm_ci"] if cpu else (0, 0)
        cpu_s = f"{cpu['iqm']:.1f} [{lo:.1f}, {hi:.1f}] ({cpu['num_seeds']})" if cpu else "-"
        best = f"{j['best']['score']:.1f} ({j['best']['step']})" if "best" in j else "-"
        last = f"{j['last']['score']:.1f} ({j['last']['step']})" if "last" in j else "-"
        rate = f"{j['updates_per_s']:.0f}" if j["updates_per_s"] else "-"
        md.append(f"| {j['dataset']} | {j['method']} | {j['updates_reached']} | {rate} | {best} | {last} | {cpu_s} |")
    md += ["", "Curves (normalised score at each evaluation):", ""]
    for j in report["jobs"]:
        curve = ", ".join(f"{s / 1000:g}k {v:.1f}" for s, v in j["curve"]) or "(no evaluation)"
        md.append(f"- {j['dataset']} {j['method']}: {curve}")
    if "gpu_util_mean_pct" in report:
        md += [
            "",
            f"GPU utilisation {report['gpu_util_mean_pct']:.0f} % on average, "
            f"{report['gpu_memory_max_mib']:.0f} MiB of memory in use at most.",
        ]
    return "\n".join(md) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({j["dataset"] for j in report["jobs"]})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for j in (j for j in report["jobs"] if j["dataset"] == dataset and j["curve"]):
            steps, scores = zip(*j["curve"], strict=True)
            ax.plot([s / 1000 for s in steps], scores, marker="o", label=j["method"])
        ax.set(title=dataset, xlabel="updates (k)", ylabel="normalised score")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path, help="the GPU check's output folder, or its budget.tar.gz")
    p.add_argument("--name", required=True)
    args = p.parse_args(argv)
    budget = args.out_dir / "budget"
    archive = args.out_dir if args.out_dir.is_file() else args.out_dir / "budget.tar.gz"
    if not budget.is_dir() and archive.exists():
        unpacked = Path(tempfile.mkdtemp(prefix="gpu_budget_"))
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        budget = unpacked / "budget"
    folders = sorted(f for f in budget.iterdir() if f.is_dir() and not f.name.endswith("_graphed_failed"))
    if not folders:
        print(f"no jobs in {budget}", file=sys.stderr)
        return 1
    cpu = cpu_presets()
    # The headline's row for each method: the first row that runs it (the preset's, not a pinned old setting).
    headline_row = {}
    for label in AGENTS:
        headline_row.setdefault(method(label), label)
    jobs = []
    for folder in folders:
        j = job(folder)
        if (g := cpu.get((j["dataset"], headline_row.get(j["method"], j["method"])))) is not None:
            j["cpu_preset"] = {k: g[k] for k in ("iqm", "iqm_ci", "num_seeds")}
        jobs.append(j)
    configs = [OmegaConf.load(f / "config.yaml") for f in folders if (f / "config.yaml").exists()]
    report = {
        "jobs": jobs,
        "fit_epochs": configs[0].dynamics.get("max_epochs") if configs else None,
        "cuda_graphs": configs[0].get("cuda_graphs") if configs else None,
        "failed_graphed": sorted(f.name for f in budget.iterdir() if f.name.endswith("_graphed_failed")),
        **gpu_utilisation(budget / "smi.csv"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(report, args.name))
    plot(report, RESULTS / f"{args.name}.png")
    print((RESULTS / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

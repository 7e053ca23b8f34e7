"""The Python side of ``benchmarks/gpu_check.sh``: versions, dataset hashes and the summary of a GPU check.

    python benchmarks/gpu_check_report.py versions REPO SITE          # JSON: Python, torch, CUDA, GPU, packages
    python benchmarks/gpu_check_report.py datasets NAME...            # JSON: built-in datasets' hashes
    python benchmarks/gpu_check_report.py summary OUT WORK DEVICE QUICK RAVL_UPDATES WALL_S

``summary`` reads what the script left in WORK (``items.tsv``, ``smoke/<job>.status``, the runs under
``runs/``, ``datasets.json``, ``ravl_smi.csv``) and in OUT (``env.txt``, ``throughput.json``,
``cuda_graphs.json``) and writes ``OUT/results.json`` and ``OUT/summary.md``. It imports only the standard
library (and ``mbrl`` and ``torch`` for the other two commands), so it runs wherever the check ran.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PAPER_UPDATES = 3_000_000  # the published RAVL run: 3000 epochs x 1000 updates
# Not carried to the GPU machine on purpose (benchmarks/gpu_wheels.sh): not an unmet requirement.
LEFT_OUT = {"mujoco-studio"}
PACKAGES = [
    "numpy",
    "gymnasium",
    "mujoco",
    "mujoco-core",
    "minari",
    "h5py",
    "hydra-core",
    "omegaconf",
    "tqdm",
    "matplotlib",
    "packaging",
    "typing-extensions",
    "pyyaml",
    "wandb",
]


# -- versions -------------------------------------------------------------------------------------------
def versions(repo: Path, site: Path) -> dict[str, Any]:
    """Python, torch, CUDA, cuDNN, the GPU, the packages the job uses, the git commit, and which requirements of
    the wheels installed into ``site`` (with ``--no-deps``) the machine's own packages do not meet."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    out["platform"] = platform.platform()
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out["gpu"] = {
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "memory_gib": p.total_memory / 2**30,
            "multiprocessors": p.multi_processor_count,
            "count": torch.cuda.device_count(),
        }
    out["packages"] = {}
    for name in PACKAGES:
        try:
            out["packages"][name] = version(name)
        except PackageNotFoundError:
            out["packages"][name] = None

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    out["git_commit"] = git("rev-parse", "HEAD") or None
    out["git_changed_files"] = len(git("status", "--porcelain").splitlines())
    out["carried_wheels_unmet_requirements"] = unmet_requirements(site)
    return out


def unmet_requirements(site: Path) -> list[str]:
    """Requirements of the distributions in ``site`` that no installed distribution satisfies."""
    from importlib.metadata import PackageNotFoundError, distributions, version

    try:
        from packaging.requirements import Requirement
    except ImportError as e:
        return [f"not checked: {e}"]
    unmet = set()
    for dist in distributions(path=[str(site)]):
        for text in dist.requires or []:
            req = Requirement(text)
            if (req.marker is not None and not req.marker.evaluate({"extra": ""})) or req.name in LEFT_OUT:
                continue
            try:
                have = version(req.name)
            except PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.add(f"{dist.metadata['Name']} requires {req}, found {have}")
    return sorted(unmet)


def dataset_hashes(names: list[str]) -> dict[str, Any]:
    """The content hash of each built-in dataset on disk against the recorded one, and the library versions."""
    from mbrl.data.builtin import builtin_hash, installed_versions, recorded_hashes

    recorded = recorded_hashes()
    rows = {}
    for name in names:
        h = builtin_hash(name)
        rows[name] = {"hash": h, "recorded": recorded.get(name), "matches_recorded": h == recorded.get(name)}
    return {"datasets": rows, "versions": installed_versions()}


# -- summary --------------------------------------------------------------------------------------------
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fields(line: str, n: int) -> list[str]:
    """The first ``n`` tab-separated fields of ``line``, padded with empty strings."""
    return [*line.rstrip("\n").split("\t"), *[""] * n][:n]


def ravl_projection(train_csv: Path, quick: bool) -> dict[str, Any]:
    """Steady-state seconds per update, rollout rounds included, from the run's ``train.csv``, and the wall time
    of the published 3M updates at that rate.

    ``updates_per_s`` is cumulative from the start of the loop (a fresh run), so ``step / updates_per_s`` is the
    loop's elapsed time at each logged step; the window from the first to the last logged step leaves out the
    warm-up (first rollout round, first CUDA kernels) and holds one rollout round per ``rollout.every`` updates.
    """
    out: dict[str, Any] = {}
    if not train_csv.exists():
        return out
    with open(train_csv) as f:
        rows = [r for r in csv.DictReader(f) if r.get("updates_per_s")]
    if not rows:
        return out
    elapsed = [(int(r["step"]), int(r["step"]) / float(r["updates_per_s"])) for r in rows]
    out["loop_s"] = elapsed[-1][1]
    out["updates_per_s_overall"] = float(rows[-1]["updates_per_s"])
    if len(elapsed) < 2:
        return out
    (s0, t0), (s1, t1) = elapsed[0], elapsed[-1]
    per_update = (t1 - t0) / (s1 - s0)
    out["steady_window"] = [s0, s1]
    out["steady_s_per_update_with_rollouts"] = per_update
    out["projected_hours_3M_updates"] = per_update * PAPER_UPDATES / 3600
    out["projection_note"] = (
        "QUICK: reduced rollouts and updates, plumbing only; not a projection of the published run"
        if quick
        else f"3M updates with a 50k x 5 rollout round every 1000 updates, from the steady-state window [{s0}, {s1}]; "
        "evaluation (every 10k updates), diagnostics, checkpoints and the dynamics fit excluded"
    )
    return out


def gpu_samples(path: Path) -> dict[str, float]:
    """Mean utilisation and peak memory from ``nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used
    --format=csv,noheader,nounits -l 1`` output."""
    util, mem = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                util.append(float(parts[1]))
                mem.append(float(parts[2]))
            except (IndexError, ValueError):
                continue
    return {"gpu_util_mean_pct": sum(util) / len(util), "gpu_memory_max_mib": max(mem)} if util else {}


def summarize(out: Path, work: Path, device: str, quick: bool, ravl_updates: int, wall_s: int) -> dict[str, Any]:
    """Write ``out/results.json`` and ``out/summary.md`` from the check's files; returns the results."""
    items = []
    items_file = work / "items.tsv"
    for line in items_file.read_text().splitlines() if items_file.exists() else []:
        name, status, rc, secs = fields(line, 4)
        items.append({"item": name, "status": status, "exit": rc, "wall_s": int(secs or 0)})

    smoke = []
    for status_file in sorted((work / "smoke").glob("*.status")):
        name = status_file.stem
        status, rc, secs = fields(status_file.read_text(), 3)
        final = read_json(work / "runs" / f"smoke_{name}" / "final.json") or {}
        row: dict[str, Any] = {"job": name, "status": status, "exit": rc, "wall_s": int(secs or 0)}
        row["final_return"] = (final.get("final") or {}).get("return_mean")
        log = work / "smoke" / f"{name}.log"
        if status != "ok" and log.exists():
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            row["error"] = lines[-1][:300] if lines else ""
        smoke.append(row)

    run = work / "runs" / "ravl"
    ravl = {"updates": ravl_updates, "paper_setting": not quick, **ravl_projection(run / "train.csv", quick)}
    ravl["overrides"] = os.environ.get("RAVL_OVERRIDES", "").split()  # gpu_check.sh's, beyond the item's own
    ravl["final"] = (read_json(run / "final.json") or {}).get("final")
    ravl |= gpu_samples(work / "ravl_smi.csv")

    throughput = read_json(out / "throughput.json")
    throughput_keys = ("workloads", "projection", "sgemm_gflops", "pipeline", "wall_s")
    throughput_keys += ("offlinerl_kit_side_by_side", "offlinerl_kit_edac")
    env_file = out / "env.txt"
    env_text = env_file.read_text(errors="replace") if env_file.exists() else ""
    version_info = None
    if "# versions (JSON)" in env_text:
        try:
            version_info = json.loads(env_text.split("# versions (JSON)", 1)[1].strip())
        except ValueError:
            version_info = None
    results = {
        "device": device,
        "quick": quick,
        "wall_s": wall_s,
        "items": items,
        "smoke": smoke,
        "datasets": read_json(work / "datasets.json"),
        "ravl": ravl,
        "versions": version_info,
        "throughput": {k: throughput.get(k) for k in throughput_keys} if throughput else None,
        "cuda_graphs": read_json(out / "cuda_graphs.json"),
        "cuda_graphs_resume": read_json(out / "cuda_graphs_resume.json"),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    """``summary.md``: versions, items, smoke jobs, dataset hashes, the RAVL projection, the throughput rates."""
    md = [f"# GPU check ({results['device']}{', QUICK' if results['quick'] else ''}), {results['wall_s']} s", ""]
    v = results["versions"]
    if v:
        pk = v["packages"]
        md.append(
            f"{(v.get('gpu') or {}).get('name', 'no GPU')}; Python {v['python']}, torch {v['torch']} (CUDA "
            f"{v['torch_cuda']}), numpy {pk.get('numpy')}, gymnasium {pk.get('gymnasium')}, mujoco {pk.get('mujoco')}; "
            f"git {(v.get('git_commit') or '?')[:10]} ({v.get('git_changed_files')} files changed)"
        )
        if v.get("carried_wheels_unmet_requirements"):
            md += ["", "Requirements of the carried wheels that the machine does not meet:", ""]
            md += [f"- {u}" for u in v["carried_wheels_unmet_requirements"]]
        md.append("")
    md += ["| item | status | wall s |", "|---|---|---|"]
    md += [f"| {i['item']} | {i['status']} | {i['wall_s']} |" for i in results["items"]]
    if results["smoke"]:
        md += ["", "## Smoke jobs (scale=smoke, halfcheetah-medium)", "", "| job | status | wall s | final return |"]
        md.append("|---|---|---|---|")
        for r in results["smoke"]:
            ret = "" if r["final_return"] is None else f"{r['final_return']:.1f}"
            md.append(f"| {r['job']} | {r['status']} | {r['wall_s']} | {ret} |")
        md += [f"\n{r['job']}: `{r['error']}`" for r in results["smoke"] if r.get("error")]
    if results["datasets"]:
        md += ["", "## Built-in datasets", ""]
        for name, d in results["datasets"]["datasets"].items():
            same = "matches" if d["matches_recorded"] else "DIFFERS from"
            md.append(f"- {name}: content hash {d['hash'][:12]}, {same} the recorded one")
    if any(i["item"] == "ravl" for i in results["items"]):  # asked for (ONLY)
        md += ravl_markdown(results["ravl"])
    md += cuda_graphs_markdown(results.get("cuda_graphs"))
    md += resume_markdown(results.get("cuda_graphs_resume"))
    tp = results["throughput"]
    if tp and tp.get("workloads"):
        md += ["", "## throughput.py --quick", "", "| workload | median | unit |", "|---|---|---|"]
        md += [f"| {name} | {row['median']:.1f} | {row['unit']} |" for name, row in tp["workloads"].items()]
        if tp.get("projection"):
            md.append(f"\nRAVL projection from the workloads: {tp['projection']['hours']:.1f} h (evaluation excluded).")
    if tp:
        md += offlinerl_kit_markdown(tp.get("offlinerl_kit_side_by_side"), tp.get("offlinerl_kit_edac"))
    return "\n".join(md) + "\n"


def ravl_markdown(ravl: dict[str, Any]) -> list[str]:
    """The section of the ravl item: the projection of the published run and the GPU's load."""
    extra = "".join(f" {o}" for o in ravl.get("overrides", []))
    md = ["", f"## RAVL, experiment=ravl_paper{extra} on hopper-medium", ""]
    if "projected_hours_3M_updates" in ravl:
        md.append(
            f"{ravl['updates']} updates, {ravl['updates_per_s_overall']:.1f} updates/s overall; steady state "
            f"{1000 * ravl['steady_s_per_update_with_rollouts']:.2f} ms per update with rollouts: "
            f"**{ravl['projected_hours_3M_updates']:.1f} h projected for 3M updates**. {ravl['projection_note']}."
        )
    else:
        md.append("fewer than two logged training rows: no projection (see log.txt)")
    if "gpu_util_mean_pct" in ravl:
        md.append(
            f"\nGPU utilisation {ravl['gpu_util_mean_pct']:.0f} % on average over the job, "
            f"{ravl['gpu_memory_max_mib']:.0f} MiB of memory in use at most."
        )
    return md


def resume_markdown(res: dict[str, Any] | None) -> list[str]:
    """The section of ``cuda_graphs_resume_check.py``'s results: each resumed run against the uninterrupted one."""
    if not res:
        return []
    verdict = "every run agrees with the uninterrupted eager one" if res["agree"] else "NOT every run agrees"
    md = ["", "## Resumes with cuda_graphs switched (cuda_graphs_resume_check.py)", ""]
    md += [f"{verdict}; {res['wall_s']} s.", ""]
    md += ["| agent | run | ok | bit for bit | largest rel. diff. | error |", "|---|---|---|---|---|---|"]
    for agent, a in res["agents"].items():
        for run, r in a["runs"].items():
            worst = max(r["rel_diff"].values()) if r.get("rel_diff") else None
            diff = "" if worst is None else f"{worst:.1e}"
            error = r.get("error", "")[:120]
            md.append(f"| {agent} | {run} | {r['ok']} | {r.get('bit_for_bit', '')} | {diff} | {error} |")
    return md


def cuda_graphs_markdown(cg: dict[str, Any] | None) -> list[str]:
    """The section of ``cuda_graphs_check.py``'s results: agreement and speed-up per agent."""
    if not cg:
        return []
    verdict = "everything agrees" if cg.get("all_agree") else "NOT everything agrees"
    md = ["", "## CUDA graphs against eager (cuda_graphs_check.py)", ""]
    md.append(f"{verdict} (relative tolerance {cg['tolerance']:g}); {cg['wall_s']:.0f} s.")
    md += ["", "| agent | rel. diff. state | rel. diff. metrics | bit for bit | eager /s | graphed /s | speed-up |"]
    md.append("|---|---|---|---|---|---|---|")
    errors = []
    for case, r in cg["agents"].items():
        if "error" in r:
            md.append(f"| {case} | error | | | | | |")
            errors.append(f"{case}: `{r['error'][:300]}`")
            continue
        md.append(
            f"| {case} | {r['max_rel_diff_state']:.1e} | {r['max_rel_diff_metrics']:.1e} | {r['bitwise_equal']} | "
            f"{r['eager_updates_per_s']:.0f} | {r['graphed_updates_per_s']:.0f} | x{r['speedup']:.2f} |"
        )
    return md + [f"\n{e}" for e in errors]


def offlinerl_kit_markdown(fit: dict[str, Any] | None, edac: dict[str, Any] | None) -> list[str]:
    """The ratios to OfflineRL-Kit that ``throughput.py --reference-offlinerl-kit`` measured on this machine."""
    md = []
    if fit:
        md.append(
            f"- ensemble fit ({fit['rows']} rows, one epoch): ours x{fit['ratio']:.2f} of OfflineRL-Kit "
            f"{fit['reference']['commit'][:7]} ({fit['offlinerl_kit']['median_rate']:.1f} steps/s)"
        )
    if edac:
        graphs = f", with cuda_graphs x{edac['ratio_cuda_graphs']:.2f}" if edac.get("ratio_cuda_graphs") else ""
        md.append(
            f"- EDAC update (N=10, 3x256): ours x{edac['ratio']:.2f}{graphs} of OfflineRL-Kit "
            f"{edac['reference']['commit'][:7]} ({edac['offlinerl_kit']['median_rate']:.1f} updates/s)"
        )
    return ["", "## Against OfflineRL-Kit on this machine", "", *md] if md else []


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "versions":
        print(json.dumps(versions(Path(args[0]), Path(args[1])), indent=1))
    elif command == "datasets":
        print(json.dumps(dataset_hashes(args)))
    elif command == "summary":
        out, work, device, quick, ravl_updates, wall_s = args
        results = summarize(Path(out), Path(work), device, quick == "1", int(ravl_updates), int(wall_s))
        print(markdown(results))
    else:
        raise SystemExit(f"unknown command {command!r}: versions, datasets or summary")


if __name__ == "__main__":
    main(sys.argv[1:])

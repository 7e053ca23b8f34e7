"""Learning benchmark: conditions x datasets x seeds through the training job, summarised over seeds.

    python benchmarks/learning.py --datasets halfcheetah-medium hopper-medium --agents ravl mopo bc \
        --seeds 0 1 2 --scale cpu --workers 2 --name learning_cpu
    python benchmarks/learning.py --name morec_cpu --conditions mopo="agent=mopo" \
        morec-mopo="agent=mopo filter=reward_consistency"
    python benchmarks/learning.py --name zoo_cpu --datasets halfcheetah-medium hopper-medium \
        --conditions prdc="experiment=prdc_cpu" prdc@hopper-medium="agent.alpha=2.5"
    python benchmarks/learning.py --name learning_cpu ... --report-only   # summarise the finished runs

A condition is a name and the overrides that define it (``--agents a b`` is short for
``--conditions a="agent=a" b="agent=b"``); ``name@dataset="..."`` adds overrides on that dataset
only, for the published per-task values. Each run is an ordinary ``mbrl-train`` run in
``benchmarks/runs/<name>/<dataset>/<condition>/seed<k>`` (one torch thread each, ``--workers`` at a
time), so any of them can be inspected, plotted or resumed; finished runs are never rerun. Writes
``benchmarks/results/<name>.json`` and ``.md``: the machine, the commits the runs were made with,
and per (dataset, condition) the final normalised score of every finished seed, their mean, std,
a bootstrap CI, the mean score curve, and the critics' Q against the return the final policy
obtained from the start states (``q_start`` vs ``discounted_return``, the overestimation check).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from mbrl.data.scores import summarize
from mbrl.machine import describe

ROOT = Path(__file__).resolve().parent.parent


def train_in(out: Path, head: list[str], tail: list[str], log_mode: str = "w") -> float | None:
    """Run ``mbrl-train`` on one torch thread into ``out`` (overrides ``head``, the shared ones, then ``tail``),
    its output in ``out/stdout.log`` opened with ``log_mode``; the job's wall seconds, or None when a
    finished run is already there (finished runs are never rerun)."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "final.json").exists():
        return None
    cmd = [
        sys.executable,
        "-m",
        "mbrl.train",
        *head,
        "threads=1",
        "logger.progress=false",
        f"hydra.run.dir={out}",
        *tail,
    ]
    start = time.perf_counter()
    with open(out / "stdout.log", log_mode) as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


# The files of a finished run folder that the reports read: a few kB, unlike its checkpoints and logs.
RUN_RECORD = ("config.yaml", "final.json", "eval.csv", "diagnostics.csv", "git_revision.txt")


def archive_run(run: Path, dest: Path, names: Sequence[str] = RUN_RECORD) -> None:
    """Copy the files ``names`` of run folder ``run`` that exist into ``dest``: the committed record of a run
    whose folder (checkpoints and all) is not committed and may be lost."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (run / name).exists():
            shutil.copy2(run / name, dest / name)


def run_one(dataset: str, overrides: list[str], seed: int, scale: str, out: Path) -> None:
    """Train one run into ``out`` unless it already finished there."""
    train_in(out, [f"dataset={dataset}", f"seed={seed}", f"scale={scale}"], overrides)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def q_values(run_dir: Path) -> tuple[float | None, float | None]:
    """Last and largest logged mean Q-value of a run's training batches (None for agents without critics)."""
    rows = read_rows(run_dir / "train.csv")
    if not rows or "q_mean" not in rows[0]:
        return None, None
    qs = [float(r["q_mean"]) for r in rows]
    return qs[-1], max(qs)


def final_value_check(run_dir: Path, final: dict) -> tuple[float | None, float | None]:
    """The critics' value of the final evaluation's start states and the discounted return obtained, from the run's
    ``final.json`` record ``final`` (which archived runs keep), else from ``final.csv``; None for agents without
    critics."""
    if "q_start" not in final:
        rows = read_rows(run_dir / "final.csv")
        final = rows[-1] if rows else {}
    if "q_start" not in final:
        return None, None
    return float(final["q_start"]), float(final["discounted_return"])


def mean_curve(curves: list[dict[int, float]]) -> list[tuple[int, float]]:
    """Mean over ``curves`` (``{step: value}`` each) at every step they share."""
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return [(step, sum(c[step] for c in curves) / len(curves)) for step in steps]


def score_curve(run_dirs: list[Path]) -> list[tuple[int, float]]:
    """Mean over runs of the normalised evaluation score at each evaluation step they share."""
    return mean_curve([{int(r["step"]): float(r["score_mean"]) for r in read_rows(d / "eval.csv")} for d in run_dirs])


def machine(run_dirs: list[Path]) -> dict:
    """The machine writing the report, the commits of ``run_dirs`` and the processors that finished them
    (``{cpu: runs}``; runs finished before ``final.json`` named its machine count as ``unrecorded``)."""
    revisions = [d / "git_revision.txt" for d in run_dirs]
    commits = sorted({r.read_text().strip() for r in revisions if r.exists()})
    run_cpus: dict[str, int] = {}
    for d in run_dirs:
        final = json.loads((d / "final.json").read_text()) if (d / "final.json").exists() else {}
        cpu = final.get("machine", {}).get("cpu", "unrecorded")
        run_cpus[cpu] = run_cpus.get(cpu, 0) + 1
    return describe() | {"commits": commits, "run_cpus": dict(sorted(run_cpus.items()))}


def run_cpus_text(m: dict) -> str:
    """``machine(...)["run_cpus"]`` in words, for a report's header."""
    counts = m.get("run_cpus") or {}
    return "; ".join(f"{n} on {'an unrecorded processor' if cpu == 'unrecorded' else cpu}" for cpu, n in counts.items())


def parse_conditions(agents: list[str], conditions: list[str]) -> dict[str, dict[str, list[str]]]:
    """``{condition: {"": overrides for every dataset, dataset: overrides added on that dataset}}``.

    ``name="a=1 b=2"`` defines a condition; ``name@dataset="c=3"`` adds overrides on one dataset only,
    for the per-task published values (e.g. ``prdc@hopper-medium="agent.alpha=2.5"``).
    """
    out: dict[str, dict[str, list[str]]] = {a: {"": [f"agent={a}"]} for a in agents}
    per_dataset = []
    for item in conditions:
        key, sep, overrides = item.partition("=")
        name, _, dataset = key.partition("@")
        if not sep or not name:
            raise SystemExit(f'--conditions takes name="overrides" or name@dataset="overrides" items, got {item!r}')
        if dataset:
            per_dataset.append((name, dataset, overrides.split()))
        else:
            out[name] = {"": overrides.split()}
    for name, dataset, overrides in per_dataset:
        if name not in out:
            raise SystemExit(f"--conditions {name}@{dataset}=...: define the condition first with {name}=...")
        out[name][dataset] = overrides
    if not out:
        raise SystemExit("give --agents or --conditions")
    return out


def condition_overrides(condition: dict[str, list[str]], dataset: str, extra: list[str]) -> list[str]:
    """A condition's overrides on ``dataset``: its own, then the dataset's, then ``--extra``."""
    return [*condition[""], *condition.get(dataset, []), *extra]


def summarise_rows(
    datasets: list[str], conditions: dict[str, dict[str, list[str]]], extra: list[str], seeds: list[int], runs_dir: Path
) -> list:
    rows = []
    for d in datasets:
        for name, condition in conditions.items():
            overrides = condition_overrides(condition, d, extra)
            dirs = [runs_dir / d / name / f"seed{s}" for s in seeds]
            done = [(s, x) for s, x in zip(seeds, dirs, strict=True) if (x / "final.json").exists()]
            if not done:
                continue
            finals = [json.loads((x / "final.json").read_text()) for _, x in done]
            scores = [f["final"]["score_mean"] for f in finals]
            summary = summarize(torch.tensor(scores))
            q = [q_values(x) for _, x in done]
            check = [final_value_check(x, f["final"]) for (_, x), f in zip(done, finals, strict=True)]
            rows.append(
                {
                    "dataset": d,
                    "condition": name,
                    "overrides": overrides,
                    "seeds": [s for s, _ in done],
                    "scores": scores,
                    "mean": summary.mean,
                    "std": summary.std,
                    "ci95": [summary.ci_low, summary.ci_high],
                    "behaviour": finals[0]["behaviour_score_mean"],
                    "q_last": [x[0] for x in q],
                    "q_max": [x[1] for x in q],
                    "q_start": [x[0] for x in check],
                    "discounted_return": [x[1] for x in check],
                    "curve": score_curve([x for _, x in done]),
                    # How well a learned filter score ranks held-out transitions (MOREC's r_D), per seed.
                    "filter_ranking": [f.get("filter_ranking") for f in finals],
                }
            )
    return rows


def render(name: str, scale: str, result: dict) -> str:
    def fmt(values: list) -> str:
        return ", ".join("–" if v is None else f"{v:.4g}" for v in values)

    m = result["machine"]
    lines = [
        f"# {name}: scale={scale}",
        "",
        f"commits {', '.join(c[:10] for c in m['commits'])}; {m['cores']} cores, torch {m['torch']}, "
        f"{result['wall_minutes']:.0f} min wall for this invocation",
        "",
        "| dataset | condition | score (mean ± std over seeds) | 95 % CI | per seed | behaviour | final mean Q "
        "per seed | max mean Q per seed | Q(s0) vs discounted return per seed | mean score at each evaluation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        pairs = zip(r["q_start"], r["discounted_return"], strict=True)
        check = ", ".join("–" if q is None else f"{q:.0f} vs {g:.0f}" for q, g in pairs)
        # One seed has no spread: say so rather than print a std of 0 and a point-sized interval.
        several = len(r["scores"]) > 1
        score = f"{r['mean']:.1f} ± {r['std']:.1f}" if several else f"{r['mean']:.1f} (one seed)"
        ci = f"[{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]" if several else "–"
        lines.append(
            f"| {r['dataset']} | {r['condition']} | {score} | {ci} | {fmt(r['scores'])} | {r['behaviour']:.1f} | "
            f"{fmt(r['q_last'])} | {fmt(r['q_max'])} | {check} | {', '.join(f'{v:.1f}' for _, v in r['curve'])} |"
        )
    ranked = [r for r in result["rows"] if any(r.get("filter_ranking") or [])]
    if ranked:
        lines += [
            "",
            "Learned filter score on held-out transitions, per seed: ROC-AUC of the true next state against a "
            "model sample for the same (s, a), and against the true next state moved by 1 sigma of the "
            "model's error (0.5 = no ranking); the share of those true transitions that MOREC's published "
            "threshold (r_D < 0.6) would stop, and r_D's 5 % quantile on them (– where a run predates it).",
            "",
            "| dataset | condition | AUC vs model sample | AUC vs 1-sigma perturbation | "
            "real below 0.6 | real r_D 5 % |",
            "|---|---|---|---|---|---|",
        ]
        for r in ranked:
            seeds = [x or {} for x in r["filter_ranking"]]
            cols = [
                fmt([x.get(f"filter_{key}") for x in seeds])
                for key in ("auc_model_sample", "auc_perturbed", "real_below_published", "real_p05")
            ]
            lines.append(f"| {r['dataset']} | {r['condition']} | {' | '.join(cols)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["halfcheetah-medium"])
    p.add_argument("--agents", nargs="*", default=[], help="conditions that differ only in agent=<name>")
    p.add_argument(
        "--conditions", nargs="*", default=[], help='name="override ..." and name@dataset="override ..." items'
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--scale", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--name", default="learning_cpu")
    p.add_argument("--extra", nargs="*", default=[], help="further overrides for every run")
    p.add_argument(
        "--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs", help="run folders go in <this>/<name>"
    )
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs, start none")
    a = p.parse_args(argv)
    conditions = parse_conditions(a.agents, a.conditions)
    # A condition list may name datasets this invocation does not run; a misspelt one would be silent.
    for name, condition in conditions.items():
        for dataset in set(condition) - {"", *a.datasets}:
            print(f"note: {name}@{dataset} matches none of --datasets {' '.join(a.datasets)}", file=sys.stderr)

    runs_dir = a.runs_dir / a.name
    # Condition-major order, so the cheap conditions listed first finish first.
    grid = [(d, c, s) for c in conditions for d in a.datasets for s in a.seeds]
    t0 = time.time()
    if not a.report_only:
        with ThreadPoolExecutor(a.workers) as pool:
            jobs = [
                pool.submit(
                    run_one,
                    d,
                    condition_overrides(conditions[c], d, a.extra),
                    s,
                    a.scale,
                    runs_dir / d / c / f"seed{s}",
                )
                for d, c, s in grid
            ]
            for job in jobs:
                job.result()

    rows = summarise_rows(a.datasets, conditions, a.extra, a.seeds, runs_dir)
    dirs = [runs_dir / d / c / f"seed{s}" for d, c, s in grid]
    result = {"machine": machine(dirs), "scale": a.scale, "wall_minutes": (time.time() - t0) / 60, "rows": rows}
    out = a.results_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(a.name, a.scale, result)
    (out / f"{a.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

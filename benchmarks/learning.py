"""Learning benchmark: agents x datasets x seeds through the training job, summarised over seeds.

    python benchmarks/learning.py --datasets halfcheetah-medium --agents ravl mopo bc \
        --seeds 0 1 2 --scale cpu --workers 2 --name learning_cpu

Each run is an ordinary ``mbrl-train`` run in ``benchmarks/runs/<name>/<dataset>/<agent>/seed<k>``
(one torch thread each, ``--workers`` at a time), so any of them can be inspected or resumed.
Writes ``benchmarks/results/<name>.json`` and ``.md`` with the machine, the commit and, per
(dataset, agent), the final normalised score of every seed, their mean, std and a bootstrap CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from mbrl.data.scores import summarize

ROOT = Path(__file__).resolve().parent.parent


def run_one(dataset: str, agent: str, seed: int, scale: str, out: Path, extra: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "final.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "mbrl.train",
            f"agent={agent}",
            f"dataset={dataset}",
            f"seed={seed}",
            f"scale={scale}",
            "threads=1",
            "logger.progress=false",
            f"hydra.run.dir={out}",
            *extra,
        ]
        with open(out / "stdout.log", "w") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads((out / "final.json").read_text())


def q_values(run_dir: Path) -> tuple[float | None, float | None]:
    """Last and largest logged mean Q-value of a run (None for agents without critics)."""
    with open(run_dir / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "q_mean" not in rows[0]:
        return None, None
    qs = [float(r["q_mean"]) for r in rows]
    return qs[-1], max(qs)


def score_curve(run_dirs: list[Path]) -> list[tuple[int, float]]:
    """Mean over runs of the normalised evaluation score at each evaluation step they share."""
    curves = []
    for run_dir in run_dirs:
        with open(run_dir / "eval.csv", newline="") as f:
            curves.append({int(r["step"]): float(r["score_mean"]) for r in csv.DictReader(f)})
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return [(step, sum(c[step] for c in curves) / len(curves)) for step in steps]


def machine() -> dict:
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": rev,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["halfcheetah-medium"])
    p.add_argument("--agents", nargs="+", default=["ravl", "mopo", "bc"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--scale", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--name", default="learning_cpu")
    p.add_argument("--extra", nargs="*", default=[], help="further overrides for every run")
    a = p.parse_args(argv)

    # Agent-major order, so the cheap agents of a grid finish first when it runs one at a time.
    grid = [(d, ag, s) for ag in a.agents for d in a.datasets for s in a.seeds]
    runs_dir = ROOT / "benchmarks" / "runs" / a.name
    t0 = time.time()
    with ThreadPoolExecutor(a.workers) as pool:
        futures = {
            key: pool.submit(run_one, *key, a.scale, runs_dir / key[0] / key[1] / f"seed{key[2]}", a.extra)
            for key in grid
        }
        finals = {key: f.result() for key, f in futures.items()}

    rows = []
    for d in a.datasets:
        for ag in a.agents:
            scores = [finals[(d, ag, s)]["final"]["score_mean"] for s in a.seeds]
            summary = summarize(torch.tensor(scores))
            behaviour = finals[(d, ag, a.seeds[0])]["behaviour_score_mean"]
            dirs = [runs_dir / d / ag / f"seed{s}" for s in a.seeds]
            q = [q_values(x) for x in dirs]
            rows.append(
                {
                    "dataset": d,
                    "agent": ag,
                    "seeds": a.seeds,
                    "scores": scores,
                    "mean": summary.mean,
                    "std": summary.std,
                    "ci95": [summary.ci_low, summary.ci_high],
                    "behaviour": behaviour,
                    "q_last": [x[0] for x in q],
                    "q_max": [x[1] for x in q],
                    "curve": score_curve(dirs),
                }
            )
    result = {
        "machine": machine(),
        "scale": a.scale,
        "extra": a.extra,
        "wall_minutes": (time.time() - t0) / 60,
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# {a.name}: scale={a.scale} {' '.join(a.extra)}",
        "",
        f"commit {result['machine']['commit'][:10]}, {result['machine']['cores']} cores, torch "
        f"{result['machine']['torch']}, {result['wall_minutes']:.0f} min wall",
        "",
        "| dataset | agent | normalised score (mean ± std over seeds) | 95 % CI | per seed | behaviour "
        "| final mean Q per seed | max mean Q per seed | mean score at each evaluation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(values: list) -> str:
        return ", ".join("–" if v is None else f"{v:.4g}" for v in values)

    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['agent']} | {r['mean']:.1f} ± {r['std']:.1f} | "
            f"[{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}] | {fmt(r['scores'])} | {r['behaviour']:.1f} | "
            f"{fmt(r['q_last'])} | {fmt(r['q_max'])} | {', '.join(f'{v:.1f}' for _, v in r['curve'])} |"
        )
    (out / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

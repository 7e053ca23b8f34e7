"""What an update of each `cpu` preset costs, and how long the preset's run should take on this machine.

    python benchmarks/preset_speed.py                           # every preset, on hopper-medium-replay
    python benchmarks/preset_speed.py --presets mopo ravl --updates 1000

Runs every preset in one sequence, one at a time on one torch thread, so the rates compare with each
other (this machine is shared and noisy; absolute rates are not comparable between invocations). Each
is an ordinary ``mbrl-train experiment=<preset>_cpu`` run (BC: ``agent=bc scale=cpu``) of ``--updates``
updates, evaluated once at the end with one episode and, for the model-based presets, with its
dynamics fit capped at 2 epochs: the fit and the evaluation come before or after the timed loop, whose
rate (``updates_per_s`` in ``train.csv``) includes the rollout rounds. The expected wall time of a
preset's full run scales its rate by MOPO's in a full run (``--calibrate``, a finished MOPO run folder:
its last logged rate, which counts its evaluations) over MOPO's here, so it holds for the load that run
had.

Writes ``benchmarks/results/preset_speed_cpu.{md,json}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.learning import machine, train_in  # noqa: E402
from mbrl.config import resolve  # noqa: E402
from mbrl.train import compose  # noqa: E402

NAME = "preset_speed_cpu"
PRESETS = [
    "mopo",
    "morec_mopo",
    "ravl",
    "mobile",
    "morec_mobile",
    "combo",
    "rambo",
    "lipschitz_single",
    "edac",
    "cql",
    "prdc",
    "td3bc",
    "iql",
    "bc",
]
CALIBRATE = ROOT / "benchmarks" / "runs" / "budget_cpu" / "hopper-medium-replay" / "mopo-100k" / "seed0"


def head(preset: str) -> list[str]:
    return ["agent=bc", "scale=cpu"] if preset == "bc" else [f"experiment={preset}_cpu"]


def last_rate(run: Path) -> float:
    """The last ``updates_per_s`` a run logged (the mean since the loop started)."""
    with open(run / "train.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["updates_per_s"])


def measure(preset: str, dataset: str, updates: int, folder: Path) -> dict:
    cfg = resolve(compose([*head(preset), f"dataset={dataset}"]))
    short = [f"total_updates={updates}", f"log_every={updates}", f"eval_every={updates}"]
    short += ["eval_episodes=1", "final_eval_episodes=1"] + (["dynamics.max_epochs=2"] if cfg.model_based else [])
    run = folder / preset
    train_in(run, [*head(preset), f"dataset={dataset}", "seed=0"], short)
    return {"preset": preset, "updates_per_s": last_rate(run), "total_updates": cfg.total_updates}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    p.add_argument("--dataset", default="hopper-medium-replay")
    p.add_argument("--updates", type=int, default=500)
    p.add_argument("--calibrate", type=Path, default=CALIBRATE, help="a finished MOPO run folder")
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    presets = ["mopo", *(x for x in a.presets if x != "mopo")]  # MOPO is the unit
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MBRL_CACHE"] = str(Path(tmp) / "cache")  # the 2-epoch fits stay out of the user's cache
        rows = [measure(x, a.dataset, a.updates, Path(tmp)) for x in presets]
        m = machine([Path(tmp) / x for x in presets])  # the commits the runs recorded
    mopo = rows[0]["updates_per_s"]
    full = last_rate(a.calibrate) if (a.calibrate / "train.csv").exists() else None
    for row in rows:
        row["cost_in_mopo_updates"] = mopo / row["updates_per_s"]
        if full is not None:
            row["expected_min"] = row["total_updates"] / (row["updates_per_s"] * full / mopo) / 60

    lines = [
        f"# {NAME}: the cost of an update of each `cpu` preset",
        "",
        f"{m['cores']} cores ({m['cpu']}), torch {m['torch']}, commit {', '.join(c[:10] for c in m['commits'])}, "
        "one torch thread; `python benchmarks/preset_speed.py "
        f"--dataset {a.dataset} --updates {a.updates}`, every preset in one sequence on {a.dataset}. Rate: updates "
        "per second of the training loop, rollout rounds included, fit and evaluation excluded. Expected wall time: "
        "the preset's updates at its rate scaled by MOPO's in a full run, evaluations included "
        + (f"({full:.1f} updates/s, `{os.path.relpath(a.calibrate, ROOT)}`)" if full else "(none given)")
        + f" over MOPO's here ({mopo:.1f}/s), so for the load that run had (two runs sharing the 2 cores); "
        "add the first dynamics fit of a dataset and seed.",
        "",
        "| preset | updates/s | cost in MOPO updates | updates | expected wall min |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        wall = f"{row['expected_min']:.0f}" if "expected_min" in row else "–"
        lines.append(
            f"| {row['preset']} | {row['updates_per_s']:.1f} | {row['cost_in_mopo_updates']:.2f} | "
            f"{row['total_updates']} | {wall} |"
        )
    a.results_dir.mkdir(parents=True, exist_ok=True)
    (a.results_dir / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    summary = {"machine": m, "dataset": a.dataset, "updates": a.updates, "calibration_rate": full, "rows": rows}
    (a.results_dir / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

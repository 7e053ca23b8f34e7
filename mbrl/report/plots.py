"""``curves_<dataset>.png``: mean evaluation score over seeds against updates, one line per condition."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mbrl.report.runs import Run

log = logging.getLogger(__name__)


def _read_curve(run: Run, column: str) -> dict[int, float]:
    """``step -> value`` from the run's ``eval.csv``; empty when it has none."""
    path = run.path / "eval.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {int(row["step"]): float(row[column]) for row in csv.DictReader(f) if row.get(column) not in (None, "")}


def _file_name(dataset: str, prefix: str = "") -> str:
    return prefix + "curves_" + re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_.") + ".png"


def plot_curves(report: dict[str, Any], runs: Sequence[Run], out: Path, prefix: str = "") -> dict[str, str]:
    """One PNG per dataset, ``<prefix>curves_<dataset>.png``; returns ``{dataset: file name}``. A group's curve
    is over its seeds that have ``eval.csv`` rows (n in the legend), at the steps all of them evaluated at."""
    by_path = {str(run.path): run for run in runs}
    written = {}
    for dataset in dict.fromkeys(g["dataset"] for g in report["groups"]):
        groups = [g for g in report["groups"] if g["dataset"] == dataset]
        metric = groups[0]["metric"]
        fig = Figure(figsize=(6.4, 4.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        drawn = False
        for g in groups:
            curves = [c for c in (_read_curve(by_path[p], f"{metric}_mean") for p in g["runs"]) if c]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if not steps:
                continue
            values = torch.tensor([[c[s] for s in steps] for c in curves], dtype=torch.float64)  # [seeds, steps]
            (line,) = ax.plot(steps, values.mean(dim=0).tolist(), label=f"{g['condition']} (n={len(curves)})")
            low, high = values.min(dim=0).values.tolist(), values.max(dim=0).values.tolist()
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            drawn = True
        if not drawn:
            log.warning("no eval.csv rows for %s: no learning-curve plot", dataset)
            continue
        behaviour = groups[0]["behaviour"]
        if behaviour is not None:
            ax.axhline(behaviour, color="black", linestyle="--", linewidth=1, label="behaviour policy")
        ax.set_title(f"{dataset} (band: min–max over seeds)")
        ax.set_xlabel("updates")
        ax.set_ylabel("normalised score" if metric == "score" else "return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        name = _file_name(dataset, prefix)
        fig.savefig(out / name, dpi=120)
        written[dataset] = name
    return written

"""Draw a run folder's reach-aware diagnostics as one PNG.

    mbrl-plot-diagnostics runs/2026-11-21/10-00-00            # writes <run>/diagnostics.png
    python scripts/plot_diagnostics.py RUN --out fig.png

Panels (each drawn when the run logged its data): normalised score; rollout length and the
fraction of transitions the filter stopped; critics' Q on real, model and edge-of-reach states;
the critics' disagreement on those states; model error against the dataset and the true simulator
at each rollout step, for the first and the last diagnostics row; the model's reward minus the true
reward along the policy's model rollouts, at the first and the last step, over training.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure draws with the Agg canvas: no GUI backend involved


def read_csv(path: Path) -> dict[str, list[float]]:
    """Columns of a run CSV as float lists (empty dict when the file is absent; an empty cell is NaN)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] else math.nan for r in rows] for k in (rows[0] if rows else {})}


def _lines(ax, x: list[float], columns: dict[str, list[float]], labels: dict[str, str]) -> bool:
    drawn = False
    for key, label in labels.items():
        ys = columns.get(key)
        if ys and not all(math.isnan(y) for y in ys):
            ax.plot(x, ys, label=label)
            drawn = True
    if drawn:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return drawn


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render ``run_dir``'s CSVs into a PNG (default ``<run_dir>/diagnostics.png``); returns its path."""
    run = Path(run_dir)
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run} is not a run folder (no config.yaml); pass the folder mbrl-train wrote")
    evals, rollouts, diag = (read_csv(run / f"{name}.csv") for name in ("eval", "rollout", "diagnostics"))
    fig = Figure(figsize=(20, 8), layout="constrained")
    axes = fig.subplots(2, 4).ravel()

    score_key = "score_mean" if "score_mean" in evals else "return_mean"
    if _lines(axes[0], evals.get("step", []), evals, {score_key: score_key.replace("_", " ")}):
        axes[0].set_title("evaluation")
    if _lines(axes[1], rollouts.get("step", []), rollouts, {"mean_length": "mean rollout length"}):
        axes[1].set_title("rollouts")
        if any(rollouts.get("stopped_fraction", [])):
            twin = axes[1].twinx()
            twin.plot(rollouts["step"], rollouts["stopped_fraction"], color="tab:red", label="stopped by the filter")
            twin.set_ylabel("fraction stopped", color="tab:red")
    steps = diag.get("step", [])
    q_labels = {"q_real": "real (s, a)", "q_model": "model (s, a)", "q_edge_of_reach": "edge-of-reach s'"}
    if _lines(axes[2], steps, diag, q_labels):
        axes[2].set_title("mean Q")
    std_labels = {
        "q_std_real_next": "real next states",
        "q_std_model_next": "model next states",
        "q_std_edge_of_reach": "edge-of-reach states",
    }
    if _lines(axes[3], steps, diag, std_labels):
        axes[3].set_title("critic disagreement (std over the ensemble)")
    horizon = sum(1 for k in diag if re.fullmatch(r"reward_bias_step\d+", k))
    bias_labels = {f"reward_bias_step{k}": f"rollout step {k}" for k in sorted({1, horizon}) if horizon}
    if _lines(axes[6], steps, diag, bias_labels):
        axes[6].axhline(0.0, color="black", lw=0.8)
        axes[6].set_title("model reward - true reward along the policy's rollouts")
    for ax, row, name in ((axes[4], 0, "first"), (axes[5], -1, "last")):
        drawn = False
        for source, label in (("data", "vs dataset (its actions)"), ("oracle", "vs true simulator (policy)")):
            keys = [k for k in diag if re.fullmatch(f"{source}_step\\d+", k)]
            keys.sort(key=lambda k: int(k.rsplit("step", 1)[1]))
            if keys:
                ax.plot(range(1, len(keys) + 1), [diag[k][row] for k in keys], marker="o", label=label)
                drawn = True
        if drawn:
            ax.set(title=f"model error by rollout step ({name}: update {int(steps[row])})", xlabel="step", yscale="log")
            ax.set_ylabel("mean squared state error")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    for ax in axes:
        if not ax.has_data():
            ax.set_axis_off()
        elif not ax.get_xlabel():
            ax.set_xlabel("update")
    fig.suptitle(str(run))
    path = Path(out) if out is not None else run / "diagnostics.png"
    fig.savefig(path, dpi=100)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw a run folder's reach-aware diagnostics as one PNG.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: <run_dir>/diagnostics.png)")
    args = parser.parse_args(argv)
    try:
        print(plot_run(args.run_dir, args.out))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How far the learned model is wrong where the policy goes, relative to where the data go.

A model-based agent that follows its model's error off the data is the second usual cause of a
collapse, beside value overestimation (:mod:`mbrl.report.values`). ``mbrl-train`` writes, at every
evaluation, the model's mean squared state error after ``h`` rollout steps twice into
``diagnostics.csv`` (:func:`mbrl.diagnostics.model_error_by_step`): replaying the dataset's actions
along real trajectory segments (``data_step{h}``), and rolling the current policy's actions through the
model and the true simulator from the same start states (``oracle_step{h}``). Their ratio says where the
policy has taken the model: about 1 or below, where the model is as right as on the data; several
times 1, into a region where the model is wrong and the agent may be exploiting it. Runs that also
logged the model's reward against the true reward of the same state and action along the policy's
model rollout (``reward_bias_step{h}``) add its mean at the last evaluation: positive, the model pays
the policy more than the task does there.
:func:`model_error_cells` reads it for every cell of a report's grid.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from mbrl.report.values import fewer, grid_markdown

HORIZON = 5  # the rollout horizon of every model-based `cpu` preset but MOREC's (100, cut short by its filter)


def run_model_error(run: Path, horizon: int = HORIZON) -> dict[str, float] | None:
    """``{"horizon", "final", "max"}`` of a run folder's ``diagnostics.csv``: the ratio of the policy's
    ``h``-step error to the data's at the last diagnostics row and its maximum over the run, ``h`` the
    ``horizon`` or the longest both columns have if shorter, and ``"reward_bias"`` (step ``h``, last row
    that has it) when the run logged it; None without the file or the columns (model-free agents, runs
    without a simulator, runs made before the diagnostics)."""
    path = Path(run) / "diagnostics.csv"
    if not path.exists():
        return None
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("oracle_step1") and r.get("data_step1")]
    if not rows:
        return None
    h = max(k for k in range(1, horizon + 1) if rows[0].get(f"oracle_step{k}") and rows[0].get(f"data_step{k}"))
    ratios = [float(r[f"oracle_step{h}"]) / float(r[f"data_step{h}"]) for r in rows]
    out = {"horizon": h, "final": ratios[-1], "max": max(ratios)}
    biases = [float(r[f"reward_bias_step{h}"]) for r in rows if r.get(f"reward_bias_step{h}")]
    return out | {"reward_bias": biases[-1]} if biases else out


def model_error_cells(
    groups: Sequence[dict[str, Any]], horizon: int = HORIZON
) -> dict[str, dict[str, dict[str, float]]]:
    """Per (condition, dataset) group of a report (``condition``, ``dataset``, ``runs``): the seeds' mean
    final and maximum error ratio after ``horizon`` steps (:func:`run_model_error`), ``{condition:
    {dataset: {"final", "max", "horizon", "num_seeds"}}}``, with ``"reward_bias"`` and
    ``"reward_bias_seeds"`` (the mean over the seeds that logged it, and their number); a group none of
    whose runs measured it is left out. Seeds that measured different horizons keep the shortest's label."""
    errors: dict[str, dict[str, dict[str, float]]] = {}
    for g in groups:
        measured = [e for e in (run_model_error(r, horizon) for r in g["runs"]) if e is not None]
        if measured:
            cell = errors.setdefault(g["condition"], {})[g["dataset"]] = {
                "final": fmean(e["final"] for e in measured),
                "max": fmean(e["max"] for e in measured),
                "horizon": min(e["horizon"] for e in measured),
                "num_seeds": len(measured),
            }
            biases = [e["reward_bias"] for e in measured if "reward_bias" in e]
            if biases:
                cell |= {"reward_bias": fmean(biases), "reward_bias_seeds": len(biases)}
    return errors


def model_error_markdown(
    cells: dict[str, dict[str, dict[str, float]]], conditions: Sequence[str], datasets: Sequence[str]
) -> str:
    """The ``## Model error along the policy's rollouts`` section of :func:`model_error_cells`' cells:
    ``final (max) (n)``, then ``r̂−r`` and the reward bias where measured (with its number of seeds when
    fewer logged it), rows and columns in the order of ``conditions`` and ``datasets``."""
    steps = max((c["horizon"] for row in cells.values() for c in row.values()), default=HORIZON)
    intro = (
        "## Model error along the policy's rollouts\n\n"
        f"The model's mean squared state error after {steps} rollout steps (fewer where the run measured"
        " fewer) under the policy's own actions, checked against the simulator, divided by its error"
        " replaying the dataset's actions: at the last evaluation, and the largest over the run, means over"
        " the seeds (`final (max) (n)`). Near 1 or below, the policy stays where the model is as right as on"
        " the data; several times 1, it has gone where the model is wrong. `r̂−r`, where the runs logged it:"
        " the model's reward minus the true reward of the same state and action at that step of the"
        " policy's model rollout, at the last evaluation (positive: the model overpays the policy), over the"
        " seeds that logged it (their number in brackets when fewer)."
    )

    def cell(c: dict[str, float]) -> str:
        text = f"{c['final']:.2f} ({c['max']:.2f}) ({c['num_seeds']})"
        if "reward_bias" not in c:
            return text
        return f"{text} r̂−r {c['reward_bias']:+.2f}{fewer(c['reward_bias_seeds'], c['num_seeds'])}"

    return grid_markdown(intro, cells, conditions, datasets, cell)

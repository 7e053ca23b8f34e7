"""The critics' value of the start states beside the discounted return the policy obtained.

A score that collapses has a few usual causes, and the first to rule in or out is value
overestimation: the critics believe the policy earns far more than it does, and the policy follows
their error. ``mbrl-train``'s final evaluation records, for agents with critics, the mean over its
episodes of min_i Q_i(s0, pi(s0)) (``q_start``) and of the discounted return those episodes obtained
at the agent's discount (``discounted_return``) in ``final.json["final"]``. :func:`value_cells`
reads them for every cell of a report's grid, so each table carries its own measurement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any


def run_values(run: Path) -> tuple[float, float] | None:
    """(Q(s0), discounted return) of a finished run folder's final evaluation; None where it has none
    (agents without critics, runs made before the evaluation recorded them)."""
    final = json.loads((Path(run) / "final.json").read_text()).get("final", {})
    if "q_start" not in final or "discounted_return" not in final:
        return None
    return float(final["q_start"]), float(final["discounted_return"])


def value_cells(groups: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per (condition, dataset) group of a report (``condition``, ``dataset``, ``runs``): the mean Q(s0) and
    discounted return over the seeds that recorded both, ``{condition: {dataset: {"q_start",
    "discounted_return", "num_seeds"}}}``; a group none of whose runs recorded them is left out."""
    values: dict[str, dict[str, dict[str, float]]] = {}
    for g in groups:
        pairs = [v for v in map(run_values, g["runs"]) if v is not None]
        if pairs:
            values.setdefault(g["condition"], {})[g["dataset"]] = {
                "q_start": fmean(q for q, _ in pairs),
                "discounted_return": fmean(r for _, r in pairs),
                "num_seeds": len(pairs),
            }
    return values


def value_markdown(
    cells: dict[str, dict[str, dict[str, float]]], conditions: Sequence[str], datasets: Sequence[str]
) -> str:
    """The ``## Value estimates`` section of :func:`value_cells`' cells: ``Q / G (n)``, rows and columns in
    the order of ``conditions`` and ``datasets``."""
    intro = (
        "## Value estimates\n\n"
        "The critics' value of the final evaluation's start states, min over critics of Q(s0, pi(s0)),"
        " against the discounted return those episodes obtained, means over the seeds that recorded both"
        " (`Q / G (n)`). Q far above G is overestimation; far below it, pessimism."
    )
    return grid_markdown(
        intro,
        cells,
        conditions,
        datasets,
        lambda c: f"{c['q_start']:.0f} / {c['discounted_return']:.0f} ({c['num_seeds']})",
    )


def grid_markdown(
    intro: str,
    cells: dict[str, dict[str, dict[str, float]]],
    conditions: Sequence[str],
    datasets: Sequence[str],
    fmt: Callable[[dict[str, float]], str],
) -> str:
    """A report section: ``intro``, then a table of ``fmt(cells[condition][dataset])`` with a row per
    condition that has any cell (in the order of ``conditions``) and ``–`` where a cell is absent."""
    lines = [intro, "", "| condition | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for condition in [c for c in conditions if c in cells]:
        row = cells[condition]
        lines.append(f"| {condition} | " + " | ".join(fmt(row[d]) if d in row else "–" for d in datasets) + " |")
    return "\n".join(lines) + "\n"

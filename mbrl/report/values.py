"""The critics' value of the start states beside the discounted return the policy obtained.

A score that collapses has a few usual causes, and the first to rule in or out is value
overestimation: the critics believe the policy earns far more than it does, and the policy follows
their error. ``mbrl-train``'s final evaluation records, for agents with critics, the mean over its
episodes of min_i Q_i(s0, pi(s0)) (``q_start``) and of the discounted return those episodes obtained
at the agent's discount (``discounted_return``) in ``final.json["final"]``, and, with diagnostics on,
the same along every state of those episodes (``policy_q`` against ``policy_return_to_go``, from
:func:`mbrl.diagnostics.on_policy_errors`): the start states alone can hide a policy whose later states
the critics misjudge. :func:`value_cells` reads them for every cell of a report's grid, so each table
carries its own measurement.
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


def run_episode_values(run: Path) -> tuple[float, float] | None:
    """(Q, return-to-go) along the final evaluation's episodes of a finished run folder; None where it has
    none (agents without critics, diagnostics off, runs made before they were recorded)."""
    final = json.loads((Path(run) / "final.json").read_text()).get("final", {})
    if "policy_q" not in final or "policy_return_to_go" not in final:
        return None
    return float(final["policy_q"]), float(final["policy_return_to_go"])


def value_cells(groups: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per (condition, dataset) group of a report (``condition``, ``dataset``, ``runs``): the mean Q(s0) and
    discounted return over the seeds that recorded both, ``{condition: {dataset: {"q_start",
    "discounted_return", "num_seeds"}}}``, with ``"episode_q"``, ``"episode_return"`` and
    ``"episode_seeds"`` (the same along the episodes, over the seeds that recorded them) where any did; a
    group none of whose runs recorded Q(s0) is left out."""
    values: dict[str, dict[str, dict[str, float]]] = {}
    for g in groups:
        pairs = [v for v in map(run_values, g["runs"]) if v is not None]
        if pairs:
            cell = values.setdefault(g["condition"], {})[g["dataset"]] = {
                "q_start": fmean(q for q, _ in pairs),
                "discounted_return": fmean(r for _, r in pairs),
                "num_seeds": len(pairs),
            }
            along = [v for v in map(run_episode_values, g["runs"]) if v is not None]
            if along:
                cell |= {
                    "episode_q": fmean(q for q, _ in along),
                    "episode_return": fmean(r for _, r in along),
                    "episode_seeds": len(along),
                }
    return values


def value_markdown(
    cells: dict[str, dict[str, dict[str, float]]], conditions: Sequence[str], datasets: Sequence[str]
) -> str:
    """The ``## Value estimates`` section of :func:`value_cells`' cells: ``Q / G (n)``, then ``along Q / G``
    where measured (with its number of seeds when fewer), rows and columns in the order of ``conditions``
    and ``datasets``."""
    intro = (
        "## Value estimates\n\n"
        "The critics' value of the final evaluation's start states, min over critics of Q(s0, pi(s0)),"
        " against the discounted return those episodes obtained, means over the seeds that recorded both"
        " (`Q / G (n)`). Q far above G is overestimation; far below it, pessimism. `along`, where the runs"
        " recorded it: the same over every state of those episodes (the return-to-go from each, on the steps"
        " whose return misses at most 1 % of the value), over the seeds that recorded it (their number in"
        " brackets when fewer)."
    )

    def cell(c: dict[str, float]) -> str:
        text = f"{c['q_start']:.0f} / {c['discounted_return']:.0f} ({c['num_seeds']})"
        if "episode_q" not in c:
            return text
        return (
            f"{text} along {c['episode_q']:.0f} / {c['episode_return']:.0f}{fewer(c['episode_seeds'], c['num_seeds'])}"
        )

    return grid_markdown(intro, cells, conditions, datasets, cell)


def fewer(seeds: int, of: int) -> str:
    """`` (n)`` after a measurement that only ``seeds`` of a cell's ``of`` seeds recorded; empty if all did."""
    return f" ({seeds})" if seeds < of else ""


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

"""Targets read off a report's grid: whether a condition's interval lies wholly above others'.

A benchmark states what its table should show ("each of these agents beats each baseline with a
non-overlapping CI on at least m of these datasets"); :func:`check_targets` answers it from
``write_report``'s groups, so the answer is recomputed with every report instead of read by eye.
A comparison counts only where both sides have ``min_seeds`` finished seeds: an interval over
fewer seeds says too little to count for or against a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def versus(
    cells: dict[tuple[str, str], dict[str, Any]], condition: str, others: Sequence[str], dataset: str, min_seeds: int
) -> str:
    """``above`` where ``condition``'s IQM CI on ``dataset`` lies wholly above each of ``others``',
    ``below`` where it lies wholly below one of them, ``overlaps`` otherwise, and ``n<min_seeds`` where
    a side lacks seeds, with ``, cannot be above`` where the seeds already run rule ``above`` out
    (:func:`_cannot_become_above`). ``cells`` maps (condition, dataset) to a report group."""
    mine = cells.get((condition, dataset))
    theirs = [cells.get((o, dataset)) for o in others]
    if any(g is None or g["num_seeds"] < min_seeds for g in [mine, *theirs]):
        return f"n<{min_seeds}{', cannot be above' if _cannot_become_above(mine, theirs, min_seeds) else ''}"
    if all(mine["iqm_ci"][0] > t["iqm_ci"][1] for t in theirs):
        return "above"
    if any(mine["iqm_ci"][1] < t["iqm_ci"][0] for t in theirs):
        return "below"
    return "overlaps"


def _cannot_become_above(mine: dict[str, Any] | None, theirs: list[dict[str, Any] | None], min_seeds: int) -> bool:
    """Whether a cell still short of seeds is already sure not to end ``above`` once it has ``min_seeds``.

    With at most 3 seeds the 95 % percentile-bootstrap CI of the IQM starts at or below the lowest seed:
    a resample repeats that seed in every draw with probability ``n ** -n`` (1/27 for 3 seeds), above the
    2.5 % the interval cuts off. So a finished seed at or below a complete baseline's upper end settles it.
    """
    if mine is None or not mine.get("scores") or min_seeds > 3:
        return False
    if any(t is None or t["num_seeds"] < min_seeds for t in theirs):
        return False
    return min(mine["scores"]) <= max(t["iqm_ci"][1] for t in theirs)


def check_targets(
    groups: Sequence[dict[str, Any]],
    agents: Sequence[str],
    baselines: Sequence[str],
    columns: Sequence[str],
    min_columns: int,
    min_seeds: int = 3,
    rivals: Sequence[tuple[str, str]] = (),
    behaviour_columns: Sequence[str] = (),
) -> tuple[dict[str, Any], str]:
    """Check a grid against its targets; returns (json, markdown section).

    ``groups`` are ``write_report``'s groups (``condition``, ``dataset``, ``num_seeds``, ``iqm``,
    ``iqm_ci``, ``behaviour``). Three checks:

    - beat: each of ``agents`` against all ``baselines`` on each of ``columns`` (:func:`versus`); an
      agent's target is ``met`` with ``min_columns`` columns ``above``, ``open`` while the columns
      lacking seeds could still make it so (not those ``cannot be above``), ``not met`` otherwise;
    - each (challenger, rival) pair of ``rivals`` on every dataset of the groups, the same way;
    - on ``behaviour_columns``, whether each condition's IQM reaches the behaviour policy's score.
    """
    cells = {(g["condition"], g["dataset"]): g for g in groups}
    datasets = sorted({g["dataset"] for g in groups})
    beat = {a: {d: versus(cells, a, baselines, d, min_seeds) for d in columns} for a in agents}
    met = {}
    for a in agents:
        above = sum(v == "above" for v in beat[a].values())
        lacking = sum(v.startswith("n<") and not v.endswith("cannot be above") for v in beat[a].values())
        met[a] = "met" if above >= min_columns else "open" if above + lacking >= min_columns else "not met"
    duels = {f"{c} vs {r}": {d: versus(cells, c, [r], d, min_seeds) for d in datasets} for c, r in rivals}
    reaches = {
        d: {c: bool(g["iqm"] >= g["behaviour"]) for (c, gd), g in sorted(cells.items()) if gd == d}
        for d in behaviour_columns
    }
    lines = [
        "## Targets",
        "",
        f"Each of {', '.join(agents)} against {' and '.join(baselines)}: `above` where its IQM CI lies wholly "
        f"above each baseline's (the target asks for {min_columns} of {len(columns)} columns), `overlaps`, "
        f"`below` one of them, or `n<{min_seeds}` where a side has fewer than {min_seeds} finished seeds "
        "(`cannot be above` where a finished seed already lies at or below a baseline's interval: with 3 seeds "
        "the bootstrap interval starts at or below the lowest seed); the target is `open` while the columns "
        "still lacking seeds could meet it.",
        "",
        f"| agent | {' | '.join(columns)} | target |",
        f"|---|{'---|' * len(columns)}---|",
    ]
    lines += [f"| {a} | {' | '.join(beat[a][d] for d in columns)} | {met[a]} |" for a in agents]
    for pair, verdicts in duels.items():
        lines += ["", f"{pair}, the same way: " + ", ".join(f"{d} {v}" for d, v in verdicts.items()) + "."]
    for d, reached in reaches.items():
        if reached:
            said = ", ".join(f"{c} {'reaches' if r else 'below'}" for c, r in reached.items())
            lines += ["", f"On {d}, each condition's IQM against the behaviour policy's score: {said}."]
    found = {"beat_baselines": beat, "met": met, "duels": duels, "reaches_behaviour": reaches}
    return found, "\n".join(lines) + "\n"


def missing_section(missing: Sequence[tuple[str, str, int]], conditions: Sequence[str], datasets: Sequence[str]) -> str:
    """The cells without a finished run, one line per (condition, dataset) with its missing seeds, in
    the order of ``conditions`` and ``datasets``."""
    seeds: dict[tuple[str, str], list[int]] = {}
    order = sorted(missing, key=lambda k: (list(conditions).index(k[0]), list(datasets).index(k[1]), k[2]))
    for label, d, s in order:
        seeds.setdefault((label, d), []).append(s)
    lines = ["## Missing", "", f"{len(missing)} cells without a finished run (condition, dataset: seeds).", ""]
    lines += [f"- {label}, {d}: {', '.join(map(str, s))}" for (label, d), s in seeds.items()]
    return "\n".join(lines) + "\n"

"""Conditions: which config keys tell the runs apart, a run's label and the order of the table's rows.

The rules are those of the package docstring (``mbrl.report``, "Grouping").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mbrl.report.runs import ReportError, Run

# Keys that never define an experimental condition: where files go, logging and measurements,
# resuming, resources.
IGNORED_KEYS = {"seed", "resume", "download", "threads", "dynamics.cache", "dynamics.cache_dir"}
IGNORED_PREFIXES = ("logger.", "diagnostics.", "hydra.")
# Config keys that record a config-group choice, tried first and shown as the group's name.
GROUP_CHOICES = {
    "agent.preset": "agent",  # the method a user chose (agent=mopo); several share a class
    "agent.name": "agent.name",  # the class, a condition only when overridden apart from the preset
    "dynamics.kind": "dynamics",
    "penalty.name": "penalty",
    "filter.name": "filter",
    "scale": "scale",
}
ALIASES = {short: key for key, short in GROUP_CHOICES.items()}

_ABSENT = "<absent>"


def _canonical(config: dict[str, Any], key: str) -> str:
    return json.dumps(config[key], sort_keys=True) if key in config else _ABSENT


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES) or key.split(".")[-1].endswith("_dir")


def condition_keys(runs: Sequence[Run]) -> list[str]:
    """The keys that tell the conditions of ``runs`` apart (the default grouping; package docstring)."""
    keys = {k for run in runs for k in run.config} - {"dataset"}
    varying = [k for k in keys if not _ignored(k) and len({_canonical(r.config, k) for r in runs}) > 1]
    choices = list(GROUP_CHOICES)
    varying.sort(key=lambda k: (choices.index(k), 0, k) if k in choices else (len(choices), k.count("."), k))
    chosen: list[str] = []
    labels = [(run.dataset,) for run in runs]  # the partition so far: datasets are always apart
    for key in varying:
        refined = [(*label, _canonical(run.config, key)) for label, run in zip(labels, runs, strict=True)]
        if len(set(refined)) > len(set(labels)):
            chosen.append(key)
            labels = refined
    return chosen or ["agent.preset"]


def parse_group_by(spec: str, runs: Sequence[Run]) -> list[str]:
    """``"agent,penalty.coef"`` -> ``["agent.preset", "penalty.coef"]``; every key must exist in some run."""
    keys = [ALIASES.get(k.strip(), k.strip()) for k in spec.split(",") if k.strip() and k.strip() != "dataset"]
    known = {k for run in runs for k in run.config}
    unknown = [k for k in keys if k not in known]
    if unknown:
        varying = ", ".join(condition_keys(runs))
        raise ReportError(
            f"--group-by: no run has the key(s) {', '.join(unknown)}; keys are dotted config paths such as "
            f"agent.preset or penalty.coef (the keys that vary across these runs: {varying})"
        )
    return keys


def _render(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return str(value)


def condition_label(config: dict[str, Any], keys: Sequence[str]) -> str:
    """``agent=bc penalty.coef=2.5``: the run's value of each key it has, group choices by their short name."""
    return " ".join(f"{GROUP_CHOICES.get(k, k)}={_render(config[k])}" for k in keys if k in config)


def condition_order(values: dict[str, Any], keys: Sequence[str]) -> tuple:
    """Sort key of a condition's ``{key: value}``: numbers in numeric order, then strings; a key a run lacks
    sorts last."""
    out = []
    for k in keys:
        v = values.get(k, _ABSENT)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append((0, float(v), ""))
        else:
            out.append((1 if v != _ABSENT else 2, 0.0, _render(v)))
    return tuple(out)

"""``report.md``: the report's numbers (``mbrl.report.stats.build_report``) as markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mbrl.report.model_error import model_error_markdown
from mbrl.report.values import value_markdown


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _ci(pair: Sequence[float]) -> str:
    return f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def _folders(folders: Sequence[str]) -> str:
    """The searched folders, or their count when there are many (a benchmark passing each run's folder)."""
    return ", ".join(f"`{f}`" for f in folders) if len(folders) <= 3 else f"{len(folders)} folders (listed in the JSON)"


def _grid(groups: Sequence[dict[str, Any]], conditions: Sequence[str]) -> list[str]:
    """Conditions down (in the order of ``conditions``), datasets across, each cell the IQM with its CI
    and seed count; the behaviour policy's score heads each column. Empty with a single dataset (the
    table above says it all)."""
    datasets = list(dict.fromkeys(g["dataset"] for g in groups))
    if len(datasets) < 2:
        return []
    cells = {(g["condition"], g["dataset"]): g for g in groups}
    behaviour = {g["dataset"]: g["behaviour"] for g in groups}
    lines = [
        "",
        "## By condition and dataset",
        "",
        "IQM of the final normalised score over seeds, its 95 % CI and the number of seeds (n); "
        "– where a condition has no finished run on a dataset.",
        "",
        "| condition | " + " | ".join(f"{d} (behaviour {_fmt(behaviour[d])})" for d in datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for condition in conditions:
        row = []
        for d in datasets:
            g = cells.get((condition, d))
            row.append("–" if g is None else f"{_fmt(g['iqm'])} {_ci(g['iqm_ci'])} (n={g['num_seeds']})")
        lines.append(f"| {condition} | " + " | ".join(row) + " |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md`` of ``build_report``'s dict (with ``curves`` once the plots are written)."""
    keys = ", ".join(f"`{k}`" for k in report["grouping"]["keys"])
    rule = "named by --group-by" if report["grouping"]["rule"] == "group-by" else "the config keys that vary"
    source = f"from {keys} ({rule})" if report["grouping"]["rule"] != "labels" else "named by the benchmark that ran it"
    b = report["bootstrap"]
    lines = [
        "# Results",
        "",
        f"{report['num_runs']} finished runs from {_folders(report['folders'])}; "
        f"unfinished runs skipped: {len(report['skipped_unfinished'])}.",
        "",
        f"Groups: dataset × condition, the condition {source}. Per group, over seeds: the final "
        "normalised score (`final.score_mean` of each run's `final.json`), its mean ± population std and "
        f"interquartile mean (IQM), each with a 95 % percentile-bootstrap CI ({b['resamples']} resamples, "
        f"seed {b['seed']}). Behaviour: the mean normalised return of the dataset's episodes.",
        "",
        "| dataset | condition | seeds | mean ± std | 95 % CI | IQM | 95 % CI | behaviour |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in report["groups"]:
        mark = " (return)" if g["metric"] == "return" else ""
        lines.append(
            f"| {g['dataset']}{mark} | {g['condition']} | {g['num_seeds']} | {_fmt(g['mean'])} ± {_fmt(g['std'])} "
            f"| {_ci(g['mean_ci'])} | {_fmt(g['iqm'])} | {_ci(g['iqm_ci'])} | {_fmt(g['behaviour'])} |"
        )
    if any(g["metric"] == "return" for g in report["groups"]):
        lines += ["", "(return): the dataset has no reference returns, so its numbers are raw episode returns."]
    lines += _grid(report["groups"], report["conditions"])
    if report["aggregate"]:
        lines += [
            "",
            "## Over datasets",
            "",
            f"Conditions run on each of the {len(report['aggregate'][0]['datasets'])} datasets with normalised "
            "scores: the mean of the per-dataset means and the IQM of all runs, with 95 % stratified-bootstrap CIs "
            "(seeds resampled within each dataset).",
            "",
            "| condition | runs | mean | 95 % CI | IQM | 95 % CI |",
            "|---|---|---|---|---|---|",
        ]
        for a in report["aggregate"]:
            lines.append(
                f"| {a['condition']} | {a['num_runs']} | {_fmt(a['mean_of_means'])} "
                f"| {_ci(a['mean_ci'])} | {_fmt(a['iqm'])} | {_ci(a['iqm_ci'])} |"
            )
    conditions, datasets = report["conditions"], list(dict.fromkeys(g["dataset"] for g in report["groups"]))
    if report["values"]:
        lines += ["", value_markdown(report["values"], conditions, datasets).rstrip()]
    if report["model_error"]:
        lines += ["", model_error_markdown(report["model_error"], conditions, datasets).rstrip()]
    if report.get("curves"):
        lines += ["", "## Learning curves", ""]
        lines.append(
            "Mean evaluation score over seeds (`eval.csv`) against updates; the band spans the lowest and highest "
            "seed; dashed: the behaviour policy."
        )
        lines += [""] + [f"![{d}]({name})" for d, name in report["curves"].items()]
    if report["skipped_unfinished"]:
        lines += ["", "## Skipped (unfinished: no final.json)", ""]
        lines += [f"- `{p}`" for p in report["skipped_unfinished"]]
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"

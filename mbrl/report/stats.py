"""The numbers of a report: per (dataset, condition) over seeds, and per condition over datasets.

Statistics on the final normalised score: mean and population std with the percentile-bootstrap
CI of ``mbrl.data.scores.summarize``, the interquartile mean (:func:`iqm`) with its CI from the
same resamples, and across datasets stratified-bootstrap CIs (Agarwal et al., NeurIPS 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mbrl.data.scores import summarize
from mbrl.report.grouping import condition_label, condition_order
from mbrl.report.model_error import model_error_cells
from mbrl.report.runs import ReportError, Run
from mbrl.report.values import value_cells


def iqm(values: torch.Tensor) -> torch.Tensor:
    """Interquartile mean along the last dim, ``[..., n] -> [...]`` (float64).

    The mean of the middle half of the sorted values. When ``n`` is not a multiple of 4 the cut
    points ``n/4`` and ``3n/4`` fall inside a value: sorted value ``i`` stands for the interval
    ``[i, i+1)`` and counts with the length of its overlap with ``[n/4, 3n/4]``. This equals the
    plain IQM of the sample with every value repeated four times, and rliable's ``aggregate_iqm``
    (``scipy.stats.trim_mean(x, 0.25)``) when ``n`` is a multiple of 4; for other ``n`` that one
    drops ``floor(n/4)`` whole values at each end instead. ``n = 1`` gives the value, ``n = 2``
    the mean.
    """
    n = values.shape[-1]
    if n == 0:
        raise ValueError("the IQM of an empty set of values is undefined")
    edges = torch.arange(n + 1, dtype=torch.float64)
    weights = edges[1:].clamp(n / 4, 3 * n / 4) - edges[:-1].clamp(n / 4, 3 * n / 4)  # [n], sums to n/2
    return (values.double().sort(dim=-1).values * weights).sum(dim=-1) / (n / 2)


def stratified_bootstrap_ci(
    strata: Sequence[torch.Tensor],
    statistic: Callable[[list[torch.Tensor]], torch.Tensor],
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95 % percentile-bootstrap CI of ``statistic`` when values are resampled within each stratum.

    ``strata`` holds one ``[n_s]`` tensor per stratum (a dataset's seeds). Each of the
    ``num_bootstrap`` resamples draws ``n_s`` values with replacement from every stratum;
    ``statistic`` maps the list of ``[num_bootstrap, n_s]`` resamples to ``[num_bootstrap]``. With
    one stratum the draws are those of ``mbrl.data.scores.summarize`` for the same seed, so its CI
    of the mean and this CI of the IQM come from the same resamples.
    """
    g = torch.Generator().manual_seed(seed)
    resampled = []
    for stratum in strata:
        v = stratum.double().flatten()
        resampled.append(v[torch.randint(v.numel(), (num_bootstrap, v.numel()), generator=g)])
    stats = statistic(resampled)
    lo, hi = torch.quantile(stats, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return lo, hi


def _mean_of_means(xs: list[torch.Tensor]) -> torch.Tensor:
    """``[B, n_s]`` per stratum -> ``[B]``: the mean over strata of each stratum's mean."""
    return torch.stack([x.mean(dim=-1) for x in xs]).mean(dim=0)


def _pooled_iqm(xs: list[torch.Tensor]) -> torch.Tensor:
    """``[B, n_s]`` per stratum -> ``[B]``: the IQM of all strata's values together."""
    return iqm(torch.cat(xs, dim=-1))


def _metric(runs: Sequence[Run]) -> str:
    """``score`` (normalised) when every run of a dataset has one, else ``return``."""
    return "score" if all(run.has_score() for run in runs) else "return"


def _behaviour(runs: Sequence[Run], metric: str) -> float | None:
    values = [run.final.get(f"behaviour_{metric}_mean") for run in runs]
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def build_report(
    runs: Sequence[Run],
    unfinished: Sequence[Path],
    keys: Sequence[str],
    grouping: str,
    folders: Sequence[Path],
    num_bootstrap: int = 2000,
    seed: int = 0,
    labels: Mapping[Path, str] | None = None,
) -> dict[str, Any]:
    """The numbers of the report as one JSON-ready dict; ``write_report`` adds the plots' file names.

    ``labels`` (resolved run folder -> condition name), when given, names every run's condition instead of
    ``keys`` (a benchmark that knows its own conditions, e.g. presets with per-dataset settings), and
    orders the conditions as the labels are first seen.
    """
    if not runs:
        raise ReportError("no finished runs (folders with config.yaml and final.json) to report")
    datasets = sorted({run.dataset for run in runs})
    groups, warnings = [], []
    for dataset in datasets:
        in_dataset = [run for run in runs if run.dataset == dataset]
        metric = _metric(in_dataset)
        by_label: dict[str, list[Run]] = {}
        for run in in_dataset:
            label = condition_label(run.config, keys) if labels is None else labels[run.path.resolve()]
            by_label.setdefault(label, []).append(run)
        entries = []
        for label, members in by_label.items():
            members = sorted(members, key=lambda r: (r.seed, str(r.path)))
            seeds = [r.seed for r in members]
            if len(set(seeds)) < len(seeds):
                warnings.append(f"{dataset} {label}: a seed appears more than once ({seeds}); every run counts")
            scores = torch.tensor([float(r.final["final"][f"{metric}_mean"]) for r in members], dtype=torch.float64)
            s = summarize(scores, num_bootstrap=num_bootstrap, seed=seed)
            iqm_lo, iqm_hi = stratified_bootstrap_ci([scores], lambda xs: iqm(xs[0]), num_bootstrap, seed)
            values = {k: members[0].config[k] for k in keys if k in members[0].config}
            entries.append(
                {
                    "dataset": dataset,
                    "condition": label,
                    "condition_values": values,
                    "metric": metric,
                    "num_seeds": len(members),
                    "seeds": seeds,
                    "runs": [str(r.path) for r in members],
                    "scores": scores.tolist(),
                    "mean": s.mean,
                    "std": s.std,
                    "mean_ci": [s.ci_low, s.ci_high],
                    "iqm": float(iqm(scores)),
                    "iqm_ci": [iqm_lo, iqm_hi],
                    "behaviour": _behaviour(members, metric),
                }
            )
        groups.extend(entries)
    # One order of the conditions for every table: the labels' order, else the varying keys' values.
    if labels is None:
        found = {g["condition"]: g["condition_values"] for g in groups}
        conditions = sorted(found, key=lambda c: (condition_order(found[c], keys), c))
    else:
        present = {g["condition"] for g in groups}
        conditions = [c for c in dict.fromkeys(labels.values()) if c in present]
    groups.sort(key=lambda g: (datasets.index(g["dataset"]), conditions.index(g["condition"])))
    return {
        "folders": [str(f) for f in folders],
        "grouping": {"rule": grouping, "keys": list(keys)},
        "bootstrap": {"resamples": num_bootstrap, "seed": seed, "confidence": 0.95, "interval": "percentile"},
        "num_runs": len(runs),
        "skipped_unfinished": [str(p) for p in unfinished],
        "warnings": warnings,
        "conditions": conditions,  # the order of every table's rows
        "groups": groups,
        "aggregate": _aggregate(groups, num_bootstrap, seed),
        "values": value_cells(groups),
        "model_error": model_error_cells(groups),
    }


def _aggregate(groups: list[dict[str, Any]], num_bootstrap: int, seed: int) -> list[dict[str, Any]]:
    """Per condition run on every dataset with normalised scores (so all rows cover the same datasets);
    empty unless there are two or more such datasets."""
    scored = [g for g in groups if g["metric"] == "score"]
    datasets = {g["dataset"] for g in scored}
    if len(datasets) < 2:
        return []
    out = []
    for label in dict.fromkeys(g["condition"] for g in scored):  # first-seen order
        members = [g for g in scored if g["condition"] == label]
        if len(members) < len(datasets):
            continue
        strata = [torch.tensor(g["scores"], dtype=torch.float64) for g in members]
        out.append(
            {
                "condition": label,
                "datasets": [g["dataset"] for g in members],
                "num_runs": sum(g["num_seeds"] for g in members),
                "mean_of_means": float(_mean_of_means(strata)),
                "mean_ci": list(stratified_bootstrap_ci(strata, _mean_of_means, num_bootstrap, seed)),
                "iqm": float(_pooled_iqm(strata)),
                "iqm_ci": list(stratified_bootstrap_ci(strata, _pooled_iqm, num_bootstrap, seed)),
            }
        )
    return out

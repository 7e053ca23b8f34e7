"""``mbrl-report``: aggregate the run folders of a sweep into a results table and learning curves.

    mbrl-report multirun/2026-11-21/09-02-31                # a Hydra multirun (one run per job folder)
    mbrl-report runs/a runs/b --group-by agent,penalty.coef --out reports/ab

Every folder beneath the given ones that holds ``config.yaml`` and ``final.json`` (as written by
``mbrl-train``) is a finished run. Folders with ``config.yaml`` or ``.hydra/`` but no
``final.json`` are unfinished (still running, killed or failed): they are listed as skipped.
Writes into ``--out`` (default: the first folder):

- ``report.md``: the table (also printed), one row per (dataset, condition);
- ``report.json``: the same numbers, plus every run's final score and folder;
- ``curves_<dataset>.png``: mean evaluation score over seeds against updates, one line per
  condition, the band spanning the lowest and highest seed, the behaviour policy's score dashed.

**Grouping.** A run's group is (dataset, condition). The condition is, by default, built from the
keys of the resolved ``config.yaml`` (flattened to ``agent.preset``, ``penalty.coef``, ...) whose
values differ between the runs, leaving out the seed (what a group averages over) and keys that
do not define an experiment (``logger.*``, ``diagnostics.*``, ``resume``, ``download``,
``threads``, the dynamics cache settings, ``hydra.*`` and ``*_dir`` keys). Of those keys, only the
ones that separate runs the earlier keys do not are kept, trying group choices (``agent.preset``,
``agent.name``, ``dynamics.kind``, ``penalty.name``, ``filter.name``, ``scale``) first and then the
rest by depth and name: sweeping ``agent=bc,td3bc`` changes every agent hyper-parameter, but
``agent.preset`` alone tells the runs apart, so the condition reads ``agent=bc``. A key a run does
not have (``penalty.coef`` of a run without a penalty) is left out of its label. If no key varies
the condition is the agent preset. The kept keys split the runs exactly as all varying keys do, so a
group averages over seeds only, never over a hidden difference.
``--group-by agent,penalty.coef`` names the keys instead (``agent``, ``dynamics``, ``penalty`` and
``filter`` stand for ``agent.preset``, ``dynamics.kind``, ``penalty.name`` and ``filter.name``).

**Agent labels.** ``agent=mopo`` is the preset a run was started with (``agent.preset``, written
by each file in ``configs/agent/``), not the class behind it: MOPO, MOBILE, RAVL and EDAC all train
the ``sac`` class (``agent.name``). Runs whose config has no ``agent.preset`` (older runs, plugin
presets that do not set one) are labelled by ``agent.name``.

**Statistics** over the seeds of a group, on the final normalised score (``final.score_mean`` of
``final.json``; the raw return for datasets without reference returns): mean and population std
with the 95 % percentile-bootstrap CI of ``mbrl.data.scores.summarize``, the interquartile mean
(:func:`iqm`) and its 95 % CI from the same resamples. With several datasets, an aggregate per
condition follows (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS
2021): the mean of the per-dataset means and the IQM of all runs, with stratified-bootstrap CIs
that resample seeds within each dataset.

**Weights & Biases.** An offline run (``logger=wandb``) lives inside its run folder, in
``<run_dir>/wandb/``, and holds the same numbers as ``eval.csv`` and ``final.json``; the report
reads the run folders and never descends into ``wandb/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from mbrl.data.scores import summarize

log = logging.getLogger(__name__)
EXIT_ERROR = 2

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


class ReportError(ValueError):
    """No runs to report, an unknown ``--group-by`` key or an unreadable run file; the message says which."""


# -- runs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished run: its folder, the flattened resolved config and ``final.json``."""

    path: Path
    config: dict[str, Any]  # dotted keys -> leaf values (lists stay whole)
    final: dict[str, Any]

    @property
    def dataset(self) -> str:
        return str(self.final.get("dataset", self.config.get("dataset")))

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def has_score(self) -> bool:
        return self.final["final"].get("score_mean") is not None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"name": "bc"}} -> {"agent.name": "bc"}``; lists are values, not branches."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def find_runs(folders: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Run folders beneath ``folders``: (finished, unfinished), each sorted.

    A folder is a run folder if it holds ``config.yaml``, ``final.json`` or Hydra's ``.hydra/``;
    it is finished if it holds both ``config.yaml`` and ``final.json``. Hidden folders (``.hydra``)
    and ``wandb`` folders are not searched: both hold a ``config.yaml`` of their own.
    """
    finished, unfinished = set(), set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            here = Path(dirpath)
            is_run = "config.yaml" in filenames or "final.json" in filenames or ".hydra" in dirnames
            if is_run:
                done = "config.yaml" in filenames and "final.json" in filenames
                (finished if done else unfinished).add(here)
                dirnames.clear()  # a run folder holds no other runs
            else:
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "wandb")
    return sorted(finished), sorted(unfinished)


def load_run(path: Path) -> Run:
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=True)
        final = json.loads((path / "final.json").read_text())
    except Exception as e:
        raise ReportError(f"cannot read run folder {path}: {e}") from None
    if not isinstance(final.get("final"), dict) or "return_mean" not in final["final"]:
        raise ReportError(f"{path / 'final.json'} has no 'final' section with 'return_mean'; is it from mbrl-train?")
    if "seed" not in config:
        raise ReportError(f"{path / 'config.yaml'} has no 'seed'; is it from mbrl-train?")
    flat = flatten(config)
    if "agent.name" in flat:  # runs from before presets recorded themselves, and plugin presets without one
        flat.setdefault("agent.preset", flat["agent.name"])
    return Run(path, flat, final)


# -- grouping -----------------------------------------------------------------------------------------

_ABSENT = "<absent>"


def _canonical(config: dict[str, Any], key: str) -> str:
    return json.dumps(config[key], sort_keys=True) if key in config else _ABSENT


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES) or key.split(".")[-1].endswith("_dir")


def condition_keys(runs: Sequence[Run]) -> list[str]:
    """The keys that tell the conditions of ``runs`` apart (the default grouping; module docstring)."""
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


def _sort_key(values: dict[str, Any], keys: Sequence[str]) -> tuple:
    """Numbers in numeric order, then strings; a key a run lacks sorts last."""
    out = []
    for k in keys:
        v = values.get(k, _ABSENT)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append((0, float(v), ""))
        else:
            out.append((1 if v != _ABSENT else 2, 0.0, _render(v)))
    return tuple(out)


# -- statistics -----------------------------------------------------------------------------------------


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
    return torch.stack([x.mean(dim=-1) for x in xs]).mean(dim=0)


def _pooled_iqm(xs: list[torch.Tensor]) -> torch.Tensor:
    return iqm(torch.cat(xs, dim=-1))


# -- the report -----------------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """The numbers of the report as one JSON-ready dict; ``write_report`` adds the plots' file names."""
    if not runs:
        raise ReportError("no finished runs (folders with config.yaml and final.json) to report")
    datasets = sorted({run.dataset for run in runs})
    groups, warnings = [], []
    for dataset in datasets:
        in_dataset = [run for run in runs if run.dataset == dataset]
        metric = _metric(in_dataset)
        by_label: dict[str, list[Run]] = {}
        for run in in_dataset:
            by_label.setdefault(condition_label(run.config, keys), []).append(run)
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
        groups.extend(sorted(entries, key=lambda e: (_sort_key(e["condition_values"], keys), e["condition"])))
    return {
        "folders": [str(f) for f in folders],
        "grouping": {"rule": grouping, "keys": list(keys)},
        "bootstrap": {"resamples": num_bootstrap, "seed": seed, "confidence": 0.95, "interval": "percentile"},
        "num_runs": len(runs),
        "skipped_unfinished": [str(p) for p in unfinished],
        "warnings": warnings,
        "groups": groups,
        "aggregate": _aggregate(groups, num_bootstrap, seed),
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


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _ci(pair: Sequence[float]) -> str:
    return f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def render_markdown(report: dict[str, Any]) -> str:
    keys = ", ".join(f"`{k}`" for k in report["grouping"]["keys"])
    rule = "named by --group-by" if report["grouping"]["rule"] == "group-by" else "the config keys that vary"
    b = report["bootstrap"]
    lines = [
        "# Results",
        "",
        f"{report['num_runs']} finished runs from {', '.join(f'`{f}`' for f in report['folders'])}; "
        f"unfinished runs skipped: {len(report['skipped_unfinished'])}.",
        "",
        f"Groups: dataset × condition, the condition from {keys} ({rule}). Per group, over seeds: the final "
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


# -- learning curves ------------------------------------------------------------------------------------


def _read_curve(run: Run, column: str) -> dict[int, float]:
    """``step -> value`` from the run's ``eval.csv``; empty when it has none."""
    path = run.path / "eval.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {int(row["step"]): float(row[column]) for row in csv.DictReader(f) if row.get(column) not in (None, "")}


def _file_name(dataset: str) -> str:
    return "curves_" + re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_.") + ".png"


def plot_curves(report: dict[str, Any], runs: Sequence[Run], out: Path) -> dict[str, str]:
    """One PNG per dataset; returns ``{dataset: file name}``. Steps are those every seed of a group evaluated at."""
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
            curves = [_read_curve(by_path[p], f"{metric}_mean") for p in g["runs"]]
            steps = sorted(set.intersection(*(set(c) for c in curves)))
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
        name = _file_name(dataset)
        fig.savefig(out / name, dpi=120)
        written[dataset] = name
    return written


# -- command line ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbrl-report",
        description="Aggregate finished mbrl-train runs into report.md, report.json and curves_<dataset>.png.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="folders searched for run folders (e.g. a sweep dir)")
    parser.add_argument("--out", type=Path, help="where the report goes (default: the first folder)")
    parser.add_argument(
        "--group-by",
        metavar="KEYS",
        help="comma-separated config keys that define a condition, e.g. agent,penalty.coef "
        "(default: the keys whose values differ between the runs, seed excluded)",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    return parser


def write_report(
    folders: Sequence[Path],
    out: Path | None = None,
    group_by: str | None = None,
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, Any], str]:
    """Find, group and summarise the runs under ``folders``; write the files into ``out``. Returns (json, markdown)."""
    missing = [str(f) for f in folders if not Path(f).is_dir()]
    if missing:
        raise ReportError(f"not a folder: {', '.join(missing)}")
    if num_bootstrap <= 0:
        raise ReportError(f"--bootstrap must be positive, got {num_bootstrap}")
    finished, unfinished = find_runs(folders)
    runs = [load_run(p) for p in finished]
    if not runs:
        raise ReportError(
            f"no finished runs (folders with config.yaml and final.json) under {', '.join(map(str, folders))}"
            + (f"; {len(unfinished)} unfinished" if unfinished else "")
        )
    keys = parse_group_by(group_by, runs) if group_by else condition_keys(runs)
    grouping = "group-by" if group_by else "varying"
    result = build_report(runs, unfinished, keys, grouping, folders, num_bootstrap, seed)
    out = Path(out if out is not None else folders[0])
    out.mkdir(parents=True, exist_ok=True)
    result["curves"] = plot_curves(result, runs, out)
    markdown = render_markdown(result)
    (out / "report.md").write_text(markdown)
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result, markdown


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mbrl-report``; prints the markdown table. Exit status 0, or 2 with ``error: ...`` on stderr."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # notes go to stderr, the table to stdout
    try:
        result, markdown = write_report(args.folders, args.out, args.group_by, args.bootstrap, args.seed)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(markdown, end="")
    out = args.out if args.out is not None else args.folders[0]
    plots, skipped = len(result["curves"]), len(result["skipped_unfinished"])
    log.info("wrote %s (report.md, report.json, %d plots); %d unfinished runs skipped", out, plots, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())

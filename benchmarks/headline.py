"""The headline table: offline agents (rows) on the built-in datasets (columns) at the `cpu` presets.

    python benchmarks/headline.py --workers 2                 # train what is missing, then report
    python benchmarks/headline.py --report-only               # report the finished runs only
    python benchmarks/headline.py --agents BC MOPO --datasets hopper-random --seeds 0

Rows are the model-free baselines (BC, TD3+BC, IQL) and the model-based agents (MOPO, MOBILE, RAVL,
MOREC-MOPO, COMBO), each at its `cpu` preset (``configs/experiment/<agent>_cpu.yaml``; BC has no
experiment and runs ``agent=bc scale=cpu``), plus the published per-task settings of the dataset's
D4RL namesake where the method's reference lists them (``configs/experiment/paper/<agent>/<dataset>.yaml``
without its dataset: MOPO's, MOBILE's and MOREC's penalty coefficients, COMBO's CQL weight, horizons),
as OfflineRL-Kit's table does. Columns are the `random`, `medium-replay` and `medium`
built-in datasets of halfcheetah and hopper. A cell is the interquartile mean of the final
normalised score over seeds with its 95 % bootstrap CI (``mbrl-report``'s grid table); each
column's head gives the behaviour policy's score.

Each run is an ordinary ``mbrl-train`` run (one torch thread, ``--workers`` at a time) in
``benchmarks/runs/headline_cpu/<dataset>/<agent>/seed<k>``. Finished runs are never rerun, and a
run another benchmark already made is used where it lies: a finished run under ``--reuse`` folders
(default: every benchmark's runs) whose resolved ``config.yaml`` is this cell's
(:func:`mbrl.run_folder.same_experiment`: key for key, leaving out only the keys that change what
is logged or how fast; a key the run lacks matches only where the cell is at that key's default,
so a run made before MOBILE's ``deterministic_backup`` existed is not taken for one made with it on).
A finished run in a cell's own folder or in the archive (below) whose settings are no longer the
cell's stops the script with the folders to move away.

Every finished cell's run is archived, without its checkpoints, in
``benchmarks/results/headline_cpu_archive/<dataset>/<agent>/seed<k>`` (``config.yaml``, ``final.json``,
``eval.csv``, ``diagnostics.csv``, ``git_revision.txt``: a few kB, committed with the results), and the
report is made from the archive. Run folders are large and not committed; losing them (a new machine, a cleaned disk)
loses no cell: a cell with an archived run is finished and is not rerun. To rerun a cell, move its
archived folder away.

Several invocations may run side by side (other rows or seeds, ``--workers 1`` each): each lists the archive
again once its runs end, so its report holds every cell finished by then, the others' included.

Writes ``benchmarks/results/headline_cpu.{md,json}`` and ``headline_cpu_curves_<dataset>.png``
through :func:`mbrl.report.write_report`, plus ``headline_cpu_runs.json``: per cell, the run folder it
came from, its archived copy, whether it was reused, the commits the runs were made at and the
cells still missing. Like every report, it shows per cell the critics' final Q(s0) against the
discounted return obtained and the model's error along the policy's rollouts against its error on the
data (``mbrl.report.values``, ``mbrl.report.model_error``); it ends with the table's targets (``TARGETS``)
checked on the finished cells by :func:`mbrl.report.targets.check_targets` and the missing seeds per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.learning import archive_run, machine, run_one  # noqa: E402
from mbrl.config import as_dict, default_values, published_task_overrides, resolve  # noqa: E402
from mbrl.report import write_report  # noqa: E402
from mbrl.report.targets import check_targets, missing_section  # noqa: E402
from mbrl.run_folder import same_experiment  # noqa: E402
from mbrl.train import compose  # noqa: E402

NAME = "headline_cpu"
ARCHIVE = f"{NAME}_archive"  # under the results folder
RUNS = ROOT / "benchmarks" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
FIT25 = "dynamics.max_epochs=25"  # the `cpu` scale's dynamics fit before findings §28
# Row label -> (folder name, overrides). Order is the table's: baselines first. A row whose preset changed keeps
# its runs as a row of its own, pinned to the old setting, beside the preset's new row.
AGENTS: dict[str, tuple[str, list[str]]] = {
    "BC": ("bc", ["agent=bc"]),
    "TD3+BC": ("td3bc_standardised", ["experiment=td3bc_cpu"]),  # the preset: states standardised, as published
    # The row as it was made before agent.normalize_states (f176723): raw states.
    "TD3+BC, raw states": ("td3bc", ["experiment=td3bc_cpu", "agent.normalize_states=false"]),
    "IQL": ("iql_scaled_rewards", ["experiment=iql_cpu"]),  # the preset: rewards scaled, as published
    # The row as it was made before agent.normalize_rewards: the dataset's own rewards.
    "IQL, raw rewards": ("iql", ["experiment=iql_cpu", "agent.normalize_rewards=false"]),
    # The model-based presets since the `cpu` scale fits the dynamics for up to 100 epochs (findings §28).
    "MOPO": ("mopo_fit100", ["experiment=mopo_cpu"]),
    "MOBILE": ("mobile_fit100", ["experiment=mobile_cpu"]),
    "RAVL": ("ravl_fit100", ["experiment=ravl_cpu"]),
    "MOREC-MOPO": ("morec_mopo_fit100", ["experiment=morec_mopo_cpu"]),  # the dynamics reward's 30000 rounds
    "COMBO": ("combo_fit100", ["experiment=combo_cpu"]),
    # The rows as they were made before, with the dynamics fitted for 25 epochs.
    "MOPO, 25-epoch fit": ("mopo", ["experiment=mopo_cpu", FIT25]),
    "MOBILE, 25-epoch fit": ("mobile", ["experiment=mobile_cpu", FIT25]),
    "RAVL, 25-epoch fit": ("ravl", ["experiment=ravl_cpu", FIT25]),
    "MOREC-MOPO, 25-epoch fit": ("morec_mopo_30k", ["experiment=morec_mopo_cpu", FIT25]),
    # ... and before the filter's dynamics reward trained 30000 rounds instead of 3000.
    "MOREC-MOPO, 3000 rounds, 25-epoch fit": (
        "morec_mopo",
        ["experiment=morec_mopo_cpu", "filter.reward.rounds=3000", FIT25],
    ),
    "COMBO, 25-epoch fit": ("combo", ["experiment=combo_cpu", FIT25]),
}


def method(label: str) -> str:
    """The method a row runs, which names its published per-task settings (``configs/experiment/paper/<method>``):
    its ``experiment=<method>_cpu`` preset, or its ``agent=`` for a row without one (BC)."""
    overrides = dict(o.split("=", 1) for o in AGENTS[label][1])
    return overrides["experiment"].removesuffix("_cpu") if "experiment" in overrides else overrides["agent"]


DATASETS = [
    "halfcheetah-random",
    "hopper-random",
    "halfcheetah-medium-replay",
    "hopper-medium-replay",
    "halfcheetah-medium",
    "hopper-medium",
]
# The targets the table is read against (mbrl.report.targets): on the broad-coverage columns each of
# these model-based agents should beat both baselines with a non-overlapping CI on 3 of the 4 columns;
# RAVL is read against MOPO; on the `medium` columns, each agent against the behaviour policy.
TARGETS = {
    "agents": ["MOPO", "MOBILE", "RAVL"],
    "baselines": ["BC", "TD3+BC"],
    "columns": [d for d in DATASETS if not d.endswith("-medium")],
    "min_columns": 3,
    "rivals": [("RAVL", "MOPO")],
    "behaviour_columns": [d for d in DATASETS if d.endswith("-medium")],
}
SEEDS = (0, 1, 2)  # a cell's seeds; the report lists each one without a finished run as missing
# What train_in adds to every run; part of the resolved config a reused run must match.
RUN_OVERRIDES = ["threads=1", "logger.progress=false"]


def reusable_runs(folders: list[Path]) -> list[tuple[Path, dict]]:
    """Every finished mbrl-train run under ``folders`` with its resolved config."""
    out = []
    for folder in folders:
        for config_file in sorted(folder.rglob("config.yaml")):
            run = config_file.parent
            if ".hydra" in run.parts or not (run / "final.json").exists():
                continue
            out.append((run, OmegaConf.to_container(OmegaConf.load(config_file), resolve=True)))
    return out


def finished_cells(results_dir: Path, runs_dir: Path) -> set[tuple[str, str, int]]:
    """(row label, dataset, seed) of every cell with a finished run in the archive or in its own run folder
    (``<dataset>/<agent folder>/seed<k>`` under each)."""
    labels_of = {folder: label for label, (folder, _) in AGENTS.items()}
    return {
        (labels_of[p.parent.name], p.parent.parent.name, int(p.name[4:]))
        for root in (results_dir / ARCHIVE, runs_dir / NAME)
        for p in root.glob("*/*/seed*")
        if p.parent.name in labels_of and p.name[4:].isdigit() and (p / "final.json").exists()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--reuse", nargs="*", type=Path, default=[RUNS], help="folders of finished runs to use where they lie"
    )
    p.add_argument("--runs-dir", type=Path, default=RUNS, help="where the cells' runs go, under headline_cpu/")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--report-only", action="store_true", help="report the finished runs, start none")
    p.add_argument("--bootstrap", type=int, default=2000)
    a = p.parse_args(argv)

    cells = {}  # (label, dataset, seed) -> run folder, reused or ours
    kept = {}  # (label, dataset, seed) -> the cell's place in the archive, which the report reads
    reused = set()
    finished = set()  # cells with a finished run in their own folder or the archive: never rerun
    candidates = reusable_runs([f.resolve() for f in a.reuse if f.is_dir()])
    overrides = {}  # (label, dataset) -> the cell's overrides: the agent's, then its published task settings
    stale = []
    selected = [(label, d, s) for label in a.agents for d in a.datasets for s in a.seeds]
    datasets = [*DATASETS, *(d for d in a.datasets if d not in DATASETS)]
    finished_elsewhere = finished_cells(a.results_dir, a.runs_dir)  # reported whichever cells this one runs
    datasets += sorted({d for _, d, _ in finished_elsewhere} - set(datasets))
    order = list(AGENTS)

    def table_order(k: tuple[str, str, int]) -> tuple[int, int, int]:
        return order.index(k[0]), datasets.index(k[1]), k[2]

    def add_cell(label: str, d: str, s: int) -> None:
        """Place a cell: its run folder (its own, or a reusable finished run), its archive folder, and whether it
        is finished; a finished run whose settings are no longer the cell's is listed in ``stale``."""
        folder, agent = AGENTS[label]
        if (label, d) not in overrides:
            overrides[label, d] = [*agent, *published_task_overrides(method(label), d)]
        own = a.runs_dir / NAME / d / folder / f"seed{s}"
        cells[label, d, s] = own
        cfg = resolve(compose([f"dataset={d}", f"seed={s}", "scale=cpu", *overrides[label, d], *RUN_OVERRIDES]))
        target, defaults = as_dict(cfg), default_values(cfg)
        kept[label, d, s] = a.results_dir / ARCHIVE / d / folder / f"seed{s}"
        done = [f for f in (own, kept[label, d, s]) if (f / "final.json").exists()]
        if done:
            finished.add((label, d, s))
            for f in done:
                config = OmegaConf.to_container(OmegaConf.load(f / "config.yaml"), resolve=True)
                if not same_experiment(config, target, defaults):
                    stale.append(f)
            return
        found = next((run for run, config in candidates if same_experiment(config, target, defaults)), None)
        if found is not None:
            cells[label, d, s] = found
            reused.add(found)

    def refuse_stale() -> None:
        if stale:
            listed = "\n  ".join(str(p) for p in stale)
            raise SystemExit(
                f"these finished runs were made with other settings than their cells' presets now give:\n  {listed}\n"
                "move them away (nothing is deleted here) and run again"
            )

    for k in sorted({*selected, *finished_elsewhere}, key=table_order):
        add_cell(*k)
    refuse_stale()
    if not a.report_only:
        todo = [(k, out) for k, out in cells.items() if k not in finished and out not in reused]
        with ThreadPoolExecutor(a.workers) as pool:
            jobs = [pool.submit(run_one, d, overrides[label, d], s, "cpu", out) for (label, d, s), out in todo]
            for job in jobs:
                job.result()
        # Another invocation (other agents or seeds, run beside this one) may have finished cells meanwhile:
        # the report is written from the whole archive, so it must not drop them.
        late = finished_cells(a.results_dir, a.runs_dir) - cells.keys()
        datasets += sorted({d for _, d, _ in late} - set(datasets))
        for k in sorted(late, key=table_order):
            add_cell(*k)
    grid = {(label, d, s) for label in AGENTS for d in datasets for s in SEEDS} | set(selected)

    for k, out in cells.items():
        if (out / "final.json").exists():
            archive_run(out, kept[k])
    refuse_stale()  # after archiving: this invocation's own finished runs are kept whatever the others left
    archived = {k: kept[k] for k in sorted(kept, key=table_order) if (kept[k] / "final.json").exists()}
    missing = sorted(grid - archived.keys())
    if not archived:
        print(f"no finished runs yet; missing: {len(missing)} cells")
        return 1
    labels = {dest: label for (label, _, _), dest in archived.items()}
    result, markdown = write_report(
        list(archived.values()), a.results_dir, name=NAME, num_bootstrap=a.bootstrap, labels=labels, tables=False
    )
    checked, section = check_targets(result["groups"], **TARGETS)
    markdown = f"{markdown.rstrip()}\n\n{section}\n{missing_section(missing, list(AGENTS), datasets)}"
    (a.results_dir / f"{NAME}.md").write_text(markdown)
    result["targets"] = checked
    (a.results_dir / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    runs = {
        "machine": machine(list(archived.values())),
        "cells": [
            {
                "agent": label,
                "dataset": d,
                "seed": s,
                "run": os.path.relpath(cells[label, d, s], ROOT),
                "archived": os.path.relpath(dest, ROOT),
                "reused": cells[label, d, s] in reused,
            }
            for (label, d, s), dest in sorted(archived.items())
        ],
        "missing": [f"{label} {d} seed{s}" for label, d, s in missing],
    }
    (a.results_dir / f"{NAME}_runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(markdown)
    n_reused = sum(cells[k] in reused for k in archived)
    print(f"{len(archived)} runs ({n_reused} reused), {len(missing)} cells missing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

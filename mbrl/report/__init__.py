"""``mbrl-report``: aggregate the run folders of a sweep into a results table and learning curves.

    mbrl-report multirun/2026-11-21/09-02-31                # a Hydra multirun (one run per job folder)
    mbrl-report runs/a runs/b --group-by agent,penalty.coef --out reports/ab

Every folder beneath the given ones that holds ``config.yaml`` and ``final.json`` (as written by
``mbrl-train``) is a finished run. Folders with ``config.yaml`` or ``.hydra/`` but no
``final.json`` are unfinished (still running, killed or failed): they are listed as skipped.
Writes into ``--out`` (default: the first folder; ``--name N`` renames the files ``N.md``, ``N.json``,
``N_curves_<dataset>.png``):

- ``report.md``: the table (also printed), one row per (dataset, condition), and with several
  datasets a grid of conditions (rows) by datasets (columns), each cell the IQM [95 % CI] (n);
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

**Diagnostics** per group, for the runs that recorded them: the critics' final Q(s0) against the
discounted return the policy obtained (``values``), and the model's 5-step error along the policy's
rollouts against its error on the data (``model_error``, from ``diagnostics.csv``). Each is a grid of
its own in ``report.md`` and a key of ``report.json`` (``{condition: {dataset: ...}}``), absent from
the markdown when no run measured it.

**Modules.** ``runs`` finds and reads run folders, ``grouping`` decides the conditions, ``stats``
computes the numbers (``build_report``), ``values`` and ``model_error`` read the diagnostics,
``markdown`` and ``plots`` render them, ``cli`` writes the files and is the command line. A benchmark
reads more off a report's groups with ``targets`` (whether a condition's interval lies wholly above
others').
"""

from mbrl.report.cli import EXIT_ERROR, build_parser, main, write_report
from mbrl.report.grouping import (
    ALIASES,
    GROUP_CHOICES,
    IGNORED_KEYS,
    IGNORED_PREFIXES,
    condition_keys,
    condition_label,
    parse_group_by,
)
from mbrl.report.markdown import render_markdown
from mbrl.report.plots import plot_curves
from mbrl.report.runs import ReportError, Run, find_runs, flatten, load_run
from mbrl.report.stats import build_report, iqm, stratified_bootstrap_ci

__all__ = [
    "ALIASES",
    "EXIT_ERROR",
    "GROUP_CHOICES",
    "IGNORED_KEYS",
    "IGNORED_PREFIXES",
    "ReportError",
    "Run",
    "build_parser",
    "build_report",
    "condition_keys",
    "condition_label",
    "find_runs",
    "flatten",
    "iqm",
    "load_run",
    "main",
    "parse_group_by",
    "plot_curves",
    "render_markdown",
    "stratified_bootstrap_ci",
    "write_report",
]

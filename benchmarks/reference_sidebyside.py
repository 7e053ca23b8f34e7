"""Side by side: our MOPO, MOBILE, RAVL, COMBO, RAMBO and EDAC against their reference implementations,
same data, settings and number of updates.

    python benchmarks/reference_sidebyside.py --reference /path/to/OfflineRL-Kit \
        --edge-of-reach /path/to/edge-of-reach --seeds 0 1 2 --workers 2
    python benchmarks/reference_sidebyside.py --methods mopo mobile --datasets hopper-medium-replay ...
    python benchmarks/reference_sidebyside.py ... --report-only      # summarise finished runs

Without ``--methods``/``--datasets`` the grid is ``GRID``: MOPO, MOBILE and RAVL on hopper- and
halfcheetah-medium-replay, then COMBO, RAMBO and EDAC on hopper-medium-replay. ``--datasets`` runs
every chosen method on every dataset given. Each (method, dataset, seed) is trained twice, one torch
thread each:

- ours: an ordinary ``mbrl-train experiment=<method>_cpu`` run;
- the reference: the method's reference implementation, its own classes driven by
  ``benchmarks/reference_drivers.py`` (OfflineRL-Kit for MOPO, MOBILE, COMBO, RAMBO and EDAC, given
  with ``--reference``; the RAVL authors' edge-of-reach, given with ``--edge-of-reach``). Every
  setting is read from the same resolved ``<method>_cpu`` config, so both sides get the same
  networks, learning rates, updates, rollout schedule and batch mix, dynamics fit and penalty; the
  drivers' docstring lists what the references cannot take. The budget (updates, evaluation, rollout
  rounds, fit epochs) is pinned in ``BUDGET`` at the values the grid began with, whatever the presets
  say later.

``--overrides`` apply to both sides; ``method:key=value`` applies to that method only (e.g.
``rambo:agent.bc_steps=100``, a key other methods do not have). A reference's fixed choices that are
settings of ours (``reference_drivers.FIXED``) must be passed the same way, or its side stops: COMBO needs
``combo:agent.logsumexp_over=draw`` (OfflineRL-Kit's grouping of the conservative logsumexp).

One dynamics fit per (side, dataset, seed, dynamics config), shared by the methods of that side. Ours:
every method of a dataset and seed points at one cache folder (``dynamics.cache_dir``), whose entries
are keyed by dataset and dynamics config, so MOPO, MOBILE, COMBO and RAVL share one fit and RAMBO
(log-variance coefficient 0.001) has its own. The reference: OfflineRL-Kit's ensemble is saved with
``EnsembleDynamics.save`` and loaded by the later runs (MOPO, MOBILE and COMBO share one; RAMBO's is
fitted on normalised observations, as ``run_rambo.py`` does); edge-of-reach's with its own
``save_ensemble_model`` and ``DynamicsModel``. Fits live in ``<runs>/<dataset>/_fits/<side>/seed<k>/``,
each with ``fit.json`` holding its wall seconds. The jobs of one (stage, side, dataset, seed) run as one
chain, in order, each fitting first if its fit is missing (under a file lock, so a fit never runs twice
at once); chains run ``--workers`` at a time, MOPO/MOBILE/RAVL chains before COMBO/RAMBO/EDAC ones.

Wall time: a run's own job (measured around its process, the same way for both sides) plus the wall
seconds of the fit it used, so the speed ratio compares whole jobs; a fit shared by several methods counts
in each of their rows. Runs of the earlier layout (a fit private to the run, ``wall_s.txt`` holding the
whole job) are reported as they are. A run stopped and resumed counts only the invocation that finished it.

Both sides are evaluated by the same function (``mbrl.evaluate.evaluate``, the same seeds and episode
counts), so a difference in score is a difference in training. Runs live in
``benchmarks/runs/<name>/<dataset>/<method>/<ours|reference>/seed<k>`` and are never rerun once
finished. Each finished run's record (``config.yaml``, ``final.json``, ``eval.csv``, ``diagnostics.csv``,
``wall.json``, ``git_revision.txt``) and its fit's (``fit.json``, ``scores.json``) are copied to the same place under
``benchmarks/results/<name>_archive/`` (a few kB each, committed), and the report is made from the
archive: losing the run folders (checkpoints, fitted models; not committed) loses no row, and an
archived run is not rerun. The report covers every row in the archive, whichever methods, datasets and
seeds this invocation ran, so running one cell never drops the others from it. Writes
``benchmarks/results/<name>.{json,md}`` (``--name``, default ``reference_sidebyside``) and one
learning-curve plot per method and dataset, both sides in it, over the seeds whose ``eval.csv`` was kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.learning import (  # noqa: E402
    RUN_RECORD,
    archive_run,
    machine,
    mean_curve,
    read_rows,
    run_cpus_text,
    score_curve,
    train_in,
)
from benchmarks.reference_drivers import CHECKOUT  # noqa: E402
from mbrl.data.scores import summarize  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("mopo", "mobile", "ravl", "combo", "rambo", "edac")
MEDIUM_REPLAY = ("hopper-medium-replay", "halfcheetah-medium-replay")
# The grid asked for, and its order: MOPO, MOBILE and RAVL on both datasets first, then the rest on one.
GRID = {m: MEDIUM_REPLAY for m in ("mopo", "mobile", "ravl")} | {
    m: ("hopper-medium-replay",) for m in ("combo", "rambo", "edac")
}
STAGE = {"mopo": 0, "mobile": 0, "ravl": 0, "combo": 1, "rambo": 1, "edac": 1}
# The budget both sides train with, pinned at the `cpu` presets' values of the grid's first runs
# (commit a12b705): updates, evaluation and, for the model-based methods, rollout rounds and fit
# epochs. The presets may grow (the headline table's); the rows finished here must stay comparable
# with the rows still to run. These come before ``--overrides``, which can still change them.
_EVAL = ("eval_episodes=5", "final_eval_episodes=10")
_MODEL = ("rollout.batch_size=5000", "rollout.every=250", "dynamics.max_epochs=25")
BUDGET: dict[str, tuple[str, ...]] = {
    "mopo": ("total_updates=15000", "eval_every=2500", *_EVAL, *_MODEL),
    "mobile": ("total_updates=10000", "eval_every=2000", *_EVAL, *_MODEL),
    "ravl": ("total_updates=15000", "eval_every=2500", *_EVAL, *_MODEL),
    "combo": ("total_updates=6000", "eval_every=1000", *_EVAL, *_MODEL),
    "rambo": ("total_updates=15000", "eval_every=2500", *_EVAL, *_MODEL),
    "edac": ("total_updates=15000", "eval_every=2500", *_EVAL),
}
SIDES = ("ours", "reference")
# What both sides log of an update (ours' train.csv, the reference driver's TrainTrace), plotted side by side.
TRACE = ("q_mean", "alpha", "entropy", "actor_loss")
# What the archive keeps of a finished run (wall_s.txt: the earlier layout's whole-job wall time) and of a fit.
RUN_FILES = (*RUN_RECORD, "train.csv", "wall.json", "wall_s.txt")
FIT_FILES = ("fit.json", "scores.json")
# The name of each side's fit: its implementation; RAMBO's reference fit sees normalised observations.
FIT_KIND = {"ours": "ours", "OfflineRL-Kit": "offlinerlkit", "edge-of-reach": "edge-of-reach"}


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run of one side, and the dynamics fit it uses (None: model-free)."""

    method: str
    dataset: str
    seed: int
    side: str
    out: Path
    fit: Path | None
    overrides: tuple[str, ...]

    @property
    def head(self) -> list[str]:
        return [f"experiment={self.method}_cpu", f"dataset={self.dataset}", f"seed={self.seed}"]

    @property
    def cache_dir(self) -> Path:
        """Our side's dynamics cache, one per dataset and seed: every method of ours points at it."""
        return self.fit.parent / "cache"


def method_overrides(overrides: list[str], method: str) -> tuple[str, ...]:
    """The overrides for ``method``: its pinned ``BUDGET``, then the plain ones and ``method:key=value`` ones
    with the prefix removed."""
    out = list(BUDGET[method])
    for item in overrides:
        prefix, sep, rest = item.partition(":")
        if sep and prefix in METHODS:
            if prefix == method:
                out.append(rest)
        else:
            out.append(item)
    return tuple(out)


def fit_digest(method: str, dataset: str, seed: int, extra: tuple[str, ...]) -> str | None:
    """A digest of ``method``'s resolved dynamics section (cache settings left out); None when model-free.

    Fits are named by it, so methods with the same dynamics config share a fit and any other config gets
    its own.
    """
    from mbrl.config import resolve
    from mbrl.train import compose

    cfg = resolve(compose([f"experiment={method}_cpu", f"dataset={dataset}", f"seed={seed}", *extra]))
    if not cfg.model_based:
        return None
    section = {k: v for k, v in dataclasses.asdict(cfg.dynamics).items() if k not in ("cache", "cache_dir")}
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:10]


def fit_folder(runs: Path, side: str, method: str, dataset: str, seed: int, digest: str) -> Path:
    """Where the fit with ``digest`` that ``method`` uses on ``side`` lives, named by its implementation."""
    kind = FIT_KIND["ours" if side == "ours" else CHECKOUT[method]]
    if side == "reference" and method == "rambo":
        kind += "-normalised"
    return runs / dataset / "_fits" / side / f"seed{seed}" / f"{kind}-{digest}"


def plan(
    pairs: list[tuple[str, str]], seeds: list[int], sides: list[str], runs: Path, overrides: list[str]
) -> list[list[Job]]:
    """The chains to run, in order: per stage, seed, dataset and side, the jobs of that stage's methods."""
    datasets = list(dict.fromkeys(d for _, d in pairs))
    chains = []
    for stage in sorted({STAGE[m] for m, _ in pairs}):
        for seed in seeds:
            for dataset in datasets:
                methods = [m for m, d in pairs if d == dataset and STAGE[m] == stage]
                extra = {m: method_overrides(overrides, m) for m in methods}
                digests = {m: fit_digest(m, dataset, seed, extra[m]) for m in methods}
                for side in sides:
                    chain = []
                    for m in methods:
                        fit = fit_folder(runs, side, m, dataset, seed, digests[m]) if digests[m] else None
                        out = runs / dataset / m / side / f"seed{seed}"
                        chain.append(Job(m, dataset, seed, side, out, fit, extra[m]))
                    if chain:
                        chains.append(chain)
    return chains


def run_chain(chain: list[Job], runs: Path, checkouts: dict[str, Path], archive: Path) -> None:
    """Each job of ``chain`` in order that is neither finished nor archived, its fit first when it has none yet.
    A job that fails does not stop the jobs after it; the chain raises at its end, naming the failures."""
    failed = []
    for job in chain:
        if (job.out / "final.json").exists() or (archive / job.out.relative_to(runs) / "final.json").exists():
            continue
        try:
            if job.fit is not None:
                ensure_fit(job, checkouts)
            run_job(job, runs, checkouts)
        except subprocess.CalledProcessError:
            failed.append(f"{job.method} {job.side} on {job.dataset} seed {job.seed} (logs in {job.out}, {job.fit})")
            print(f"failed: {failed[-1]}", file=sys.stderr, flush=True)
    if failed:
        raise RuntimeError("; ".join(failed))


def ensure_fit(job: Job, checkouts: dict[str, Path]) -> None:
    """Fit ``job``'s dynamics into ``job.fit`` unless ``fit.json`` is there; one fit per folder at a time."""
    job.fit.mkdir(parents=True, exist_ok=True)
    with open(job.fit.parent / f"{job.fit.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a chain that needs the same fit waits here for it
        if (job.fit / "fit.json").exists():
            return
        if job.side == "ours":
            cache = f"dynamics.cache_dir={job.cache_dir}"
            cmd = [sys.executable, __file__, "_fit_ours", str(job.fit), *job.head, cache, *job.overrides]
        else:
            cmd = reference_command("fit", job, checkouts)
        with open(job.fit / "fit.log", "a") as log:
            run_logged(cmd, log)


def run_logged(cmd: list[str], log: IO[str]) -> None:
    """Run ``cmd`` in the repository root, its output unbuffered into ``log`` (the references print)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)


def reference_command(step: str, job: Job, checkouts: dict[str, Path]) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.reference_drivers", step, "--method", job.method]
    cmd += ["--dataset", job.dataset, "--seed", str(job.seed), "--checkout", str(checkouts[CHECKOUT[job.method]])]
    cmd += ["--fit", str(job.fit)] if job.fit is not None else []
    cmd += ["--out", str(job.out)] if step == "train" else []
    return [*cmd, "--overrides", *job.overrides]


def run_job(job: Job, runs: Path, checkouts: dict[str, Path]) -> None:
    """Train ``job`` and write its ``wall.json``: the job's own wall seconds, the fit it used and that fit's
    seconds (kept with the run, since the fit may be remade later for other runs)."""
    if job.side == "ours":
        cache = [f"dynamics.cache_dir={job.cache_dir}"] if job.fit is not None else []
        wall_s = train_in(job.out, [*job.head, *cache], list(job.overrides), log_mode="a")
    else:
        job.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(job.out / "stdout.log", "a") as log:
            cmd = reference_command("train", job, checkouts)
            run_logged(cmd, log)
        wall_s = time.perf_counter() - start
    wall: dict[str, Any] = {"run_s": wall_s, "fit": None}
    if job.fit is not None:
        wall["fit"] = str(job.fit.relative_to(runs))
        wall["fit_s"] = json.loads((job.fit / "fit.json").read_text())["fit_s"]
    (job.out / "wall.json").write_text(json.dumps(wall, indent=2) + "\n")


def _fit_ours(folder: Path, overrides: list[str]) -> None:
    """Fit our dynamics for ``overrides`` into its cache (as the training job would) and record the fit's
    wall seconds, which the cache entry holds, in ``folder/fit.json``."""
    from mbrl.dynamics.cache import cache_key, cache_root, fit_cached
    from mbrl.dynamics.factory import build_dynamics

    from mbrl.config import eval_env, resolve
    from mbrl.data.loading import load_dataset
    from mbrl.train import compose

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")  # the fit's progress
    cfg = resolve(compose([*overrides, "threads=1"]))
    torch.set_num_threads(cfg.threads)
    data = load_dataset(
        cfg.dataset, download=cfg.download, env_id=cfg.env_id, allow_version_mismatch=cfg.allow_version_mismatch
    )
    spec = data.spec
    dynamics = build_dynamics(cfg.dynamics.kind, cfg.dynamics, spec, eval_env(cfg, spec), cfg.seed, cfg.device)
    fit_cached(dynamics, data.model_rows, spec.content_hash, cache_dir=cfg.dynamics.cache_dir)
    entry = cache_root(cfg.dynamics.cache_dir) / "dynamics" / f"{cache_key(dynamics, spec.content_hash)}.pt"
    fit_s = torch.load(entry, weights_only=True).get("fit_s")
    if fit_s is None:
        raise SystemExit(f"{entry} was cached before fits recorded their time: delete it to refit")
    (folder / "fit.json").write_text(json.dumps({"fit_s": fit_s, "entry": str(entry)}, indent=2) + "\n")


def earlier_sessions_s(run: Path) -> float | None:
    """Loop seconds a finished run spent before its last resume: 0 for a reference run (never resumed), None
    when unknown (ours, made before ``final.json`` recorded ``timing``)."""
    timing = json.loads((run / "final.json").read_text()).get("timing")
    if timing is not None:
        return timing["earlier_sessions_s"]
    return 0.0 if run.parent.name == "reference" else None  # run: <method>/<side>/seed<k>


def run_wall(run: Path, runs: Path) -> tuple[float, float | None] | None:
    """A finished run's wall seconds and, of those, its fit's; None when the run recorded none.

    The current layout (``wall.json``): the run's own job plus the fit it used (the seconds ``wall.json``
    kept, or for older runs the fit's ``fit.json``, which a later refit of that fit overwrites); ``wall.json``
    times the last process only, so a run of ours that resumed from a checkpoint adds the loop seconds of
    its earlier sessions (``final.json["timing"]``), and one resumed before runs recorded them has no wall
    time. The earlier layout (``wall_s.txt``): the whole job, its private fit included; the fit's share is
    known only for the reference (its ``final.json``).
    """
    if (run / "wall.json").exists():
        wall = json.loads((run / "wall.json").read_text())
        earlier_s = earlier_sessions_s(run)
        if earlier_s is None:
            return None
        run_s = wall["run_s"] + earlier_s
        if wall["fit"] is None:
            return run_s, None
        fit_s = wall.get("fit_s")  # absent in runs recorded before wall.json kept it
        if fit_s is None:
            fit_s = json.loads((runs / wall["fit"] / "fit.json").read_text())["fit_s"]
        return run_s + fit_s, fit_s
    if (run / "wall_s.txt").exists():
        return float((run / "wall_s.txt").read_text()), json.loads((run / "final.json").read_text()).get("fit_s")
    return None


def archive_finished(runs: Path, archive: Path, pairs: list[tuple[str, str]], seeds: list[int]) -> None:
    """Copy the record of each finished run under ``runs`` (``RUN_FILES``), and of the fit it used
    (``FIT_FILES``), to the same place under ``archive``."""
    for m, d in pairs:
        for side in SIDES:
            for s in seeds:
                run = runs / d / m / side / f"seed{s}"
                if not (run / "final.json").exists():
                    continue
                archive_run(run, archive / run.relative_to(runs), RUN_FILES)
                fit = json.loads((run / "wall.json").read_text())["fit"] if (run / "wall.json").exists() else None
                if fit is not None:
                    archive_run(runs / fit, archive / fit, FIT_FILES)


def archived_grid(
    archive: Path, pairs: list[tuple[str, str]], seeds: list[int]
) -> tuple[list[tuple[str, str]], list[int]]:
    """``pairs`` and ``seeds`` widened to every (method, dataset) and seed with a run under ``archive``;
    pairs in ``GRID`` order (a method's grid datasets first, then the others by name)."""
    found = [p for p in archive.glob("*/*/*/seed*") if p.parts[-3] in METHODS and p.name[4:].isdigit()]

    def order(pair: tuple[str, str]) -> tuple:
        m, d = pair
        return METHODS.index(m), GRID[m].index(d) if d in GRID[m] else len(GRID[m]), d

    every = {*pairs, *((p.parts[-3], p.parts[-4]) for p in found)}
    return sorted(every, key=order), sorted({*seeds, *(int(p.name[4:]) for p in found)})


def summarise(runs: Path, pairs: list[tuple[str, str]], seeds: list[int]) -> list[dict]:
    """One row per (dataset, method): both sides' final scores, CIs, curves and wall times, from the run
    records under ``runs`` (the archive). The curve averages the seeds that kept their ``eval.csv``."""
    rows = []
    for m, d in pairs:
        row: dict = {"dataset": d, "method": m}
        for side in SIDES:
            dirs = [runs / d / m / side / f"seed{s}" for s in seeds]
            done = [x for x in dirs if (x / "final.json").exists()]
            scores = [json.loads((x / "final.json").read_text())["final"]["score_mean"] for x in done]
            walls = [w for w in (run_wall(x, runs) for x in done) if w is not None]
            s = summarize(torch.tensor(scores)) if scores else None
            curved = [x for x in done if (x / "eval.csv").exists()]
            row[side] = {
                "seeds": [int(x.name[4:]) for x in done],
                "scores": scores,
                "mean": s.mean if s else None,
                "ci95": [s.ci_low, s.ci_high] if s else None,
                "wall_s": [w for w, _ in walls],
                "fit_s": [f for _, f in walls],
                "curve": score_curve(curved) if curved else [],
                "curve_seeds": [int(x.name[4:]) for x in curved],
                "trace": trace_curves(traced := [x for x in done if (x / "train.csv").exists()]),
                "trace_seeds": [int(x.name[4:]) for x in traced],
            }
        if row["ours"]["scores"] or row["reference"]["scores"]:
            rows.append(row)
    return rows


def score_fits(
    runs: Path,
    archive: Path,
    pairs: list[tuple[str, str]],
    seeds: list[int],
    checkouts: dict[str, Path | None],
    overrides: list[str],
) -> list:
    """Each finished pair of fits (ours and the reference's, same dynamics config) scored on the same rows by
    ``reference_drivers score-fits``; scores are kept beside the reference's fit, archived with it and never
    recomputed.

    MOPO stands for OfflineRL-Kit's shared fit (MOBILE and COMBO load the same one) and RAVL for
    edge-of-reach's; RAMBO's fit sees normalised observations on the reference side and is not scored.
    """
    rows = []
    for method in ("mopo", "ravl"):
        datasets = [d for m, d in pairs if m == method]
        for dataset in datasets:
            for seed in seeds:
                extra = method_overrides(overrides, method)  # the fit's config, as plan() names it
                digest = fit_digest(method, dataset, seed, extra)
                ref = fit_folder(runs, "reference", method, dataset, seed, digest)
                ours = fit_folder(runs, "ours", method, dataset, seed, digest)
                out = ref / "scores.json"
                ready = (ref / "fit.json").exists() and (ours / "fit.json").exists()
                if ready and not out.exists() and checkouts.get(CHECKOUT[method]) is not None:
                    job = Job(method, dataset, seed, "reference", ours.parent, ref, extra)
                    cmd = [*reference_command("score-fits", job, checkouts), "--ours-fit", str(ours), "--out", str(out)]
                    with open(ref / "scores.log", "a") as log:
                        run_logged(cmd, log)
                kept = archive / ref.relative_to(runs)
                if out.exists():
                    archive_run(ref, kept, FIT_FILES)
                if (kept / "scores.json").exists():
                    scores = json.loads((kept / "scores.json").read_text())["scores"]
                    rows += [{"dataset": dataset, "seed": seed, "reference": CHECKOUT[method], "test": test, **v}
                             for test, v in scores.items()]  # fmt: skip
    return rows


def verdict(row: dict) -> str:
    """Whether our mean lies inside the reference's CI or above it, and the speed ratio."""
    ours, ref = row["ours"], row["reference"]
    if ours["mean"] is None or ref["mean"] is None:
        return "incomplete"
    if len(ref["scores"]) < 2:  # one seed has no interval to be inside of
        score = f"one reference seed: ours {ours['mean'] - ref['mean']:+.1f}, no CI yet"
    else:
        score = "inside or above" if ours["mean"] >= ref["ci95"][0] else "BELOW"
    if ours["wall_s"] and ref["wall_s"]:
        ratio = np.mean(ref["wall_s"]) / np.mean(ours["wall_s"])
        return f"{score}; ours {ratio:.2f}x as fast"
    return score


def render(rows: list[dict], info: dict) -> str:
    def side(s: dict) -> str:
        if s["mean"] is None:
            return "–"
        ci = f" [{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]" if len(s["scores"]) > 1 else " (one seed)"
        return f"{s['mean']:.1f}{ci}; " + ", ".join(f"{v:.1f}" for v in s["scores"])

    def minutes(values: list[float | None], runs: int) -> str:
        known = [v for v in values if v is not None]
        mean = f"{np.mean(known) / 60:.1f}" if known else "–"
        return mean if len(values) >= runs or not known else f"{mean} ({len(values)} of {runs} runs)"

    m = info["machine"]
    extra = info.get("overrides") or []
    settings = f", with `{' '.join(extra)}` (`--overrides`)" if extra else ""
    lines = [
        "# Side by side with the reference implementations: same data, settings, updates and evaluation",
        "",
        f"References: {', '.join(info['reference_commits']) or '–'}. Ours: commits "
        f"{', '.join(c[:10] for c in m['commits']) or '–'}; runs of ours finished {run_cpus_text(m) or '–'}. "
        f"{m['cores']} cores, torch {m['torch']}, one "
        "torch thread per run, runs sharing the machine. Settings: each method's `<method>_cpu` preset for both "
        f"sides{settings}. Score: final normalised score, mean with 95 % bootstrap CI over seeds, then per seed. Wall: "
        "mean minutes per run, the run's own job plus the dynamics fit it used; a fit is shared by the methods "
        "of a side on a dataset and seed, so its time counts in each of their rows (runs with a private fit "
        "count their whole job). A run of ours resumed from a checkpoint counts its earlier sessions' loop time; "
        "one made before runs recorded it has no wall time and is left out of the mean (n of m runs). Curves: over "
        "the seeds that kept their `eval.csv`.",
        "",
        "| dataset | method | ours | reference | ours vs reference | wall min (ours / ref) | of which fit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, ref = r["ours"], r["reference"]
        lines.append(
            f"| {r['dataset']} | {r['method']} | {side(o)} | {side(ref)} | {verdict(r)} | "
            f"{minutes(o['wall_s'], len(o['scores']))} / {minutes(ref['wall_s'], len(ref['scores']))} | "
            f"{minutes(o['fit_s'], len(o['scores']))} / {minutes(ref['fit_s'], len(ref['scores']))} |"
        )
    return "\n".join(lines) + "\n"


def render_fits(fits: list[dict]) -> str:
    """The fits' table: per dataset, seed and test rows, the elites' mean MSE of each side and their ratio."""
    if not fits:
        return ""
    lines = [
        "",
        "## Dynamics fits on the same rows",
        "",
        "MSE of each member's mean `[Δs, r]` against the data, averaged over the elites (all members in "
        "brackets), for both sides' fits of the same dynamics config; the test rows are the fit's own data and "
        "the family's `medium` built-in. Each side's holdout is its own split, so this, not the holdout loss, "
        "compares the fits. The rollouts sample from each member's Gaussian, so its spread is scored too, over "
        "the elites: the negative log-likelihood per dimension without its constant, and the mean predicted "
        "variance over the MSE (1 is calibrated); – where a fit was scored before these were recorded.",
        "",
        "| dataset | seed | reference | test rows | ours | reference | ours / reference | NLL ours / reference "
        "| variance / MSE ours / reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(f: dict, key: str, fmt: str) -> str:
        return f"{f[f'ours_{key}']:{fmt}} / {f[f'reference_{key}']:{fmt}}" if f"ours_{key}" in f else "–"

    for f in fits:
        ours, ref = (
            f"{f['ours_elites']:.4f} ({f['ours_all']:.4f})",
            f"{f['reference_elites']:.4f} ({f['reference_all']:.4f})",
        )
        ratio = f["ours_elites"] / f["reference_elites"]
        lines.append(
            f"| {f['dataset']} | {f['seed']} | {f['reference']} | {f['test']} | {ours} | {ref} | {ratio:.2f} | "
            f"{pair(f, 'elites_nll', '.3f')} | {pair(f, 'elites_var_over_mse', '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def trace_curves(run_dirs: list[Path]) -> dict[str, list[tuple[int, float]]]:
    """Per ``TRACE`` column, its mean over ``run_dirs`` at each logged step they share (``train.csv``: ours' and
    the reference driver's log the same quantities of one update every ``log_every`` updates)."""
    tables = [read_rows(d / "train.csv") for d in run_dirs]
    out = {}
    for column in TRACE:
        curves = [{int(r["step"]): float(r[column]) for r in t} for t in tables if t and column in t[0]]
        if curves and len(curves) == len(tables):
            out[column] = mean_curve(curves)
    return out


def plot_traces(rows: list[dict], name: str, results: Path) -> list[Path]:
    """One figure per row whose sides both traced their updates: each ``TRACE`` quantity against updates."""
    plt = pyplot()
    paths = []
    for r in rows:
        columns = [c for c in TRACE if c in r["ours"]["trace"] and c in r["reference"]["trace"]]
        if not columns:
            continue
        fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3))
        for ax, column in zip(np.atleast_1d(axes), columns, strict=True):
            for side, style in (("ours", "-"), ("reference", "--")):
                steps, values = zip(*r[side]["trace"][column], strict=True)
                ax.plot(steps, values, style, label=f"{side} ({len(r[side]['trace_seeds'])} seeds)")
            ax.set(title=column, xlabel="updates")
        np.atleast_1d(axes)[0].legend()
        fig.suptitle(f"{r['method']} on {r['dataset']}: one update every log_every, mean over seeds")
        paths.append(save(fig, results / f"{name}_{r['method']}_{r['dataset']}_trace.png"))
    return paths


def plot(rows: list[dict], name: str, results: Path) -> list[Path]:
    """One plot per row with a curve on either side, both sides in it; a row without one keeps its old plot."""
    plt = pyplot()
    paths = []
    for r in (r for r in rows if r["ours"]["curve"] or r["reference"]["curve"]):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for side, style in (("ours", "-o"), ("reference", "--s")):
            if r[side]["curve"]:
                steps, scores = zip(*r[side]["curve"], strict=True)
                ax.plot(steps, scores, style, label=f"{side} ({len(r[side]['curve_seeds'])} seeds)")
        ax.set(title=f"{r['method']} on {r['dataset']}", xlabel="updates", ylabel="normalised score")
        ax.legend()
        paths.append(save(fig, results / f"{name}_{r['method']}_{r['dataset']}.png"))
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_fit_ours":
        _fit_ours(Path(argv[1]), argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="a checkout of OfflineRL-Kit (MOPO, MOBILE, COMBO, RAMBO, EDAC)")
    parser.add_argument("--edge-of-reach", type=Path, help="a checkout of anyasims/edge-of-reach (RAVL)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--datasets", nargs="+", help="every chosen method on each (default: GRID's datasets)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--show-overrides", action="store_true", help="print each method's overrides (budget first) as JSON, run none"
    )
    parser.add_argument("--name", default="reference_sidebyside", help="runs and results file name")
    parser.add_argument("--runs-dir", type=Path, default=RUNS, help="where the runs go, under <name>/")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="the report and <name>_archive/")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="config overrides for both sides (e.g. a quick check); method:key=value for one method only",
    )
    args = parser.parse_args(argv)
    methods = [m for m in METHODS if m in args.methods]
    pairs = [(m, d) for m in methods for d in (args.datasets or GRID[m])]
    if args.show_overrides:
        print(json.dumps({m: list(method_overrides(args.overrides, m)) for m in methods}))
        return 0
    runs, archive = args.runs_dir / args.name, args.results_dir / f"{args.name}_archive"
    checkouts = {"OfflineRL-Kit": args.reference, "edge-of-reach": args.edge_of_reach}
    if not args.report_only:
        if "reference" in args.sides:
            for m in methods:
                if checkouts[CHECKOUT[m]] is None:
                    flag = "--reference" if CHECKOUT[m] == "OfflineRL-Kit" else "--edge-of-reach"
                    parser.error(f"{m}'s reference side needs {flag} (a checkout of {CHECKOUT[m]})")
        chains = plan(pairs, args.seeds, args.sides, runs, args.overrides)
        with ThreadPoolExecutor(args.workers) as pool:
            for future in [pool.submit(run_chain, chain, runs, checkouts, archive) for chain in chains]:
                future.result()
    archive_finished(runs, archive, pairs, args.seeds)
    pairs, seeds = archived_grid(archive, pairs, args.seeds)
    rows = summarise(archive, pairs, seeds)
    fits = score_fits(runs, archive, pairs, seeds, checkouts, args.overrides)

    def finished(side: str) -> list[Path]:
        return [archive / r["dataset"] / r["method"] / side / f"seed{s}" for r in rows for s in r[side]["seeds"]]

    revisions = [d / "git_revision.txt" for d in finished("reference")]
    info = {
        "machine": machine(finished("ours")),
        "reference_commits": sorted({r.read_text().strip() for r in revisions if r.exists()}),  # checkout@commit
        "overrides": args.overrides,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.name}.json").write_text(json.dumps({**info, "rows": rows, "fits": fits}, indent=2))
    text = render(rows, info) + render_fits(fits)
    (args.results_dir / f"{args.name}.md").write_text(text)
    plot(rows, args.name, args.results_dir)
    plot_traces(rows, args.name, args.results_dir)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How the dynamics fit improves with epochs and with data: the measurement behind the `cpu` fit budget.

    python benchmarks/fit_curve.py                                      # the default grid, then report
    python benchmarks/fit_curve.py --datasets hopper-random --fractions 1 0.25 --epochs 100
    python benchmarks/fit_curve.py --report-only

For each built-in dataset and fraction of it, fits the model-based presets' dynamics (the `ensemble`
of ``experiment=mopo_cpu``: 7 members, 5 elites, OfflineRL-Kit's initialisation and 1000-row holdout)
for ``--epochs`` epochs with early stopping off. After every epoch it scores each member's mean
``[Δs, r]`` (MSE in the data's units) on

* ``test``: a fixed 5 % of the dataset's transitions that no fraction trains on, and
* ``medium``: 10k rows of the family's ``medium`` built-in, states a better policy than the data's visits (the
  agent's rollouts start on the data but drift towards them).

The training trajectory does not depend on when training stops, so the per-member holdout curves
replay any stopping rule exactly: the report gives the elites' test error of the model each rule
keeps (the `cpu` scale's cap, now 100 epochs, with patience 5, OfflineRL-Kit's uncapped patience 5, and fixed
epoch counts), next to the best the fit reached within ``--epochs``.

One torch thread per job (``--workers`` at a time). A job's curves go to
``benchmarks/runs/fit_curve/<dataset>/f<fraction>_seed<k>.json`` after every epoch; a finished job is
never rerun, an unfinished one restarts. The report is ``benchmarks/results/fit_curve_cpu.{md,json}``
and ``fit_curve_cpu.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mbrl.dynamics.ensemble import GaussianEnsemble, replay_stopping  # noqa: E402
from mbrl.dynamics.factory import ensemble_config  # noqa: E402

from benchmarks.learning import machine  # noqa: E402
from mbrl.config import resolve  # noqa: E402
from mbrl.data.loading import load_dataset  # noqa: E402
from mbrl.envs import env_family  # noqa: E402
from mbrl.run_state import git_revision  # noqa: E402
from mbrl.train import compose  # noqa: E402

NAME = "fit_curve_cpu"
RUNS = ROOT / "benchmarks" / "runs" / "fit_curve"
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = ["hopper-medium-replay", "halfcheetah-medium-replay", "hopper-random", "halfcheetah-random"]
TEST_FRACTION = 0.05
FIXED_EPOCHS = (5, 10, 25, 50, 100, 200)
MEDIUM_ROWS = 10000  # of the `medium` built-in, scored every epoch (all 100k would cost a third of an epoch)


def job_path(runs: Path, dataset: str, fraction: float, seed: int) -> Path:
    return runs / dataset / f"f{fraction:g}_seed{seed}.json"


def run_job(dataset: str, fraction: float, seed: int, epochs: int, runs: Path, medium_name: str | None) -> Path:
    """Fit one (dataset, fraction, seed) for ``epochs`` epochs, writing the curves under ``runs`` after
    every epoch; ``medium_name`` (default: the family's ``medium`` built-in) gives the second test rows."""
    out = job_path(runs, dataset, fraction, seed)
    if out.exists() and json.loads(out.read_text()).get("complete"):
        return out
    torch.set_num_threads(1)
    cfg = resolve(compose(["experiment=mopo_cpu", f"dataset={dataset}", f"seed={seed}"]))
    data = load_dataset(dataset)
    t = data.transitions
    order = torch.randperm(len(t), generator=torch.Generator().manual_seed(seed))
    n_test = int(TEST_FRACTION * len(t))
    pool = order[n_test:]
    train = t.index(pool[: max(1, round(fraction * len(pool)))])
    test = t.index(order[:n_test])
    medium = load_dataset(medium_name or f"{env_family(data.spec.env_id)}-medium").transitions
    medium = medium.index(torch.randperm(len(medium), generator=torch.Generator().manual_seed(seed))[:MEDIUM_ROWS])
    # Early stopping off: the run lasts `epochs` epochs and the stopping rules are replayed afterwards.
    section = dataclasses.replace(cfg.dynamics, max_epochs=epochs, max_epochs_since_update=epochs + 1)
    model = GaussianEnsemble(data.spec.obs_dim, data.spec.act_dim, ensemble_config(section, data.spec, seed))
    record = {
        "dataset": dataset,
        "fraction": fraction,
        "seed": seed,
        "epochs": epochs,
        "commit": git_revision(),
        "n_train": len(train),
        "n_test": n_test,
        "n_medium": len(medium),
        "dynamics": {f.name: getattr(model.cfg, f.name) for f in dataclasses.fields(model.cfg)},
        # The preset's stopping rule, replayed by the report: its cap, patience and improvement threshold.
        "rule": {
            "cap": cfg.dynamics.max_epochs,
            "patience": cfg.dynamics.max_epochs_since_update,
            "threshold": cfg.dynamics.improvement_threshold,
        },
        "holdout": [],
        "test": [],
        "medium": [],
        "epoch_s": [],
        "complete": False,
    }
    started = time.perf_counter()

    def on_epoch(epoch: int, mse: torch.Tensor) -> None:
        nonlocal started
        record["epoch_s"].append(time.perf_counter() - started)
        record["holdout"].append(mse.tolist())
        record["test"].append(model.member_mse(test).tolist())
        record["medium"].append(model.member_mse(medium).tolist())
        out.parent.mkdir(parents=True, exist_ok=True)
        save_json(record, out)
        print(f"{dataset} f={fraction:g} epoch {epoch}: test {min(record['test'][-1]):.5f}", flush=True)
        started = time.perf_counter()

    model.fit(train, on_epoch=on_epoch)
    record["complete"] = True
    save_json(record, out)
    return out


def save_json(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, default=str))
    os.replace(tmp, path)


def elite_error(record: dict, kept: list[int], rows: str) -> float:
    """The elites' mean error on ``rows`` ('test' or 'medium') for members kept at epochs ``kept``."""
    best = [record["holdout"][epoch - 1][m] for m, epoch in enumerate(kept)]
    elites = sorted(range(len(kept)), key=best.__getitem__)[: record["dynamics"]["num_elites"]]
    return sum(record[rows][kept[m] - 1][m] for m in elites) / len(elites)


def curve(record: dict, rows: str) -> list[float]:
    """The kept model's elite error on ``rows`` had training been capped at each epoch (no early stop)."""
    done, threshold = len(record["holdout"]), record["rule"]["threshold"]
    kept = [replay_stopping(record["holdout"], cap, done + 1, threshold)[1] for cap in range(1, done + 1)]
    return [elite_error(record, members, rows) for members in kept]


def summarise(record: dict) -> dict:
    """Per stopping rule: the epoch it stops at and the kept elites' ``test`` and ``medium`` error."""
    done, rule = len(record["holdout"]), record["rule"]
    patience = rule["patience"]
    rules: dict[str, tuple[int | None, int]] = {
        f"cpu: {rule['cap']} epochs, patience {patience}": (rule["cap"], patience),
        f"patience {patience}, no cap (OfflineRL-Kit)": (None, patience),
    }
    rules |= {f"{n} epochs": (n, done + 1) for n in FIXED_EPOCHS if n <= done}
    out: dict[str, dict] = {}
    for label, (cap, stale_limit) in rules.items():
        stop = replay_stopping(record["holdout"], cap, stale_limit, rule["threshold"])
        if stop is None:
            out[label] = {"stopped": None}  # still improving when the recording ended
        else:
            epoch, kept = stop
            out[label] = {"stopped": epoch, **{rows: elite_error(record, kept, rows) for rows in ("test", "medium")}}
    test = curve(record, "test")
    lowest = min(range(done), key=test.__getitem__)
    out["lowest recorded"] = {"stopped": lowest + 1, "test": test[lowest], "medium": curve(record, "medium")[lowest]}
    return out


def records(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.rglob("f*_seed*.json"))]


def report(found: list[dict], runs: Path, results: Path) -> None:
    """Write ``fit_curve_cpu.{md,json}`` and the plot from every recorded job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        "| dataset | fraction (rows) | s / epoch | rule | stops at epoch | test MSE | medium MSE | test vs lowest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for record in found:
        s = summarise(record)
        lowest = s["lowest recorded"]["test"]
        per_epoch = sum(record["epoch_s"]) / len(record["epoch_s"])
        state = "" if record["complete"] else f", {len(record['holdout'])} of {record['epochs']} epochs so far"
        head = f"| {record['dataset']} | {record['fraction']:g} ({record['n_train']}{state}) | {per_epoch:.1f} |"
        for label, r in s.items():
            if r["stopped"] is None:
                rows.append(f"{head} {label} | not within {len(record['holdout'])} | – | – | – |")
            else:
                ratio = r["test"] / lowest
                rows.append(f"{head} {label} | {r['stopped']} | {r['test']:.4f} | {r['medium']:.4f} | {ratio:.2f}x |")
            head = "| | | |"
        summary.append({k: record[k] for k in ("dataset", "fraction", "seed", "n_train", "complete")} | {"rules": s})

    datasets = sorted({r["dataset"] for r in found})
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.5 * len(datasets), 7), squeeze=False)
    for col, dataset in enumerate(datasets):
        for record in (r for r in found if r["dataset"] == dataset):
            for row, rows_name in enumerate(("test", "medium")):
                y = curve(record, rows_name)
                axes[row][col].plot(range(1, len(y) + 1), y, label=f"{record['fraction']:g} ({record['n_train']} rows)")
        for row, rows_name in enumerate(("test", "medium")):
            ax = axes[row][col]
            ax.axvline(25, color="grey", ls=":", lw=1)
            ax.set(title=f"{dataset}: {rows_name} rows", xlabel="epochs", ylabel="elite MSE [Δs, r]", yscale="log")
            ax.legend(fontsize=7)
    fig.tight_layout()
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / f"{NAME}.png", dpi=110)
    plt.close(fig)

    paths = [job_path(runs, r["dataset"], r["fraction"], r["seed"]) for r in found]
    m = machine([]) | {"commits": sorted({r.get("commit", "unrecorded") for r in found})}
    header = [
        f"# {NAME}: the dynamics fit against epochs and dataset size",
        "",
        f"{m['cores']} cores ({m['cpu']}), torch {m['torch']}, commits {', '.join(c[:10] for c in m['commits'])}, "
        "one torch thread per job. The presets' ensemble "
        "(`experiment=mopo_cpu`'s `dynamics`) fitted with early stopping off; after each epoch every member's mean "
        "`[Δs, r]` is scored on a fixed 5 % of the dataset that no fraction trains on (test) and on 10k rows "
        "of the family's `medium` built-in (medium). A rule's row is the model that rule keeps (per-member best "
        "snapshots, the 5 lowest-holdout members as elites), replayed from the recorded holdout curves; "
        f"'test vs lowest' divides by the lowest test error of any epoch cap. Plot: `{NAME}.png` (the dotted "
        "line is the `cpu` cap). Regenerate with `python benchmarks/fit_curve.py`.",
        "",
    ]
    (results / f"{NAME}.md").write_text("\n".join(header + rows) + "\n")
    listed = [os.path.relpath(p, ROOT) for p in paths]
    save_json({"machine": m, "runs": listed, "jobs": summary}, results / f"{NAME}.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--fractions", nargs="+", type=float, default=[1.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--medium-dataset", help="the second test rows (default: the family's medium built-in)")
    p.add_argument("--runs-dir", type=Path, default=RUNS)
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--report-only", action="store_true", help="report the recorded jobs, fit nothing")
    args = p.parse_args(argv)
    if not args.report_only:
        jobs = [
            (d, f, s, args.epochs, args.runs_dir, args.medium_dataset)
            for d in args.datasets
            for f in args.fractions
            for s in args.seeds
        ]
        with ProcessPoolExecutor(args.workers) as pool:
            for done in pool.map(run_job, *zip(*jobs, strict=True)):
                print(f"finished {done}", flush=True)
    found = records(args.runs_dir)
    if not found:
        raise SystemExit(f"no recorded fit under {args.runs_dir}; run without --report-only first")
    report(found, args.runs_dir, args.results_dir)
    print(f"wrote {args.results_dir / NAME}.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

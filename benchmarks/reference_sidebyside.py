"""Side by side: our MOPO and MOBILE against OfflineRL-Kit's, same data, settings and budget.

    python benchmarks/reference_sidebyside.py --reference /path/to/OfflineRL-Kit \
        --methods mopo mobile --datasets hopper-medium-replay halfcheetah-medium-replay \
        --seeds 0 1 2 --workers 2
    python benchmarks/reference_sidebyside.py ... --report-only      # summarise finished runs

Each (method, dataset, seed) is trained twice, one torch thread each:

- ours: an ordinary ``mbrl-train experiment=<method>_cpu`` run, with a dynamics cache private to
  the run so that its wall time includes the dynamics fit, as the reference's does;
- the reference: OfflineRL-Kit's own classes (``EnsembleDynamicsModel``, ``EnsembleDynamics``,
  ``MOPOPolicy`` / ``MOBILEPolicy``, ``ReplayBuffer``), imported from the checkout given with
  ``--reference`` and driven by a loop that follows its ``MBPolicyTrainer`` (a rollout round every
  ``rollout.every`` updates, then batches of ``int(batch * real_ratio)`` real rows and the rest
  from the model buffer). Every setting is read from the same resolved ``<method>_cpu`` config,
  so both sides get the same networks, learning rates, rollout schedule, dynamics fit cap and
  penalty coefficient.

Both sides are evaluated by the same function (``mbrl.evaluate.evaluate``, the same seeds and
episode counts), so a difference in score is a difference in training. Runs live in
``benchmarks/runs/<name>/<dataset>/<method>/<ours|reference>/seed<k>`` and are
never rerun once finished. Writes ``benchmarks/results/<name>.{json,md}`` (``--name``, default
``reference_sidebyside``) and one learning-curve plot per method and dataset.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.learning import machine, score_curve, train_in  # noqa: E402
from mbrl.data.scores import summarize  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("mopo", "mobile")


def our_run(method: str, dataset: str, seed: int, out: Path, extra: list[str]) -> None:
    """Train ours into ``out`` (unless finished), timing the whole job including the dynamics fit."""
    head = [f"experiment={method}_cpu", f"dataset={dataset}", f"seed={seed}"]
    wall_s = train_in(out, [*head, f"dynamics.cache_dir={out / 'dynamics_cache'}"], extra, log_mode="a")
    if wall_s is not None:
        (out / "wall_s.txt").write_text(f"{wall_s:.1f}\n")


def reference_run(method: str, dataset: str, seed: int, out: Path, extra: list[str], reference: Path) -> None:
    """Train OfflineRL-Kit's ``method`` into ``out`` in a child process (its package on the path)."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "final.json").exists():
        return
    cmd = [sys.executable, __file__, "_reference", method, dataset, str(seed), str(out), str(reference), *extra]
    with open(out / "stdout.log", "a") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)


class _Logger:
    """The part of OfflineRL-Kit's ``Logger`` that ``EnsembleDynamics.train`` calls."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = str(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def logkv(self, key: str, value: float) -> None:
        pass

    def set_timestep(self, step: int) -> None:
        pass

    def dumpkvs(self, exclude: list[str] | None = None) -> None:
        pass


def _train_reference(method: str, dataset_name: str, seed: int, out: Path, reference: Path, extra: list[str]) -> None:
    """The reference's training run, configured from our resolved ``<method>_cpu`` config."""
    from benchmarks.conformance.common import stub_modules, use_reference
    from mbrl.config import resolve
    from mbrl.data.loading import load_dataset
    from mbrl.envs import ENV_FAMILIES
    from mbrl.evaluate import evaluate
    from mbrl.rollout import split_batch
    from mbrl.train import compose

    commit = use_reference(reference)
    stub_modules("gym", "gym.envs", "gym.envs.mujoco", "gym.spaces", "d4rl", "torch.utils.tensorboard")
    from offlinerlkit.buffer import ReplayBuffer
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import ActorProb, Critic, EnsembleDynamicsModel, TanhDiagGaussian
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import MOBILEPolicy, MOPOPolicy
    from offlinerlkit.utils.scaler import StandardScaler
    from offlinerlkit.utils.termination_fns import get_termination_fn

    cfg = resolve(compose([f"experiment={method}_cpu", f"dataset={dataset_name}", f"seed={seed}", *extra]))
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    data = load_dataset(cfg.dataset)
    t, spec = data.transitions, data.spec
    arrays = {
        "observations": t.obs.numpy(),
        "actions": t.act.numpy(),
        "next_observations": t.next_obs.numpy(),
        "rewards": t.rew.numpy(),
        "terminals": t.terminated.numpy().astype(np.float32),
    }
    obs_dim, act_dim = t.obs.shape[1], t.act.shape[1]
    family = next(f for f in ENV_FAMILIES if dataset_name.startswith(f))
    agent, dyn, roll = cfg.agent, cfg.dynamics, cfg.rollout
    hidden = list(agent["hidden_sizes"])
    start = time.perf_counter()

    # The dynamics: the reference's model, loss, holdout split and early stopping, our cap on epochs.
    model = EnsembleDynamicsModel(
        obs_dim=obs_dim,
        action_dim=act_dim,
        hidden_dims=list(dyn.hidden_sizes),
        num_ensemble=dyn.ensemble_size,
        num_elites=dyn.num_elites,
        weight_decays=list(dyn.weight_decay),
        device="cpu",
    )
    mopo_coef = float(cfg.penalty["coef"]) if method == "mopo" else 0.0
    dynamics = EnsembleDynamics(
        model,
        torch.optim.Adam(model.parameters(), lr=dyn.lr),
        StandardScaler(),
        get_termination_fn(task=f"{family}-v2"),
        penalty_coef=mopo_coef,
    )
    real = ReplayBuffer(len(t.obs), (obs_dim,), np.float32, act_dim, np.float32, "cpu")
    real.load_dataset(arrays)
    dynamics.train(
        real.sample_all(),  # rewards and terminals as [N, 1] columns, as run_mopo.py passes them
        _Logger(out / "model"),
        max_epochs=dyn.max_epochs,
        max_epochs_since_update=dyn.max_epochs_since_update,
        batch_size=dyn.batch_size,
        holdout_ratio=dyn.holdout_fraction,
        logvar_loss_coef=dyn.logvar_loss_coef,
    )
    fit_s = time.perf_counter() - start

    # The agent: SAC with auto-alpha starting at alpha = init_alpha, as ours.
    def backbone(in_dim: int) -> MLP:
        return MLP(input_dim=in_dim, hidden_dims=hidden)

    actor_net = backbone(obs_dim)
    dist = TanhDiagGaussian(
        latent_dim=actor_net.output_dim, output_dim=act_dim, unbounded=True, conditioned_sigma=True, max_mu=1.0
    )
    actor = ActorProb(actor_net, dist, "cpu")
    critics = [Critic(backbone(obs_dim + act_dim), "cpu") for _ in range(int(agent["num_critics"]))]
    actor_optim = torch.optim.Adam(actor.parameters(), lr=agent["actor_lr"])
    target_entropy = agent["target_entropy"] if agent["target_entropy"] is not None else -float(act_dim)
    log_alpha = torch.full((1,), float(np.log(agent["init_alpha"])), requires_grad=True)
    alpha = (target_entropy, log_alpha, torch.optim.Adam([log_alpha], lr=agent["alpha_lr"]))
    common = {"tau": agent["tau"], "gamma": agent["gamma"], "alpha": alpha}
    if method == "mopo":
        c1, c2 = critics
        policy = MOPOPolicy(
            dynamics,
            actor,
            c1,
            c2,
            actor_optim,
            torch.optim.Adam(c1.parameters(), lr=agent["critic_lr"]),
            torch.optim.Adam(c2.parameters(), lr=agent["critic_lr"]),
            **common,
        )
    else:
        critic_list = torch.nn.ModuleList(critics)
        policy = MOBILEPolicy(
            dynamics,
            actor,
            critic_list,
            actor_optim,
            torch.optim.Adam(critic_list.parameters(), lr=agent["critic_lr"]),
            penalty_coef=float(cfg.penalty["coef"]),
            num_samples=int(cfg.penalty["samples_per_elite"]),
            deterministic_backup=True,  # run_mobile.py's default
            max_q_backup=False,
            **common,
        )

    fake = ReplayBuffer(
        roll.batch_size * roll.horizon * roll.retain, (obs_dim,), np.float32, act_dim, np.float32, "cpu"
    )
    n_real, n_model = split_batch(cfg.batch_size, roll.real_ratio)
    ref = (spec.ref_min_score, spec.ref_max_score)

    def policy_eval(step: int, episodes: int) -> float:
        policy.eval()
        res = evaluate(
            lambda o: torch.as_tensor(policy.select_action(o.numpy(), deterministic=True)),
            spec.env_id,
            episodes,
            seed=10_000 * (seed + 1) + step,
            ref_scores=ref,
        )
        policy.train()
        return float(res.normalized.mean())

    rows = []
    policy.train()
    for step in range(cfg.total_updates):
        if step % roll.every == 0:
            starts = real.sample(roll.batch_size)["observations"].cpu().numpy()
            transitions, _ = policy.rollout(starts, roll.horizon)
            fake.add_batch(**transitions)
        policy.learn({"real": real.sample(n_real), "fake": fake.sample(n_model)})
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.total_updates:
            rows.append({"step": step + 1, "score_mean": policy_eval(step + 1, cfg.eval_episodes)})
            print(f"update {step + 1}: score {rows[-1]['score_mean']:.1f}", flush=True)
    final = policy_eval(cfg.total_updates, cfg.final_eval_episodes)
    rows.append({"step": cfg.total_updates, "score_mean": final})
    with open(out / "eval.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "score_mean"])
        writer.writeheader()
        writer.writerows(rows)
    wall = time.perf_counter() - start
    (out / "wall_s.txt").write_text(f"{wall:.1f}\n")
    (out / "git_revision.txt").write_text(f"OfflineRL-Kit@{commit}\n")
    summary = {"final": {"score_mean": final}, "fit_s": fit_s, "wall_s": wall, "reference_commit": commit}
    (out / "final.json").write_text(json.dumps(summary, indent=2))


def _wall(run: Path) -> float | None:
    path = run / "wall_s.txt"
    return float(path.read_text()) if path.exists() else None


def summarise(runs: Path, methods: list[str], datasets: list[str], seeds: list[int]) -> list[dict]:
    """One row per (dataset, method): both sides' final scores, CIs, curves and wall times."""
    rows = []
    for d in datasets:
        for m in methods:
            row: dict = {"dataset": d, "method": m}
            for side in ("ours", "reference"):
                dirs = [runs / d / m / side / f"seed{s}" for s in seeds]
                done = [x for x in dirs if (x / "final.json").exists()]
                scores = [json.loads((x / "final.json").read_text())["final"]["score_mean"] for x in done]
                walls = [w for w in (_wall(x) for x in done) if w is not None]
                s = summarize(torch.tensor(scores)) if scores else None
                row[side] = {
                    "seeds": [int(x.name[4:]) for x in done],
                    "scores": scores,
                    "mean": s.mean if s else None,
                    "ci95": [s.ci_low, s.ci_high] if s else None,
                    "wall_s": walls,
                    "curve": score_curve(done) if done else [],
                }
            if row["ours"]["scores"] or row["reference"]["scores"]:
                rows.append(row)
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
        return f"{score}; ours {ratio:.2f}x faster"
    return score


def render(rows: list[dict], info: dict) -> str:
    def side(s: dict) -> str:
        if s["mean"] is None:
            return "–"
        ci = f" [{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]" if len(s["scores"]) > 1 else " (one seed)"
        return f"{s['mean']:.1f}{ci}; " + ", ".join(f"{v:.1f}" for v in s["scores"])

    def wall(s: dict) -> str:
        return f"{np.mean(s['wall_s']) / 60:.1f}" if s["wall_s"] else "–"

    m = info["machine"]
    lines = [
        "# Side by side with OfflineRL-Kit: same data, settings, budget and evaluation",
        "",
        f"Reference: yihaosun1124/OfflineRL-Kit @ {info['reference_commit']}. Ours: commits "
        f"{', '.join(c[:10] for c in m['commits'] if 'OfflineRL' not in c)}. {m['cores']} cores ({m['cpu']}), "
        f"torch {m['torch']}, one torch thread per run, runs sharing the machine. Settings: each method's "
        "`<method>_cpu` preset for both sides. Score: final normalised score, mean with 95 % bootstrap CI "
        "over seeds, then per seed.",
        "",
        "| dataset | method | ours | reference | ours vs reference | wall min (ours / ref) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {side(r['ours'])} | {side(r['reference'])} | {verdict(r)} | "
            f"{wall(r['ours'])} / {wall(r['reference'])} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], name: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for r in rows:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for side, style in (("ours", "-o"), ("reference", "--s")):
            if r[side]["curve"]:
                steps, scores = zip(*r[side]["curve"], strict=True)
                ax.plot(steps, scores, style, label=f"{side} ({len(r[side]['scores'])} seeds)")
        ax.set(title=f"{r['method']} on {r['dataset']}", xlabel="updates", ylabel="normalised score")
        ax.legend()
        fig.tight_layout()
        path = RESULTS / f"{name}_{r['method']}_{r['dataset']}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_reference":
        method, dataset, seed, out, reference, *extra = argv[1:]
        _train_reference(method, dataset, int(seed), Path(out), Path(reference), extra)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of OfflineRL-Kit")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-replay"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sides", nargs="+", default=["ours", "reference"], choices=["ours", "reference"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--name", default="reference_sidebyside", help="runs and results file name")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="config overrides for both sides (e.g. a quick check)"
    )
    args = parser.parse_args(argv)
    from benchmarks.conformance.common import commit_of

    commit = commit_of(args.reference)
    runs = RUNS / args.name
    if not args.report_only:
        jobs = []
        for d in args.datasets:
            for m in args.methods:
                for s in args.seeds:
                    base = runs / d / m
                    if "ours" in args.sides:
                        jobs.append((our_run, (m, d, s, base / "ours" / f"seed{s}", args.overrides)))
                    if "reference" in args.sides:
                        jobs.append(
                            (reference_run, (m, d, s, base / "reference" / f"seed{s}", args.overrides, args.reference))
                        )
        with ThreadPoolExecutor(args.workers) as pool:
            for future in [pool.submit(fn, *a) for fn, a in jobs]:
                future.result()
    rows = summarise(runs, args.methods, args.datasets, args.seeds)
    run_dirs = [runs / r["dataset"] / r["method"] / "ours" / f"seed{s}" for r in rows for s in r["ours"]["seeds"]]
    info = {"machine": machine(run_dirs), "reference_commit": commit}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({**info, "rows": rows}, indent=2))
    (RESULTS / f"{args.name}.md").write_text(render(rows, info))
    plot(rows, args.name)
    print(render(rows, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

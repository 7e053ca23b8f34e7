"""Throughput benchmark: the four hot workloads at paper sizes, how they grow, and the fast paths' speed-ups.

    python -m benchmarks.throughput                  # everything, 2 threads (about 10 minutes on 2 cores)
    python -m benchmarks.throughput --quick          # a subset, smaller rollouts and growth grids
    python -m benchmarks.throughput --device cuda    # on a GPU (adds nothing else: the same rows, timed there)
    python -m benchmarks.throughput --compile        # also torch.compile'd updates against eager ones
    python -m benchmarks.throughput --full-fit 1000000   # also an early-stopped fit on 1M rows (hours on CPU)
    python -m benchmarks.throughput --full-fit-dataset hopper-medium   # also one on a built-in 100k dataset
    python -m benchmarks.throughput --reference-offlinerl-kit /work/refs/OfflineRL-Kit   # fit, EDAC vs OfflineRL-Kit's

Workloads, fp32, batch 256, HalfCheetah sizes (obs 17, act 6):

* ``edac_update``: one SAC-N/EDAC/RAVL agent update, N=10 critics and the actor 3x256, eta=1;
* ``sac_update``: one SAC update, 2 critics and the actor 2x256;
* ``ensemble_fit``: gradient steps of the 7x(4x200) Gaussian ensemble (``GaussianEnsemble.fit``, one capped
  epoch, so its shuffle and holdout scoring are included);
* ``rollout``: ``mbrl.rollout.rollout`` from 50k start states (``--quick``: 10k), horizon 5, the RAVL policy in
  the loop, in transitions per second (no reward penalty, so only each row's drawn member is evaluated);
* ``rollout_every_member``: the same with all seven members evaluated, as MOPO's penalty needs;
* ``pipeline``: wall time of one whole training job (``--pipeline-scale``: smoke, or the cpu preset) on a small
  generated Hopper dataset with a private dynamics cache, so the fit is part of it.

Each workload runs ``--rounds`` timed rounds; the table shows the median. Achieved GFLOP/s counts the matmul
FLOPs of one unit (``torch.utils.flop_counter``, backward and EDAC's double backward included) and stands next
to the machine's measured sgemm rate; its share of sgemm is taken against an sgemm round run right after each
round, so it stays meaningful on a busy machine. What bounds a workload: each round is also followed by a round
that replays only its matrix products (same operators, shapes and memory layouts): that rate is the ceiling if
everything else took no time, and the workload's rate over it is the share of its time spent in matrix products.
Growth: rollout time against start states and horizon, fit-epoch time against dataset size (each with a
least-squares line), and the model buffer's memory against ``retain``.
Side by side with OfflineRL-Kit (``--reference-offlinerl-kit``, the path of a checkout): its
``EnsembleDynamicsModel``/``EnsembleDynamics``/``StandardScaler`` at the same sizes on the same rows, one epoch
of each fit in alternating rounds. Its unit is what its ``train`` runs per epoch apart from logging and the
reshuffle: the gather of the epoch's bootstrap rows, ``learn`` and ``validate``. Ours is ``fit`` capped at one
epoch, so it also pays the holdout split, the normaliser, the bootstrap draw and the reshuffle. With the same
option, one EDAC update (N=10, 3x256, batch 256) against OfflineRL-Kit's ``EDACPolicy.learn`` as ``run_edac.py``
builds it, and on a GPU also ours with ``cuda_graphs=true``.
Fast paths are timed against the plain path they replace in interleaved rounds of the same process, so the
ratios hold even on a busy machine; absolute rates do not, and the load average is recorded with them.

Writes ``benchmarks/results/throughput_<machine-tag>[_<threads>t][_quick].json`` (machine, torch, threads,
git commit).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from mbrl.agents.base import AgentSpec
from mbrl.agents.sac import SACAgent, SACConfig
from mbrl.dynamics import ensemble as ensemble_module
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.bench import matmul_gflop, matmul_replay, plain_adam, plain_train_step
from mbrl.data.transitions import Transitions
from mbrl.filters.penalties import MOPOPenalty, MOPOPenaltyConfig
from mbrl.machine import describe
from mbrl.optim import adam
from mbrl.rollout import RolloutConfig, rollout

ROOT = Path(__file__).resolve().parent.parent

OBS_DIM, ACT_DIM, BATCH = 17, 6, 256
EDAC = SACConfig(hidden_sizes=(256, 256, 256), num_critics=10, eta=1.0)
SAC = SACConfig(hidden_sizes=(256, 256), num_critics=2)
# The targets for 2 threads on the 2-core development machine (medians).
TARGETS = {
    "edac_update": 20.0,
    "sac_update": 90.0,
    "ensemble_fit": 70.0,
    "rollout": 55_000.0,
    "rollout_every_member": 55_000.0,
}
RAVL_UPDATES = 3_000_000  # the published RAVL run: 3000 epochs x 1000 updates, one rollout round per 1000


# -- measuring ------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_round(fn: Callable[[], int], device: torch.device, min_s: float) -> tuple[float, int]:
    """Call ``fn`` (returns the units it did) until ``min_s`` passed; returns (seconds, units)."""
    sync(device)
    start, units = time.perf_counter(), 0
    while True:
        units += fn()
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed, units


def rate(fn: Callable[[], int], device: torch.device, rounds: int, min_s: float) -> dict:
    """Median units/s over ``rounds`` rounds after one warm-up call."""
    fn()
    rates = []
    for _ in range(rounds):
        seconds, units = timed_round(fn, device, min_s)
        rates.append(units / seconds)
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "rounds": rates}


def interleaved(fns: dict[str, Callable[[], int]], device: torch.device, rounds: int, min_s: float) -> dict:
    """Rates of several variants measured in alternating rounds; each one's speed-up over the first variant is
    the median of the per-round ratios, so slow phases of a loaded machine hit every variant alike."""
    for fn in fns.values():
        fn()
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))  # no variant always runs right after another
        for name in order:
            seconds, units = timed_round(fns[name], device, min_s)
            rates[name].append(units / seconds)
    base = next(iter(fns))
    return {
        name: {
            "median_rate": statistics.median(values),
            "speedup": statistics.median(v / b for v, b in zip(values, rates[base], strict=True)),
            "rounds": values,
        }
        for name, values in rates.items()
    }


def sgemm_fn(n: int, device: torch.device) -> Callable[[], int]:
    """One fp32 ``n x n`` matrix product per call (a unit for ``rate``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)

    def product() -> int:
        torch.mm(a, b)
        return 1

    return product


def sgemm_gflops(device: torch.device, rounds: int) -> dict:
    """The machine's fp32 matrix-multiply rate at the current thread count, by matrix size."""
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    return {str(n): rate(sgemm_fn(n, device), device, rounds, 0.3)["median"] * 2 * n**3 / 1e9 for n in sizes}


def rate_and_sgemm_share(fn: Callable[[], int], gflop_per_unit: float, device: torch.device, rounds: int, min_s: float):
    """``rate`` with a 0.3 s sgemm round and a round of the workload's own matrix products (``matmul_replay``)
    after every round of ``fn``. Per round (medians): the share of the sgemm rate the workload reaches, and its
    rate over the matmul-only ceiling, i.e. the share of its time spent in matrix products. Both ratios hold
    while the machine's load comes and goes."""
    n = 2048 if device.type == "cpu" else 8192
    sgemm = sgemm_fn(n, device)
    replay = matmul_replay(fn)
    replay()
    rates, shares, ceilings, in_matmul = [], [], [], []
    for _ in range(rounds):
        seconds, units = timed_round(fn, device, min_s)
        rates.append(units / seconds)
        seconds, products = timed_round(sgemm, device, 0.3)
        shares.append(rates[-1] * gflop_per_unit / (products * 2 * n**3 / 1e9 / seconds))
        seconds, units = timed_round(replay, device, max(min_s, 0.3))
        ceilings.append(units / seconds)
        in_matmul.append(rates[-1] / ceilings[-1])
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rounds": rates,
        "gflop_per_unit": gflop_per_unit,
        "gflops": statistics.median(rates) * gflop_per_unit,
        "share_of_sgemm": statistics.median(shares),
        "matmul_only_rate": statistics.median(ceilings),
        "matmul_gflops": statistics.median(ceilings) * gflop_per_unit,
        "share_of_time_in_matmul": statistics.median(in_matmul),
    }


def profile_top(fn: Callable[[], int], units: int, rows: int = 12) -> list[dict]:
    """torch.profiler's operators by self time over ``units`` calls: what dominates a workload."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    fn()
    with profile(activities=activities) as prof:
        for _ in range(units):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "self_ms_per_call_of_fn": e.self_cpu_time_total / 1e3 / units,
            "share": e.self_cpu_time_total / total,
            "calls_per_call_of_fn": e.count / units,
        }
        for e in events[:rows]
    ]


def line_fit(xs: list[float], ys: list[float]) -> dict:
    """Least-squares ``y = slope * x + intercept``, R², and the largest relative miss of a point."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    fitted = [slope * x + intercept for x in xs]
    ss_res = sum((y - f) ** 2 for y, f in zip(ys, fitted, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys) or 1e-30
    worst = max(abs(y - f) / y for y, f in zip(ys, fitted, strict=True))
    return {"slope": slope, "intercept": intercept, "r2": 1 - ss_res / ss_tot, "max_relative_miss": worst}


# -- workloads ------------------------------------------------------------------------------------------
def spec(device: torch.device) -> AgentSpec:
    return AgentSpec(OBS_DIM, ACT_DIM, (-1.0,) * ACT_DIM, (1.0,) * ACT_DIM, str(device))


def synthetic(n: int, device: torch.device, seed: int = 0) -> Transitions:
    """``n`` transitions of a smooth random system (learnable, so a full fit early-stops as on real data)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=g)
    act = torch.rand(n, ACT_DIM, generator=g) * 2 - 1
    mix = torch.randn(OBS_DIM + ACT_DIM, OBS_DIM + 1, generator=g) / math.sqrt(OBS_DIM + ACT_DIM)
    out = torch.tanh(torch.cat([obs, act], dim=1) @ mix) + 0.01 * torch.randn(n, OBS_DIM + 1, generator=g)
    flags = torch.zeros(n, dtype=torch.bool)
    data = Transitions(obs, act, out[:, -1], obs + 0.1 * out[:, :-1], flags, flags)
    return data.to(device)


def plain_step_fit(fit: Callable[[], int], model: GaussianEnsemble) -> Callable[[], int]:
    """``fit`` (from ``fit_fn``) with ``model`` stepping by ``plain_train_step``."""
    model._train_step = functools.partial(plain_train_step, model)
    return fit


def update_fn(agent: SACAgent, device: torch.device) -> Callable[[], int]:
    batches = [synthetic(BATCH, device, seed=s) for s in range(8)]
    step = [0]

    def one() -> int:
        agent.update(batches[step[0] % len(batches)])
        step[0] += 1
        return 1

    return one


def fit_fn(device: torch.device, n: int, steps: int | None) -> tuple[Callable[[], int], GaussianEnsemble]:
    """One epoch of ``fit`` (capped at ``steps`` gradient steps) on ``n`` rows; returns the steps it took."""
    data = synthetic(n, device)
    cfg = EnsembleConfig(max_epochs=1, max_train_steps_per_epoch=steps)
    model = GaussianEnsemble(OBS_DIM, ACT_DIM, cfg, device)
    rows = len(data) - min(int(len(data) * cfg.holdout_fraction), cfg.max_holdout)
    per_epoch = math.ceil(rows / cfg.batch_size) if steps is None else min(steps, math.ceil(rows / cfg.batch_size))

    def one() -> int:
        model.fit(data)
        return per_epoch

    return one, model


def import_offlinerl_kit(path: Path) -> tuple[dict, str]:
    """OfflineRL-Kit's dynamics classes from the checkout at ``path``, and its commit.

    Its package imports ``gym``/``d4rl`` (environments, datasets) and its logger ``torch.utils.tensorboard``,
    none of which its dynamics fit uses: they are stubbed where they are not installed.
    """
    import types

    from benchmarks.conformance.common import stub_modules, use_reference

    commit = use_reference(path)
    stub_modules("gym", "gym.envs", "gym.envs.mujoco", "d4rl")
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:  # not through stub_modules: that would replace the real torch.utils too
        board = types.ModuleType("torch.utils.tensorboard")
        board.SummaryWriter = object
        sys.modules["torch.utils.tensorboard"] = board
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import EnsembleDynamicsModel
    from offlinerlkit.utils.scaler import StandardScaler

    classes = {"EnsembleDynamics": EnsembleDynamics, "EnsembleDynamicsModel": EnsembleDynamicsModel}
    return {**classes, "StandardScaler": StandardScaler}, commit


def reference_fit_fn(
    path: Path, device: torch.device, data: Transitions, seed: int = 0
) -> tuple[Callable[[], int], str]:
    """One epoch of OfflineRL-Kit's ensemble fit on ``data`` at our default sizes; returns (fn, commit).

    Set up as its ``EnsembleDynamics.train`` does before the epoch loop (holdout split of
    ``min(0.2 N, 1000)`` rows, ``StandardScaler`` fit on the rest, bootstrap rows per member); ``fn`` then runs
    one epoch's work, the gather of the bootstrap rows, ``learn`` (batch 256) and ``validate``, and returns the
    gradient steps it took.
    """
    import numpy as np

    ref, commit = import_offlinerl_kit(path)
    cfg = EnsembleConfig()
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = ref["EnsembleDynamicsModel"](
        OBS_DIM,
        ACT_DIM,
        list(cfg.hidden_sizes),
        cfg.ensemble_size,
        cfg.num_elites,
        weight_decays=list(cfg.weight_decay),
        device=str(device),
    )
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)  # as its run scripts build it
    dynamics = ref["EnsembleDynamics"](model, optim, ref["StandardScaler"](), terminal_fn=None)
    cpu = data.to("cpu")
    arrays = {
        "observations": cpu.obs.numpy(),
        "actions": cpu.act.numpy(),
        "next_observations": cpu.next_obs.numpy(),
        "rewards": cpu.rew[:, None].numpy(),
    }
    inputs, targets = dynamics.format_samples_for_training(arrays)
    n = len(inputs)
    n_holdout = min(int(n * cfg.holdout_fraction), cfg.max_holdout)
    perm = np.random.permutation(n)
    train, held = perm[n_holdout:], perm[:n_holdout]
    dynamics.scaler.fit(inputs[train])
    x_train, y_train = dynamics.scaler.transform(inputs[train]), targets[train]
    x_held, y_held = dynamics.scaler.transform(inputs[held]), targets[held]
    rows = np.random.randint(len(train), size=[cfg.ensemble_size, len(train)])
    steps = math.ceil(len(train) / cfg.batch_size)

    def one() -> int:
        dynamics.learn(x_train[rows], y_train[rows], cfg.batch_size, cfg.logvar_loss_coef)
        dynamics.validate(x_held, y_held)
        return steps

    return one, commit


def offlinerl_kit_side_by_side(args, device: torch.device) -> dict:
    """Our ensemble fit against OfflineRL-Kit's: one epoch each on the same rows, in alternating rounds."""
    n = 20_000 if args.quick else 50_000
    data = synthetic(n, device)
    reference, commit = reference_fit_fn(args.reference_offlinerl_kit, device, data)
    ours, _ = fit_fn(device, n, None)  # fit_fn's rows are synthetic(n): the same as ``data``
    plain = plain_step_fit(*fit_fn(device, n, None))
    variants = {"offlinerl_kit": reference, "ours_plain_step": plain, "ours": ours}
    res = interleaved(variants, device, args.rounds, 0.0)
    return {
        "unit": "steps/s",
        "what": "one epoch of the 7x(4x200) ensemble fit, batch 256 per member; speedup = over OfflineRL-Kit; "
        "ours_plain_step: our fit stepping by plain_train_step (autograd through the L2 term, as before)",
        "reference": {"repository": "yihaosun1124/OfflineRL-Kit", "commit": commit},
        "rows": n,
        "steps_per_epoch": math.ceil((n - min(int(n * 0.2), 1000)) / BATCH),
        **res,
        "ratio": res["ours"]["speedup"],
        "ratio_plain_step": res["ours_plain_step"]["speedup"],
    }


def reference_edac_fn(path: Path, device: torch.device, batches: list[Transitions]) -> tuple[Callable[[], int], str]:
    """One update per call of OfflineRL-Kit's ``EDACPolicy`` as its ``run_edac.py`` builds it for HalfCheetah
    (actor and 10 critics 3x256, eta 1, entropy in the target, automatic temperature; Adam at lr 1e-4, 3e-4,
    1e-4), cycling through ``batches``; returns (fn, commit). ``learn`` ends in ``.item()`` calls, as its trainer
    runs it."""
    _, commit = import_offlinerl_kit(path)  # its path first on sys.path, gym and d4rl stubbed
    from offlinerlkit.modules import ActorProb, EnsembleCritic, TanhDiagGaussian
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import EDACPolicy

    torch.manual_seed(0)
    hidden = list(EDAC.hidden_sizes)
    backbone = MLP(input_dim=OBS_DIM, hidden_dims=hidden)
    dist = TanhDiagGaussian(backbone.output_dim, ACT_DIM, unbounded=True, conditioned_sigma=True, max_mu=1.0)
    actor = ActorProb(backbone, dist, str(device))
    critics = EnsembleCritic(OBS_DIM, ACT_DIM, hidden, num_ensemble=EDAC.num_critics, device=str(device))
    log_alpha = torch.zeros(1, requires_grad=True, device=device)
    policy = EDACPolicy(
        actor,
        critics,
        torch.optim.Adam(actor.parameters(), lr=1e-4),
        torch.optim.Adam(critics.parameters(), lr=3e-4),
        tau=0.005,
        gamma=0.99,
        alpha=(-float(ACT_DIM), log_alpha, torch.optim.Adam([log_alpha], lr=1e-4)),
        max_q_backup=False,
        deterministic_backup=False,
        eta=EDAC.eta,
    )
    ref_batches = [
        {
            "observations": b.obs,
            "actions": b.act.clone(),  # learn sets requires_grad on the actions
            "next_observations": b.next_obs,
            "rewards": b.rew[:, None],
            "terminals": b.terminated[:, None].float(),
        }
        for b in batches
    ]
    step = [0]

    def one() -> int:
        policy.learn(ref_batches[step[0] % len(ref_batches)])
        step[0] += 1
        return 1

    return one, commit


def offlinerl_kit_edac(args, device: torch.device) -> dict:
    """Our EDAC update (N=10, 3x256) against OfflineRL-Kit's on the same batches, in alternating rounds; on a GPU
    also ours with ``cuda_graphs=true`` (mbrl.agents.graphed.GraphedUpdate)."""
    from mbrl.agents.graphed import GraphedUpdate

    batches = [synthetic(BATCH, device, seed=s) for s in range(8)]
    reference, commit = reference_edac_fn(args.reference_offlinerl_kit, device, batches)
    torch.manual_seed(0)
    variants = {"offlinerl_kit": reference, "ours": update_fn(SACAgent(spec(device), EDAC), device)}
    if device.type == "cuda":
        torch.manual_seed(0)
        graphed = GraphedUpdate(SACAgent(spec(device), EDAC))
        step = [0]

        def graphed_one() -> int:
            graphed(batches[step[0] % len(batches)])
            step[0] += 1
            return 1

        variants["ours_cuda_graphs"] = graphed_one
    res = interleaved(variants, device, args.rounds, args.round_s)
    return {
        "unit": "updates/s",
        "what": "one EDAC update, N=10 critics and the actor 3x256, eta 1, batch 256; speedup = over OfflineRL-Kit; "
        "ours_cuda_graphs (GPU only): the same update replayed from CUDA graphs",
        "reference": {"repository": "yihaosun1124/OfflineRL-Kit", "commit": commit},
        **res,
        "ratio": res["ours"]["speedup"],
        "ratio_cuda_graphs": res["ours_cuda_graphs"]["speedup"] if "ours_cuda_graphs" in res else None,
    }


def rollout_setup(device: torch.device, start_states: int, horizon: int, every_member: bool = False):
    """The RAVL rollout: 7x(4x200) ensemble (5 elites, no termination), the 3x256 policy; returns (fn, model).

    RAVL has no reward penalty, so only each row's drawn member is evaluated; ``every_member`` evaluates all
    seven, as MOPO's penalty needs (with coefficient 0 here, so the data is the same)."""
    model = GaussianEnsemble(OBS_DIM, ACT_DIM, EnsembleConfig(), device)
    agent = SACAgent(spec(device), EDAC)
    start = synthetic(start_states, device).obs
    gen = torch.Generator(device=device).manual_seed(0)
    penalty = MOPOPenalty(MOPOPenaltyConfig(coef=0.0)) if every_member else None

    def one() -> int:
        data, _ = rollout(model, lambda o: agent.act(o), start, horizon, gen, penalty=penalty)
        return len(data)

    return one, model


# -- sections -------------------------------------------------------------------------------------------
def workloads(args, device: torch.device) -> dict:
    rounds, min_s = args.rounds, args.round_s
    out = {}
    for name, cfg in (("edac_update", EDAC), ("sac_update", SAC)):
        fn = update_fn(SACAgent(spec(device), cfg), device)
        out[name] = {"unit": "updates/s", **rate_and_sgemm_share(fn, matmul_gflop(fn), device, rounds, min_s)}
    fit, model = fit_fn(device, 50_000, args.fit_steps)
    x = torch.randn(EnsembleConfig().ensemble_size, BATCH, OBS_DIM + ACT_DIM, device=device)
    y = torch.randn(EnsembleConfig().ensemble_size, BATCH, OBS_DIM + 1, device=device)
    step_gflop = matmul_gflop(lambda: model.supervised_loss(x, y)[0].backward())
    out["ensemble_fit"] = {"unit": "steps/s", **rate_and_sgemm_share(fit, step_gflop, device, rounds, 0.0)}
    # RAVL's rollout reads only each row's drawn member; MOPO's penalty reads every member.
    for name, every_member in (("rollout", False), ("rollout_every_member", True)):
        fn, _ = rollout_setup(device, args.rollout_states, 5, every_member)
        small, _ = rollout_setup(device, 1000, 5, every_member)  # FLOPs per transition do not depend on B
        transition_gflop = matmul_gflop(small) / (1000 * 5)
        out[name] = {
            "unit": "transitions/s",
            "start_states": args.rollout_states,
            "horizon": 5,
            **rate_and_sgemm_share(fn, transition_gflop, device, rounds, 0.0),
        }
    for name, row in out.items():
        if name in TARGETS:
            row["target"] = TARGETS[name]
            row["meets_target"] = row["median"] >= TARGETS[name]
    # A full fit on 1M transitions: epochs of ceil(999k / 256) steps at the measured rate (early stopping
    # decides the epoch count; --full-fit runs one for real).
    steps_1m = math.ceil((1_000_000 - 1000) / BATCH)
    out["ensemble_fit"]["minutes_per_epoch_on_1M"] = steps_1m / out["ensemble_fit"]["median"] / 60
    return out


def fast_paths(args, device: torch.device) -> dict:
    """Each fast path against the plain path it replaced, interleaved."""
    rounds, min_s = args.rounds, args.round_s
    out = {}
    for name, cfg in (("edac_update", EDAC), ("sac_update", SAC)):
        torch.manual_seed(0)
        variants = {
            "plain_adam": update_fn(plain_adam(SACAgent(spec(device), cfg)), device),
            "fused_adam": update_fn(SACAgent(spec(device), cfg), device),
        }
        out[f"{name}: fused Adam (default) vs for-loop Adam"] = interleaved(variants, device, rounds, min_s)
    fit, _ = fit_fn(device, 50_000, args.fit_steps)

    def fit_with(optimizer: Callable) -> Callable[[], int]:
        def one() -> int:
            ensemble_module.adam = optimizer
            try:
                return fit()
            finally:
                ensemble_module.adam = adam

        return one

    variants = {
        "plain_adam": fit_with(lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=False)),
        "fused_adam": fit_with(adam),
    }
    out["ensemble_fit: fused Adam (default) vs for-loop Adam"] = interleaved(variants, device, rounds, 0.0)
    variants = {"l2_through_autograd": plain_step_fit(*fit_fn(device, 50_000, args.fit_steps)), "l2_by_hand": fit}
    title = "ensemble_fit: L2 gradient added by hand (default) vs through autograd (same numbers)"
    out[title] = interleaved(variants, device, rounds, 0.0)
    # 20k start states: [7, 20k, 200] activations are far beyond any cache, as at 50k, in less time.
    states = min(args.rollout_states, 20_000)
    variants = {
        "every_member": rollout_setup(device, states, 5, True)[0],
        "drawn_member": rollout_setup(device, states, 5)[0],
    }
    title = "rollout without a member-reading penalty: only each row's drawn member (default) vs every member"
    out[title] = interleaved(variants, device, max(3, rounds // 2), 0.0)
    fn, model = rollout_setup(device, states, 5, every_member=True)
    default = model.sample_chunk

    def with_chunk(chunk: int | None) -> Callable[[], int]:
        def one() -> int:
            model.sample_chunk = chunk
            return fn()

        return one

    chunks = {"one_pass": with_chunk(None), **{f"chunk_{c}": with_chunk(c) for c in (256, 512, 1024, 2048)}}
    title = f"rollout with every member (MOPO): chunked ensemble forward (default {default}) vs one pass"
    out[title] = interleaved(chunks, device, max(3, rounds // 2), 0.0)
    model.sample_chunk = default
    if args.compile:
        for name, cfg in (("edac_update", EDAC), ("sac_update", SAC)):
            torch.manual_seed(0)
            compiled = SACAgent(spec(device), cfg)
            start = time.perf_counter()
            compiled.compile()
            fn_c = update_fn(compiled, device)
            fn_c()  # compiles the three functions
            compile_s = time.perf_counter() - start
            variants = {"eager": update_fn(SACAgent(spec(device), cfg), device), "compiled": fn_c}
            res = interleaved(variants, device, rounds, min_s)
            res["compile_s"] = compile_s
            out[f"{name}: torch.compile vs eager"] = res
    return out


def growth(args, device: torch.device) -> dict:
    """Time against rollout start states, horizon and dataset size, and buffer memory against retention."""
    rounds = max(2, args.rounds // 2)
    out: dict = {}
    batches = [2_000, 4_000, 8_000] if args.quick else [5_000, 10_000, 20_000, 50_000]
    times = []
    for b in batches:
        fn, _ = rollout_setup(device, b, 5)
        times.append(b * 5 / rate(fn, device, rounds, 0.0)["median"])
    out["rollout_seconds_vs_start_states"] = {"x": batches, "seconds": times, "line": line_fit(batches, times)}
    horizons = [1, 2, 5, 10]
    times = []
    b = 4_000 if args.quick else 10_000
    for h in horizons:
        fn, _ = rollout_setup(device, b, h)
        times.append(b * h / rate(fn, device, rounds, 0.0)["median"])
    out["rollout_seconds_vs_horizon"] = {
        "start_states": b,
        "x": horizons,
        "seconds": times,
        "line": line_fit(horizons, times),
    }
    sizes = [5_000, 10_000, 20_000] if args.quick else [10_000, 20_000, 40_000, 80_000]
    times = []
    for n in sizes:
        fn, _ = fit_fn(device, n, None)
        fn()
        sync(device)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            sync(device)
            samples.append(time.perf_counter() - start)
        times.append(statistics.median(samples))
    out["fit_epoch_seconds_vs_dataset_size"] = {"x": sizes, "seconds": times, "line": line_fit(sizes, times)}
    out["model_buffer_memory_vs_retain"] = buffer_memory(device)
    return out


# Run in a fresh process per setting, so the allocator holds nothing from earlier work: the peak resident
# memory (CPU) or peak allocation (CUDA) a filled model buffer adds to a process.
_BUFFER_PEAK = """
import os, sys, torch
from mbrl.data.transitions import Transitions
from mbrl.filters.penalties import MOPOPenalty, MOPOPenaltyConfig
from mbrl.optim import adam
from mbrl.rollout import RolloutConfig, model_buffer
retain, obs_dim, act_dim, device = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), torch.device(sys.argv[4])
cfg = RolloutConfig(retain=retain)
flags = torch.zeros(cfg.batch_size, dtype=torch.bool, device=device)
obs = torch.randn(cfg.batch_size, obs_dim, device=device)
piece = Transitions(obs, torch.rand(cfg.batch_size, act_dim, device=device), obs[:, 0], obs, flags, flags)
cuda = device.type == "cuda"


def resident(field):  # kB -> bytes; VmHWM is this process's peak (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


before = torch.cuda.memory_allocated(device) if cuda else resident("VmRSS")
if not cuda:
    with open("/proc/self/clear_refs", "w") as f:  # restart VmHWM from here: the imports peaked higher
        f.write("5")
buffer = model_buffer(cfg, obs_dim, act_dim, device)
for _ in range(buffer.capacity // cfg.batch_size):  # filled: untouched pages would not count
    buffer.add(piece)
buffer.sample(256)
peak = torch.cuda.max_memory_allocated(device) if cuda else resident("VmHWM")
print(buffer.capacity, sum(t.nbytes for t in buffer._data.values()), peak - before)
"""


def buffer_memory(device: torch.device) -> dict:
    """Memory of the FIFO model buffer at the paper's 50k x 5 rollout rounds, filled, for retain 1..5."""
    rows = []
    for retain in range(1, 6):
        cmd = [sys.executable, "-c", _BUFFER_PEAK, str(retain), str(OBS_DIM), str(ACT_DIM), str(device)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        capacity, tensor_bytes, peak = (int(v) for v in out)
        rows.append({"retain": retain, "rows": capacity, "tensor_mb": tensor_bytes / 2**20, "peak_mb": peak / 2**20})
    retains = [r["retain"] for r in rows]
    return {"rows": rows, "peak_line": line_fit(retains, [r["peak_mb"] for r in rows])}


def pipeline(args, device: torch.device) -> dict:
    """One training job (agent=ravl: ensemble fit, rollouts, EDAC updates, evaluation) on a generated Hopper
    dataset, with private dataset and dynamics-cache folders so nothing is reused from earlier runs."""
    from mbrl.data.generate import collect, write_minari
    from mbrl.train import compose, train

    dataset = "bench/hopper/tiny-v0"
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MINARI_DATASETS_PATH": f"{tmp}/minari", "MBRL_CACHE": f"{tmp}/cache"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            start = time.perf_counter()
            episodes = collect("Hopper-v5", None, 5000, seed=0)
            write_minari(dataset, episodes, "Hopper-v5", "random", "bench", env["MINARI_DATASETS_PATH"])
            dataset_s = time.perf_counter() - start
            overrides = [
                f"scale={args.pipeline_scale}",
                f"dataset={dataset}",
                "agent=ravl",
                f"device={device}",
                "logger.progress=false",
            ]
            if not logging.getLogger().handlers:  # else the job installs an INFO handler of its own
                logging.basicConfig(level=logging.WARNING)
            start = time.perf_counter()
            train(compose(overrides), Path(tmp) / "run")
            job_s = time.perf_counter() - start
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    torch.set_num_threads(args.threads)  # the job set its own thread count
    return {"scale": args.pipeline_scale, "overrides": overrides, "dataset_generation_s": dataset_s, "job_s": job_s}


def full_fit(args, device: torch.device) -> dict:
    """A real early-stopped fit on ``--full-fit`` synthetic transitions: epochs and wall minutes."""
    model = GaussianEnsemble(OBS_DIM, ACT_DIM, EnsembleConfig(), device)
    data = synthetic(args.full_fit, device, seed=1)
    start = time.perf_counter()
    report = model.fit(data)
    sync(device)
    return {"transitions": args.full_fit, "epochs": report.epochs, "minutes": (time.perf_counter() - start) / 60}


def full_fit_dataset(args, device: torch.device) -> dict:
    """A real early-stopped fit of the default ensemble on ``--full-fit-dataset`` (a built-in or any dataset
    ``mbrl.data.loading.load_dataset`` takes): epochs and wall minutes, as a training job fits it (seed 0)."""
    from mbrl.data.loading import load_dataset

    data = load_dataset(args.full_fit_dataset).transitions
    model = GaussianEnsemble(data.obs_dim, data.act_dim, EnsembleConfig(), device)
    start = time.perf_counter()
    report = model.fit(data)
    sync(device)
    return {
        "dataset": args.full_fit_dataset,
        "transitions": len(data),
        "epochs": report.epochs,
        "minutes": (time.perf_counter() - start) / 60,
        "holdout_mse_of_elites": float(report.holdout_mse[report.elites].mean()),
    }


# -- report ---------------------------------------------------------------------------------------------
def machine(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return describe() | {"gpu": gpu, "load_average_before": os.getloadavg(), "busy_cores_before": busy_cores()}


def busy_cores(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes over the next ``seconds`` (from /proc/stat; None elsewhere).

    Unlike the 1-minute load average it reflects the machine right now, e.g. after other jobs were paused.
    """

    def ticks() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    before = ticks()
    time.sleep(seconds)
    after = ticks()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def machine_tag(info: dict) -> str:
    name = info["gpu"] or f"{info['cpu']}-{info['cores']}cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def git(*cmd: str) -> str:
    try:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def print_table(results: dict) -> None:
    if "workloads" in results:
        print_workloads(results)
    for title, res in results.get("fast_paths", {}).items():
        parts = [f"{k} x{v['speedup']:.2f}" for k, v in res.items() if isinstance(v, dict)]
        print(f"{title}: {', '.join(parts)}")
    for title, res in results.get("growth", {}).items():
        if "line" in res and "x" in res:
            print(f"{title}: R2 {res['line']['r2']:.3f}, worst miss {res['line']['max_relative_miss']:.1%}")
    side = results.get("offlinerl_kit_side_by_side")
    if side:
        print(
            f"ensemble fit vs OfflineRL-Kit {side['reference']['commit'][:7]} ({side['rows']} rows, one epoch): "
            f"ours x{side['ratio']:.2f}, with the plain step x{side['ratio_plain_step']:.2f} "
            f"({side['ours']['median_rate']:.1f}, {side['ours_plain_step']['median_rate']:.1f} vs "
            f"{side['offlinerl_kit']['median_rate']:.1f} steps/s)"
        )
    edac = results.get("offlinerl_kit_edac")
    if edac:
        graphs = f", with CUDA graphs x{edac['ratio_cuda_graphs']:.2f}" if edac["ratio_cuda_graphs"] else ""
        print(
            f"EDAC update vs OfflineRL-Kit {edac['reference']['commit'][:7]}: ours x{edac['ratio']:.2f}{graphs} "
            f"({edac['offlinerl_kit']['median_rate']:.1f} updates/s for OfflineRL-Kit)"
        )
    for key in ("full_fit", "full_fit_dataset"):
        if key in results:
            row = results[key]
            what = row.get("dataset", f"{row['transitions']} synthetic rows")
            print(f"early-stopped fit on {what}: {row['epochs']} epochs, {row['minutes']:.1f} min")
    if "pipeline" in results:
        print(f"pipeline ({results['pipeline']['scale']}): {results['pipeline']['job_s']:.1f} s")


def print_workloads(results: dict) -> None:
    sgemm = max(results["sgemm_gflops"].values())
    print(f"\nsgemm: {sgemm:.0f} GFLOP/s ({results['threads']} threads, {results['device']})")
    print(
        f"{'workload':<20} {'median':>12} {'unit':<14} {'target':>9} {'met':>4} "
        f"{'GFLOP/unit':>11} {'GFLOP/s':>8} {'of sgemm':>9} {'matmul-only':>12} {'in matmul':>10}"
    )
    for name, row in results["workloads"].items():
        target = row.get("target")
        met = "" if target is None else ("yes" if row["meets_target"] else "no")
        print(
            f"{name:<20} {row['median']:>12.1f} {row['unit']:<14} {target or '':>9} {met:>4} "
            f"{row['gflop_per_unit']:>11.4f} {row['gflops']:>8.1f} {row['share_of_sgemm']:>8.0%} "
            f"{row['matmul_only_rate']:>12.1f} {row['share_of_time_in_matmul']:>9.0%}"
        )
    fit = results["workloads"]["ensemble_fit"]
    print(f"full fit on 1M transitions: {fit['minutes_per_epoch_on_1M']:.1f} min per epoch (x epochs to early stop)")
    proj = results["projection"]
    print(f"RAVL, {RAVL_UPDATES:,} updates + {proj['rollout_rounds']} rollout rounds: {proj['hours']:.1f} h projected")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 10k-state rollouts, small growth grids")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the issue's setting: 2)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement (default 7, quick 3)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd updates against eager")
    parser.add_argument("--profile", action="store_true", help="also record torch.profiler's top operators")
    parser.add_argument("--full-fit", type=int, default=0, metavar="N", help="also fit to early stopping on N rows")
    parser.add_argument(
        "--full-fit-dataset", default=None, metavar="NAME", help="also fit to early stopping on this dataset"
    )
    parser.add_argument(
        "--reference-offlinerl-kit",
        type=Path,
        default=None,
        metavar="PATH",
        help="a checkout of OfflineRL-Kit: also time its ensemble fit and EDAC update against ours, side by side",
    )
    parser.add_argument("--pipeline-scale", default="smoke", help="scale preset of the pipeline job (smoke or cpu)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["workloads", "fast_paths", "growth", "pipeline"])
    parser.add_argument("--tag", default=None, help="machine tag in the output name (default: from the hardware)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.round_s = 0.5 if args.quick else 1.5
    args.rollout_states = 10_000 if args.quick else 50_000
    args.fit_steps = 30 if args.quick else 100

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    torch.set_num_threads(args.threads)
    info = machine(device)
    tag = args.tag or machine_tag(info)
    threads = f"_{args.threads}t" if device.type == "cpu" else ""
    name = f"throughput_{tag}{threads}{'_quick' if args.quick else ''}.json"
    out_path = args.out or ROOT / "benchmarks" / "results" / name
    started = time.perf_counter()
    results: dict = {
        "machine": info,
        "tag": tag,
        "torch": torch.__version__,
        "threads": args.threads,
        "device": str(device),
        "git_commit": git("rev-parse", "HEAD"),
        "git_worktree_clean": git("status", "--porcelain") == "",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(
        f"{info['cpu']} x{info['cores']}, {info['gpu'] or 'no GPU'}; torch {torch.__version__}, {args.threads} threads"
    )
    busy = info["busy_cores_before"]
    print(
        f"load average {info['load_average_before']}, busy cores now {busy if busy is None else round(busy, 2)}: "
        "absolute rates drop with load, interleaved ratios do not"
    )
    load = info["load_average_before"][0] if busy is None else busy
    if load > 0.5 * (info["cores"] or 1):
        results["load_note"] = (
            f"busy machine ({load:.1f} of {info['cores']} cores busy): absolute rates are depressed; "
            "the interleaved fast-path ratios are the reliable numbers. Rerun on a quiet machine for rates. "
            "With more threads than idle cores every parallel region waits for a descheduled thread: use --threads 1."
        )

    def section(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {name}", flush=True)

    if "workloads" not in args.skip:
        section("sgemm")
        results["sgemm_gflops"] = sgemm_gflops(device, args.rounds)
        section("workloads")
        results["workloads"] = workloads(args, device)
        paper = RolloutConfig()
        round_s = paper.batch_size * paper.horizon / results["workloads"]["rollout"]["median"]
        rounds = RAVL_UPDATES // paper.every
        seconds = RAVL_UPDATES / results["workloads"]["edac_update"]["median"] + rounds * round_s
        results["projection"] = {
            "what": "RAVL paper run: EDAC-size updates plus 50k x 5 rollout rounds every 1000 updates; "
            "evaluation excluded",
            "updates": RAVL_UPDATES,
            "rollout_rounds": rounds,
            "hours": seconds / 3600,
        }
    if "fast_paths" not in args.skip:
        section("fast paths against plain paths" + (" (compiling takes minutes)" if args.compile else ""))
        results["fast_paths"] = fast_paths(args, device)
    if "growth" not in args.skip:
        section("growth")
        results["growth"] = growth(args, device)
    if args.profile:
        section("profile")
        results["profile"] = {
            "edac_update": profile_top(update_fn(SACAgent(spec(device), EDAC), device), 5),
            "sac_update": profile_top(update_fn(SACAgent(spec(device), SAC), device), 20),
            "ensemble_fit": profile_top(fit_fn(device, 20_000, 20)[0], 1),
            "rollout": profile_top(rollout_setup(device, args.rollout_states, 5)[0], 1),
        }
    if args.reference_offlinerl_kit:
        section("ensemble fit side by side with OfflineRL-Kit")
        results["offlinerl_kit_side_by_side"] = offlinerl_kit_side_by_side(args, device)
        section("EDAC update side by side with OfflineRL-Kit")
        results["offlinerl_kit_edac"] = offlinerl_kit_edac(args, device)
    if args.full_fit:
        section(f"full fit on {args.full_fit} transitions")
        results["full_fit"] = full_fit(args, device)
    if args.full_fit_dataset:
        section(f"full fit on {args.full_fit_dataset}")
        results["full_fit_dataset"] = full_fit_dataset(args, device)
    if "pipeline" not in args.skip:
        section(f"pipeline ({args.pipeline_scale})")
        results["pipeline"] = pipeline(args, device)
    info["load_average_after"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - started
    print_table(results)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {out_path} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()

"""The reference side of ``benchmarks/reference_sidebyside.py``: each method trained by its reference
implementation's own classes, every setting read from our resolved ``<method>_cpu`` config.

    python -m benchmarks.reference_drivers fit --method mopo --dataset hopper-medium-replay --seed 0 \
        --checkout /path/to/OfflineRL-Kit --fit FIT_DIR [--overrides ...]
    python -m benchmarks.reference_drivers train --method mopo ... --fit FIT_DIR --out RUN_DIR [--overrides ...]
    python -m benchmarks.reference_drivers score-fits --method mopo ... --fit FIT_DIR --ours-fit OURS_FIT_DIR \
        --out SCORES.json

The harness runs these as child processes (one torch thread each), so that a reference's packages and
stand-ins never enter its own process. ``fit`` trains the reference's dynamics ensemble, saves it with
the reference's own ``save`` into ``FIT_DIR`` and writes ``FIT_DIR/fit.json`` (the fit's wall seconds);
``train`` loads that fit with the reference's own ``load`` and trains the agent into ``RUN_DIR``
(``eval.csv``; ``train.csv``, a trace of the updates beside ours'; then ``final.json`` last). EDAC is
model-free: it has no fit. ``train --update ours`` (OfflineRL-Kit's model-based methods) puts our agent in the
reference policy's place inside the same loop: its update on the loop's batches, its actions in the rollouts,
to tell a difference of the update from one of the loop.

References and how they are driven:

- **OfflineRL-Kit** (yihaosun1124/OfflineRL-Kit): MOPO, MOBILE, COMBO and RAMBO with
  ``EnsembleDynamicsModel``/``EnsembleDynamics`` and ``MOPOPolicy``/``MOBILEPolicy``/``COMBOPolicy``/
  ``RAMBOPolicy`` on its ``ActorProb``/``Critic``/``MLP`` modules and ``ReplayBuffer``, by a loop that
  follows ``MBPolicyTrainer.train``: a rollout round every ``rollout.every`` updates, then batches of
  ``int(batch * real_ratio)`` real rows and the rest from the model buffer; for RAMBO also
  ``update_dynamics`` (its adversarial model steps) every ``agent.adv_every`` updates. RAMBO is
  wired as ``run_rambo.py`` wires it: observations normalised in the buffer (the dynamics fit, the
  rollouts and the behaviour cloning see normalised states, evaluation normalises through the
  policy's scaler, termination un-normalises), and ``RAMBOPolicy.pretrain`` behaviour-clones the
  actor before the first update. EDAC with ``EDACPolicy`` on an ``EnsembleCritic`` initialised as
  ``run_edac.py`` does, by a loop that follows ``MFPolicyTrainer.train``.
- **edge-of-reach** (anyasims/edge-of-reach, RAVL's authors): RAVL with ``Agent``, ``Actor``,
  ``VectorizedCritic``, ``DataBuffer``, ``DynamicsModel`` and ``RolloutGenerator``, by a loop that
  follows ``train_ravl_agent.train`` (a rollout round of ``rollout.batch_size`` start states every
  ``rollout.every`` updates, the role of its epoch). Its dynamics ``Ensemble`` is fitted by a loop
  that follows ``train_dynamics_model.train`` (bootstrapped members, its own validation split and
  ``check_validation_losses``, best weights restored on early stopping, ``select_elites``), saved with
  ``save_ensemble_model``. Its loaders read ``config.pkl`` (``rollout_generation.py:27``,
  ``ensemble.py:308``) where its saver writes ``data.pkl`` (``ensemble.py:294``), so the fit renames
  that one file.

Settings taken from our config: networks (widths and depth), learning rates, discount, soft-update
rate, initial temperature, automatic temperature and its target entropy, number of critics, EDAC's
eta, deterministic backup, the number of updates, batch size and real/model mix, the rollout
schedule (period, start states, horizon, rounds kept), the dynamics ensemble (members, elites, widths,
weight decay, learning rate, batch, log-variance bound coefficient, holdout fraction, epoch cap,
patience), MOPO's and MOBILE's penalty coefficient and samples, COMBO's conservative weight,
temperature, proposal count, Lagrange switch and threshold, backup and state mix, and RAMBO's
adversary (weight, period, steps, batch, horizon, learning rate, entropy switch) and behaviour cloning
(batch, learning rate, length).

Where a reference fixes a value that is a setting of ours, ``FIXED`` lists it and a config that
differs stops with a message rather than compare unlike runs (e.g. OfflineRL-Kit's two-critic
MOPO/COMBO/RAMBO, its fixed 1000-row holdout cap, edge-of-reach's dynamics weight decays). Differences
no setting of ours can express, kept as the references have them:

- edge-of-reach's networks have three hidden layers of one width (``agent.py:49-56,111-119``); the
  driver builds them at our width and drops the surplus layers (the ``_cpu`` presets have two), so
  the layers that remain keep the reference's initialisation.
- edge-of-reach validates its dynamics on its whole holdout split (``dynamics.holdout_fraction`` of the
  rows), not on at most ``dynamics.max_holdout`` of them; its fit also lowers no learning rate here,
  because its ``min_epochs`` is set to 0 so that ``dynamics.max_epochs`` caps the fit as ours.
- RAMBO's behaviour cloning runs in epochs (``rambo.py:76``): ``agent.bc_steps`` is rounded to the
  nearest whole number of epochs (at least one). Its loss is the squared error of a sampled action
  (ours maximises the likelihood of the dataset action), and the observation normalisation above is
  not done by ours (``docs/fidelity.md``, RAMBO).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.conformance.common import stub_modules, use_reference
from mbrl.config import TrainConfig, as_dict, resolve
from mbrl.data.loading import load_dataset
from mbrl.data.transitions import DatasetSpec, Transitions
from mbrl.envs import env_family
from mbrl.evaluate import evaluate
from mbrl.rollout import split_batch
from mbrl.train import compose

# Which checkout trains which method.
CHECKOUT = {"mopo": "OfflineRL-Kit", "mobile": "OfflineRL-Kit", "combo": "OfflineRL-Kit",
            "rambo": "OfflineRL-Kit", "edac": "OfflineRL-Kit", "ravl": "edge-of-reach"}  # fmt: skip

# Our settings that a reference fixes (it has no knob for them): ours must equal the value given.
_SAC = {"agent.spectral_norm": False, "agent.adv_target_eps": 0.0, "agent.actor_lr_schedule": "constant"}
_KIT_FIT = {
    "dynamics.kind": "ensemble",
    "dynamics.activation": "silu",  # Swish (dynamics_module.py:9)
    "dynamics.bootstrap": True,  # ensemble_dynamics.py:129
    "dynamics.max_holdout": 1000,  # min(ratio * N, 1000) rows held out (ensemble_dynamics.py:118)
    "dynamics.improvement_threshold": 0.01,  # ensemble_dynamics.py:153
    "dynamics.max_train_steps_per_epoch": None,
    "dynamics.init_truncation": None,  # trunc_normal_ at its default absolute bounds (ensemble_linear.py:23)
}
_TWO_CRITICS = {"agent.num_critics": 2, "agent.eta": 0.0, "agent.deterministic_backup": False}  # SACPolicy
FIXED: dict[str, dict[str, Any]] = {
    "mopo": {**_SAC, **_KIT_FIT, **_TWO_CRITICS, "penalty.name": "mopo", "filter.name": "none"},
    "mobile": {**_SAC, **_KIT_FIT, "agent.eta": 0.0, "penalty.name": "mobile", "filter.name": "none"},
    "rambo": {**_SAC, **_KIT_FIT, **_TWO_CRITICS, "penalty.name": "none", "filter.name": "none"},
    "combo": {
        **_KIT_FIT,
        "agent.num_critics": 2,
        "agent.bc_steps": 0,  # COMBOPolicy has no behaviour-cloning warm-up
        "agent.actor_lr_schedule": "constant",
        # combo.py:185-189 discards value.reshape: its logsumexp runs over the 3 proposals of each draw
        "agent.logsumexp_over": "draw",
        "penalty.name": "none",
        "filter.name": "none",
    },
    "edac": {**_SAC, "dynamics.kind": "none", "filter.name": "none"},
    "ravl": {
        **_SAC,
        "dynamics.kind": "ensemble",
        "dynamics.activation": "silu",  # net.py:113
        "dynamics.bootstrap": True,  # ensemble.py:201
        "dynamics.weight_decay": [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4],  # net.py:119, l2_reg_multiplier 1
        "dynamics.init_truncation": 2.0,  # trunc_normal_ cut at 2 std (net.py:153)
        "dynamics.improvement_threshold": 0.01,  # train_dynamics_model.py:48
        "dynamics.max_train_steps_per_epoch": None,
        # train_dynamics_model.py's literals: batch 256 (:120), log-variance bounds coefficient 0.01 (:158),
        # stop after 5 epochs without improvement (deque(maxlen=6), :85 and :181)
        "dynamics.batch_size": 256,
        "dynamics.logvar_loss_coef": 0.01,
        "dynamics.max_epochs_since_update": 5,
        "penalty.name": "none",
        "filter.name": "none",
    },
}
RAMBO_MAX_ADV_STEPS = 1000  # update_dynamics stops a phase at 1000 steps whatever adv_train_steps says (rambo.py:124)


@dataclass
class Job:
    """One reference job: our resolved config and the dataset in the references' array layout."""

    method: str
    seed: int
    cfg: TrainConfig
    spec: DatasetSpec
    arrays: dict[str, np.ndarray]  # observations, actions, next_observations, rewards [N], terminals [N]

    @property
    def obs_dim(self) -> int:
        return self.arrays["observations"].shape[1]

    @property
    def act_dim(self) -> int:
        return self.arrays["actions"].shape[1]

    @property
    def agent(self) -> dict[str, Any]:
        return self.cfg.agent


def load_job(method: str, dataset: str, seed: int, overrides: list[str]) -> Job:
    """Compose ``experiment=<method>_cpu`` with ``overrides``, check it against ``FIXED``, seed, load the data."""
    cfg = resolve(compose([f"experiment={method}_cpu", f"dataset={dataset}", f"seed={seed}", *overrides]))
    flat = as_dict(cfg)
    wrong = {}
    for key, theirs in FIXED[method].items():
        ours = reduce(lambda d, k: d[k], key.split("."), flat)
        if ours != theirs:
            wrong[key] = (ours, theirs)
    if wrong:
        listed = "; ".join(f"{k}: ours {o!r}, the reference's {t!r}" for k, (o, t) in wrong.items())
        raise SystemExit(f"{method}: the reference has no setting for {listed}")
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    data = load_dataset(cfg.dataset)
    t = data.transitions
    arrays = {
        "observations": t.obs.numpy(),
        "actions": t.act.numpy(),
        "next_observations": t.next_obs.numpy(),
        "rewards": t.rew.numpy(),
        "terminals": t.terminated.numpy().astype(np.float32),
    }
    return Job(method, seed, cfg, data.spec, arrays)


def train_loop(job: Job, out: Path, update: Callable[[int], None], score: Callable[[int, int], float]) -> None:
    """``total_updates`` calls of ``update(step)``, scored every ``eval_every`` and at the end; writes the run.

    ``final.json`` is written last: its presence marks a finished run.
    """
    cfg = job.cfg
    rows = []
    for step in range(cfg.total_updates):
        update(step)
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.total_updates:
            rows.append({"step": step + 1, "score_mean": score(step + 1, cfg.eval_episodes)})
            print(f"update {step + 1}: score {rows[-1]['score_mean']:.1f}", flush=True)
    final = score(cfg.total_updates, cfg.final_eval_episodes)
    rows.append({"step": cfg.total_updates, "score_mean": final})
    print(f"final: score {final:.1f}", flush=True)
    with open(out / "eval.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "score_mean"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "final.json").write_text(json.dumps({"final": {"score_mean": final}}, indent=2))


def scorer(
    job: Job, act: Callable[[np.ndarray], np.ndarray], mode: Callable[[bool], Any]
) -> Callable[[int, int], float]:
    """Mean normalised score of ``act`` (deterministic actions) over some episodes, by ``mbrl.evaluate.evaluate``
    with the seeds our runs use; ``mode(False)`` before and ``mode(True)`` after, as the references' trainers
    switch their policy to evaluation and back."""
    spec = job.spec

    def score(step: int, episodes: int) -> float:
        mode(False)
        res = evaluate(
            lambda o: torch.as_tensor(act(o.numpy())),
            spec.env_id,
            episodes,
            seed=10_000 * (job.seed + 1) + step,
            ref_scores=(spec.ref_min_score, spec.ref_max_score),
        )
        mode(True)
        return float(res.normalized.mean())

    return score


# -- OfflineRL-Kit -------------------------------------------------------------------------------------


class _Logger:
    """The part of OfflineRL-Kit's ``Logger`` that ``EnsembleDynamics.train`` and ``RAMBOPolicy.pretrain`` call."""

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


def import_offlinerlkit(checkout: Path) -> str:
    """Put the checkout on the path with stand-ins for what it imports only for environments and logging."""
    commit = use_reference(checkout)
    stub_modules("gym", "gym.envs", "gym.envs.mujoco", "gym.spaces", "d4rl", "torch.utils.tensorboard")
    return f"OfflineRL-Kit@{commit}"


def kit_buffer(job: Job) -> tuple[Any, tuple[np.ndarray, np.ndarray] | None]:
    """The dataset in OfflineRL-Kit's ``ReplayBuffer``; for RAMBO with normalised observations, as
    ``run_rambo.py`` loads it, and the normalisation's mean and std."""
    from offlinerlkit.buffer import ReplayBuffer

    buffer = ReplayBuffer(len(job.arrays["observations"]), (job.obs_dim,), np.float32, job.act_dim, np.float32, "cpu")
    buffer.load_dataset(job.arrays)
    return buffer, buffer.normalize_obs() if job.method == "rambo" else None


def kit_dynamics(job: Job, normaliser: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """An unfitted ``EnsembleDynamics`` of our sizes; MOPO's carries its reward penalty (``penalty_coef``)."""
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import EnsembleDynamicsModel
    from offlinerlkit.utils.scaler import StandardScaler
    from offlinerlkit.utils.termination_fns import get_termination_fn, obs_unnormalization

    dyn = job.cfg.dynamics
    model = EnsembleDynamicsModel(
        obs_dim=job.obs_dim,
        action_dim=job.act_dim,
        hidden_dims=list(dyn.hidden_sizes),
        num_ensemble=dyn.ensemble_size,
        num_elites=dyn.num_elites,
        weight_decays=list(dyn.weight_decay),
        device="cpu",
    )
    termination = get_termination_fn(task=f"{env_family(job.spec.env_id)}-v2")
    if normaliser is not None:
        termination = obs_unnormalization(termination, *normaliser)
    return EnsembleDynamics(
        model,
        torch.optim.Adam(model.parameters(), lr=dyn.lr),
        StandardScaler(),
        termination,
        penalty_coef=float(job.cfg.penalty["coef"]) if job.method == "mopo" else 0.0,
    )


def kit_fit(job: Job, fit_dir: Path) -> float:
    """Fit OfflineRL-Kit's ensemble with our fit settings; ``EnsembleDynamics.train`` saves it into ``fit_dir``.
    Returns the fit's wall seconds."""
    real, normaliser = kit_buffer(job)
    dynamics = kit_dynamics(job, normaliser)
    dyn = job.cfg.dynamics
    start = time.perf_counter()
    dynamics.train(
        real.sample_all(),  # rewards and terminals as [N, 1] columns, as the run scripts pass them
        _Logger(fit_dir),
        max_epochs=dyn.max_epochs,
        max_epochs_since_update=dyn.max_epochs_since_update,
        batch_size=dyn.batch_size,
        holdout_ratio=dyn.holdout_fraction,
        logvar_loss_coef=dyn.logvar_loss_coef,
    )
    return time.perf_counter() - start


def kit_actor(job: Job) -> tuple[Any, torch.optim.Optimizer]:
    """The run scripts' actor (tanh Gaussian, state-dependent std) on an MLP of our hidden sizes, and its Adam."""
    from offlinerlkit.modules import ActorProb, TanhDiagGaussian
    from offlinerlkit.nets import MLP

    backbone = MLP(input_dim=job.obs_dim, hidden_dims=list(job.agent["hidden_sizes"]))
    dist = TanhDiagGaussian(
        latent_dim=backbone.output_dim, output_dim=job.act_dim, unbounded=True, conditioned_sigma=True, max_mu=1.0
    )
    actor = ActorProb(backbone, dist, "cpu")
    return actor, torch.optim.Adam(actor.parameters(), lr=job.agent["actor_lr"])


def kit_critics(job: Job) -> list[Any]:
    """``agent.num_critics`` Q-networks on MLPs of our hidden sizes."""
    from offlinerlkit.modules import Critic
    from offlinerlkit.nets import MLP

    hidden = list(job.agent["hidden_sizes"])
    width = job.obs_dim + job.act_dim
    return [Critic(MLP(input_dim=width, hidden_dims=hidden), "cpu") for _ in range(int(job.agent["num_critics"]))]


def kit_alpha(job: Job) -> Any:
    """SAC's temperature as the policies take it: ``(target entropy, log alpha, its Adam)`` starting at
    ``init_alpha``, or the fixed ``init_alpha`` without automatic tuning."""
    agent = job.agent
    if not agent["auto_alpha"]:
        return float(agent["init_alpha"])
    target = agent["target_entropy"] if agent["target_entropy"] is not None else -float(job.act_dim)
    log_alpha = torch.full((1,), math.log(agent["init_alpha"]), requires_grad=True)
    return target, log_alpha, torch.optim.Adam([log_alpha], lr=agent["alpha_lr"])


def kit_policy(job: Job, dynamics: Any, normaliser: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """MOPO, MOBILE, COMBO or RAMBO policy, with its arguments as the run scripts pass them, from our config."""
    from offlinerlkit.policy import COMBOPolicy, MOBILEPolicy, MOPOPolicy, RAMBOPolicy
    from offlinerlkit.utils.scaler import StandardScaler

    agent, method = job.agent, job.method
    actor, actor_optim = kit_actor(job)
    critics = kit_critics(job)
    common = {"tau": agent["tau"], "gamma": agent["gamma"], "alpha": kit_alpha(job)}
    if method == "mobile":
        critic_list = torch.nn.ModuleList(critics)
        return MOBILEPolicy(
            dynamics,
            actor,
            critic_list,
            actor_optim,
            torch.optim.Adam(critic_list.parameters(), lr=agent["critic_lr"]),
            penalty_coef=float(job.cfg.penalty["coef"]),
            num_samples=int(job.cfg.penalty["samples_per_elite"]),
            deterministic_backup=bool(agent["deterministic_backup"]),
            max_q_backup=False,
            **common,
        )
    c1, c2 = critics
    two = (actor_optim, *(torch.optim.Adam(c.parameters(), lr=agent["critic_lr"]) for c in critics))
    if method == "mopo":
        return MOPOPolicy(dynamics, actor, c1, c2, *two, **common)
    if method == "combo":
        act_space = types.SimpleNamespace(
            low=np.asarray(job.spec.act_low), high=np.asarray(job.spec.act_high), shape=(job.act_dim,)
        )
        return COMBOPolicy(
            dynamics,
            actor,
            c1,
            c2,
            *two,
            action_space=act_space,
            cql_weight=agent["cql_weight"],
            temperature=agent["temperature"],
            max_q_backup=agent["max_q_backup"],
            deterministic_backup=agent["deterministic_backup"],
            with_lagrange=agent["with_lagrange"],
            lagrange_threshold=agent["target_action_gap"],
            cql_alpha_lr=agent["cql_alpha_lr"],
            num_repeart_actions=agent["num_samples"],
            uniform_rollout=False,  # rollouts from the policy, as ours
            rho_s=agent["rho_s"],
            **common,
        )
    return RAMBOPolicy(
        dynamics,
        actor,
        c1,
        c2,
        *two,
        torch.optim.Adam(dynamics.model.parameters(), lr=agent["adv_lr"]),
        adv_weight=agent["adv_weight"],
        adv_train_steps=agent["adv_steps"],
        adv_rollout_batch_size=agent["adv_batch_size"],
        adv_rollout_length=agent["adv_horizon"],
        include_ent_in_adv=agent["include_ent_in_adv"],
        scaler=StandardScaler(*normaliser),
        device="cpu",
        **common,
    )


def _trace_name(key: str) -> str:
    return f"{key.removeprefix('loss/')}_loss" if key.startswith("loss/") else key


class TrainTrace:
    """What a reference's update did, every ``every`` updates, in ``train.csv`` beside ours' (which logs the
    same quantities of one update at the same steps): the returned losses, the temperature, the critics' mean
    value on the update's batch ``q_mean`` and the policy's entropy there (``-log pi`` of one sample per row,
    drawn with the RNG state restored after, so tracing changes no later draw), and the mean model reward of
    the last rollout round.
    """

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every, self.fields = path, every, None

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0

    @torch.no_grad()
    def write(
        self, step: int, result: dict[str, float], q: torch.Tensor, log_prob: torch.Tensor, reward: float
    ) -> None:
        """One row: ``result`` (the update's returned losses), the critics' values ``q [N, B]`` on the update's
        batch, the policy's log-density ``log_prob [B]`` of one sample per row there, the last round's mean model
        reward."""
        row = {"step": step + 1, **{_trace_name(k): float(v) for k, v in result.items()}}
        row |= {"q_mean": float(q.mean()), "entropy": float(-log_prob.mean()), "rollout_reward": reward}
        first = self.fields is None
        self.fields = self.fields or list(row)
        with open(self.path, "w" if first else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if first:
                writer.writeheader()
            writer.writerow(row)


@torch.no_grad()
def aside(draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``draw()`` with the CPU RNG state restored after, so that a measurement changes no later draw."""
    with torch.random.fork_rng(devices=[]):
        return draw()


class OurUpdate:
    """Our agent in the reference's place inside its loop (``train --update ours``): our update on the loop's
    batches, our policy's actions in the reference's rollouts (its ``rollout`` acts through ``select_action``)
    and in the evaluation. What the reference's loop feeds is then all that differs from our own runs.
    """

    def __init__(self, job: Job, policy: Any) -> None:
        from mbrl.agents import AGENTS
        from mbrl.agents.base import AgentSpec

        from mbrl.config import typed_section

        spec, name = job.spec, job.agent["name"]
        cls = AGENTS.get(name)
        config = typed_section(job.agent, f"agent {name!r}", cls.Config)
        if getattr(config, "normalize_states", False):
            raise SystemExit(
                f"{name}: --update ours does not fit our state standardisers; set agent.normalize_states=false"
            )
        self.agent = cls(AgentSpec(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high), config)
        policy.select_action = self.select_action

    def select_action(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.agent.act(torch.as_tensor(obs, dtype=torch.float32), deterministic).numpy()

    def learn(self, batch: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
        def rows(b: dict[str, torch.Tensor]) -> Transitions:
            terminated = b["terminals"].squeeze(-1).bool()
            return Transitions(b["observations"], b["actions"], b["rewards"].squeeze(-1), b["next_observations"],
                               terminated, torch.zeros_like(terminated))  # fmt: skip

        metrics = self.agent.update(rows(batch["real"]), rows(batch["fake"]))
        return {k: float(metrics[k]) for k in ("actor_loss", "alpha")}


def kit_model_based(job: Job, fit_dir: Path, out: Path, our_update: bool = False) -> None:
    """MOPO, MOBILE, COMBO or RAMBO on the fit in ``fit_dir``, by a loop that follows ``MBPolicyTrainer.train``;
    with ``our_update``, our agent learns and acts in it instead of the reference's policy (``OurUpdate``)."""
    from offlinerlkit.buffer import ReplayBuffer

    cfg, agent, roll = job.cfg, job.agent, job.cfg.rollout
    if job.method == "rambo" and agent["adv_steps"] > RAMBO_MAX_ADV_STEPS:
        raise SystemExit(f"rambo: RAMBOPolicy.update_dynamics stops at {RAMBO_MAX_ADV_STEPS} steps a phase")
    real, normaliser = kit_buffer(job)
    dynamics = kit_dynamics(job, normaliser)
    policy = kit_policy(job, dynamics, normaliser)
    if job.method == "rambo" and agent["bc_steps"] > 0:  # run_rambo.py: BC first, then the dynamics
        epoch_steps = len(job.arrays["observations"]) // agent["bc_batch_size"]
        epochs = max(1, round(agent["bc_steps"] / epoch_steps))
        print(f"behaviour cloning: {epochs} epochs of {epoch_steps} steps for bc_steps={agent['bc_steps']}")
        policy.pretrain(real.sample_all(), epochs, agent["bc_batch_size"], agent["bc_lr"], _Logger(out / "model"))
    dynamics.load(str(fit_dir))
    print(f"loaded the dynamics fit in {fit_dir}", flush=True)

    size = roll.batch_size * roll.horizon * roll.retain
    fake = ReplayBuffer(size, (job.obs_dim,), np.float32, job.act_dim, np.float32, "cpu")
    n_real, n_model = split_batch(cfg.batch_size, roll.real_ratio)

    trace = TrainTrace(out / "train.csv", cfg.log_every)
    rollout_reward = 0.0
    ours = OurUpdate(job, policy) if our_update else None
    learn = ours.learn if ours else policy.learn

    def update(step: int) -> None:
        nonlocal rollout_reward
        if step % roll.every == 0:
            starts = real.sample(roll.batch_size)["observations"].cpu().numpy()
            transitions, info = policy.rollout(starts, roll.horizon)
            fake.add_batch(**transitions)
            rollout_reward = float(info["reward_mean"])
        batch = {"real": real.sample(n_real), "fake": fake.sample(n_model)}
        result = learn(batch)
        if job.method == "rambo" and (step + 1) % agent["adv_every"] == 0:
            policy.update_dynamics(real)
        if trace.due(step):
            obs = torch.cat([batch["real"]["observations"], batch["fake"]["observations"]])
            act = torch.cat([batch["real"]["actions"], batch["fake"]["actions"]])
            if ours:
                q, log_prob = ours.agent.q_values(obs, act), aside(lambda: ours.agent.actor(obs)[1])
            else:
                critics = list(policy.critics) if job.method == "mobile" else [policy.critic1, policy.critic2]
                q = torch.stack([c(obs, act).reshape(-1) for c in critics])
                log_prob = aside(lambda: policy.actforward(obs)[1])
            trace.write(step, result, q, log_prob, rollout_reward)

    policy.train()
    act = lambda o: policy.select_action(o, deterministic=True)  # noqa: E731 (RAMBO's normalises o first)
    train_loop(job, out, update, scorer(job, act, lambda on: policy.train() if on else policy.eval()))


def kit_edac(job: Job, out: Path) -> None:
    """EDAC on the dataset, wired as ``run_edac.py``, by a loop that follows ``MFPolicyTrainer.train``."""
    from offlinerlkit.modules import EnsembleCritic
    from offlinerlkit.policy import EDACPolicy

    agent = job.agent
    actor, actor_optim = kit_actor(job)
    critics = EnsembleCritic(
        job.obs_dim, job.act_dim, list(agent["hidden_sizes"]), num_ensemble=int(agent["num_critics"]), device="cpu"
    )
    for layer in critics.model[::2]:  # run_edac.py: "init as in the EDAC paper"
        torch.nn.init.constant_(layer.bias, 0.1)
    torch.nn.init.uniform_(critics.model[-1].weight, -3e-3, 3e-3)
    torch.nn.init.uniform_(critics.model[-1].bias, -3e-3, 3e-3)
    policy = EDACPolicy(
        actor,
        critics,
        actor_optim,
        torch.optim.Adam(critics.parameters(), lr=agent["critic_lr"]),
        tau=agent["tau"],
        gamma=agent["gamma"],
        alpha=kit_alpha(job),
        max_q_backup=False,
        deterministic_backup=agent["deterministic_backup"],
        eta=agent["eta"],
    )
    buffer, _ = kit_buffer(job)

    policy.train()
    act = lambda o: policy.select_action(o, deterministic=True)  # noqa: E731
    train_loop(
        job,
        out,
        lambda step: policy.learn(buffer.sample(job.cfg.batch_size)),
        scorer(job, act, lambda on: policy.train() if on else policy.eval()),
    )


# -- edge-of-reach -------------------------------------------------------------------------------------


def import_edge_of_reach(checkout: Path) -> str:
    """Put the checkout on the path with stand-ins for what it imports only for environments and logging."""
    commit = use_reference(checkout)
    stub_modules("gym", "d4rl", "d4rl.gym_mujoco", "pyrallis", "wandb")
    return f"edge-of-reach@{commit}"


def eor_fit(job: Job, fit_dir: Path) -> tuple[float, str]:
    """Fit edge-of-reach's dynamics ``Ensemble`` by a loop that follows ``train_dynamics_model.train`` and save
    it with ``save_ensemble_model`` into ``fit_dir/<model id>``; returns the wall seconds and the model id."""
    import train_dynamics_model as script
    from dynamics_training.ensemble import (
        Ensemble,
        EnsembleTransitionDataset,
        Transition,
        TransitionDataset,
        save_ensemble_model,
    )
    from torch.utils.data import DataLoader, SequentialSampler

    dyn = job.cfg.dynamics
    if len(dyn.hidden_sizes) != 4 or len(set(dyn.hidden_sizes)) != 1:
        raise SystemExit(f"ravl: edge-of-reach's dynamics have 4 hidden layers of one width, ours {dyn.hidden_sizes}")
    rows = len(job.arrays["observations"])
    config = script.EnsembleTrainConfig(
        env_name=job.cfg.dataset,
        seed=job.seed,
        num_models=dyn.ensemble_size,
        num_elites=dyn.num_elites,
        train_memory=rows,  # buffers the size of the data, not the default 2M + 500k rows
        val_memory=rows,
        train_val_ratio=dyn.holdout_fraction,
        epochs=dyn.max_epochs,
        min_epochs=0,  # no minimum: dynamics.max_epochs caps the fit, as ours
        model_lr=dyn.lr,
        hidden_dim=dyn.hidden_sizes[0],
        save_path=str(fit_dir),
        device="cpu",
    )
    start = time.perf_counter()
    ensemble = Ensemble({**asdict(config), "ob_dim": job.obs_dim, "ac_dim": job.act_dim})
    ensemble.load_memory(job.arrays)  # its own random train/validation split
    optimizer = torch.optim.Adam(ensemble.weights, lr=dyn.lr)
    filters = (ensemble.state_filter, ensemble.action_filter)
    train = EnsembleTransitionDataset(Transition(*ensemble.memory.sample_all()), *filters, n_models=ensemble.num_models)
    loader = DataLoader(train, shuffle=True, batch_size=dyn.batch_size)
    valid = TransitionDataset(Transition(*ensemble.memory_val.sample_all()), *filters)
    valid_loader = DataLoader(valid, sampler=SequentialSampler(valid), batch_size=dyn.batch_size)
    script.check_validation_losses(valid_loader, ensemble)  # the best losses before any step
    since_improved = 0
    for epoch in range(dyn.max_epochs):
        members = np.random.choice(ensemble.num_models, size=ensemble.num_models, replace=False)
        for x, delta, reward in loader:
            x, delta, reward = x[:, members], delta[:, members], reward[:, members]
            loss = sum(
                ensemble.networks[i].train_model_forward(x[:, i], delta[:, i], reward[:, i])
                for i in range(ensemble.num_models)
            )
            coef = dyn.logvar_loss_coef
            loss = loss + coef * ensemble.max_logvar.sum() - coef * ensemble.min_logvar.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        improved, losses = script.check_validation_losses(valid_loader, ensemble)
        since_improved = 0 if improved else since_improved + 1
        print(f"dynamics epoch {epoch + 1}: validation mse {np.round(losses, 5).tolist()}", flush=True)
        if since_improved >= dyn.max_epochs_since_update:  # the script's early stop restores the best weights
            for i in ensemble.networks:
                ensemble.networks[i].load_state_dict(ensemble.current_best_weights[i])
            break
    ensemble.select_elites(valid_loader)
    save_ensemble_model(ensemble, str(fit_dir))
    fit_s = time.perf_counter() - start
    model_dir = fit_dir / ensemble._model_id
    os.replace(model_dir / "data.pkl", model_dir / "config.pkl")  # the name DynamicsModel.load_model reads
    return fit_s, ensemble._model_id


def eor_ravl(job: Job, fit_dir: Path, out: Path) -> None:
    """RAVL on the fit in ``fit_dir``, built in ``train_ravl_agent.train``'s order and driven by a loop that
    follows its training loop."""
    from agent_training.agent import Actor, Agent, VectorizedCritic
    from agent_training.rollout_generation import DynamicsModel, RolloutGenerator, get_done_func
    from shared.data_buffer import DataBuffer

    from benchmarks.conformance.edge_of_reach import _HostBool

    cfg, agent, roll = job.cfg, job.agent, job.cfg.rollout
    hidden = list(agent["hidden_sizes"])
    if len(set(hidden)) != 1 or len(hidden) > 3:
        raise SystemExit(f"ravl: edge-of-reach's networks have up to 3 hidden layers of one width, ours {hidden}")
    depth, width = len(hidden), hidden[0]
    data = DataBuffer(job.obs_dim, job.act_dim, buffer_size=len(job.arrays["observations"]), as_numpy=False)
    data.load_d4rl_dataset(job.arrays)
    actor = Actor(job.obs_dim, job.act_dim, width, max_action=1.0)
    actor.trunk = actor.trunk[: 2 * depth]  # our depth: its first `depth` (Linear, ReLU) pairs
    critic = VectorizedCritic(job.obs_dim, job.act_dim, width, int(agent["num_critics"]))
    critic.critic = torch.nn.Sequential(*critic.critic[: 2 * depth], critic.critic[-1])
    ravl = Agent(
        actor=actor,
        actor_optimizer=torch.optim.Adam(actor.parameters(), lr=agent["actor_lr"]),
        critic=critic,
        critic_optimizer=torch.optim.Adam(critic.parameters(), lr=agent["critic_lr"]),
        gamma=agent["gamma"],
        tau=agent["tau"],
        eta=agent["eta"],
        auto_alpha=agent["auto_alpha"],
        alpha_learning_rate=agent["alpha_lr"],
        target_entropy=agent["target_entropy"],
        alpha=agent["init_alpha"],
        device="cpu",
    )
    if agent["auto_alpha"]:  # agent.py:182 starts log alpha at 0; ours at log(init_alpha)
        with torch.no_grad():
            ravl.log_alpha.fill_(math.log(agent["init_alpha"]))
        ravl.alpha = ravl.log_alpha.exp().detach()
    model_buffer = DataBuffer(job.obs_dim, job.act_dim, buffer_size=roll.batch_size * roll.horizon * roll.retain)
    model_dir = fit_dir / json.loads((fit_dir / "fit.json").read_text())["model_dir"]
    dynamics = DynamicsModel(cfg.dataset, job.obs_dim, job.act_dim, load_model_dir=str(model_dir))
    print(f"loaded the dynamics fit in {model_dir}", flush=True)
    done = get_done_func(cfg.dataset)
    # On the CPU the reference moves its done flags to reward.get_device(), -1: make that a no-op.
    dynamics.done_func = lambda s: done(s).as_subclass(_HostBool)
    rollouts = RolloutGenerator(dynamics, actor, roll.horizon, roll.batch_size, model_buffer)
    n_real = int(roll.real_ratio * cfg.batch_size)  # train_ravl_agent.py:204

    def update(step: int) -> None:
        if step % roll.every == 0:
            rollouts.generate_rollouts(data.sample(roll.batch_size)[0])
        real, model = data.sample(n_real), model_buffer.sample(cfg.batch_size - n_real)
        ravl.update([torch.cat([r, m]) for r, m in zip(real, model, strict=True)])

    act = lambda o: actor.act(torch.as_tensor(o, dtype=torch.float32)).numpy()  # noqa: E731 (its eval_actor's)
    train_loop(job, out, update, scorer(job, act, actor.train))


def score_fits(job: Job, ref_fit: Path, ours_fit: Path, edge_of_reach: bool) -> dict[str, dict[str, float]]:
    """Both sides' fitted dynamics for ``job`` scored on the same rows: per test dataset (the fit's own data
    and the family's ``medium`` built-in, which a medium-replay fit never saw), the MSE of each member's mean
    ``[Δs, r]`` averaged over the elites and over all members; over the elites, the Gaussian negative
    log-likelihood per dimension (without its constant) and the mean predicted variance over the MSE.

    Each side's holdout is its own random split, so holdout losses do not compare; the same rows do. This is
    how the ensemble's initialisation was found to leave our fit worse than OfflineRL-Kit's.
    """
    from mbrl.dynamics.cache import cache_key
    from mbrl.dynamics.factory import build_dynamics

    from mbrl.config import eval_env

    cfg = job.cfg
    ours = build_dynamics(cfg.dynamics.kind, cfg.dynamics, job.spec, eval_env(cfg, job.spec), cfg.seed, "cpu")
    entry = ours_fit.parent / "cache" / "dynamics" / f"{cache_key(ours, job.spec.content_hash)}.pt"
    ours.load_state_dict(torch.load(entry, map_location="cpu", weights_only=True)["model"])
    if edge_of_reach:
        from agent_training.rollout_generation import DynamicsModel

        model_dir = ref_fit / json.loads((ref_fit / "fit.json").read_text())["model_dir"]
        ensemble = DynamicsModel(cfg.dataset, job.obs_dim, job.act_dim, load_model_dir=str(model_dir)).ensemble
        ref_elites = list(ensemble._elites_idx)

        def reference(obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            means, logvars = ensemble.get_means_logvars(obs, act)  # [B, E, o+1] of [s', r]
            delta = means[..., : job.obs_dim] - obs[:, None]
            return torch.cat([delta, means[..., job.obs_dim :]], dim=-1).transpose(0, 1), logvars.transpose(0, 1)
    else:
        kit = kit_dynamics(job, None)
        kit.load(str(ref_fit))
        ref_elites = [int(i) for i in kit.model.elites.data.cpu()]

        def reference(obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = kit.scaler.transform(np.concatenate([obs.numpy(), act.numpy()], axis=1))
            mean, logvar = kit.model(x)  # [E, B, o+1]
            return mean.cpu(), logvar.cpu()

    scores = {}
    family = env_family(job.spec.env_id)
    for name in dict.fromkeys([cfg.dataset, f"{family}-medium"]):
        t = load_dataset(name).transitions
        target = ours.targets(t).double()
        scores[name] = {}
        for side, predict, elites in (("ours", ours.predict, ours.elites), ("reference", reference, ref_elites)):
            with torch.no_grad():
                mean, logvar = (x.double() for x in predict(t.obs, t.act))
            err2 = (mean - target) ** 2  # [E, N, o+1]
            mse = err2.mean(dim=(1, 2))
            scores[name] |= {
                f"{side}_elites": float(mse[elites].mean()),
                f"{side}_all": float(mse.mean()),
                # The rollouts sample from the predicted Gaussian: its spread matters as much as its mean.
                f"{side}_elites_nll": float(0.5 * (err2 * (-logvar).exp() + logvar)[elites].mean()),
                f"{side}_elites_var_over_mse": float(logvar[elites].exp().mean() / err2[elites].mean()),
            }
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["fit", "train", "score-fits"])
    parser.add_argument("--method", required=True, choices=sorted(CHECKOUT))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--checkout", type=Path, required=True, help="the reference's checkout (CHECKOUT)")
    parser.add_argument("--fit", type=Path, help="the dynamics fit's folder (written by fit, read by train)")
    parser.add_argument("--out", type=Path, help="the run's folder (train), the scores' JSON file (score-fits)")
    parser.add_argument("--ours-fit", type=Path, help="our fit's folder, beside its cache (score-fits)")
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides after experiment=<method>_cpu")
    parser.add_argument(
        "--update",
        choices=["reference", "ours"],
        default="reference",
        help="train: whose update and policy run inside the reference's loop (ours: OfflineRL-Kit's MOPO, MOBILE "
        "and COMBO, to tell a difference of the update from one of the loop around it)",
    )
    a = parser.parse_args(argv)
    edge_of_reach = CHECKOUT[a.method] == "edge-of-reach"
    revision = import_edge_of_reach(a.checkout) if edge_of_reach else import_offlinerlkit(a.checkout)
    job = load_job(a.method, a.dataset, a.seed, a.overrides)
    if a.step == "score-fits":
        scores = score_fits(job, a.fit, a.ours_fit, edge_of_reach)
        a.out.write_text(json.dumps({"reference": revision, "scores": scores}, indent=2) + "\n")
        return 0
    if a.step == "fit":
        fit_s, model_id = eor_fit(job, a.fit) if edge_of_reach else (kit_fit(job, a.fit), None)
        record = {"fit_s": fit_s, "reference": revision} | ({"model_dir": model_id} if model_id else {})
        tmp = a.fit / "fit.json.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, a.fit / "fit.json")  # its presence marks a finished fit
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "git_revision.txt").write_text(f"{revision}\n")
    if a.method == "edac":
        kit_edac(job, a.out)
    elif edge_of_reach:
        eor_ravl(job, a.fit, a.out)
    else:
        kit_model_based(job, a.fit, a.out, our_update=a.update == "ours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

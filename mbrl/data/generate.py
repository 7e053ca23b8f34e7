"""Generate D4RL-style Minari datasets from a behaviour-policy bundle, deterministically.

Levels (D4RL's recipe, at a size chosen by the caller):

* ``random``: uniform random actions.
* ``medium``: stochastic actions of the medium snapshot (a third of the expert reference return).
* ``medium-replay``: what the replay buffer of training up to medium held: the uniform warm-up
  steps, then ``snapshot_every`` steps from each snapshot before medium, stochastic actions.
* ``expert``: stochastic actions of the expert snapshot; ``medium-expert``: medium then expert.

Every episode stores ``infos["qpos"]`` and ``infos["qvel"]`` with one row per observation
(N + 1), so true-simulator dynamics can be restarted from any dataset state.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mbrl.data.behavior import BehaviorBundle
from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.envs import env_family, make_env
from mbrl.nn import TanhGaussianActor
from mbrl.torch_utils import one_thread

log = logging.getLogger(__name__)
LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
NUM_PARALLEL_ENVS = 10
# The policy's actions are rounded to multiples of ACTION_GRID (in units of the action half-range),
# so that the datasets do not depend on the CPU they are generated on. In float32 they did: the
# matmul kernels MKL picks per CPU (AVX2, AVX-512, ...) sum in different orders, torch's float32
# randn, exp and tanh have per-CPU (vectorised vs scalar) code, and one ulp in one action changes
# every later state of a chaotic MuJoCo rollout. In float64 every product of float32 weights and
# inputs is exact and the per-CPU differences shrink to the last bits: against a long-double
# reference the float64 tanh(u) of the packaged policies is off by 3e-16 on average (5e-15 at
# most; benchmarks/results/builtin_reproducibility.md). Two CPUs' values then round to different
# grid points only when a rounding boundary falls between them: probability about |difference| /
# ACTION_GRID = 6e-16 / 2^-16 ~ 4e-11 per action component. A 100k-step dataset of a 6-dim env
# holds 6e5 components, so it comes out differently with probability ~2.4e-5; all built-in policy
# datasets together (~3e6 components) ~1.2e-4. The grid, 1.5e-5 of the half-range, is far below
# the policies' smallest noise (std >= exp(-5) ~ 6.7e-3 of it): the data are still samples of them.
ACTION_GRID = 2.0**-16
# ``progress`` of the collecting functions: True/False shows/hides a bar on stderr, None shows it only
# on a terminal (tqdm's own rule), and a bar passed in is advanced (one bar over several collections).
Progress = bool | None | tqdm


@dataclass
class Episode:
    """One episode: ``observations [T+1, obs]``, ``actions [T, act]``, flags ``[T]``, qpos/qvel ``[T+1, n]``."""

    observations: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[float]
    terminations: list[bool]
    truncations: list[bool]
    qpos: list[np.ndarray]
    qvel: list[np.ndarray]


def _sim_state(env) -> tuple[np.ndarray, np.ndarray]:
    data = env.unwrapped.data
    return data.qpos.copy(), data.qvel.copy()


def collect(
    env_id: str, actor: TanhGaussianActor | None, num_steps: int, seed: int, progress: Progress = None
) -> list[Episode]:
    """Run ``NUM_PARALLEL_ENVS`` envs until exactly ``num_steps`` transitions exist.

    ``actor=None`` means uniform random actions. Episodes still running when the budget is spent
    end with ``truncations[-1] = True`` (as in a replay buffer cut mid-episode). Order and content
    depend only on ``seed`` (the progress bar, see ``Progress``, draws no random numbers).
    """
    with one_thread(), _progress_bar(progress, num_steps, f"collecting {env_id}") as bar:
        return _collect(env_id, actor, num_steps, seed, bar)


@contextmanager
def _progress_bar(progress: Progress, total: int, desc: str) -> Iterator[tqdm]:
    """The bar ``progress`` asks for: the one passed in (left open), or a new one closed at the end."""
    if isinstance(progress, tqdm):
        yield progress
        return
    # Steps arrive NUM_PARALLEL_ENVS at a time, tens of thousands per second: redraw at most every second.
    bar = tqdm(
        total=total,
        desc=desc,
        unit="step",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    try:
        yield bar
    finally:
        bar.close()


def _collect(env_id: str, actor: TanhGaussianActor | None, num_steps: int, seed: int, bar: tqdm) -> list[Episode]:
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    actor64 = None if actor is None else float64_actor(actor)
    envs = [make_env(env_id) for _ in range(NUM_PARALLEL_ENVS)]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    finished: list[Episode] = []
    running: list[Episode] = []
    for env in envs:
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        qpos, qvel = _sim_state(env)
        running.append(Episode([obs], [], [], [], [], [qpos], [qvel]))
    steps = 0
    while steps < num_steps:
        active = min(NUM_PARALLEL_ENVS, num_steps - steps)
        obs = np.stack([ep.observations[-1] for ep in running[:active]]).astype(np.float32)
        if actor64 is None:
            actions = rng.uniform(low, high, size=(active, len(low))).astype(np.float32)
        else:
            with torch.no_grad():
                noise = torch.randn((active, len(low)), generator=gen, dtype=torch.float64)
                actions = policy_actions(actor64, torch.as_tensor(obs), noise).numpy()
        for i in range(active):
            env, ep = envs[i], running[i]
            next_obs, rew, term, trunc, _ = env.step(actions[i])
            qpos, qvel = _sim_state(env)
            ep.actions.append(actions[i])
            ep.rewards.append(float(rew))
            ep.terminations.append(bool(term))
            ep.truncations.append(bool(trunc))
            ep.observations.append(next_obs)
            ep.qpos.append(qpos)
            ep.qvel.append(qvel)
            if term or trunc:
                finished.append(ep)
                reset_obs, _ = env.reset(seed=int(rng.integers(2**31)))
                qpos, qvel = _sim_state(env)
                running[i] = Episode([reset_obs], [], [], [], [], [qpos], [qvel])
        steps += active
        bar.update(active)
    for ep in running:
        if ep.actions:  # cut by the budget
            ep.truncations[-1] = True
            finished.append(ep)
    for env in envs:
        env.close()
    return finished


def float64_actor(actor: TanhGaussianActor) -> TanhGaussianActor:
    """A float64 copy of ``actor`` for ``policy_actions`` (float32 weights widen exactly)."""
    return copy.deepcopy(actor).to(torch.float64).eval()


def policy_actions(actor64: TanhGaussianActor, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Stochastic float32 actions ``[B, act]`` for float32 ``obs``, the same on every CPU.

    ``actor64`` is a ``float64_actor`` and ``noise`` a float64 standard normal ``[B, act]`` (drawn
    with ``torch.randn(..., dtype=torch.float64)``: torch's float32 randn has per-CPU code). The
    pre-tanh sample ``u = mu + std * noise`` is computed in float64 and the squashed action
    ``tanh(u)`` rounded to a multiple of ``ACTION_GRID`` before scaling (exact for the built-in
    envs' [-1, 1] boxes) and casting to float32. See ``ACTION_GRID`` for why.
    """
    h = actor64.trunk(obs.to(torch.float64))
    mu = actor64.mu(h)
    std = actor64.log_std(h).clamp(actor64.LOG_STD_MIN, actor64.LOG_STD_MAX).exp()
    squashed = torch.round(torch.tanh(mu + std * noise) / ACTION_GRID) * ACTION_GRID
    return (squashed * actor64.act_scale + actor64.act_bias).to(torch.float32)


def level_episodes(
    bundle: BehaviorBundle, level: str, num_transitions: int, seed: int, progress: Progress = None
) -> tuple[list[Episode], str]:
    """The episodes of one level and a description of the behaviour policy that produced them.

    Logs what it collects, and shows one bar over all of the level's steps (see ``Progress``).
    """
    total = _level_steps(bundle, level, num_transitions)
    log.info("collecting %d transitions in %s (level %s, seed %d)", total, bundle.env_id, level, seed)
    with _progress_bar(progress, total, f"collecting {bundle.env_id} {level}") as bar:
        return _level_episodes(bundle, level, num_transitions, seed, bar)


def _level_steps(bundle: BehaviorBundle, level: str, num_transitions: int) -> int:
    """How many transitions ``level`` collects: ``num_transitions``, except for medium-replay."""
    if level != "medium-replay" or bundle.medium_index is None:
        return num_transitions
    every = int(bundle.train_config.get("snapshot_every", 5000))
    warmup = int(bundle.train_config.get("start_steps", 0))
    return warmup + bundle.medium_index * every


def _level_episodes(
    bundle: BehaviorBundle, level: str, num_transitions: int, seed: int, bar: tqdm
) -> tuple[list[Episode], str]:
    env_id = bundle.env_id
    if level == "random":
        return collect(env_id, None, num_transitions, seed, bar), "uniform random actions"
    if level in ("medium", "medium-replay") and bundle.medium_index is None:
        raise ValueError(f"bundle for {env_id} has no medium snapshot; train longer with mbrl-train-behavior")
    if level in ("expert", "medium-expert") and bundle.expert_index is None:
        raise ValueError(
            f"bundle for {env_id} has no expert snapshot (none reached 90 % of the expert reference); "
            "train one with `mbrl-train-behavior --stop-fraction 0.9` and pass it with --bundle"
        )
    if level == "medium":
        snap = bundle.snapshots[bundle.medium_index]
        return collect(env_id, bundle.actor(bundle.medium_index), num_transitions, seed, bar), (
            f"SAC snapshot at step {snap.step} (eval return {snap.eval_return:.1f}), stochastic actions"
        )
    if level == "expert":
        snap = bundle.snapshots[bundle.expert_index]
        return collect(env_id, bundle.actor(bundle.expert_index), num_transitions, seed, bar), (
            f"SAC snapshot at step {snap.step} (eval return {snap.eval_return:.1f}), stochastic actions"
        )
    if level == "medium-expert":
        med, _ = _level_episodes(bundle, "medium", num_transitions // 2, seed, bar)
        exp, _ = _level_episodes(bundle, "expert", num_transitions - num_transitions // 2, seed + 1, bar)
        return med + exp, "medium and expert SAC snapshots, half each, stochastic actions"
    if level == "medium-replay":
        every = int(bundle.train_config.get("snapshot_every", 5000))
        warmup = int(bundle.train_config.get("start_steps", 0))
        episodes = collect(env_id, None, warmup, seed, bar) if warmup else []
        for k in range(bundle.medium_index):
            episodes += collect(env_id, bundle.actor(k), every, seed + 1 + k, bar)
        steps = bundle.snapshots[bundle.medium_index].step
        return episodes, f"replay of SAC training up to step {steps}: warm-up then snapshots every {every} steps"
    raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")


def write_minari(
    dataset_id: str,
    episodes: list[Episode],
    env_id: str,
    behavior: str,
    description: str,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write ``episodes`` as Minari dataset ``dataset_id`` under ``root`` (default: Minari's folder).

    The dataset is built in a temporary folder beside its destination and moved into place only
    when complete, so an interrupted run never leaves a half-written dataset.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    root = Path(root or os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")
    final = root / dataset_id
    log.info("writing Minari dataset %s (%d episodes) to %s", dataset_id, len(episodes), final)
    tmp_root = root / f".tmp-{uuid.uuid4().hex}"
    ref_min, ref_max = D4RL_REFERENCE_SCORES.get(env_family(env_id), (None, None))
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.asarray(ep.observations, dtype=np.float64),
            actions=np.asarray(ep.actions, dtype=np.float32),
            rewards=ep.rewards,
            terminations=ep.terminations,
            truncations=ep.truncations,
            infos={"qpos": np.asarray(ep.qpos), "qvel": np.asarray(ep.qvel)},
        )
        for i, ep in enumerate(episodes)
    ]
    try:
        with minari_root(tmp_root):
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_id,
                eval_env=env_id,
                algorithm_name=behavior,
                author="mbrl",
                author_email="n/a",
                code_permalink="mbrl.data.generate",
                ref_min_score=ref_min,
                ref_max_score=ref_max,
                description=description,
                data_format="hdf5",
            )
        _move_into_place(tmp_root, root, dataset_id)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


@contextmanager
def minari_root(path: str | os.PathLike | None):
    """Point Minari at ``path`` (its ``MINARI_DATASETS_PATH``) inside the block; ``None`` changes nothing."""
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _move_into_place(tmp_root: Path, root: Path, dataset_id: str) -> None:
    """Copy missing namespace metadata, then rename the finished dataset folder into ``root``."""
    parts = dataset_id.split("/")
    for depth in range(1, len(parts)):
        ns = Path(*parts[:depth])
        src = tmp_root / ns / "namespace_metadata.json"
        dst = root / ns / "namespace_metadata.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.exists() and not dst.exists():
            shutil.copyfile(src, dst)
    final = root / dataset_id
    if final.exists():
        trash = root / f".trash-{uuid.uuid4().hex}"
        os.replace(final, trash)
        os.replace(tmp_root / dataset_id, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp_root / dataset_id, final)

"""What several test modules share (tests import this module, never each other): small datasets built
inside tests (D4RL-layout HDF5 files, offline Minari datasets), the conformance fixtures' loader and
comparison with the samplers and recorders that replay a reference's update (the generators in
``benchmarks/conformance`` use the same), and smoke-scale training jobs."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.data.transitions import Transitions
from mbrl.envs import make_env

if TYPE_CHECKING:
    from mbrl.data.behavior import BehaviorBundle

# How an episode's final row is flagged in a D4RL file.
ENDINGS = ("terminal", "timeout", "both", "none")


def write_hdf5(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict[str, str] | None = None) -> Path:
    """Write ``arrays`` (keys may be nested, ``"infos/qpos"``) and file ``attrs`` to ``path``."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def d4rl_arrays(
    episodes: Sequence[tuple[int, str]],
    *,
    next_observations: bool = False,
    qpos: bool = False,
    obs_dim: int = 11,
    act_dim: int = 3,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """D4RL-layout arrays for ``episodes``, each ``(length, ending)`` with ending in ``ENDINGS``.

    Observations are random and distinct, so a wrong pairing of states is always visible.
    ``next_observations`` of an episode's last row is a fresh state (the true next state), never
    the next episode's first row. qpos/qvel are ``[N, 6]`` each.
    """
    rng = np.random.default_rng(seed)
    obs, nxt, terminals, timeouts = [], [], [], []
    for length, ending in episodes:
        states = rng.normal(size=(length + 1, obs_dim)).astype(np.float32)
        obs.append(states[:-1])
        nxt.append(states[1:])
        flags = np.zeros((2, length), dtype=bool)
        flags[0, -1] = ending in ("terminal", "both")
        flags[1, -1] = ending in ("timeout", "both")
        terminals.append(flags[0])
        timeouts.append(flags[1])
    n = sum(length for length, _ in episodes)
    arrays = {
        "observations": np.concatenate(obs),
        "actions": rng.uniform(-0.9, 0.9, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(1.0, 0.5, size=n).astype(np.float32),
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
    }
    if next_observations:
        arrays["next_observations"] = np.concatenate(nxt)
    if qpos:
        arrays["infos/qpos"] = rng.normal(size=(n, 6))
        arrays["infos/qvel"] = rng.normal(size=(n, 6))
    return arrays


def write_d4rl_hdf5(
    path: str | Path, episodes: Sequence[tuple[int, str]], *, attrs: dict[str, str] | None = None, **kwargs: Any
) -> dict[str, np.ndarray]:
    """Write a D4RL-layout file (see ``d4rl_arrays`` for ``kwargs``) and return the arrays written."""
    arrays = d4rl_arrays(episodes, **kwargs)
    write_hdf5(path, arrays, attrs)
    return arrays


def collect_minari_hopper(dataset_id: str, *, num_episodes: int = 3, max_episode_steps: int = 12, seed: int = 0):
    """Record ``num_episodes`` random-action ``Hopper-v5`` episodes with ``minari.DataCollector``.

    Infos hold ``qpos``/``qvel`` after reset and after every step, i.e. ``T + 1`` rows aligned
    with the observations. Needs ``MINARI_DATASETS_PATH`` pointing at a scratch folder.
    """
    import minari

    class StateCallback(minari.StepDataCallback):
        def __call__(self, env, **kwargs):
            step = super().__call__(env, **kwargs)
            data = env.unwrapped.data
            step["info"] = {"qpos": data.qpos.copy(), "qvel": data.qvel.copy()}
            return step

    env = minari.DataCollector(
        make_env("Hopper-v5", max_episode_steps=max_episode_steps), step_data_callback=StateCallback, record_infos=True
    )
    env.action_space.seed(seed)
    for episode in range(num_episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    dataset = env.create_dataset(dataset_id, **_quiet_metadata())
    env.close()
    return dataset


def minari_episode_buffers(
    lengths: Sequence[int],
    *,
    terminal_last: Sequence[bool],
    state_rows: str = "T+1",
    obs_dim: int = 11,
    act_dim: int = 3,
    seed: int = 0,
) -> list[Any]:
    """Synthetic Minari episode buffers: ``T + 1`` observations, a terminal or truncated last step.

    ``state_rows`` is ``"T+1"`` or ``"T"`` (rows of infos qpos/qvel) or ``"none"`` (no infos).
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rng = np.random.default_rng(seed)
    buffers = []
    for index, (steps, terminal) in enumerate(zip(lengths, terminal_last, strict=True)):
        flags = np.zeros((2, steps), dtype=bool)
        flags[0 if terminal else 1, -1] = True
        rows = {"T+1": steps + 1, "T": steps}.get(state_rows)
        infos = None if rows is None else {"qpos": rng.normal(size=(rows, 6)), "qvel": rng.normal(size=(rows, 6))}
        buffers.append(
            EpisodeBuffer(
                id=index,
                observations=rng.normal(size=(steps + 1, obs_dim)),
                actions=rng.uniform(-0.9, 0.9, size=(steps, act_dim)).astype(np.float32),
                rewards=list(rng.normal(size=steps)),
                terminations=list(flags[0]),
                truncations=list(flags[1]),
                infos=infos,
            )
        )
    return buffers


def minari_from_buffers(dataset_id: str, buffers: list[Any], **kwargs: Any):
    """``minari.create_dataset_from_buffers`` with full metadata (no warnings); ``kwargs`` override."""
    import minari

    return minari.create_dataset_from_buffers(
        dataset_id, buffers, **{"env": "Hopper-v5", **_quiet_metadata(), **kwargs}
    )


def _quiet_metadata() -> dict[str, Any]:
    """Metadata Minari warns about when missing."""
    return {
        "algorithm_name": "uniform-random",
        "author": "mbrl tests",
        "author_email": "tests@example.com",
        "code_permalink": "https://example.com/mbrl",
        "description": "tiny test dataset",
        "eval_env": "Hopper-v5",
    }


# -- behaviour bundles ---------------------------------------------------------------------------
ENV = "Hopper-v5"


def tiny_bundle(num_snapshots: int = 3, every: int = 40, warmup: int = 25) -> BehaviorBundle:
    """A Hopper behaviour bundle of ``num_snapshots`` random ``(16,)`` actors, the last one "medium"."""
    import torch

    from mbrl.data.behavior import BehaviorBundle, Snapshot
    from mbrl.nn import TanhGaussianActor

    env = make_env(ENV)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    snaps = []
    for k in range(num_snapshots):
        torch.manual_seed(k)
        actor = TanhGaussianActor(obs_dim, act_dim, (16,), (-1.0,) * act_dim, (1.0,) * act_dim)
        snaps.append(Snapshot(step=warmup + (k + 1) * every, eval_return=float(k), actor=actor.state_dict()))
    return BehaviorBundle(
        ENV,
        obs_dim,
        act_dim,
        (-1.0,) * act_dim,
        (1.0,) * act_dim,
        (16,),
        snaps,
        medium_index=num_snapshots - 1,
        expert_index=None,
        train_config={"snapshot_every": every, "start_steps": warmup},
    )


CONFORMANCE = Path(__file__).parent / "golden" / "conformance"


def load_conformance(name: str) -> dict[str, Any]:
    """A reference implementation's recorded outputs (see ``benchmarks/conformance``)."""
    return torch.load(CONFORMANCE / f"{name}.pt", weights_only=True)


def assert_rel_close(ours: Any, reference: Any, what: str, rtol: float = 1e-5, atol: float = 1e-10) -> None:
    """Assert ``ours`` equals ``reference`` to relative ``rtol`` (float64), naming ``what`` on failure."""
    ours_t = torch.as_tensor(ours, dtype=torch.float64)
    ref_t = torch.as_tensor(reference, dtype=torch.float64)
    assert ours_t.shape == ref_t.shape, f"{what}: shape {tuple(ours_t.shape)} != reference {tuple(ref_t.shape)}"
    err = ((ours_t - ref_t).abs() / ref_t.abs().clamp_min(atol / rtol)).max().item() if ref_t.numel() else 0.0
    assert err <= rtol, f"{what}: largest relative error {err:.3g} > {rtol:g}"


# -- replaying a reference's update ------------------------------------------------------------------
# The samplers and recorders below run on both sides: the generators in ``benchmarks/conformance`` use them
# while the reference updates, the conformance tests while ours does.
Params = dict[str, torch.Tensor]


@contextlib.contextmanager
def feeding(owner: Any, attr: str, values: list[torch.Tensor], inplace: bool = False) -> Iterator[None]:
    """Replace ``owner.attr`` (a sampler) by one that returns ``values`` in order, then restore it.

    Each call's shape is checked against the next value: the shape of a tensor argument
    (``randn_like(t)``, ``t.uniform_()``; the value takes that tensor's dtype and device), a ``size``
    argument, ``randint``'s last argument, or the sizes themselves (``rand(2, 3)``, ``rand((2, 3))``,
    ``_standard_normal(shape, ...)``). ``inplace``: the sampler is an in-place tensor method; the
    value is copied into the tensor it is called on. Raises if values run out or are left over.
    """
    original = getattr(owner, attr)
    queue = list(values)

    def shape_of(args: tuple, kwargs: dict) -> tuple[int, ...]:
        first = args[0] if args else None
        if isinstance(first, torch.Tensor):
            return tuple(first.shape)
        if "size" in kwargs:
            return tuple(kwargs["size"])
        if attr == "randint":  # randint(high, size) / randint(low, high, size)
            return tuple(args[-1])
        return tuple(args) if isinstance(first, int) else tuple(first)

    def fake(*args: Any, **kwargs: Any) -> torch.Tensor:
        shape = shape_of(args, kwargs)
        if not queue:
            raise AssertionError(f"{attr}{shape}: no recorded draw left")
        value = queue.pop(0)
        if shape != tuple(value.shape):
            raise AssertionError(f"{attr}: asked for {shape}, next recorded draw is {tuple(value.shape)}")
        if inplace:
            return args[0].copy_(value)
        if args and isinstance(args[0], torch.Tensor):
            return value.to(args[0]).clone()
        return value.clone()

    setattr(owner, attr, fake)
    try:
        yield
        if queue:
            raise AssertionError(f"{attr}: {len(queue)} recorded draw(s) not consumed")
    finally:
        setattr(owner, attr, original)


def record_steps(optimizer: torch.optim.Optimizer, named: dict[str, torch.nn.Parameter], into: dict) -> None:
    """Wrap ``optimizer.step`` so it first stores the gradients of ``named`` parameters in ``into``."""
    original = optimizer.step

    def step(*args: Any, **kwargs: Any) -> Any:
        for name, p in named.items():
            if p.grad is not None:
                into[name] = p.grad.detach().clone()
        return original(*args, **kwargs)

    optimizer.step = step


def record_calls(module: torch.nn.Module) -> list[tuple[tuple, Any]]:
    """A list that receives ``(inputs, output)`` of every forward call of ``module`` (detached clones)."""
    calls: list[tuple[tuple, Any]] = []

    def clone(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.detach().clone()
        if isinstance(x, (tuple, list)):
            return type(x)(clone(v) for v in x)
        return x

    module.register_forward_hook(lambda m, inputs, output: calls.append((clone(inputs), clone(output))))
    return calls


def reference_transitions(
    obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor
) -> Transitions:
    """A reference's batch as ours: ``rew`` and the 0/1 ``terminal`` of shape ``[n]``, nothing truncated."""
    return Transitions(
        obs=obs,
        act=act,
        rew=rew,
        next_obs=next_obs,
        terminated=terminal > 0.5,
        truncated=torch.zeros(len(rew), dtype=torch.bool),
    )


def random_transitions(n: int, obs_dim: int, act_dim: int, seed: int, terminal_rate: float) -> Transitions:
    """``n`` random transitions from generator ``seed``: Gaussian states and rewards, actions ``U(-1, 1)``, each
    terminal with probability ``terminal_rate``, none truncated."""
    g = torch.Generator().manual_seed(seed)
    return Transitions(
        obs=torch.randn(n, obs_dim, generator=g),
        act=torch.rand(n, act_dim, generator=g) * 2 - 1,
        rew=torch.randn(n, generator=g),
        next_obs=torch.randn(n, obs_dim, generator=g),
        terminated=torch.rand(n, generator=g) < terminal_rate,
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def unpack(packed: dict[str, Any]) -> Params:
    """Inverse of the generator's ``pack``: ``{name: tensor}`` from one flat vector."""
    out, start = {}, 0
    for name, shape in zip(packed["names"], packed["shapes"], strict=True):
        n = math.prod(shape)
        out[name] = packed["flat"][start : start + n].reshape(shape)
        start += n
    return out


def prefixed(params: Params, prefix: str) -> Params:
    """The entries of ``params`` under ``prefix.`` with the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in params.items() if k.startswith(prefix + ".")}


def ensemble(members: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> Params:
    """Our ``VectorizedCritic`` parameters from per-member ``nn.Linear`` layers: weights ``[E, in, out]``."""
    out = {}
    for layer in range(len(members[0])):
        out[f"net.{2 * layer}.weight"] = torch.stack([m[layer][0].T for m in members])
        out[f"net.{2 * layer}.bias"] = torch.stack([m[layer][1].unsqueeze(0) for m in members])
    return out


def load(module: torch.nn.Module, params: Params) -> None:
    names = {name for name, _ in module.named_parameters()}
    assert names == set(params), f"parameters {sorted(names ^ set(params))} not mapped"
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(params[name])


def compare(ours: Params, reference: Params, what: str, scale: float = 1.0, floor: float = 0.0) -> None:
    """Each tensor at relative 1e-5; ``floor > 0`` judges entries smaller than ``floor`` times the tensor's
    largest entry relative to that bound instead (for differences that are a relative rounding of the whole
    computation, e.g. a float32 scalar in the reference, which elementwise is large on near-zero entries)."""
    assert set(ours) == set(reference), f"{what}: {sorted(set(ours) ^ set(reference))}"
    for name in reference:
        ref = scale * reference[name]
        atol = max(1e-10, 1e-5 * floor * float(ref.abs().max()))
        assert_rel_close(ours[name], ref, f"{what} {name}", atol=atol)


def params_of(module: torch.nn.Module) -> Params:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def grads_of(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> Params:
    """A dict that receives the gradients ``optimizer`` steps ``module``'s parameters with."""
    into: Params = {}
    record_steps(optimizer, dict(module.named_parameters()), into)
    return into


# -- training jobs at smoke scale ------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
# The tiny Hopper dataset conftest's ``env_vars`` fixture writes (MINARI_DATASETS_PATH points at it).
TINY_DATASET = "test/hopper/tiny-v0"
SMOKE = ["scale=smoke", f"dataset={TINY_DATASET}", "logger.progress=false"]
# A dynamics reward learned in a second (scale presets cannot size it: filter=none has no such keys).
MOREC_SMOKE = [f"filter.reward.{k}={v}" for k, v in {"rounds": 40, "snapshot_every": 10, "batch_size": 32}.items()]
# RAMBO in runs of the training job: an adversarial phase every 10 updates, a short warm-up.
RAMBO_TINY = [f"agent.{k}={v}" for k, v in dict(adv_every=10, adv_steps=4, adv_batch_size=32, bc_steps=20).items()]


def run_cli(args: list[str], env_vars: dict[str, str], **kw: Any) -> subprocess.CompletedProcess:
    """``python -m mbrl.train ARGS`` from the repository root with ``env_vars`` added; output captured."""
    env = {**os.environ, **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "mbrl.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def multirun(launcher: list[str], sweep_dir: Path, overrides: list[str], env_vars: dict[str, str]) -> list[Path]:
    """A smoke-scale ``-m`` sweep of ``overrides`` on the Hydra ``launcher`` into ``sweep_dir``; it must succeed.
    Returns the folders of the runs that finished, sorted."""
    out = run_cli(["-m", *launcher, f"hydra.sweep.dir={sweep_dir}", *SMOKE, *overrides], env_vars)
    assert out.returncode == 0, out.stderr[-3000:]
    return sorted(p.parent for p in Path(sweep_dir).glob("*/final.json"))


def start_training(
    args: list[str], run_dir: Path, env_vars: dict[str, str], until: str, **popen: Any
) -> subprocess.Popen:
    """Start a training job in ``run_dir`` and return once it has written ``run_dir / until``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbrl.train", *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env={**os.environ, **env_vars},
        stdout=subprocess.DEVNULL,
        **popen,
    )
    deadline = time.time() + 120
    while not (run_dir / until).exists() and time.time() < deadline:
        time.sleep(0.05)
    return proc


def kill_at_first_checkpoint(args: list[str], run_dir: Path, env_vars: dict[str, str]) -> int:
    """Start a training job in ``run_dir``, SIGKILL it once its first checkpoint exists; returns that step."""
    from mbrl.checkpoint import load

    proc = start_training(args, run_dir, env_vars, "checkpoint.pt", stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return load(run_dir / "checkpoint.pt")["step"]


def resume_killed_run(args: list[str], run_dir: Path, env_vars: dict[str, str], total_updates: int) -> None:
    """Kill a run of ``args`` in ``run_dir`` at its first checkpoint, then resume it: the resumed run finishes
    and says the update it resumed from."""
    interrupted_at = kill_at_first_checkpoint(args, run_dir, env_vars)
    assert interrupted_at < total_updates, "the run finished before it could be killed; make it longer"
    out = run_cli([*args, f"hydra.run.dir={run_dir}", "resume=true"], env_vars)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"from update {interrupted_at}" in out.stdout


class LargestErrors:
    """``assert_rel_close`` (see ``close``) that also keeps the largest relative error seen per fixture,
    printed by ``report`` (shown with ``pytest -s``)."""

    def __init__(self, prefix: str, where: bool = True) -> None:
        self.prefix, self.where = prefix, where
        self.largest: dict[str, tuple[float, str]] = {}

    def close(self, ours: Any, ref: Any, what: str, fixture: str) -> None:
        """``ours`` (reshaped to ``ref``'s shape when the sizes agree) against ``ref`` at relative 1e-5."""
        import torch

        ours_t, ref_t = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
        ours_t = ours_t.reshape(ref_t.shape) if ours_t.numel() == ref_t.numel() else ours_t
        assert_rel_close(ours_t, ref_t, f"{fixture}: {what}")
        if ref_t.numel():
            err = ((ours_t - ref_t).abs() / ref_t.abs().clamp_min(1e-10 / 1e-5)).max().item()
            self.largest[fixture] = max(self.largest.get(fixture, (0.0, "")), (err, what))

    def report(self) -> None:
        for name, (err, what) in sorted(self.largest.items()):
            print(f"{self.prefix}{name}: largest relative error {err:.2e}" + (f" ({what})" if self.where else ""))


@contextlib.contextmanager
def fed(**queues: list[Any]) -> Iterator[None]:
    """Within the block ``torch.<name>(...)`` returns the given tensors in order (:func:`feeding` on
    each name), each checked against the shape asked for; every tensor must be used."""
    with contextlib.ExitStack() as stack:
        for name, tensors in queues.items():
            stack.enter_context(feeding(torch, name, tensors))
        yield


def record_grads(*optimisers: Any) -> dict[int, Any]:
    """Copy each parameter's gradient when its optimiser steps (keyed by ``id`` of the parameter)."""
    seen: dict[int, Any] = {}
    for opt in optimisers:
        step = opt.step

        def recording_step(*args: Any, _opt: Any = opt, _step: Any = step, **kwargs: Any) -> Any:
            for group in _opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        seen[id(p)] = p.grad.detach().clone()
            return _step(*args, **kwargs)

        opt.step = recording_step
    return seen


def offlinerlkit_log_density(self: Any, u: Any, mu: Any, log_std: Any) -> Any:
    """OfflineRL-Kit's ``TanhNormalWrapper.log_prob`` (``offlinerlkit/modules/dist_module.py:22-29``): the tanh
    correction is ``log(scale * (1 - tanh(u)^2) + 1e-6)``, where ours is exact. Patched into our actor
    (``TanhGaussianActor._log_density``) to compare the rest of an update."""
    import math

    import torch

    noise = (u - mu) / log_std.exp()
    log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return log_prob - torch.log(self.act_scale * (1 - torch.tanh(u).pow(2)) + 1e-6).sum(-1)


def sac_step_in_reference_order(
    agent: Any,
    batch: Transitions,
    target: torch.Tensor,
    actor_noise: torch.Tensor | None = None,
    critic_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """OfflineRL-Kit's SAC step through our loss functions: critics on ``target``, then the actor on the stepped
    critics, then the temperature, then Polyak averaging (``sac.py:92-128``, ``mobile.py:153-197``).
    ``critic_scale`` multiplies our critic loss before its backward pass (MOBILE averages over the critics
    where we sum). ``actor_noise`` is the actor's one standard normal draw; without it the actor draws from
    whatever ``torch.randn_like`` is at the time."""
    alpha = agent.log_alpha.exp().detach()
    critic_loss, q, _ = agent.critic_objective(batch.obs, batch.act, target)
    agent.critic_opt.zero_grad()
    (critic_scale * critic_loss).backward()
    agent.critic_opt.step()
    with contextlib.nullcontext() if actor_noise is None else fed(randn_like=[actor_noise]):
        q_pi, log_prob = agent.actor_objective(batch.obs)
    actor_loss = (alpha * log_prob - q_pi).mean()  # the alpha before its step: the temperature steps last
    agent.actor_opt.zero_grad()
    actor_loss.backward()
    agent.actor_opt.step()
    alpha_loss = -(agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()
    agent.alpha_opt.zero_grad()
    alpha_loss.backward()
    agent.alpha_opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(agent.target_critic.parameters()), list(agent.critic.parameters()), agent.cfg.tau)
    return {"critic_loss": critic_loss.detach(), "q": q.detach(), "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach()}  # fmt: skip


# The cache tests' model and data: a 2-member ensemble whose 2-epoch fit takes a fraction of a second.
TINY_ENSEMBLE = EnsembleConfig(
    ensemble_size=2, num_elites=1, hidden_sizes=(8,), weight_decay=(1e-4, 1e-4), batch_size=32, max_epochs=2
)
CACHE_HASH = "tiny-dataset"  # stands for a dataset's content hash


# A small ensemble that fits in seconds (tests of the fit itself, and RAMBO's model).
SMALL_ENSEMBLE = EnsembleConfig(
    ensemble_size=5,
    num_elites=3,
    hidden_sizes=(32, 32),
    weight_decay=(2.5e-5, 5e-5, 1e-4),
    lr=1e-2,
    batch_size=100,
    max_epochs=25,
)


def tiny_fitted_ensemble(data: Transitions) -> GaussianEnsemble:
    """A 4-member ensemble fitted for 3 epochs on ``data`` from a fixed seed: a real learned model for tests of
    what uses one (rollouts, host syncs, graphs), not of the fit."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL_ENSEMBLE, ensemble_size=4, num_elites=3, batch_size=64, max_epochs=3)
    model = GaussianEnsemble(data.obs_dim, data.act_dim, cfg)
    model.fit(data)
    return model

"""OfflineRL-Kit's model-free agents on fixed inputs: SAC, EDAC (SAC-N), CQL, IQL, TD3+BC, BC.

    python -m benchmarks.conformance.offlinerlkit_model_free --ref /work/refs/OfflineRL-Kit

Builds the reference's policies (``offlinerlkit/policy/model_free/{sac,edac,cql,iql,td3bc,bc}.py``) on
its own modules (``ActorProb`` + ``TanhDiagGaussian``/``DiagGaussian``, ``Critic``, ``EnsembleCritic``,
``Actor``, ``MLP``) with the settings of ``run_example/run_{edac,cql,iql,td3bc,bc}.py`` at small sizes, in
float64, and runs ``learn`` once (TD3+BC: twice, to pass one delayed actor step). Each fixture
``offlinerlkit_mf_<agent>.pt`` holds:

- ``init`` / ``after``: every parameter (the policy's ``state_dict`` names, plus ``log_alpha`` and
  ``cql_log_alpha``) before and after the update;
- ``batch``: the inputs, rewards and terminals as ``[B]``;
- ``grads/<optimiser>``: each parameter's gradient at the moment its optimiser stepped (the
  reference's later backward passes leave extra gradients in some tensors, e.g. CQL's actor);
- ``noise``: every reparameterised policy sample in call order, as the Gaussian mean it was drawn
  around (``mu``) and its standard normal draw (``eps``), so a test can hand the same draw to our
  actor; TD3+BC's target-smoothing draws; CQL's uniform actions;
- ``locals``: the tensors ``learn`` held when it returned (targets, every loss term, CQL's proposal
  values, IQL's advantage weights, ...), read from its frame, so they are the reference's own values.

The reference casts every network input to float32 (``torch.as_tensor(..., dtype=torch.float32)``);
the generator points those modules at a ``torch`` whose ``float32`` is float64, so the whole update
runs in float64.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from benchmarks.conformance.common import Float64Torch, adams

CHECKOUT = "OfflineRL-Kit"

OBS_DIM, ACT_DIM, BATCH = 4, 3, 8
HIDDEN2 = (8, 8)
HIDDEN3 = (8, 8, 8)
EDAC_CRITICS = 4
CQL_REPEATS = 3


def _batch(seed: int) -> dict[str, torch.Tensor]:
    """The reference's batch layout: rewards and terminals ``[B, 1]``."""
    g = torch.Generator().manual_seed(seed)
    terminals = torch.zeros(BATCH, 1)
    terminals[[2, 7]] = 1.0
    return {
        "observations": torch.randn(BATCH, OBS_DIM, generator=g),
        "actions": torch.rand(BATCH, ACT_DIM, generator=g) * 1.8 - 0.9,
        "next_observations": torch.randn(BATCH, OBS_DIM, generator=g),
        "rewards": torch.randn(BATCH, 1, generator=g),
        "terminals": terminals,
    }


def _ours_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        "obs": batch["observations"],
        "act": batch["actions"],
        "next_obs": batch["next_observations"],
        "rew": batch["rewards"].squeeze(-1),
        "terminated": batch["terminals"].squeeze(-1),
    }


@contextmanager
def _learn_locals(fn: Callable) -> Iterator[list[dict[str, Any]]]:
    """Collect the local variables of every return from ``fn`` (a plain function) while inside."""
    code, seen = fn.__code__, []

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            seen.append(dict(frame.f_locals))

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


@contextmanager
def _recorded_noise() -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record every reparameterised sample of the reference's Gaussians: its mean and standard normal draw."""
    from torch.distributions import normal

    original = normal._standard_normal
    record: dict[str, list[torch.Tensor]] = {"mu": [], "eps": []}
    pending: list[torch.Tensor] = []

    def standard_normal(shape, dtype, device):
        eps = original(shape, dtype=dtype, device=device)
        pending.append(eps)
        return eps

    rsample = normal.Normal.rsample

    def recording_rsample(self, sample_shape=torch.Size()):  # noqa: B008 (torch's own default)
        out = rsample(self, sample_shape)
        record["mu"].append(self.loc.detach().clone())
        record["eps"].append(pending.pop().clone())
        return out

    normal._standard_normal = standard_normal
    normal.Normal.rsample = recording_rsample
    try:
        yield record
    finally:
        normal._standard_normal = original
        normal.Normal.rsample = rsample


def _record_steps(optimisers: dict[str, torch.optim.Optimizer], names: dict[int, str]) -> dict[str, dict]:
    """Wrap each optimiser's ``step`` to copy its parameters' gradients when it steps (the last step wins)."""
    grads: dict[str, dict] = {}
    for label, opt in optimisers.items():
        step = opt.step

        def recording_step(*args, _label=label, _opt=opt, _step=step, **kwargs):
            grads[_label] = {
                names[id(p)]: p.grad.detach().clone()
                for group in _opt.param_groups
                for p in group["params"]
                if p.grad is not None
            }
            return _step(*args, **kwargs)

        opt.step = recording_step
    return grads


def _params(policy: torch.nn.Module, extra: dict[str, torch.Tensor], targets: bool = True) -> dict[str, torch.Tensor]:
    """Every parameter and extra tensor by name; EnsembleLinear's never-trained ``saved_*`` copies left out,
    and the target networks (``*_old``) unless ``targets`` (before the update they copy the online ones)."""
    out = {
        k: v.detach().clone()
        for k, v in policy.state_dict().items()
        if "saved_" not in k and (targets or "_old." not in k)
    }
    out.update({k: v.detach().clone() for k, v in extra.items()})
    return out


def _names(policy: torch.nn.Module, extra: dict[str, torch.Tensor]) -> dict[int, str]:
    names = {id(p): n for n, p in policy.named_parameters()}
    names.update({id(v): k for k, v in extra.items()})
    return names


def _pick(frame: dict[str, Any], *keys: str) -> dict[str, Any]:
    out = {}
    for key in keys:
        value = frame[key]
        out[key] = value.detach().clone() if isinstance(value, torch.Tensor) else float(value)
    return out


def _tanh_actor(hidden: tuple[int, ...]):
    """``run_edac.py``/``run_cql.py``'s actor: MLP backbone, state-dependent std, tanh squashing."""
    from offlinerlkit.modules import ActorProb, TanhDiagGaussian
    from offlinerlkit.nets import MLP

    backbone = MLP(input_dim=OBS_DIM, hidden_dims=hidden)
    dist = TanhDiagGaussian(
        latent_dim=backbone.output_dim, output_dim=ACT_DIM, unbounded=True, conditioned_sigma=True, max_mu=1.0
    )
    return ActorProb(backbone, dist)


def _critic(hidden: tuple[int, ...], obs_only: bool = False):
    from offlinerlkit.modules import Critic
    from offlinerlkit.nets import MLP

    return Critic(MLP(input_dim=OBS_DIM + (0 if obs_only else ACT_DIM), hidden_dims=hidden))


def _auto_alpha(init_alpha: float, lr: float) -> tuple[float, torch.Tensor, torch.optim.Optimizer]:
    """``run_edac.py``'s automatic temperature: target entropy ``-|A|``, ``log_alpha`` of shape ``[1]``."""
    log_alpha = torch.full((1,), math.log(init_alpha), requires_grad=True)
    return -float(ACT_DIM), log_alpha, torch.optim.Adam([log_alpha], lr=lr)


def sac(commit: str) -> dict[str, Any]:
    """``sac.py`` with two critics and automatic temperature from ``alpha = 2`` (above its clamp at 1)."""
    from offlinerlkit.policy import SACPolicy

    torch.manual_seed(1)
    actor, critic1, critic2 = _tanh_actor(HIDDEN2), _critic(HIDDEN2), _critic(HIDDEN2)
    alpha = _auto_alpha(2.0, 1e-4)
    policy = SACPolicy(
        actor,
        critic1,
        critic2,
        *adams((actor, 1e-4), (critic1, 3e-4), (critic2, 3e-4)),
        tau=0.005,
        gamma=0.99,
        alpha=alpha,
    )
    extra = {"log_alpha": alpha[1]}
    opts = {"actor": policy.actor_optim, "critic1": policy.critic1_optim, "critic2": policy.critic2_optim}
    return _run(
        policy,
        extra,
        opts | {"alpha": policy.alpha_optim},
        _batch(11),
        config={"actor_lr": 1e-4, "critic_lr": 3e-4, "alpha_lr": 1e-4, "init_alpha": 2.0, "gamma": 0.99},
        keep=("target_q", "next_q", "q1", "q2", "critic1_loss", "critic2_loss", "actor_loss", "alpha_loss"),
        after_extra=lambda: {"alpha_used_next": policy._alpha},
    )


def edac(commit: str) -> dict[str, Any]:
    """``edac.py`` with ``run_edac.py``'s settings (entropy in the target, eta 1), 4 critics of 3 layers."""
    from offlinerlkit.modules import EnsembleCritic
    from offlinerlkit.policy import EDACPolicy

    torch.manual_seed(2)
    actor = _tanh_actor(HIDDEN3)
    critics = EnsembleCritic(OBS_DIM, ACT_DIM, HIDDEN3, num_ensemble=EDAC_CRITICS)
    # run_edac.py's initialisation: hidden biases 0.1, output layer U(+-3e-3).
    for layer in critics.model[::2]:
        torch.nn.init.constant_(layer.bias, 0.1)
    torch.nn.init.uniform_(critics.model[-1].weight, -3e-3, 3e-3)
    torch.nn.init.uniform_(critics.model[-1].bias, -3e-3, 3e-3)
    alpha = _auto_alpha(1.0, 1e-4)
    policy = EDACPolicy(
        actor,
        critics,
        *adams((actor, 1e-4), (critics, 3e-4)),
        tau=0.005,
        gamma=0.99,
        alpha=alpha,
        max_q_backup=False,
        deterministic_backup=False,
        eta=1.0,
    )
    extra = {"log_alpha": alpha[1]}
    opts = {"actor": policy.actor_optim, "critics": policy.critics_optim, "alpha": policy.alpha_optim}
    return _run(
        policy,
        extra,
        opts,
        _batch(12),
        config={
            "actor_lr": 1e-4,
            "critic_lr": 3e-4,
            "alpha_lr": 1e-4,
            "init_alpha": 1.0,
            "gamma": 0.99,
            "eta": 1.0,
            "num_critics": EDAC_CRITICS,
        },
        keep=("target_q", "next_q", "log_probs", "qs", "critics_loss", "grad_loss", "actor_loss", "alpha_loss"),
        after_extra=lambda: {"alpha_used_next": policy._alpha},
    )


def cql(commit: str, with_lagrange: bool) -> dict[str, Any]:
    """``cql.py`` with ``run_cql.py``'s settings (weight 5, temperature 1, deterministic backup); ``with_lagrange``
    also runs the multiplier (threshold 10, lr 3e-4) on the same networks."""
    from offlinerlkit.policy import CQLPolicy

    torch.manual_seed(3)
    actor, critic1, critic2 = _tanh_actor(HIDDEN2), _critic(HIDDEN2), _critic(HIDDEN2)
    alpha = _auto_alpha(1.0, 1e-4)
    space = types.SimpleNamespace(low=-torch.ones(ACT_DIM).numpy(), high=torch.ones(ACT_DIM).numpy())
    policy = CQLPolicy(
        actor,
        critic1,
        critic2,
        *adams((actor, 1e-4), (critic1, 3e-4), (critic2, 3e-4)),
        action_space=space,
        tau=0.005,
        gamma=0.99,
        alpha=alpha,
        cql_weight=5.0,
        temperature=1.0,
        max_q_backup=False,
        deterministic_backup=True,
        with_lagrange=with_lagrange,
        lagrange_threshold=10.0,
        cql_alpha_lr=3e-4,
        num_repeart_actions=CQL_REPEATS,
    )
    extra = {"log_alpha": alpha[1], "cql_log_alpha": policy.cql_log_alpha}
    opts = {
        "actor": policy.actor_optim,
        "critic1": policy.critic1_optim,
        "critic2": policy.critic2_optim,
        "alpha": policy.alpha_optim,
        "cql_alpha": policy.cql_alpha_optim,
    }
    keep = [
        "target_q",
        "q1",
        "q2",
        "critic1_loss",
        "critic2_loss",
        "conservative_loss1",
        "conservative_loss2",
        "random_actions",
        "obs_pi_value1",
        "obs_pi_value2",
        "next_obs_pi_value1",
        "next_obs_pi_value2",
        "random_value1",
        "random_value2",
        "cat_q1",
        "cat_q2",
        "actor_loss",
        "alpha_loss",
    ]
    if with_lagrange:
        keep += ["cql_alpha", "cql_alpha_loss"]
    return _run(
        policy,
        extra,
        opts,
        _batch(13),
        config={
            "actor_lr": 1e-4,
            "critic_lr": 3e-4,
            "alpha_lr": 1e-4,
            "init_alpha": 1.0,
            "gamma": 0.99,
            "cql_weight": 5.0,
            "temperature": 1.0,
            "num_samples": CQL_REPEATS,
            "with_lagrange": float(with_lagrange),
            "target_action_gap": 10.0,
            "cql_alpha_lr": 3e-4,
        },
        keep=tuple(keep),
    )


def iql(commit: str) -> dict[str, Any]:
    """``iql.py`` with ``run_iql.py``'s networks and settings (expectile 0.7, temperature 3; orthogonal init);
    its actor is ``DiagGaussian``: a tanh mean and a state-independent std, no squashing of the samples."""
    from offlinerlkit.modules import ActorProb, DiagGaussian
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import IQLPolicy

    torch.manual_seed(4)
    backbone = MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN2)
    dist = DiagGaussian(
        latent_dim=backbone.output_dim, output_dim=ACT_DIM, unbounded=False, conditioned_sigma=False, max_mu=1.0
    )
    actor = ActorProb(backbone, dist)
    q1, q2, v = _critic(HIDDEN2), _critic(HIDDEN2), _critic(HIDDEN2, obs_only=True)
    for m in [*actor.modules(), *q1.modules(), *q2.modules(), *v.modules()]:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
            torch.nn.init.zeros_(m.bias)
    # A non-zero log-std, so that the std enters the recorded gradients with a value other than 1.
    with torch.no_grad():
        dist.sigma_param.copy_(torch.linspace(-0.6, 0.3, ACT_DIM).unsqueeze(-1))
    policy = IQLPolicy(
        actor,
        q1,
        q2,
        v,
        *adams((actor, 3e-4), (q1, 3e-4), (q2, 3e-4), (v, 3e-4)),
        action_space=None,
        tau=0.005,
        gamma=0.99,
        expectile=0.7,
        temperature=3.0,
    )
    opts = {
        "actor": policy.actor_optim,
        "q1": policy.critic_q1_optim,
        "q2": policy.critic_q2_optim,
        "v": policy.critic_v_optim,
    }
    return _run(
        policy,
        {},
        opts,
        _batch(14),
        config={"lr": 3e-4, "gamma": 0.99, "expectile": 0.7, "beta": 3.0},
        keep=(
            "critic_v_loss",
            "target_q",
            "next_v",
            "critic_q1_loss",
            "critic_q2_loss",
            "q",
            "v",
            "exp_a",
            "log_probs",
            "actor_loss",
        ),
    )


def iql_rewards(checkout: str) -> dict[str, Any]:
    """``run_iql.py``'s ``normalize_rewards`` on a small dataset in ``d4rl.qlearning_dataset``'s layout: five
    trajectories, split by terminals and by jumps (a row whose next state is not the next row's state), in
    float64 so the reference's arithmetic is exact to the tolerance. The function is read from the script's
    source, which imports D4RL and gym at its top."""
    import ast
    from pathlib import Path

    import numpy as np

    source = (Path(checkout) / "run_example" / "run_iql.py").read_text()
    (node,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "normalize_rewards"]
    namespace: dict[str, Any] = {"np": np}
    exec(compile(ast.Module([node], type_ignores=[]), "run_iql.py", "exec"), namespace)

    rng = np.random.default_rng(3)
    lengths, terminal = [4, 2, 5, 3, 1], [True, False, True, False, False]
    observations, next_observations, terminals = [], [], []
    for length, ends_in_terminal in zip(lengths, terminal, strict=True):
        states = rng.standard_normal((length + 1, OBS_DIM))
        observations.append(states[:-1])
        next_observations.append(states[1:])
        terminals.append(np.array([0.0] * (length - 1) + [float(ends_in_terminal)]))
    n = sum(lengths)
    dataset = {
        "observations": np.concatenate(observations),
        "actions": rng.uniform(-0.9, 0.9, (n, ACT_DIM)),
        "next_observations": np.concatenate(next_observations),
        "rewards": rng.standard_normal(n) * 2.0 + 1.0,
        "terminals": np.concatenate(terminals),
    }
    before = {k: torch.from_numpy(v.copy()) for k, v in dataset.items()}
    after = namespace["normalize_rewards"](dataset)["rewards"]
    return {"dataset": before, "rewards": torch.from_numpy(after)}


def td3bc(commit: str) -> dict[str, Any]:
    """``td3bc.py`` with ``run_td3bc.py``'s settings (alpha 2.5, noise 0.2 clipped at 0.5, delay 2), two
    ``learn`` calls on two batches: the reference's actor steps on the first (``_cnt`` 0), not on the second."""
    from offlinerlkit.modules import Actor
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import TD3BCPolicy

    torch.manual_seed(5)
    actor = Actor(MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN2), ACT_DIM, max_action=1.0)
    critic1, critic2 = _critic(HIDDEN2), _critic(HIDDEN2)
    policy = TD3BCPolicy(
        actor,
        critic1,
        critic2,
        *adams((actor, 3e-4), (critic1, 3e-4), (critic2, 3e-4)),
        tau=0.005,
        gamma=0.99,
        max_action=1.0,
        policy_noise=0.2,
        noise_clip=0.5,
        update_actor_freq=2,
        alpha=2.5,
    )
    opts = {"actor": policy.actor_optim, "critic1": policy.critic1_optim, "critic2": policy.critic2_optim}
    # Large smoothing draws on the first batch, so that both the clip at 0.5 and the action box act.
    draws = [torch.randn(BATCH, ACT_DIM, generator=torch.Generator().manual_seed(s)) * 2.5 for s in (15, 16)]
    randn_like = torch.randn_like
    queue = list(draws)
    torch.randn_like = lambda t, **kw: queue.pop(0).to(t)
    try:
        steps = []
        for seed in (15, 16):
            steps.append(
                _run(
                    policy,
                    {},
                    opts,
                    _batch(seed),
                    config={"lr": 3e-4, "gamma": 0.99, "alpha": 2.5, "policy_noise": 0.2, "noise_clip": 0.5},
                    keep=("noise", "next_actions", "target_q", "critic1_loss", "critic2_loss")
                    + (("a", "q", "lmbda", "actor_loss") if seed == 15 else ()),
                )
            )
    finally:
        torch.randn_like = randn_like
    return {"config": steps[0]["config"], "steps": steps, "smoothing_draws": draws}


def bc(commit: str) -> dict[str, Any]:
    """``bc.py`` with ``run_bc.py``'s actor (deterministic, tanh) and lr 3e-4."""
    from offlinerlkit.modules import Actor
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import BCPolicy

    torch.manual_seed(6)
    actor = Actor(MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN2), ACT_DIM, max_action=1.0)
    policy = BCPolicy(actor, torch.optim.Adam(actor.parameters(), lr=3e-4))
    return _run(policy, {}, {"actor": policy.actor_optim}, _batch(17), config={"lr": 3e-4}, keep=("a", "actor_loss"))


def _run(
    policy: torch.nn.Module,
    extra: dict[str, torch.Tensor],
    optimisers: dict[str, torch.optim.Optimizer],
    batch: dict[str, torch.Tensor],
    *,
    config: dict[str, float],
    keep: tuple[str, ...],
    after_extra: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One ``policy.learn(batch)`` with everything recorded (see the module docstring)."""
    init = _params(policy, extra, targets=False)
    grads = _record_steps(optimisers, _names(policy, extra))
    try:
        with _recorded_noise() as noise, _learn_locals(type(policy).learn) as frames:
            result = policy.learn({k: v.clone() for k, v in batch.items()})
    finally:
        for opt in optimisers.values():
            del opt.step  # the class's own step again, so a second ``_run`` records afresh
    out = {
        "config": config,
        "init": init,
        "batch": _ours_batch(batch),
        "grads": grads,
        "noise": noise,
        "locals": _pick(frames[-1], *keep),
        "result": {k.replace("/", "_"): float(v) for k, v in result.items()},
        "after": _params(policy, extra),
    }
    if after_extra is not None:
        out["after_extra"] = {k: torch.as_tensor(v).detach().clone() for k, v in after_extra().items()}
    return out


def _one_storage(tree: Any) -> Any:
    """``tree`` with its floating tensors turned into float64 views of one flat buffer.

    ``torch.save`` writes a storage shared by several tensors once, so the fixture holds one data record
    instead of one per tensor (a few hundred bytes each, most of a small fixture's size).
    """
    leaves: list[torch.Tensor] = []

    def collect(value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            leaves.append(value.detach().double().reshape(-1))
        elif isinstance(value, dict):
            for v in value.values():
                collect(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    collect(tree)
    flat = torch.cat(leaves) if leaves else torch.zeros(0)
    offset = 0

    def rebuild(value: Any) -> Any:
        nonlocal offset
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            view = flat[offset : offset + value.numel()].view(value.shape)
            offset += value.numel()
            return view
        if isinstance(value, dict):
            return {k: rebuild(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rebuild(v) for v in value]
        return value

    return rebuild(tree)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", required=True, help="OfflineRL-Kit checkout")
    args = parser.parse_args(argv)

    from benchmarks.conformance.common import save_fixture, stub_modules, use_reference

    commit = use_reference(args.ref)
    # Environments, D4RL and tensorboard logging: imported by offlinerlkit's packages, unused here.
    stub_modules("gym", "gym.spaces", "gym.envs", "gym.envs.mujoco", "d4rl", "torch.utils.tensorboard")
    torch.set_default_dtype(torch.float64)
    from offlinerlkit.modules import actor_module, critic_module, ensemble_critic_module

    for module in (actor_module, critic_module, ensemble_critic_module):
        module.torch = Float64Torch()

    repository = "yihaosun1124/OfflineRL-Kit"
    fixtures = {
        "sac": (sac(commit), "offlinerlkit/policy/model_free/sac.py"),
        "edac": (edac(commit), "offlinerlkit/policy/model_free/edac.py, run_example/run_edac.py"),
        "cql": (cql(commit, with_lagrange=False), "offlinerlkit/policy/model_free/cql.py, run_example/run_cql.py"),
        "cql_lagrange": (cql(commit, with_lagrange=True), "offlinerlkit/policy/model_free/cql.py, with_lagrange"),
        "iql": (iql(commit), "offlinerlkit/policy/model_free/iql.py, run_example/run_iql.py"),
        "iql_rewards": (iql_rewards(args.ref), "run_example/run_iql.py normalize_rewards"),
        "td3bc": (td3bc(commit), "offlinerlkit/policy/model_free/td3bc.py, run_example/run_td3bc.py"),
        "bc": (bc(commit), "offlinerlkit/policy/model_free/bc.py, run_example/run_bc.py"),
    }
    for name, (tensors, files) in fixtures.items():
        path = save_fixture(
            f"offlinerlkit_mf_{name}", _one_storage(tensors), repository=repository, commit=commit, notes=files
        )
        print(f"{path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()

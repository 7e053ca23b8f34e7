"""Fixtures of OfflineRL-Kit's MOBILE, RAMBO and COMBO for ``tests/test_conformance_offlinerlkit_model_based.py``.

Three fixtures, all float64 at small sizes (obs 3 or 11, act 2 or 3, hidden 8, 4 models with 3 elites):

* ``offlinerlkit_mb_mobile``: ``MOBILEPolicy.compute_lcb`` (the Bellman-inconsistency penalty) and one
  ``learn`` step on a real + model batch: penalty, target, critic loss, gradients, actor and temperature
  losses and gradients, every parameter after the step.
* ``offlinerlkit_mb_rambo``: one ``RAMBOPolicy.dynamics_step_and_forward`` (the adversarial model step:
  sampled transition, its mixture log-likelihood, advantage, adversarial and supervised losses, model
  gradients and parameters after the step) and one SAC ``learn`` step (its base ``SACPolicy``).
* ``offlinerlkit_mb_combo``: one ``COMBOPolicy.learn`` step per case (``rho_s`` mix without Lagrange at
  temperature 1, ``rho_s`` model with Lagrange at temperature 0.5): conservative gap inputs, losses,
  gradients and parameters after the step.

Randomness: every Gaussian draw of the reference (``Normal.rsample``/``sample`` and ``torch.randn_like``)
is replaced by a recorded standard-normal tensor, in call order; CQL's uniform actions and RAMBO's elite
choice are recorded as drawn. The test feeds the same tensors to our samplers.

Run: ``python -m benchmarks.conformance.offlinerlkit_model_based --ref /work/refs/OfflineRL-Kit``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.conformance.common import Float64Torch, adams, save_fixture, stub_modules, use_reference

CHECKOUT = "OfflineRL-Kit"
REPOSITORY = "yihaosun1124/OfflineRL-Kit"

OBS, ACT, HIDDEN = 3, 2, (8, 8)
DYN_HIDDEN, ENSEMBLE, ELITES = (8, 8), 4, [2, 0, 3]
WEIGHT_DECAY = [2.5e-5, 5e-5, 1e-4]


class NoiseRecorder:
    """Replaces the reference's Gaussian draws by seeded standard normals and keeps them in call order."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.draws: list[torch.Tensor] = []

    def normal(self, shape: torch.Size) -> torch.Tensor:
        eps = torch.randn(shape, generator=self.gen, dtype=torch.float64)
        self.draws.append(eps)
        return eps

    @contextlib.contextmanager
    def patched(self) -> Iterator[NoiseRecorder]:
        normal = torch.distributions.Normal
        saved = normal.rsample, normal.sample, torch.randn_like

        def rsample(dist: Any, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
            return dist.loc + self.normal(dist._extended_shape(sample_shape)) * dist.scale

        def sample(dist: Any, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
            with torch.no_grad():
                return rsample(dist, sample_shape)

        normal.rsample, normal.sample = rsample, sample
        torch.randn_like = lambda t, **kw: self.normal(t.shape).to(t)
        try:
            yield self
        finally:
            normal.rsample, normal.sample, torch.randn_like = saved


@contextlib.contextmanager
def captured_locals(*functions: Callable) -> Iterator[dict[str, dict[str, Any]]]:
    """The local variables of each of ``functions`` when it returns (last call wins), by function name."""
    codes = {inspect.unwrap(f).__code__: f.__name__ for f in functions}  # through @torch.no_grad()
    seen: dict[str, dict[str, Any]] = {}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code in codes:
            # Cloned now: the reference changes some of them in place later (MOBILE zeroes the real rows' penalty).
            seen[codes[frame.f_code]] = {
                k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in frame.f_locals.items()
            }

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


def recorded_grads(optim: torch.optim.Optimizer, names: dict[int, str], into: dict[str, torch.Tensor]) -> None:
    """Make ``optim.step`` store every parameter's gradient in ``into`` (by ``names[id(param)]``) first."""
    step = optim.step

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for group in optim.param_groups:
            for p in group["params"]:
                if p.grad is not None and id(p) in names:
                    into[names[id(p)]] = p.grad.detach().clone()
        return step(*args, **kwargs)

    optim.step = wrapped


def named(module: nn.Module, prefix: str) -> dict[int, str]:
    return {id(p): f"{prefix}{n}" for n, p in module.named_parameters()}


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def perturbed(module: nn.Module, gen: torch.Generator, scale: float = 0.05) -> None:
    """Move ``module``'s weights a little, so that a target network differs from its online network."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def build_actor(obs_dim: int, act_dim: int) -> nn.Module:
    """The scripts' actor: MLP trunk, unbounded mean, state-conditioned log-std clamped to [-5, 2]."""
    from offlinerlkit.modules import ActorProb, TanhDiagGaussian
    from offlinerlkit.nets import MLP

    backbone = MLP(input_dim=obs_dim, hidden_dims=HIDDEN)
    dist = TanhDiagGaussian(HIDDEN[-1], act_dim, unbounded=True, conditioned_sigma=True, max_mu=1.0)
    return ActorProb(backbone, dist)


def build_critic(obs_dim: int, act_dim: int) -> nn.Module:
    from offlinerlkit.modules import Critic
    from offlinerlkit.nets import MLP

    return Critic(MLP(input_dim=obs_dim + act_dim, hidden_dims=HIDDEN))


def build_dynamics(obs_dim: int, act_dim: int, terminal_fn: Callable) -> Any:
    """Ensemble of 4 with elites [2, 0, 3] (not in order, to catch an index mix-up), identity scaler."""
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import EnsembleDynamicsModel
    from offlinerlkit.utils.scaler import StandardScaler

    model = EnsembleDynamicsModel(
        obs_dim, act_dim, DYN_HIDDEN, num_ensemble=ENSEMBLE, num_elites=len(ELITES), weight_decays=WEIGHT_DECAY
    )
    with torch.no_grad():  # non-zero biases and a spread of log-variances
        for layer in [*model.backbones, model.output_layer]:
            layer.bias.normal_(0.0, 0.1)
    model.set_elites(ELITES)
    width = obs_dim + act_dim
    scaler = StandardScaler(mu=np.zeros((1, width)), std=np.ones((1, width)))
    return EnsembleDynamics(model, None, scaler, terminal_fn)


def dynamics_state(dynamics: Any) -> dict[str, torch.Tensor]:
    """The model's weights without OfflineRL-Kit's early-stopping snapshots (``saved_*``)."""
    return {k: v for k, v in state(dynamics.model).items() if "saved_" not in k}


def batch(gen: torch.Generator, n: int, obs_dim: int, act_dim: int, terminal_every: int = 0) -> dict[str, torch.Tensor]:
    obs = torch.randn(n, obs_dim, generator=gen)
    terminals = torch.zeros(n, 1)
    if terminal_every:
        terminals[::terminal_every] = 1.0
    return {
        "observations": obs,
        "actions": torch.rand(n, act_dim, generator=gen) * 1.8 - 0.9,
        "next_observations": obs + 0.3 * torch.randn(n, obs_dim, generator=gen),
        "rewards": torch.randn(n, 1, generator=gen) + 1.0,
        "terminals": terminals,
    }


# -- MOBILE ----------------------------------------------------------------------------------------------


def mobile() -> dict[str, Any]:
    from offlinerlkit.policy import MOBILEPolicy

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    actor = build_actor(OBS, ACT)
    critics = nn.ModuleList([build_critic(OBS, ACT) for _ in range(2)])
    dynamics = build_dynamics(OBS, ACT, lambda o, a, n: np.zeros((len(o), 1), dtype=bool))
    log_alpha = torch.full((1,), -0.5, requires_grad=True)
    actor_optim, critics_optim, alpha_optim = adams((actor, 1e-4), (critics, 3e-4), ([log_alpha], 1e-4))
    policy = MOBILEPolicy(
        dynamics,
        actor,
        critics,
        actor_optim,
        critics_optim,
        tau=0.005,
        gamma=0.99,
        alpha=(-float(ACT), log_alpha, alpha_optim),
        penalty_coef=1.5,
        num_samples=3,
        deterministic_backup=True,
        max_q_backup=False,
    )
    perturbed(policy.critics_old, gen)
    real, fake = batch(gen, 4, OBS, ACT), batch(gen, 12, OBS, ACT, terminal_every=5)
    # Negative rewards on some model rows, so that the clamp of the target at 0 acts on some rows.
    fake["rewards"][1::3] -= 4.0
    inputs = {
        "actor": state(actor), "critics": state(critics), "critics_old": state(policy.critics_old),
        "dynamics": dynamics_state(dynamics), "log_alpha": log_alpha.detach().clone(), "real": real, "fake": fake,
    }  # fmt: skip

    grads: dict[str, torch.Tensor] = {}
    recorded_grads(critics_optim, named(critics, "critics."), grads)
    recorded_grads(actor_optim, named(actor, "actor."), grads)
    recorded_grads(alpha_optim, {id(log_alpha): "log_alpha"}, grads)
    noise = NoiseRecorder(2)
    with noise.patched(), captured_locals(MOBILEPolicy.learn, MOBILEPolicy.compute_lcb) as seen:
        policy.learn({"real": real, "fake": fake})
    learn, lcb = seen["learn"], seen["compute_lcb"]
    n, el, b = 3, len(ELITES), 16
    return {
        "config": {
            "obs_dim": OBS,
            "act_dim": ACT,
            "hidden": list(HIDDEN),
            "dyn_hidden": list(DYN_HIDDEN),
            "ensemble": ENSEMBLE,
            "elites": ELITES,
            "weight_decay": WEIGHT_DECAY,
            "num_samples": n,
            "penalty_coef": 1.5,
            "gamma": 0.99,
            "tau": 0.005,
            "actor_lr": 1e-4,
            "critic_lr": 3e-4,
            "alpha_lr": 1e-4,
            "target_entropy": -float(ACT),
        },
        "inputs": inputs,
        "noise": {
            # sample_next_obss: n draws of [elites, B, obs+1]; the policy's draw at every sampled next state.
            "dynamics": torch.stack(noise.draws[:n]),
            "penalty_actor": noise.draws[n].view(n, el, b, ACT),
            "target_actor": noise.draws[n + 1],
            "actor": noise.draws[n + 2],
        },
        "outputs": {
            "pred_next_obss": lcb["pred_next_obss"].view(n, el, b, OBS),
            "pred_next_qs": lcb["pred_next_qs"].view(n, el, b),
            "penalty_std": lcb["penalty"].squeeze(1),  # before the coef and before zeroing the real rows
            "penalty": learn["penalty"].squeeze(1),  # real rows zeroed
            "next_q": learn["next_q"].squeeze(1),
            "target_q": learn["target_q"].squeeze(1),
            "qs": learn["qs"].squeeze(-1),
            "critic_loss": learn["critic_loss"],
            "actor_loss": learn["actor_loss"],
            "alpha_loss": learn["alpha_loss"],
            "alpha_after": torch.as_tensor(policy._alpha).reshape(()),
        },
        "grads": grads,
        "after": {
            "actor": state(actor),
            "critics": state(critics),
            "critics_old": state(policy.critics_old),
            "log_alpha": log_alpha.detach().clone(),
        },
    }


# -- RAMBO -----------------------------------------------------------------------------------------------

R_OBS, R_ACT, R_BATCH = 11, 3, 12  # Hopper's widths, so that its termination rule applies


def rambo() -> dict[str, Any]:
    from offlinerlkit.policy import RAMBOPolicy
    from offlinerlkit.utils.termination_fns import termination_fn_hopper

    torch.manual_seed(10)
    np.random.seed(10)
    gen = torch.Generator().manual_seed(11)
    actor = build_actor(R_OBS, R_ACT)
    critic1, critic2 = build_critic(R_OBS, R_ACT), build_critic(R_OBS, R_ACT)
    dynamics = build_dynamics(R_OBS, R_ACT, termination_fn_hopper)
    # log alpha above 0: SACPolicy clamps alpha to [0, 1] after the temperature step.
    log_alpha = torch.full((1,), 0.2, requires_grad=True)
    actor_optim, critic1_optim, critic2_optim, alpha_optim, adv_optim = adams(
        (actor, 1e-4), (critic1, 3e-4), (critic2, 3e-4), ([log_alpha], 3e-4), (dynamics.model, 3e-4)
    )
    adv_weight = 0.05  # large enough that the adversarial term shows in every gradient
    policy = RAMBOPolicy(
        dynamics,
        actor,
        critic1,
        critic2,
        actor_optim,
        critic1_optim,
        critic2_optim,
        adv_optim,
        tau=0.005,
        gamma=0.99,
        alpha=(-float(R_ACT), log_alpha, alpha_optim),
        adv_weight=adv_weight,
        adv_rollout_batch_size=R_BATCH,
        adv_rollout_length=5,
        include_ent_in_adv=False,
    )
    perturbed(policy.critic1_old, gen)
    perturbed(policy.critic2_old, gen)

    def hopper_states(n: int) -> torch.Tensor:
        obs = 0.3 * torch.randn(n, R_OBS, generator=gen)
        obs[:, 0] += 1.1  # torso height near the healthy bound, angle near 0: some model steps terminate
        obs[:, 1] *= 0.2
        return obs

    obs = hopper_states(R_BATCH)
    act = torch.rand(R_BATCH, R_ACT, generator=gen) * 1.8 - 0.9
    sl = batch(gen, R_BATCH, R_OBS, R_ACT)
    sl["observations"] = hopper_states(R_BATCH)
    sl["next_observations"] = sl["observations"] + 0.1 * torch.randn(R_BATCH, R_OBS, generator=gen)
    sac_real, sac_fake = (
        batch(gen, R_BATCH // 2, R_OBS, R_ACT),
        batch(gen, R_BATCH // 2, R_OBS, R_ACT, terminal_every=3),
    )
    inputs = {
        "actor": state(actor), "critic1": state(critic1), "critic2": state(critic2),
        "critic1_old": state(policy.critic1_old), "critic2_old": state(policy.critic2_old),
        "dynamics": dynamics_state(dynamics), "log_alpha": log_alpha.detach().clone(),
        "obs": obs, "act": act, "sl": sl, "sac_real": sac_real, "sac_fake": sac_fake,
    }  # fmt: skip

    # The adversarial model step.
    adv_grads: dict[str, torch.Tensor] = {}
    recorded_grads(adv_optim, named(dynamics.model, "dynamics."), adv_grads)
    elite_draw = dynamics.model.random_elite_idxs
    drawn_members: list[np.ndarray] = []
    dynamics.model.random_elite_idxs = lambda size: drawn_members.append(elite_draw(size)) or drawn_members[-1]
    noise = NoiseRecorder(12)
    with noise.patched(), captured_locals(RAMBOPolicy.dynamics_step_and_forward) as seen:
        next_obs, terminals, _ = policy.dynamics_step_and_forward(
            obs.numpy(), act.numpy(), sl["observations"], sl["actions"], sl["next_observations"], sl["rewards"]
        )
    step = seen["dynamics_step_and_forward"]
    adversarial = {
        "noise": noise.draws[0],  # [E, B, obs+1]: the Gaussian draw of every member
        "member": torch.as_tensor(drawn_members[0]),  # [B] the elite each row's transition comes from
        "next_obs": torch.as_tensor(next_obs),
        "reward": step["rewards"].squeeze(1),
        "terminals": torch.as_tensor(terminals).squeeze(1),
        "log_prob": step["log_prob"].squeeze(1),
        "value": step["value"].squeeze(1),
        "advantage": step["advantage"].squeeze(1),
        "adv_loss": step["adv_loss"],
        "sl_loss": step["sl_loss"],
        "all_loss": step["all_loss"],
        "grads": adv_grads,
        "after": dynamics_state(dynamics),
    }

    # One SAC step on half real, half model rows (RAMBOPolicy.learn is MOPOPolicy's: SACPolicy.learn on both).
    from offlinerlkit.policy import SACPolicy

    grads: dict[str, torch.Tensor] = {}
    recorded_grads(critic1_optim, named(critic1, "critic1."), grads)
    recorded_grads(critic2_optim, named(critic2, "critic2."), grads)
    recorded_grads(actor_optim, named(actor, "actor."), grads)
    recorded_grads(alpha_optim, {id(log_alpha): "log_alpha"}, grads)
    noise = NoiseRecorder(13)
    with noise.patched(), captured_locals(SACPolicy.learn) as seen:
        policy.learn({"real": sac_real, "fake": sac_fake})
    learn = seen["learn"]
    sac = {
        "noise": {"target_actor": noise.draws[0], "actor": noise.draws[1]},
        "next_q": learn["next_q"].squeeze(1),
        "target_q": learn["target_q"].squeeze(1),
        "critic1_loss": learn["critic1_loss"],
        "critic2_loss": learn["critic2_loss"],
        "actor_loss": learn["actor_loss"],
        "alpha_loss": learn["alpha_loss"],
        "alpha_after": torch.as_tensor(policy._alpha).reshape(()),
        "grads": grads,
        "after": {
            "actor": state(actor),
            "critic1": state(critic1),
            "critic2": state(critic2),
            "critic1_old": state(policy.critic1_old),
            "critic2_old": state(policy.critic2_old),
            "log_alpha": log_alpha.detach().clone(),
        },
    }
    return {
        "config": {
            "obs_dim": R_OBS,
            "act_dim": R_ACT,
            "hidden": list(HIDDEN),
            "dyn_hidden": list(DYN_HIDDEN),
            "ensemble": ENSEMBLE,
            "elites": ELITES,
            "weight_decay": WEIGHT_DECAY,
            "logvar_loss_coef": 0.001,
            "adv_weight": adv_weight,
            "adv_lr": 3e-4,
            "gamma": 0.99,
            "tau": 0.005,
            "actor_lr": 1e-4,
            "critic_lr": 3e-4,
            "alpha_lr": 3e-4,
            "target_entropy": -float(R_ACT),
        },
        "inputs": inputs,
        "adversarial": adversarial,
        "sac": sac,
    }


# -- COMBO -----------------------------------------------------------------------------------------------

COMBO_CASES = {
    # OfflineRL-Kit's run_combo.py setting: real and model states pushed down, fixed weight, temperature 1.
    "mix": {"rho_s": "mix", "with_lagrange": False, "temperature": 1.0, "cql_weight": 5.0},
    # The other branches: model states only, the Lagrange multiplier, a temperature below 1.
    "model_lagrange": {"rho_s": "model", "with_lagrange": True, "temperature": 0.5, "cql_weight": 2.0},
}
C_NUM_REPEAT = 3


def combo_case(options: dict[str, Any], seed: int) -> dict[str, Any]:
    from offlinerlkit.policy import COMBOPolicy

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    actor = build_actor(OBS, ACT)
    critic1, critic2 = build_critic(OBS, ACT), build_critic(OBS, ACT)
    log_alpha = torch.full((1,), -0.3, requires_grad=True)
    actor_optim, critic1_optim, critic2_optim, alpha_optim = adams(
        (actor, 1e-4), (critic1, 3e-4), (critic2, 3e-4), ([log_alpha], 1e-4)
    )
    space = types.SimpleNamespace(low=-np.ones(ACT), high=np.ones(ACT), shape=(ACT,))
    policy = COMBOPolicy(
        None,
        actor,
        critic1,
        critic2,
        actor_optim,
        critic1_optim,
        critic2_optim,
        space,
        tau=0.005,
        gamma=0.99,
        alpha=(-float(ACT), log_alpha, alpha_optim),
        cql_weight=options["cql_weight"],
        temperature=options["temperature"],
        max_q_backup=False,
        deterministic_backup=True,
        with_lagrange=options["with_lagrange"],
        lagrange_threshold=10.0,
        cql_alpha_lr=3e-4,
        num_repeart_actions=C_NUM_REPEAT,
        uniform_rollout=False,
        rho_s=options["rho_s"],
    )
    perturbed(policy.critic1_old, gen)
    perturbed(policy.critic2_old, gen)
    real, fake = batch(gen, 6, OBS, ACT), batch(gen, 6, OBS, ACT, terminal_every=4)
    inputs = {
        "actor": state(actor), "critic1": state(critic1), "critic2": state(critic2),
        "critic1_old": state(policy.critic1_old), "critic2_old": state(policy.critic2_old),
        "log_alpha": log_alpha.detach().clone(), "real": real, "fake": fake,
    }  # fmt: skip

    grads: dict[str, torch.Tensor] = {}
    recorded_grads(critic1_optim, named(critic1, "critic1."), grads)
    recorded_grads(critic2_optim, named(critic2, "critic2."), grads)
    recorded_grads(actor_optim, named(actor, "actor."), grads)
    recorded_grads(alpha_optim, {id(log_alpha): "log_alpha"}, grads)
    recorded_grads(policy.cql_alpha_optim, {id(policy.cql_log_alpha): "cql_log_alpha"}, grads)
    random_actions: list[torch.Tensor] = []
    calc_random_values = policy.calc_random_values
    policy.calc_random_values = lambda o, a: random_actions.append(a.detach().clone()) or calc_random_values(o, a)
    noise = NoiseRecorder(seed + 2)
    with noise.patched(), captured_locals(COMBOPolicy.learn) as seen:
        policy.learn({"real": real, "fake": fake})
    learn = seen["learn"]
    out = {
        "options": options,
        "num_repeat": C_NUM_REPEAT,
        "inputs": inputs,
        "noise": {
            "actor": noise.draws[0],
            "target_actor": noise.draws[1],
            "obs_pi": noise.draws[2],  # [M * n, act]: pi(.|s) proposals, state-major
            "next_obs_pi": noise.draws[3],  # pi(.|s') proposals
            "random_actions": random_actions[0].double(),  # [M * n, act], uniform in [-1, 1]
        },
        "outputs": {
            "actor_loss": learn["actor_loss"],
            "alpha_loss": learn["alpha_loss"],
            "next_q": learn["next_q"].squeeze(1),
            "target_q": learn["target_q"].squeeze(1),
            "cat_q1": learn["cat_q1"],  # [M * n, 3]: Q - log density of (pi(s), pi(s'), uniform) proposals
            "cat_q2": learn["cat_q2"],
            "conservative_loss1": learn["conservative_loss1"],
            "conservative_loss2": learn["conservative_loss2"],
            "critic1_loss": learn["critic1_loss"],
            "critic2_loss": learn["critic2_loss"],
        },
        "grads": grads,
        "after": {
            "actor": state(actor),
            "critic1": state(critic1),
            "critic2": state(critic2),
            "critic1_old": state(policy.critic1_old),
            "critic2_old": state(policy.critic2_old),
            "log_alpha": log_alpha.detach().clone(),
            "cql_log_alpha": policy.cql_log_alpha.detach().clone(),
        },
    }
    if options["with_lagrange"]:
        out["outputs"]["cql_alpha_loss"] = learn["cql_alpha_loss"]
        out["outputs"]["cql_alpha"] = learn["cql_alpha"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="OfflineRL-Kit checkout")
    args = parser.parse_args()
    commit = use_reference(args.ref)
    # torch.optim imports torch._dynamo on first use, which scans module specs and fails on stand-ins.
    import torch._dynamo

    # Environments, datasets and plotting only; no fixture touches them.
    stub_modules("gym", "gym.envs.mujoco", "d4rl", "pandas", "matplotlib", "matplotlib.pyplot")
    # The logger imports torch.utils.tensorboard (no tensorboard here); stub_modules would replace the real
    # parent package torch, so this one stand-in is registered by hand.
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    tensorboard.SummaryWriter = object
    sys.modules.setdefault("torch.utils.tensorboard", tensorboard)
    torch.set_default_dtype(torch.float64)
    import offlinerlkit.modules.actor_module
    import offlinerlkit.modules.critic_module
    import offlinerlkit.modules.dynamics_module
    import offlinerlkit.policy.model_based.rambo

    for module in (
        offlinerlkit.modules.actor_module,
        offlinerlkit.modules.critic_module,
        offlinerlkit.modules.dynamics_module,
        offlinerlkit.policy.model_based.rambo,
    ):
        module.torch = Float64Torch()

    files = (
        "offlinerlkit/policy/model_based/{mobile,rambo,combo}.py, policy/model_free/{sac,cql}.py, "
        "dynamics/ensemble_dynamics.py, modules/"
    )
    save_fixture(
        "offlinerlkit_mb_mobile",
        mobile(),
        repository=REPOSITORY,
        commit=commit,
        notes=f"MOBILEPolicy.compute_lcb and one learn step ({files}); float32 casts read as float64",
    )
    save_fixture(
        "offlinerlkit_mb_rambo",
        rambo(),
        repository=REPOSITORY,
        commit=commit,
        notes=f"RAMBOPolicy.dynamics_step_and_forward and one SACPolicy.learn step ({files})",
    )
    cases = {name: combo_case(options, 20 + 10 * i) for i, (name, options) in enumerate(COMBO_CASES.items())}
    save_fixture(
        "offlinerlkit_mb_combo",
        cases,
        repository=REPOSITORY,
        commit=commit,
        notes=f"COMBOPolicy.learn, one step per case ({files})",
    )


if __name__ == "__main__":
    main()

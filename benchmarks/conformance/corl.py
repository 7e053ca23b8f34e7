"""Conformance fixtures from CORL (corl-team/CORL): TD3+BC, IQL, SAC-N, EDAC and CQL, one update each.

``python -m benchmarks.conformance.corl --ref /work/refs/CORL`` builds CORL's own classes from
``algorithms/offline/{td3_bc,iql,sac_n,edac,cql}.py`` in float64 at small sizes, runs one ``train``
(``update``) step of each trainer on a fixed batch and records, in CORL's naming: the initial and
updated weights (targets included), the batch, the random draws it consumed, every loss term,
the TD target and the gradient each optimiser stepped with. ``tests/test_conformance_corl.py``
replays the same update with this project's agents.

Randomness is injected, not re-seeded: the generator replaces the samplers CORL calls
(``torch.randn_like`` for TD3+BC's target smoothing, ``torch.distributions.normal._standard_normal``
behind every ``rsample``, ``Tensor.uniform_`` for CQL's uniform proposals) by functions that hand
out pre-drawn tensors, and stores those tensors; the test feeds the same tensors to our samplers.

TD3+BC's and CQL's networks have their width written into the class (256); they are built here
through a stand-in ``nn`` namespace whose ``Linear`` swaps 256 for the small width, which changes
nothing else in the reference code.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tests.helpers import feeding, record_calls, record_steps  # the tests replay with the same

CHECKOUT = "CORL"

OBS_DIM, ACT_DIM, HIDDEN, BATCH = 5, 3, 8, 12
GAMMA, TAU = 0.99, 5e-3


# -- helpers shared with the PRDC generator ---------------------------------------------------------
def load_file(path: Path, name: str) -> types.ModuleType:
    """Import the single-file script at ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def narrow_linear(module: types.ModuleType, width: int, written: int = 256) -> None:
    """Make ``module``'s ``nn.Linear`` build ``width`` wherever the script wrote the size ``written``."""
    real = module.nn

    class Linear(real.Linear):
        def __init__(self, in_features: int, out_features: int, *args: Any, **kwargs: Any) -> None:
            in_features = width if in_features == written else in_features
            out_features = width if out_features == written else out_features
            super().__init__(in_features, out_features, *args, **kwargs)

    shim = types.ModuleType(real.__name__)
    shim.__dict__.update(real.__dict__)
    shim.Linear = Linear
    module.nn = shim


def named(prefix: str, module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {f"{prefix}.{k}": p for k, p in module.named_parameters()}


def pack(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``{name: tensor}`` as one flat vector with the names and shapes to cut it apart again.

    A fixture file spends a few hundred bytes on every stored tensor; one vector per network keeps
    the fixtures small. ``tests/test_conformance_corl.py::unpack`` is the inverse.
    """
    return {
        "names": list(tensors),
        "shapes": [list(t.shape) for t in tensors.values()],
        "flat": torch.cat([t.detach().reshape(-1).double() for t in tensors.values()]),
    }


def snapshot(**modules: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """Each module's ``state_dict``, packed (:func:`pack`)."""
    return {name: pack(m.state_dict()) for name, m in modules.items()}


def make_batch(seed: int, max_action: float = 1.0) -> dict[str, torch.Tensor]:
    """A batch in CORL's layout: rewards and dones ``[B, 1]``; a quarter of the rows terminal."""
    g = torch.Generator().manual_seed(seed)
    return {
        "state": torch.randn(BATCH, OBS_DIM, generator=g),
        "action": (torch.rand(BATCH, ACT_DIM, generator=g) * 2 - 1) * 0.95 * max_action,
        "reward": torch.randn(BATCH, 1, generator=g),
        "next_state": torch.randn(BATCH, OBS_DIM, generator=g),
        "done": (torch.arange(BATCH) % 4 == 3).double().unsqueeze(1),
    }


def as_list(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [batch[k] for k in ("state", "action", "reward", "next_state", "done")]


def adam(params: Any, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr)


# -- TD3+BC -----------------------------------------------------------------------------------------
def td3bc(ref: Path) -> dict[str, Any]:
    mod = load_file(ref / "algorithms/offline/td3_bc.py", "corl_td3_bc")
    narrow_linear(mod, HIDDEN)
    max_action, alpha, lr = 2.0, 2.5, 3e-4
    torch.manual_seed(0)
    actor, critic_1, critic_2 = (
        mod.Actor(OBS_DIM, ACT_DIM, max_action),
        mod.Critic(OBS_DIM, ACT_DIM),
        mod.Critic(OBS_DIM, ACT_DIM),
    )
    opts = [adam(m.parameters(), lr) for m in (actor, critic_1, critic_2)]
    trainer = mod.TD3_BC(
        max_action, actor, opts[0], critic_1, opts[1], critic_2, opts[2], discount=GAMMA, tau=TAU,
        policy_noise=0.2 * max_action, noise_clip=0.5 * max_action, policy_freq=1, alpha=alpha,
    )  # fmt: skip
    init = snapshot(actor=actor, critic_1=critic_1, critic_2=critic_2)
    batch = make_batch(1, max_action)
    noise = torch.randn(BATCH, ACT_DIM, generator=torch.Generator().manual_seed(2))
    grads: dict[str, torch.Tensor] = {}
    for opt, (prefix, m) in zip(opts, (("actor", actor), ("critic_1", critic_1), ("critic_2", critic_2)), strict=True):
        record_steps(opt, named(prefix, m), grads)
    target_calls = [record_calls(trainer.critic_1_target), record_calls(trainer.critic_2_target)]
    actor_calls, critic_calls = record_calls(actor), record_calls(critic_1)
    with feeding(torch, "randn_like", [noise]):
        log = trainer.train(as_list(batch))
    (_, next_action), q1_next = target_calls[0][0]
    q_next = torch.min(q1_next, target_calls[1][0][1])
    target = batch["reward"] + (1 - batch["done"]) * GAMMA * q_next
    pi = actor_calls[0][1]
    q_pi = critic_calls[-1][1]
    lmbda = alpha / q_pi.abs().mean()
    return {
        "config": {"max_action": max_action, "alpha": alpha, "lr": lr, "gamma": GAMMA, "tau": TAU,
                   "policy_noise": 0.2, "noise_clip": 0.5, "policy_freq": 1, "hidden": HIDDEN},
        "init": init,
        "batch": batch,
        "noise": noise,
        "out": {
            "next_action": next_action, "target": target.squeeze(1), "critic_loss": log["critic_loss"],
            "pi": pi, "lmbda": lmbda, "bc_loss": (pi - batch["action"]).pow(2).mean(),
            "actor_loss": log["actor_loss"],
        },
        "grads": pack(grads),
        "after": snapshot(actor=actor, critic_1=critic_1, critic_2=critic_2, actor_target=trainer.actor_target,
                          critic_1_target=trainer.critic_1_target, critic_2_target=trainer.critic_2_target),
    }  # fmt: skip


# -- IQL --------------------------------------------------------------------------------------------
def iql(ref: Path) -> dict[str, Any]:
    mod = load_file(ref / "algorithms/offline/iql.py", "corl_iql")
    expectile, beta, lr = 0.7, 3.0, 3e-4
    torch.manual_seed(0)
    actor = mod.GaussianPolicy(OBS_DIM, ACT_DIM, 1.0, hidden_dim=HIDDEN, n_hidden=2)
    with torch.no_grad():
        actor.log_std.copy_(torch.linspace(-1.0, -0.2, ACT_DIM))
    q_network, v_network = mod.TwinQ(OBS_DIM, ACT_DIM, HIDDEN, 2), mod.ValueFunction(OBS_DIM, HIDDEN, 2)
    opts = [adam(m.parameters(), lr) for m in (actor, q_network, v_network)]
    trainer = mod.ImplicitQLearning(
        1.0, actor, opts[0], q_network, opts[1], v_network, opts[2], iql_tau=expectile, beta=beta,
        max_steps=1000, discount=GAMMA, tau=TAU,
    )  # fmt: skip
    init = snapshot(actor=actor, qf=q_network, vf=v_network)
    batch = make_batch(3)
    grads: dict[str, torch.Tensor] = {}
    for opt, (prefix, m) in zip(opts, (("actor", actor), ("qf", q_network), ("vf", v_network)), strict=True):
        record_steps(opt, named(prefix, m), grads)
    v_calls, target_calls = record_calls(v_network), record_calls(trainer.q_target)
    log = trainer.train(as_list(batch))
    next_v, v = v_calls[0][1], v_calls[1][1]  # both read before the value step
    target_q = target_calls[0][1]
    adv = target_q - v
    return {
        "config": {"expectile": expectile, "beta": beta, "lr": lr, "gamma": GAMMA, "tau": TAU, "hidden": HIDDEN},
        "init": init,
        "batch": batch,
        "out": {
            "target_q": target_q, "v": v, "value_loss": log["value_loss"], "next_v": next_v,
            "target": batch["reward"].squeeze(1) + (1 - batch["done"].squeeze(1)) * GAMMA * next_v,
            "q_loss": log["q_loss"], "exp_adv": torch.exp(beta * adv).clamp(max=100.0),
            "actor_loss": log["actor_loss"],
        },
        "grads": pack(grads),
        "after": snapshot(actor=actor, qf=q_network, vf=v_network, q_target=trainer.q_target),
    }  # fmt: skip


# -- SAC-N and EDAC ---------------------------------------------------------------------------------
def sac_n_or_edac(ref: Path, eta: float) -> dict[str, Any]:
    """``eta == 0``: sac_n.py's SACN; otherwise edac.py's EDAC. Same actor, critic and update order."""
    num_critics, lr, alpha_lr = 4, 3e-4, 3e-4
    if eta > 0:
        mod = load_file(ref / "algorithms/offline/edac.py", "corl_edac")
    else:
        mod = load_file(ref / "algorithms/offline/sac_n.py", "corl_sac_n")
    torch.manual_seed(0)
    actor = mod.Actor(OBS_DIM, ACT_DIM, HIDDEN, max_action=1.0)
    critic = mod.VectorizedCritic(OBS_DIM, ACT_DIM, HIDDEN, num_critics)
    with torch.no_grad():  # larger heads than the U(+-3e-3) init, so Q, its min and the diversity term matter
        critic.critic[-1].weight.mul_(100.0)
        actor.log_sigma.bias.add_(-0.5)
    a_opt, c_opt = adam(actor.parameters(), lr), adam(critic.parameters(), lr)
    common = {"gamma": GAMMA, "tau": TAU, "alpha_learning_rate": alpha_lr, "device": "cpu"}
    if eta > 0:
        trainer = mod.EDAC(actor, a_opt, critic, c_opt, eta=eta, **common)
    else:
        trainer = mod.SACN(actor, a_opt, critic, c_opt, **common)
    init = snapshot(actor=actor, critic=critic)
    init_log_alpha = trainer.log_alpha.detach().clone()
    batch = make_batch(4)
    g = torch.Generator().manual_seed(5)
    eps_pi, eps_next = torch.randn(BATCH, ACT_DIM, generator=g), torch.randn(BATCH, ACT_DIM, generator=g)
    grads: dict[str, torch.Tensor] = {}
    record_steps(a_opt, named("actor", actor), grads)
    record_steps(c_opt, named("critic", critic), grads)
    record_steps(trainer.alpha_optimizer, {"log_alpha": trainer.log_alpha}, grads)
    actor_calls, critic_calls = record_calls(actor), record_calls(critic)
    target_calls = record_calls(trainer.target_critic)
    diversity = trainer._critic_diversity_loss(batch["state"], batch["action"]) if eta > 0 else torch.zeros(())
    # CORL samples the policy once for the temperature loss and again for the actor loss; feeding both
    # the same draw makes them one sample, as in our update and the EDAC authors' code (sac.py).
    with feeding(torch.distributions.normal, "_standard_normal", [eps_pi, eps_pi, eps_next]):
        log = trainer.update(as_list(batch))
    alpha = trainer.alpha  # after its step: CORL updates the temperature first and uses the new value
    next_action, next_log_prob = actor_calls[2][1]
    q_next = target_calls[0][1].min(0).values
    target = batch["reward"].squeeze(1) + GAMMA * (1 - batch["done"].squeeze(1)) * (q_next - alpha * next_log_prob)
    return {
        "config": {"num_critics": num_critics, "eta": eta, "lr": lr, "alpha_lr": alpha_lr, "gamma": GAMMA,
                   "tau": TAU, "hidden": HIDDEN},
        "init": {**init, "log_alpha": init_log_alpha},
        "batch": batch,
        "noise": {"pi": eps_pi, "next": eps_next},
        "out": {
            "log_prob": actor_calls[1][1][1], "alpha_loss": log["alpha_loss"], "alpha": alpha,
            "q_pi": critic_calls[0][1], "actor_loss": log["actor_loss"], "next_action": next_action,
            "next_log_prob": next_log_prob, "target": target, "q": critic_calls[1][1], "diversity": diversity,
            "critic_loss": log["critic_loss"],
        },
        "grads": pack(grads),
        "after": {**snapshot(actor=actor, critic=critic, target_critic=trainer.target_critic),
                  "log_alpha": trainer.log_alpha.detach().clone()},
    }  # fmt: skip


# -- CQL --------------------------------------------------------------------------------------------
def cql(ref: Path, lagrange: bool) -> dict[str, Any]:
    mod = load_file(ref / "algorithms/offline/cql.py", "corl_cql")
    narrow_linear(mod, HIDDEN)
    n_actions, cql_alpha, policy_lr, qf_lr, gap = 4, 5.0, 1e-4, 3e-4, 0.5
    torch.manual_seed(0)
    critic_1 = mod.FullyConnectedQFunction(OBS_DIM, ACT_DIM, orthogonal_init=True, n_hidden_layers=3)
    critic_2 = mod.FullyConnectedQFunction(OBS_DIM, ACT_DIM, orthogonal_init=True, n_hidden_layers=3)
    actor = mod.TanhGaussianPolicy(OBS_DIM, ACT_DIM, 1.0, log_std_multiplier=1.0, log_std_offset=-1.0,
                                   orthogonal_init=True)  # fmt: skip
    with torch.no_grad():  # output layers start at gain 1e-2; larger ones make Q and the logsumexp matter
        for q in (critic_1, critic_2):
            q.network[-1].weight.mul_(100.0)
        actor.base_network[-1].weight.mul_(30.0)
    c1_opt, c2_opt, a_opt = (
        adam(critic_1.parameters(), qf_lr),
        adam(critic_2.parameters(), qf_lr),
        adam(actor.parameters(), policy_lr),
    )
    trainer = mod.ContinuousCQL(
        critic_1, c1_opt, critic_2, c2_opt, actor, a_opt, target_entropy=-float(ACT_DIM), discount=GAMMA,
        alpha_multiplier=1.0, use_automatic_entropy_tuning=True, backup_entropy=False, policy_lr=policy_lr,
        qf_lr=qf_lr, soft_target_update_rate=TAU, bc_steps=0, target_update_period=1, cql_n_actions=n_actions,
        cql_importance_sample=True, cql_lagrange=lagrange, cql_target_action_gap=gap, cql_temp=1.0,
        cql_alpha=cql_alpha, cql_max_target_backup=False, device="cpu",
    )  # fmt: skip
    init = snapshot(actor=actor, critic_1=critic_1, critic_2=critic_2)
    init_scalars = {"log_alpha": trainer.log_alpha.constant.detach().clone(),
                    "log_alpha_prime": trainer.log_alpha_prime.constant.detach().clone()}  # fmt: skip
    batch = make_batch(6)
    g = torch.Generator().manual_seed(7)
    eps = {
        "pi": torch.randn(BATCH, ACT_DIM, generator=g),
        "next": torch.randn(BATCH, ACT_DIM, generator=g),
        "cql_current": torch.randn(BATCH, n_actions, ACT_DIM, generator=g),
        "cql_next": torch.randn(BATCH, n_actions, ACT_DIM, generator=g),
    }
    uniform = torch.rand(BATCH, n_actions, ACT_DIM, generator=g) * 2 - 1
    grads: dict[str, torch.Tensor] = {}
    record_steps(a_opt, named("actor", actor), grads)
    record_steps(c1_opt, named("critic_1", critic_1), grads)
    record_steps(c2_opt, named("critic_2", critic_2), grads)
    record_steps(trainer.alpha_optimizer, {"log_alpha": trainer.log_alpha.constant}, grads)
    record_steps(trainer.alpha_prime_optimizer, {"log_alpha_prime": trainer.log_alpha_prime.constant}, grads)
    t_calls = [record_calls(trainer.target_critic_1), record_calls(trainer.target_critic_2)]
    draws = [eps["pi"], eps["next"], eps["cql_current"], eps["cql_next"]]
    with (
        feeding(torch.distributions.normal, "_standard_normal", draws),
        feeding(torch.Tensor, "uniform_", [uniform], inplace=True),
    ):
        log = trainer.train(as_list(batch))
    q_next = torch.min(t_calls[0][0][1], t_calls[1][0][1])
    target = batch["reward"].squeeze(1) + (1 - batch["done"].squeeze(1)) * GAMMA * q_next
    out = {k: log[k] for k in ("log_pi", "policy_loss", "alpha_loss", "alpha", "qf1_loss", "qf2_loss",
                               "cql_qf1_diff", "cql_qf2_diff", "cql_min_qf1_loss", "cql_min_qf2_loss",
                               "alpha_prime_loss", "alpha_prime")}  # fmt: skip
    return {
        "config": {"n_actions": n_actions, "cql_alpha": cql_alpha, "policy_lr": policy_lr, "qf_lr": qf_lr,
                   "target_action_gap": gap, "lagrange": lagrange, "gamma": GAMMA, "tau": TAU, "hidden": HIDDEN},
        "init": {**init, **init_scalars},
        "batch": batch,
        "noise": {**eps, "uniform": uniform},
        "out": {**out, "target": target},
        "grads": pack(grads),
        "after": {**snapshot(actor=actor, critic_1=critic_1, critic_2=critic_2,
                             target_critic_1=trainer.target_critic_1, target_critic_2=trainer.target_critic_2),
                  "log_alpha": trainer.log_alpha.constant.detach().clone(),
                  "log_alpha_prime": trainer.log_alpha_prime.constant.detach().clone()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from benchmarks.conformance.common import save_fixture, stub_modules, use_reference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="the CORL checkout")
    args = parser.parse_args(argv)
    commit = use_reference(args.ref)
    stub_modules("gym", "d4rl", "pyrallis", "wandb")
    torch.set_default_dtype(torch.float64)
    repository = "corl-team/CORL"
    cases: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
        "corl_td3bc": (lambda: td3bc(args.ref), "algorithms/offline/td3_bc.py TD3_BC.train, policy_freq 1"),
        "corl_iql": (lambda: iql(args.ref), "algorithms/offline/iql.py ImplicitQLearning.train"),
        "corl_sacn": (lambda: sac_n_or_edac(args.ref, 0.0), "algorithms/offline/sac_n.py SACN.update, N=4"),
        "corl_edac": (lambda: sac_n_or_edac(args.ref, 1.5), "algorithms/offline/edac.py EDAC.update, N=4"),
        "corl_cql": (lambda: cql(args.ref, False), "algorithms/offline/cql.py ContinuousCQL.train"),
        "corl_cql_lagrange": (lambda: cql(args.ref, True), "algorithms/offline/cql.py, cql_lagrange=True"),
    }
    for name, (build, notes) in cases.items():
        path = save_fixture(name, build(), repository=repository, commit=commit, notes=notes)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Conformance with CORL (corl-team/CORL): one update of TD3+BC, IQL, SAC-N, EDAC and CQL on the
weights, batch and random draws recorded by ``benchmarks/conformance/corl.py``.

Each test copies CORL's initial weights into our agent, feeds our samplers the draws CORL consumed,
runs ``agent.update`` and compares targets, every loss term, the gradient each optimiser stepped
with and the parameters after the step (target networks included) at relative 1e-5 (float64).
Where CORL differs (update order, loss scale, parametrisation, a numerical constant) the test applies
the documented difference, or asserts it, and says so; the differences are listed in
``configs/experiment/<method>_paper.yaml``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from mbrl.agents.base import AgentSpec
from mbrl.agents.cql import CQLAgent, CQLConfig
from mbrl.agents.iql import IQLAgent, IQLConfig
from mbrl.agents.sac import SACAgent, SACConfig
from mbrl.agents.td3bc import TD3BCAgent, TD3BCConfig

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor
from tests.helpers import (
    Params,
    assert_rel_close,
    compare,
    ensemble,
    feeding,
    grads_of,
    load,
    load_conformance,
    params_of,
    prefixed,
    record_calls,
    record_steps,
    reference_transitions,
    unpack,
)

pytestmark = pytest.mark.usefixtures("float64")


# -- plumbing ---------------------------------------------------------------------------------------
def linears(params: Params, indices: list[int], prefix: str = "") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight [out, in], bias [out])`` of the ``nn.Linear`` layers ``prefix<i>`` of a CORL network."""
    return [(params[f"{prefix}{i}.weight"], params[f"{prefix}{i}.bias"]) for i in indices]


def transitions(batch: dict[str, torch.Tensor]) -> Transitions:
    return reference_transitions(
        batch["state"], batch["action"], batch["reward"].squeeze(1), batch["next_state"], batch["done"].squeeze(1)
    )


def spec_for(fx: dict[str, Any], max_action: float = 1.0) -> AgentSpec:
    obs_dim, act_dim = fx["batch"]["state"].shape[1], fx["batch"]["action"].shape[1]
    return AgentSpec(obs_dim, act_dim, (-max_action,) * act_dim, (max_action,) * act_dim)


def freeze(optimizer: torch.optim.Optimizer) -> None:
    """Learning rate 0: the step leaves the parameters as they are (applies an order difference)."""
    for group in optimizer.param_groups:
        group["lr"] = 0.0


# -- TD3+BC -----------------------------------------------------------------------------------------
def td3_actor(p: Params) -> Params:
    (w0, b0), (w1, b1), (w2, b2) = linears(p, [0, 2, 4], "net.")
    return {"net.0.0.weight": w0, "net.0.0.bias": b0, "net.0.2.weight": w1, "net.0.2.bias": b1,
            "net.1.weight": w2, "net.1.bias": b2}  # fmt: skip


def td3_critic(p: Params, names: tuple[str, str] = ("critic_1", "critic_2")) -> Params:
    return ensemble([linears(prefixed(p, n), [0, 2, 4], "net.") for n in names])


def test_td3bc_matches_corl():
    fx = load_conformance("corl_td3bc")
    cfg, init, after, ref_grads = fx["config"], fx["init"], fx["after"], unpack(fx["grads"])
    agent = TD3BCAgent(
        spec_for(fx, cfg["max_action"]),
        TD3BCConfig(hidden_sizes=(cfg["hidden"],) * 2, actor_lr=cfg["lr"], critic_lr=cfg["lr"], gamma=cfg["gamma"],
                    tau=cfg["tau"], alpha=cfg["alpha"], policy_noise=cfg["policy_noise"],
                    noise_clip=cfg["noise_clip"], policy_freq=cfg["policy_freq"]),
    )  # fmt: skip
    critics = {n: unpack(init[n]) for n in ("critic_1", "critic_2")}
    for net, target in ((agent.actor, agent.target_actor), (agent.critic, agent.target_critic)):
        params = td3_actor(unpack(init["actor"])) if net is agent.actor else td3_critic(flat_named(critics))
        load(net, params)
        load(target, params)
    actor_grads, critic_grads = grads_of(agent.actor_opt, agent.actor), grads_of(agent.critic_opt, agent.critic)
    target_calls = record_calls(agent.target_critic)
    with feeding(torch, "randn_like", [fx["noise"]]):
        metrics = agent.update(transitions(fx["batch"]))

    out, batch = fx["out"], fx["batch"]
    (_, next_action), next_q = target_calls[0]
    assert_rel_close(next_action, out["next_action"], "smoothed next action")
    target = batch["reward"].squeeze(1) + cfg["gamma"] * (1 - batch["done"].squeeze(1)) * next_q.min(0).values
    assert_rel_close(target, out["target"], "TD target")
    assert_rel_close(metrics["critic_loss"], out["critic_loss"], "critic loss")
    assert_rel_close(metrics["bc_loss"], out["bc_loss"], "behaviour-cloning term")
    assert_rel_close(metrics["actor_loss"], out["actor_loss"], "actor loss")
    compare(critic_grads, td3_critic(ref_grads), "critic gradient")
    compare(actor_grads, td3_actor(prefixed(ref_grads, "actor")), "actor gradient")
    compare(params_of(agent.actor), td3_actor(unpack(after["actor"])), "actor after")
    compare(params_of(agent.target_actor), td3_actor(unpack(after["actor_target"])), "target actor after")
    after_critics = {n: unpack(after[n]) for n in ("critic_1", "critic_2", "critic_1_target", "critic_2_target")}
    compare(params_of(agent.critic), td3_critic(flat_named(after_critics)), "critics after")
    targets = td3_critic(flat_named(after_critics), ("critic_1_target", "critic_2_target"))
    compare(params_of(agent.target_critic), targets, "target critics after")


def flat_named(groups: dict[str, Params]) -> Params:
    """``{group: {name: t}}`` -> ``{"group.name": t}``."""
    return {f"{g}.{k}": v for g, params in groups.items() for k, v in params.items()}


# -- IQL --------------------------------------------------------------------------------------------
def iql_critic(p: Params) -> Params:
    return ensemble([linears(p, [0, 2, 4], f"{q}.net.") for q in ("q1", "q2")])


def iql_value(p: Params) -> Params:
    (w0, b0), (w1, b1), (w2, b2) = linears(p, [0, 2, 4], "v.net.")
    return {"0.0.weight": w0, "0.0.bias": b0, "0.2.weight": w1, "0.2.bias": b1, "1.weight": w2, "1.bias": b2}


def iql_actor(p: Params) -> Params:
    """CORL's ``GaussianPolicy`` (``net.net.<i>``, ``log_std``) as our default IQL actor (``net.<i>``, ``log_std``)."""
    return {k.removeprefix("net."): v for k, v in p.items()}


def run_iql(fx: dict[str, Any], freeze_value: bool) -> tuple[IQLAgent, dict, Params, Params, Params, list]:
    cfg, init = fx["config"], fx["init"]
    agent = IQLAgent(
        spec_for(fx),
        IQLConfig(hidden_sizes=(cfg["hidden"],) * 2, actor_lr=cfg["lr"], critic_lr=cfg["lr"], value_lr=cfg["lr"],
                  gamma=cfg["gamma"], tau=cfg["tau"], expectile=cfg["expectile"], beta=cfg["beta"]),
    )  # fmt: skip
    load(agent.critic, iql_critic(unpack(init["qf"])))
    load(agent.target_critic, iql_critic(unpack(init["qf"])))
    load(agent.value_net, iql_value(unpack(init["vf"])))
    load(agent.actor, iql_actor(unpack(init["actor"])))
    if freeze_value:
        freeze(agent.value_opt)
    v_grads, q_grads = grads_of(agent.value_opt, agent.value_net), grads_of(agent.critic_opt, agent.critic)
    a_grads = grads_of(agent.actor_opt, agent.actor)
    v_calls = record_calls(agent.value_net)
    metrics = agent.update(transitions(fx["batch"]))
    return agent, metrics, v_grads, q_grads, a_grads, v_calls


def test_iql_value_step_matches_corl():
    fx = load_conformance("corl_iql")
    out, ref_grads = fx["out"], unpack(fx["grads"])
    agent, metrics, v_grads, _, _, v_calls = run_iql(fx, freeze_value=False)
    assert_rel_close(v_calls[0][1].squeeze(-1), out["v"], "V(s)")
    assert_rel_close(metrics["value_loss"], out["value_loss"], "expectile value loss")
    compare(v_grads, iql_value(prefixed(ref_grads, "vf")), "value gradient")
    compare(params_of(agent.value_net), iql_value(unpack(fx["after"]["vf"])), "value network after")
    # Kept difference: CORL bootstraps from V before its step (iql.py:501-503), we after it, as the authors.
    next_v_after_step = v_calls[1][1].squeeze(-1)
    assert not torch.allclose(next_v_after_step, out["next_v"], rtol=1e-6, atol=0)


def test_iql_critic_and_actor_step_match_corl_with_the_value_read_before_its_step():
    """With the value step frozen, V after the step is V before it: CORL's order (iql.py:501-503)."""
    fx = load_conformance("corl_iql")
    cfg, out, batch, ref_grads = fx["config"], fx["out"], fx["batch"], unpack(fx["grads"])
    agent, metrics, _, q_grads, a_grads, v_calls = run_iql(fx, freeze_value=True)
    next_v = v_calls[1][1].squeeze(-1)
    target = batch["reward"].squeeze(1) + cfg["gamma"] * (1 - batch["done"].squeeze(1)) * next_v
    assert_rel_close(target, out["target"], "TD target")
    # Kept difference: CORL averages the two critics' MSEs (iql.py:456), we sum them (the authors' critic.py):
    # twice the loss and gradient; Adam's step is scale-free, so the parameters after agree.
    assert_rel_close(metrics["critic_loss"], 2 * torch.as_tensor(out["q_loss"]), "critic loss (sum of both MSEs)")
    compare(q_grads, iql_critic(prefixed(ref_grads, "qf")), "critic gradient", scale=2.0)
    compare(params_of(agent.critic), iql_critic(unpack(fx["after"]["qf"])), "critics after")
    compare(params_of(agent.target_critic), iql_critic(unpack(fx["after"]["q_target"])), "target critics after")
    assert_rel_close(metrics["adv_weight_mean"], out["exp_adv"].mean(), "advantage weights")
    # The policy is CORL's (iql.py:303-326): tanh mean, state-independent std, unsquashed log-density.
    assert_rel_close(metrics["actor_loss"], out["actor_loss"], "AWR actor loss")
    compare(a_grads, iql_actor(prefixed(ref_grads, "actor")), "actor gradient")
    compare(params_of(agent.actor), iql_actor(unpack(fx["after"]["actor"])), "actor after")


# -- SAC-N and EDAC ---------------------------------------------------------------------------------
def sac_actor(p: Params) -> Params:
    return {k.replace("log_sigma", "log_std"): v for k, v in p.items()}


def sac_critic(p: Params) -> Params:
    return {k.replace("critic.", "net.", 1): v for k, v in p.items()}


def run_sac(fx: dict[str, Any], init_alpha: float) -> tuple[SACAgent, dict, dict[str, Params], list, list]:
    cfg, init = fx["config"], fx["init"]
    agent = SACAgent(
        spec_for(fx),
        SACConfig(hidden_sizes=(cfg["hidden"],) * 3, num_critics=cfg["num_critics"], actor_lr=cfg["lr"],
                  critic_lr=cfg["lr"], alpha_lr=cfg["alpha_lr"], gamma=cfg["gamma"], tau=cfg["tau"],
                  init_alpha=init_alpha, eta=cfg["eta"]),
    )  # fmt: skip
    load(agent.actor, sac_actor(unpack(init["actor"])))
    load(agent.critic, sac_critic(unpack(init["critic"])))
    load(agent.target_critic, sac_critic(unpack(init["critic"])))
    grads = {"actor": grads_of(agent.actor_opt, agent.actor), "critic": grads_of(agent.critic_opt, agent.critic)}
    grads["alpha"] = {}
    record_steps(agent.alpha_opt, {"log_alpha": agent.log_alpha}, grads["alpha"])
    actor_calls, target_calls = record_calls(agent.actor), record_calls(agent.target_critic)
    with feeding(torch, "randn_like", [fx["noise"]["pi"], fx["noise"]["next"]]):
        metrics = agent.update(transitions(fx["batch"]))
    return agent, metrics, grads, actor_calls, target_calls


def corl_log_density(self: TanhGaussianActor, u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """CORL's squashed-Gaussian log-density ``[B]``: ``log(1 - tanh(u)^2 + 1e-6)`` for the tanh term
    (edac.py:275, sac_n.py:274) where ours uses the exact ``2 * (log 2 - u - softplus(-2u))``."""
    log_prob = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1)
    return log_prob - torch.log(1 - torch.tanh(u).pow(2) + 1e-6).sum(-1) - self.act_scale.log().sum()


@pytest.mark.parametrize("name", ["corl_sacn", "corl_edac"])
def test_sac_n_and_edac_match_corl(name: str, monkeypatch: pytest.MonkeyPatch):
    fx = load_conformance(name)
    out, after, ref_grads = fx["out"], fx["after"], unpack(fx["grads"])
    # Kept difference (applied in the generator): CORL draws one policy sample for the temperature loss and
    # another for the actor loss (edac.py:361-371); ours shares one, as the EDAC authors' sac.py.
    # Kept difference: CORL's log-density adds 1e-6 inside the tanh term's log; ours is exact. Applied here,
    # it is the only difference: without it the log-probs differ by up to ~1e-6 per action dimension.
    agent, metrics, grads, actor_calls, target_calls = run_sac(fx, init_alpha=1.0)
    exact_log_prob = actor_calls[0][1][1]
    assert 0 < (exact_log_prob - out["log_prob"]).abs().max() < 1e-5
    monkeypatch.setattr(TanhGaussianActor, "_log_density", corl_log_density)
    agent, metrics, grads, actor_calls, target_calls = run_sac(fx, init_alpha=math.exp(float(fx["init"]["log_alpha"])))
    assert_rel_close(actor_calls[0][1][1], out["log_prob"], "log pi(a|s)")
    assert_rel_close(grads["alpha"]["log_alpha"], ref_grads["log_alpha"].squeeze(), "temperature gradient")
    assert_rel_close(agent.log_alpha.detach(), after["log_alpha"].squeeze(), "log alpha after")
    # Both sides take the temperature after its step for the actor and the target. CORL keeps log alpha in
    # float32 (edac.py:355): its alpha is rounded to ~6e-8, which reaches every later quantity, so
    # tensors are compared elementwise relative to at least 1e-3 of their largest entry.
    assert_rel_close(metrics["alpha"], out["alpha"].squeeze(), "alpha used")
    assert_rel_close(metrics["actor_loss"], out["actor_loss"], "actor loss")
    compare(grads["actor"], sac_actor(prefixed(ref_grads, "actor")), "actor gradient", floor=1e-3)
    compare(params_of(agent.actor), sac_actor(unpack(after["actor"])), "actor after")
    next_action, next_log_prob = actor_calls[1][1]
    assert_rel_close(next_action, out["next_action"], "next action")
    assert_rel_close(next_log_prob, out["next_log_prob"], "next log-prob")
    batch = fx["batch"]
    soft_v = target_calls[0][1].min(0).values - metrics["alpha"] * next_log_prob
    target = batch["reward"].squeeze(1) + fx["config"]["gamma"] * (1 - batch["done"].squeeze(1)) * soft_v
    assert_rel_close(target, out["target"], "TD target")
    if fx["config"]["eta"] > 0:
        assert_rel_close(metrics["diversity"], out["diversity"], "EDAC diversity term")
    assert_rel_close(metrics["critic_loss"], out["critic_loss"], "critic loss")
    compare(grads["critic"], sac_critic(prefixed(ref_grads, "critic")), "critic gradient", floor=1e-3)
    compare(params_of(agent.critic), sac_critic(unpack(after["critic"])), "critics after")
    compare(params_of(agent.target_critic), sac_critic(unpack(after["target_critic"])), "target critics after")


# -- CQL --------------------------------------------------------------------------------------------
def cql_actor(p: Params, act_dim: int, multiplier: float = 1.0, offset: float = 0.0) -> Params:
    """Our two heads from CORL's one ``Linear(hidden, 2 * act_dim)`` head and its learned log-std scalars:
    ``log_std = multiplier * (W x + b) + offset`` (cql.py:340-341, 350)."""
    (w0, b0), (w1, b1), (w2, b2), (w3, b3) = linears(p, [0, 2, 4, 6], "base_network.")
    heads = {"mu.weight": w3[:act_dim], "mu.bias": b3[:act_dim]}
    heads.update({"log_std.weight": multiplier * w3[act_dim:], "log_std.bias": multiplier * b3[act_dim:] + offset})
    return {"trunk.0.weight": w0, "trunk.0.bias": b0, "trunk.2.weight": w1, "trunk.2.bias": b1,
            "trunk.4.weight": w2, "trunk.4.bias": b2, **heads}  # fmt: skip


def cql_critic(p: Params, names: tuple[str, str] = ("critic_1", "critic_2")) -> Params:
    return ensemble([linears(prefixed(p, n), [0, 2, 4, 6], "network.") for n in names])


def run_cql(fx: dict[str, Any], freeze_actor: bool) -> tuple[CQLAgent, dict, dict[str, Params]]:
    cfg, init, noise = fx["config"], fx["init"], fx["noise"]
    act_dim = fx["batch"]["action"].shape[1]
    agent = CQLAgent(
        spec_for(fx),
        CQLConfig(hidden_sizes=(cfg["hidden"],) * 3, actor_lr=cfg["policy_lr"], critic_lr=cfg["qf_lr"],
                  alpha_lr=cfg["policy_lr"], gamma=cfg["gamma"], tau=cfg["tau"], cql_weight=cfg["cql_alpha"],
                  temperature=1.0, num_samples=cfg["n_actions"], with_lagrange=cfg["lagrange"],
                  # CORL weights the threshold too, alpha' * cql_alpha * (gap - threshold) (cql.py:679)
                  target_action_gap=cfg["cql_alpha"] * cfg["target_action_gap"], cql_alpha_lr=cfg["qf_lr"]),
    )  # fmt: skip
    actor = unpack(init["actor"])
    scalars = {"log_std_multiplier.constant": 1.0, "log_std_offset.constant": -1.0}
    for key, value in scalars.items():  # CORL's learned log-std scalars start at 1 and -1
        assert float(actor.pop(key)) == value
    load(agent.actor, cql_actor(actor, act_dim, offset=-1.0))
    critics = flat_named({n: unpack(init[n]) for n in ("critic_1", "critic_2")})
    load(agent.critic, cql_critic(critics))
    load(agent.target_critic, cql_critic(critics))
    with torch.no_grad():
        agent.log_alpha.copy_(fx["init"]["log_alpha"])
        agent.log_cql_alpha.copy_(fx["init"]["log_alpha_prime"])  # CORL starts alpha' at e (cql.py:504), we at 1
    if freeze_actor:
        freeze(agent.actor_opt)
    grads = {"actor": grads_of(agent.actor_opt, agent.actor), "critic": grads_of(agent.critic_opt, agent.critic)}
    grads["scalars"] = {}
    record_steps(agent.alpha_opt, {"log_alpha": agent.log_alpha}, grads["scalars"])
    record_steps(agent.cql_alpha_opt, {"log_alpha_prime": agent.log_cql_alpha}, grads["scalars"])
    n = cfg["n_actions"]
    proposals = torch.cat([noise["cql_current"].reshape(-1, act_dim), noise["cql_next"].reshape(-1, act_dim)])
    with (
        feeding(torch, "randn_like", [noise["pi"], noise["next"], proposals]),
        feeding(torch, "rand", [(noise["uniform"] + 1) / 2]),  # ours scales U[0, 1) to the box
    ):
        metrics = agent.update(transitions(fx["batch"]))
    assert n == agent.cfg.num_samples
    return agent, metrics, grads


def test_cql_temperature_and_actor_step_match_corl():
    fx = load_conformance("corl_cql")
    out, after, ref_grads = fx["out"], fx["after"], unpack(fx["grads"])
    act_dim = fx["batch"]["action"].shape[1]
    agent, metrics, grads = run_cql(fx, freeze_actor=False)
    assert_rel_close(metrics["entropy"], -out["log_pi"], "entropy")
    assert_rel_close(grads["scalars"]["log_alpha"], ref_grads["log_alpha"], "temperature gradient")
    assert_rel_close(agent.log_alpha.detach(), after["log_alpha"], "log alpha after")
    assert_rel_close(metrics["actor_loss"], out["policy_loss"], "actor loss")
    ref_actor_grads = prefixed(ref_grads, "actor")
    for key in ("log_std_multiplier.constant", "log_std_offset.constant"):
        ref_actor_grads.pop(key)
    compare(grads["actor"], cql_actor(ref_actor_grads, act_dim), "actor gradient")
    # Kept difference: CORL also learns the log-std multiplier and offset (cql.py:340-341, from the JAX CQL);
    # we have no such scalars, so our log-std bias after the step lacks the offset's own step.
    ref_after = unpack(after["actor"])
    offset_after = float(ref_after.pop("log_std_offset.constant"))
    assert float(ref_after.pop("log_std_multiplier.constant")) != 1.0 and offset_after != -1.0
    compare(params_of(agent.actor), cql_actor(ref_after, act_dim, offset=-1.0), "actor after (offset's step undone)")


@pytest.mark.parametrize("name", ["corl_cql", "corl_cql_lagrange"])
def test_cql_critic_step_matches_corl_with_proposals_from_the_actor_before_its_step(name: str):
    """CORL computes the critic loss before the actor's step (cql.py:741-768, as the CQL authors); ours after
    it (as OfflineRL-Kit). With the actor's step frozen the two orders coincide."""
    fx = load_conformance(name)
    cfg, out, after, ref_grads = fx["config"], fx["out"], fx["after"], unpack(fx["grads"])
    agent, metrics, grads = run_cql(fx, freeze_actor=True)
    assert_rel_close(metrics["bellman_loss"], out["qf1_loss"] + out["qf2_loss"], "Bellman error")
    gaps = torch.tensor([out["cql_qf1_diff"], out["cql_qf2_diff"]])
    assert_rel_close(metrics["cql_gap"], gaps.mean(), "conservative gap")
    assert_rel_close(metrics["cql_loss"], out["cql_min_qf1_loss"] + out["cql_min_qf2_loss"], "conservative loss")
    critic_loss = out["qf1_loss"] + out["qf2_loss"] + out["cql_min_qf1_loss"] + out["cql_min_qf2_loss"]
    assert_rel_close(metrics["critic_loss"], critic_loss, "critic loss")
    # With the Lagrange multiplier, CORL's alpha' = exp of a float32 scalar (cql.py:419-425) scales the gap.
    floor = 1e-3 if cfg["lagrange"] else 0.0
    compare(grads["critic"], cql_critic(ref_grads), "critic gradient", floor=floor)
    critics = flat_named({n: unpack(after[n]) for n in ("critic_1", "critic_2", "target_critic_1", "target_critic_2")})
    compare(params_of(agent.critic), cql_critic(critics), "critics after")
    compare(
        params_of(agent.target_critic), cql_critic(critics, ("target_critic_1", "target_critic_2")), "targets after"
    )
    if cfg["lagrange"]:
        assert_rel_close(metrics["cql_alpha"], out["alpha_prime"], "alpha'")
        assert_rel_close(grads["scalars"]["log_alpha_prime"], ref_grads["log_alpha_prime"], "alpha' gradient")
        assert_rel_close(agent.log_cql_alpha.detach(), after["log_alpha_prime"], "log alpha' after")

"""MOBILE's penalty, RAMBO's adversarial model step and COMBO against OfflineRL-Kit
(fixtures from ``benchmarks/conformance/offlinerlkit_model_based.py``).

Each test loads the reference's weights into our classes, feeds the same batches and the same random
draws, and compares penalties, targets, every loss term, the gradients each optimiser stepped on and every
parameter after the step, at relative 1e-5 in float64.

Randomness is shared: the reference recorded each standard-normal draw (model samples, policy samples) and
CQL's uniform actions and RAMBO's elite choice; here ``torch.randn_like`` (our actor), ``torch.randn`` and
``torch.randint`` (our ensemble's draws) and ``torch.rand`` (CQL's uniform proposals) hand them back in the
order our code asks for them, each checked against the shape it was asked for.

Kept deviations (each applied here where a comparison needs it, and asserted on its own):

- the policy's log-density: ours is exact, ``offlinerlkit/modules/dist_module.py:27-28`` adds 1e-6 inside
  ``log(1 - tanh(u)^2)`` (patched in for the update comparisons);
- SAC (MOBILE, RAMBO): ``mobile.py:153-197`` and ``sac.py:92-128`` step the critics first, then the actor on
  the stepped critics, then the temperature; ours steps the temperature, then the actor (SAC-N/EDAC order),
  so those tests drive our loss functions in the reference order; ``sac.py:126``/``mobile.py:195`` clamp
  the next alpha at 1, ours does not;
- MOBILE: ``mobile.py:176`` averages the critic loss over the critics, ours sums it (SAC-N); ``mobile.py:171``
  backs up without the entropy term (``run_mobile.py:56``), as ours does with the mobile preset's
  ``deterministic_backup: true``; ``mobile.py:174`` clamps targets at 0, ours does not;
- COMBO: ``combo.py:185-189`` (as ``cql.py:154-158``) leaves ``value.reshape`` unassigned, so the logsumexp runs
  over the 3 proposals of one (state, draw) row instead of all 3n proposals of a state (our default, the CQL
  authors' code and CORL); the update is compared with ours set to ``logsumexp_over="draw"``, that grouping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from mbrl.agents.base import AgentSpec
from mbrl.agents.combo import COMBOAgent, COMBOConfig
from mbrl.agents.rambo import RAMBOAgent, RAMBOConfig
from mbrl.agents.sac import SACAgent, SACConfig
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble
from torch import nn

from mbrl.data.transitions import Transitions
from mbrl.filters.penalties import MOBILEPenalty, MOBILEPenaltyConfig
from mbrl.nn import TanhGaussianActor
from tests.helpers import (
    LargestErrors,
    fed,
    load_conformance,
    offlinerlkit_log_density,
    record_grads,
    reference_transitions,
    sac_step_in_reference_order,
)

pytestmark = pytest.mark.usefixtures("float64")

ERRORS = LargestErrors("offlinerlkit_mb_", where=False)
close = ERRORS.close


@pytest.fixture(scope="module", autouse=True)
def report_largest_errors() -> Iterator[None]:
    yield
    ERRORS.report()


@pytest.fixture
def reference_log_density(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TanhGaussianActor, "_log_density", offlinerlkit_log_density)


# -- shared draws -----------------------------------------------------------------------------------------


# -- weights: the reference's names -> ours ---------------------------------------------------------------


def actor_state(ref: dict[str, torch.Tensor], actor: TanhGaussianActor) -> dict[str, torch.Tensor]:
    """``ActorProb(MLP, TanhDiagGaussian(conditioned_sigma=True))`` -> our actor (buffers kept)."""
    out = dict(actor.state_dict())
    for key, value in ref.items():
        key = key.replace("backbone.model.", "trunk.").replace("dist_net.mu.", "mu.")
        out[key.replace("dist_net.sigma.", "log_std.")] = value
    return out


def critic_state(refs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Separate ``Critic(MLP)`` networks (member ``j`` = ``refs[j]``) -> our ``VectorizedCritic``: weights
    ``[out, in]`` become ``[N, in, out]``, biases ``[N, 1, out]``."""
    names = [k[: -len(".weight")] for k in refs[0] if k.endswith(".weight")]  # backbone.model.0, ..., last
    out = {}
    for i, name in enumerate(names):
        out[f"net.{2 * i}.weight"] = torch.stack([r[f"{name}.weight"].T for r in refs])
        out[f"net.{2 * i}.bias"] = torch.stack([r[f"{name}.bias"][None] for r in refs])
    return out


def members(ref: dict[str, torch.Tensor], n: int, prefix: str = "{}.") -> list[dict[str, torch.Tensor]]:
    """Split an ``nn.ModuleList`` state (keys ``0.backbone...``) or the dict of grads into members."""
    return [{k[len(prefix.format(j)) :]: v for k, v in ref.items() if k.startswith(prefix.format(j))} for j in range(n)]


def dynamics_state(ref: dict[str, torch.Tensor], model: GaussianEnsemble) -> dict[str, torch.Tensor]:
    """``EnsembleDynamicsModel`` -> our ``GaussianEnsemble`` (same ``[E, in, out]`` layout), identity scaler."""
    out = dict(model.state_dict())
    for key, value in ref.items():
        out[key.replace("backbones.", "hidden.").replace("output_layer.", "output.")] = value
    return out


def ensemble(cfg: dict[str, Any], fx_state: dict[str, torch.Tensor], termination: str | None) -> GaussianEnsemble:
    config = EnsembleConfig(
        ensemble_size=cfg["ensemble"],
        num_elites=len(cfg["elites"]),
        hidden_sizes=tuple(cfg["dyn_hidden"]),
        weight_decay=tuple(cfg["weight_decay"]),
        logvar_loss_coef=cfg.get("logvar_loss_coef", 0.01),
        termination=termination,
    )
    model = GaussianEnsemble(cfg["obs_dim"], cfg["act_dim"], config).double()
    model.load_state_dict(dynamics_state(fx_state, model))
    assert model.elites.tolist() == cfg["elites"]
    return model


def spec(cfg: dict[str, Any]) -> AgentSpec:
    return AgentSpec(cfg["obs_dim"], cfg["act_dim"], (-1.0,) * cfg["act_dim"], (1.0,) * cfg["act_dim"])


def load_sac(agent: SACAgent, inputs: dict[str, Any], critics: list[str], targets: list[str]) -> None:
    for net in (agent.actor, agent.critic, agent.target_critic):
        net.double()
    agent.actor.load_state_dict(actor_state(inputs["actor"], agent.actor))
    agent.critic.load_state_dict(critic_state([inputs[c] for c in critics]))
    agent.target_critic.load_state_dict(critic_state([inputs[c] for c in targets]))
    with torch.no_grad():
        agent.log_alpha.copy_(inputs["log_alpha"].squeeze())


def transitions(b: dict[str, torch.Tensor]) -> Transitions:
    """An OfflineRL-Kit batch (rewards and terminals ``[n, 1]``) as ours."""
    return reference_transitions(
        b["observations"], b["actions"], b["rewards"].squeeze(1), b["next_observations"], b["terminals"].squeeze(1)
    )


def compare_critic(
    critic: nn.Module, refs: list[dict[str, torch.Tensor]], what: str, fixture: str, grads: dict | None = None
) -> None:
    """Our critic's parameters (or, with ``grads``, their recorded gradients) against the reference's."""
    for name, value in critic_state(refs).items():
        param = critic.get_parameter(name)
        close(param.detach() if grads is None else grads[id(param)], value, f"{what} {name}", fixture)


def compare_actor(
    actor: TanhGaussianActor, ref: dict[str, torch.Tensor], what: str, fixture: str, grads: dict | None = None
) -> None:
    for name, value in actor_state(ref, actor).items():
        if name in ("act_scale", "act_bias"):
            continue
        param = actor.get_parameter(name)
        close(param.detach() if grads is None else grads[id(param)], value, f"{what} {name}", fixture)


# -- MOBILE -----------------------------------------------------------------------------------------------


def mobile_agent(fx: dict[str, Any]) -> SACAgent:
    cfg = fx["config"]
    config = SACConfig(
        hidden_sizes=tuple(cfg["hidden"]), num_critics=2, actor_lr=cfg["actor_lr"], critic_lr=cfg["critic_lr"],
        alpha_lr=cfg["alpha_lr"], gamma=cfg["gamma"], tau=cfg["tau"], target_entropy=cfg["target_entropy"],
        deterministic_backup=True,  # the mobile preset's setting, run_mobile.py's default
    )  # fmt: skip
    agent = SACAgent(spec(cfg), config)
    inputs = fx["inputs"]  # MOBILE's critics are one nn.ModuleList: keys "0.backbone...", "1.backbone..."
    critics = {**{f"c{j}": c for j, c in enumerate(members(inputs["critics"], 2))},
               **{f"t{j}": c for j, c in enumerate(members(inputs["critics_old"], 2))}}  # fmt: skip
    load_sac(agent, {**inputs, **critics}, ["c0", "c1"], ["t0", "t1"])
    return agent


def test_mobile_penalty_equals_compute_lcb() -> None:
    """``compute_lcb`` (``mobile.py:133-144``): the elites' sampled next states, the target critics' min at the
    policy's action there, and the unbiased std over elites of the mean over draws; ours is the penalty
    ``MOBILEPenalty`` computes for the model rows, ``coef`` times that std (``mobile.py:173``). The reference
    computes it for the real rows too and zeroes them (``mobile.py:157``); ours only penalises model rows."""
    fx = load_conformance("offlinerlkit_mb_mobile")
    cfg, noise, out = fx["config"], fx["noise"], fx["outputs"]
    dyn, agent = ensemble(cfg, fx["inputs"]["dynamics"], None), mobile_agent(fx)
    fake = transitions(fx["inputs"]["fake"])
    n_real, n = len(fx["inputs"]["real"]["rewards"]), cfg["num_samples"]
    dyn_noise = noise["dynamics"][:, :, n_real:]  # [draw, elite, model rows, obs+1]
    act_noise = noise["penalty_actor"][:, :, n_real:].reshape(-1, cfg["act_dim"])

    with fed(randn=[dyn_noise]):
        cand = dyn.sample_candidates(fake.obs, fake.act, n, torch.Generator())
    close(cand.next_obs.view(n, len(cfg["elites"]), -1, cfg["obs_dim"]), out["pred_next_obss"][:, :, n_real:],
          "sampled next states", "mobile")  # fmt: skip
    with fed(randn_like=[act_noise]):
        values = agent.value(cand.next_obs.reshape(-1, cfg["obs_dim"]))
    close(values.view(n, len(cfg["elites"]), -1), out["pred_next_qs"][:, :, n_real:], "next-state values", "mobile")

    penalty = MOBILEPenalty(MOBILEPenaltyConfig(coef=cfg["penalty_coef"], samples_per_elite=n))
    with fed(randn=[dyn_noise], randn_like=[act_noise]):
        ours = penalty(fake.obs, fake.act, dyn, agent.value, torch.Generator())
    close(ours, cfg["penalty_coef"] * out["penalty_std"][n_real:], "penalty", "mobile")
    assert (out["penalty"][:n_real] == 0).all() and out["penalty_std"][:n_real].gt(0).all()


def test_mobile_update_in_reference_order(reference_log_density: None) -> None:
    """One MOBILE learn step (``mobile.py:146-208``) through our loss functions in the reference's order, on
    the model rewards our training loop penalises: target, critic loss, actor and temperature losses,
    gradients and every parameter after the step. Documented differences applied here: the deterministic
    backup clamped at 0 as the target, the critic loss averaged over the two critics."""
    fx = load_conformance("offlinerlkit_mb_mobile")
    cfg, noise, out = fx["config"], fx["noise"], fx["outputs"]
    agent = mobile_agent(fx)
    real, fake = transitions(fx["inputs"]["real"]), transitions(fx["inputs"]["fake"])
    n_real = len(real)
    fake = Transitions(fake.obs, fake.act, fake.rew - cfg["penalty_coef"] * out["penalty_std"][n_real:],
                       fake.next_obs, fake.terminated, fake.truncated)  # fmt: skip
    batch = Transitions.cat([real, fake])
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt)
    alpha = agent.log_alpha.exp().detach()
    not_done = cfg["gamma"] * (~batch.terminated).double()

    # Target: the deterministic backup (the mobile preset's), so alpha plays no part in it.
    with fed(randn_like=[noise["target_actor"]]):
        deterministic = agent.td_target(batch.next_obs, batch.rew, batch.terminated, alpha)
    close(deterministic, batch.rew + not_done * out["next_q"], "deterministic backup", "mobile")
    target = deterministic.clamp(min=0.0)  # mobile.py:174
    assert (deterministic < 0).any()  # the clamp acts on this batch
    close(target, out["target_q"], "target (clamped)", "mobile")

    got = sac_step_in_reference_order(agent, batch, target, noise["actor"], critic_scale=0.5)
    close(got["q"], out["qs"], "Q", "mobile")
    close(got["critic_loss"], 2 * out["critic_loss"], "critic loss (sum over 2 critics = 2 x mean)", "mobile")
    close(got["actor_loss"], out["actor_loss"], "actor loss", "mobile")
    close(got["alpha_loss"], out["alpha_loss"], "temperature loss", "mobile")
    compare_critic(agent.critic, members(fx["grads"], 2, "critics.{}."), "gradient", "mobile", grads)
    compare_actor(agent.actor, {k[6:]: v for k, v in fx["grads"].items() if k.startswith("actor.")}, "gradient",
                  "mobile", grads)  # fmt: skip
    close(grads[id(agent.log_alpha)], fx["grads"]["log_alpha"], "gradient log_alpha", "mobile")
    after = fx["after"]
    compare_critic(agent.critic, members(after["critics"], 2), "after", "mobile")
    compare_critic(agent.target_critic, members(after["critics_old"], 2), "after (target)", "mobile")
    compare_actor(agent.actor, after["actor"], "after", "mobile")
    close(agent.log_alpha.detach(), after["log_alpha"], "after log_alpha", "mobile")
    close(agent.log_alpha.exp().detach().clamp(max=1.0), out["alpha_after"], "alpha used next", "mobile")


def test_mobile_update_is_our_components_in_our_order() -> None:
    """``SACAgent.update`` is the components compared above in our order (temperature, then the actor and the
    target with the stepped temperature, critics on the stepped actor's next actions, Polyak), so the
    reference comparison covers the update itself."""
    fx = load_conformance("offlinerlkit_mb_mobile")
    noise = fx["noise"]
    real, fake = transitions(fx["inputs"]["real"]), transitions(fx["inputs"]["fake"])
    ours, manual = mobile_agent(fx), mobile_agent(fx)
    with fed(randn_like=[noise["actor"], noise["target_actor"]]):
        metrics = ours.update(real, fake)
    batch = Transitions.cat([real, fake])
    with fed(randn_like=[noise["actor"]]):
        q_pi, log_prob = manual.actor_objective(batch.obs)
    alpha_loss = -(manual.log_alpha * (log_prob.detach() + manual.target_entropy)).mean()
    manual.alpha_opt.zero_grad()
    alpha_loss.backward()
    manual.alpha_opt.step()
    alpha = manual.log_alpha.exp().detach()
    actor_loss = (alpha * log_prob - q_pi).mean()
    manual.actor_opt.zero_grad()
    actor_loss.backward()
    manual.actor_opt.step()
    with fed(randn_like=[noise["target_actor"]]):
        target = manual.td_target(batch.next_obs, batch.rew, batch.terminated, alpha)
    critic_loss, _, _ = manual.critic_objective(batch.obs, batch.act, target)
    manual.critic_opt.zero_grad()
    critic_loss.backward()
    manual.critic_opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(manual.target_critic.parameters()), list(manual.critic.parameters()), manual.cfg.tau)
    close(metrics["critic_loss"], critic_loss.detach(), "update: critic loss", "mobile")
    close(metrics["actor_loss"], actor_loss.detach(), "update: actor loss", "mobile")
    for (name, a), b in zip(ours.state_dict().items(), manual.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


# -- RAMBO ------------------------------------------------------------------------------------------------


def rambo_agent(fx: dict[str, Any]) -> tuple[RAMBOAgent, GaussianEnsemble]:
    cfg, inputs = fx["config"], fx["inputs"]
    config = RAMBOConfig(
        hidden_sizes=tuple(cfg["hidden"]), num_critics=2, actor_lr=cfg["actor_lr"], critic_lr=cfg["critic_lr"],
        alpha_lr=cfg["alpha_lr"], gamma=cfg["gamma"], tau=cfg["tau"], target_entropy=cfg["target_entropy"],
        adv_weight=cfg["adv_weight"], adv_lr=cfg["adv_lr"], adv_batch_size=len(inputs["obs"]), bc_steps=0,
    )  # fmt: skip
    agent = RAMBOAgent(spec(cfg), config)
    load_sac(agent, inputs, ["critic1", "critic2"], ["critic1_old", "critic2_old"])
    dyn = ensemble(cfg, inputs["dynamics"], "hopper")
    # The supervised rows stand in for the dataset: the adversarial step is given its rows directly.
    agent.attach(transitions({**inputs["sl"], "terminals": torch.zeros(len(inputs["obs"]), 1)}), dyn)
    return agent, dyn


def test_rambo_adversarial_model_step() -> None:
    """``dynamics_step_and_forward`` (``rambo.py:129-207``): the sampled transition, its log-likelihood under the
    uniform mixture of the elites, the normalised advantage from the current critics at the policy's mean
    next action, the adversarial loss ``mean(log p * A)``, the supervised loss, the model's gradients and its
    parameters after one Adam step. Ours: ``RAMBOAgent.adversarial_step`` with the same draw."""
    fx = load_conformance("offlinerlkit_mb_rambo")
    cfg, inputs, adv = fx["config"], fx["inputs"], fx["adversarial"]
    agent, dyn = rambo_agent(fx)
    obs, act, sl = (
        inputs["obs"],
        inputs["act"],
        transitions({**inputs["sl"], "terminals": torch.zeros(len(inputs["obs"]), 1)}),
    )
    member = adv["member"]
    # Our sample draws an elite position, then one standard normal per row: those of the reference's draw.
    position = torch.tensor([cfg["elites"].index(int(m)) for m in member])
    row_noise = adv["noise"][member, torch.arange(len(member))]
    grads = record_grads(agent.dynamics_opt)
    captured: dict[str, Any] = {}
    sample = dyn.sample

    def recording_sample(*args: Any, **kwargs: Any) -> Any:
        captured["step"] = sample(*args, **kwargs)
        return captured["step"]

    dyn.sample = recording_sample
    with fed(randint=[position], randn=[row_noise]):
        next_obs, metrics = agent.adversarial_step(obs, act, sl)
    step = captured["step"]
    close(next_obs, adv["next_obs"], "sampled next states", "rambo")
    close(step.reward, adv["reward"], "sampled rewards", "rambo")
    assert torch.equal(step.terminated, adv["terminals"].bool()) and 0 < int(step.terminated.sum()) < len(obs)
    close(metrics["adv_log_prob"], adv["log_prob"].mean(), "mixture log-likelihood (mean)", "rambo")
    close(metrics["adv_value"], adv["value"].mean(), "advantage's value (mean)", "rambo")
    close(metrics["adv_loss"], adv["adv_loss"], "adversarial loss", "rambo")
    # The supervised term and the total, from the model's own loss at the initial weights.
    fresh_agent, fresh = rambo_agent(fx)
    targets = torch.cat([sl.next_obs - sl.obs, sl.rew[:, None]], dim=1)
    supervised, _ = fresh.supervised_loss(fresh.model_inputs(sl.obs, sl.act), targets)
    close(supervised, adv["sl_loss"], "supervised loss", "rambo")
    close(cfg["adv_weight"] * metrics["adv_loss"] + supervised, adv["all_loss"], "total model loss", "rambo")
    for name, value in dynamics_grads(adv["grads"]).items():
        close(grads[id(dyn.get_parameter(name))], value, f"model gradient {name}", "rambo")
    for name, value in dynamics_state(adv["after"], dyn).items():
        if name in dict(dyn.named_parameters()):
            close(dyn.get_parameter(name).detach(), value, f"model after {name}", "rambo")
    del fresh_agent


def dynamics_grads(ref: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in ref.items():
        out[key.removeprefix("dynamics.").replace("backbones.", "hidden.").replace("output_layer.", "output.")] = value
    return out


def test_rambo_log_likelihood_per_row() -> None:
    """The mixture log-likelihood and the advantage row by row (``rambo.py:157-181``), from the model's
    prediction at the initial weights and the recorded draw."""
    fx = load_conformance("offlinerlkit_mb_rambo")
    inputs, adv = fx["inputs"], fx["adversarial"]
    agent, dyn = rambo_agent(fx)
    obs, act = inputs["obs"], inputs["act"]
    drawn = torch.cat([adv["next_obs"] - obs, adv["reward"][:, None]], dim=1)
    mean, logvar = dyn.predict(obs, act)
    elites = dyn.elites
    log_prob = torch.distributions.Normal(mean[elites], (0.5 * logvar[elites]).exp()).log_prob(drawn).sum(-1)
    close(torch.logsumexp(log_prob, 0) - math.log(len(elites)), adv["log_prob"], "mixture log-likelihood", "rambo")
    with torch.no_grad():
        next_act, _ = agent.actor(adv["next_obs"], deterministic=True)
        next_v = agent.critic(adv["next_obs"], next_act).min(0).values
        value = adv["reward"] + agent.cfg.gamma * (~adv["terminals"].bool()).double() * next_v
        advantage = value - agent.critic(obs, act).min(0).values
    close(value, adv["value"], "value", "rambo")
    close((advantage - advantage.mean()) / (advantage.std() + 1e-6), adv["advantage"], "advantage", "rambo")


def test_rambo_sac_update_in_reference_order(reference_log_density: None) -> None:
    """RAMBO's policy and critic step is ``SACPolicy.learn`` on the real + model batch (``sac.py:88-140``), driven
    through our loss functions in its order; ``sac.py:126``'s clamp of the next alpha at 1 is asserted."""
    fx = load_conformance("offlinerlkit_mb_rambo")
    inputs, sac = fx["inputs"], fx["sac"]
    agent, _ = rambo_agent(fx)
    batch = Transitions.cat([transitions(inputs["sac_real"]), transitions(inputs["sac_fake"])])
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt)
    alpha = agent.log_alpha.exp().detach()
    with fed(randn_like=[sac["noise"]["target_actor"]]):
        target = agent.td_target(batch.next_obs, batch.rew, batch.terminated, alpha)
    close(target, sac["target_q"], "target", "rambo")
    got = sac_step_in_reference_order(agent, batch, target, sac["noise"]["actor"])
    close(got["critic_loss"], sac["critic1_loss"] + sac["critic2_loss"], "critic loss", "rambo")
    close(got["actor_loss"], sac["actor_loss"], "actor loss", "rambo")
    close(got["alpha_loss"], sac["alpha_loss"], "temperature loss", "rambo")
    g = sac["grads"]
    split = [{k[len(c) + 1 :]: v for k, v in g.items() if k.startswith(c + ".")} for c in ("critic1", "critic2")]
    compare_critic(agent.critic, split, "gradient", "rambo", grads)
    compare_actor(agent.actor, {k[6:]: v for k, v in g.items() if k.startswith("actor.")}, "gradient", "rambo", grads)
    close(grads[id(agent.log_alpha)], g["log_alpha"], "gradient log_alpha", "rambo")
    after = sac["after"]
    compare_critic(agent.critic, [after["critic1"], after["critic2"]], "after", "rambo")
    compare_critic(agent.target_critic, [after["critic1_old"], after["critic2_old"]], "after (target)", "rambo")
    compare_actor(agent.actor, after["actor"], "after", "rambo")
    close(agent.log_alpha.detach(), after["log_alpha"], "after log_alpha", "rambo")
    # Kept deviation: sac.py:126 uses min(exp(log_alpha), 1) from the next step on; ours exp(log_alpha) > 1.
    assert agent.log_alpha.exp() > 1.1
    close(agent.log_alpha.exp().detach().clamp(max=1.0), sac["alpha_after"], "alpha used next (clamped)", "rambo")


# -- COMBO ------------------------------------------------------------------------------------------------


def combo_agent(fx: dict[str, Any], case: dict[str, Any], logsumexp_over: str = "state") -> COMBOAgent:
    o = case["options"]
    cfg = {
        "obs_dim": case["inputs"]["real"]["observations"].shape[1],
        "act_dim": case["inputs"]["real"]["actions"].shape[1],
    }
    config = COMBOConfig(
        hidden_sizes=(8, 8), num_critics=2, actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4, gamma=0.99, tau=0.005,
        target_entropy=-float(cfg["act_dim"]), cql_weight=o["cql_weight"], temperature=o["temperature"],
        num_samples=case["num_repeat"], with_lagrange=o["with_lagrange"], target_action_gap=10.0,
        cql_alpha_lr=3e-4, deterministic_backup=True, rho_s=o["rho_s"], logsumexp_over=logsumexp_over,
    )  # fmt: skip
    agent = COMBOAgent(spec(cfg), config)
    load_sac(agent, case["inputs"], ["critic1", "critic2"], ["critic1_old", "critic2_old"])
    return agent


@pytest.mark.parametrize("name", ["mix", "model_lagrange"])
def test_combo_update(name: str, reference_log_density: None) -> None:
    """One ``COMBOPolicy.learn`` step (``combo.py:110-241``) against ``COMBOAgent.update``: the order is the same
    (actor, temperature, critics on the stepped actor's next actions, Lagrange multiplier, Polyak). Compared:
    actor, temperature and critic losses, the conservative terms, every gradient and parameter after the
    step, ours with ``logsumexp_over="draw"``: the reference's logsumexp grouping."""
    fx = load_conformance("offlinerlkit_mb_combo")
    case = fx[name]
    noise, out, o = case["noise"], case["outputs"], case["options"]
    agent = combo_agent(fx, case, "draw")
    real, fake = transitions(case["inputs"]["real"]), transitions(case["inputs"]["fake"])
    m = len(fake) if o["rho_s"] == "model" else len(real) + len(fake)
    n, act_dim = case["num_repeat"], real.act.shape[1]
    uniform = ((noise["random_actions"] + 1) / 2).view(m, n, act_dim)  # ours: -1 + 2 * U[0, 1)
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt, agent.cql_alpha_opt)
    seen: dict[str, torch.Tensor] = {}
    td_target = agent.td_target

    def recording_target(*args: Any) -> torch.Tensor:
        seen["target"] = td_target(*args)
        return seen["target"]

    agent.td_target = recording_target
    pi_noise = torch.cat([noise["obs_pi"], noise["next_obs_pi"]])
    with fed(randn_like=[noise["actor"], noise["target_actor"], pi_noise], rand=[uniform]):
        metrics = agent.update(real, fake)

    close(metrics["actor_loss"], out["actor_loss"], "actor loss", "combo")
    close(seen["target"], out["target_q"], "target", "combo")
    conservative = out["conservative_loss1"] + out["conservative_loss2"]
    close(metrics["cql_loss"], conservative, "conservative loss (both critics)", "combo")
    close(metrics["critic_loss"], out["critic1_loss"] + out["critic2_loss"], "critic loss", "combo")
    if o["with_lagrange"]:
        close(metrics["cql_alpha"], out["cql_alpha"], "Lagrange multiplier", "combo")
        close(grads[id(agent.log_cql_alpha)], case["grads"]["cql_log_alpha"], "gradient cql_log_alpha", "combo")
    g = case["grads"]
    split = [{k[len(c) + 1 :]: v for k, v in g.items() if k.startswith(c + ".")} for c in ("critic1", "critic2")]
    compare_critic(agent.critic, split, "gradient", "combo", grads)
    compare_actor(agent.actor, {k[6:]: v for k, v in g.items() if k.startswith("actor.")}, "gradient", "combo", grads)
    close(grads[id(agent.log_alpha)], g["log_alpha"], "gradient log_alpha", "combo")
    after = case["after"]
    compare_critic(agent.critic, [after["critic1"], after["critic2"]], "after", "combo")
    compare_critic(agent.target_critic, [after["critic1_old"], after["critic2_old"]], "after (target)", "combo")
    compare_actor(agent.actor, after["actor"], "after", "combo")
    close(agent.log_alpha.detach(), after["log_alpha"], "after log_alpha", "combo")
    close(agent.log_cql_alpha.detach(), after["cql_log_alpha"].squeeze(), "after cql_log_alpha", "combo")


@pytest.mark.parametrize("name", ["mix", "model_lagrange"])
def test_combo_conservative_gap_grouping(name: str, reference_log_density: None) -> None:
    """Kept default (``combo.py:185-189``): the reference's proposal values ``cat_q`` (``Q - log density`` of
    the pi(s), pi(s') and uniform proposals, ``[M * n, 3]``, recorded) enter a logsumexp per row of 3; ours
    (``CQLAgent.conservative_gap``, unpatched, on our own proposals from the same draws) is the logsumexp over
    all 3n proposals of a state. Ours equals that regrouping of the reference's values, and is larger."""
    fx = load_conformance("offlinerlkit_mb_combo")
    case = fx[name]
    o, out, noise, n = case["options"], case["outputs"], case["noise"], case["num_repeat"]
    t, w = o["temperature"], o["cql_weight"]
    agent = combo_agent(fx, case)
    # The reference samples the proposals after its actor step, with the critics not yet stepped.
    agent.actor.load_state_dict(actor_state(case["after"]["actor"], agent.actor))
    real, fake = transitions(case["inputs"]["real"]), transitions(case["inputs"]["fake"])
    batch = Transitions.cat([real, fake])
    down, up = agent.conservative_rows(len(real), len(fake))
    m, act_dim = batch.obs[down].shape[0], real.act.shape[1]
    uniform = ((noise["random_actions"] + 1) / 2).view(m, n, act_dim)
    with fed(randn_like=[torch.cat([noise["obs_pi"], noise["next_obs_pi"]])], rand=[uniform]):
        actions, log_density = agent.proposals(batch.obs[down], batch.next_obs[down])
    with torch.no_grad():
        gap = agent.conservative_gap(batch.obs[down], actions, log_density, agent.critic(batch.obs[up], batch.act[up]))
    for j in (1, 2):
        cat_q = out[f"cat_q{j}"]  # [M * n, 3], rows state-major
        per_row = t * torch.logsumexp(cat_q / t, dim=1).mean()
        per_state = (t * torch.logsumexp(cat_q.reshape(m, n * 3) / t, dim=1)).mean()
        assert per_state > per_row
        # conservative_loss = w * (per_row - mean Q(real pairs)), with Lagrange alpha' * (that - threshold).
        weighted = out[f"conservative_loss{j}"]
        if o["with_lagrange"]:
            weighted = weighted / out["cql_alpha"] + 10.0
        q_real = per_row - weighted / w
        close(gap[j - 1], per_state - q_real, f"gap over all 3n proposals, critic {j}", "combo")

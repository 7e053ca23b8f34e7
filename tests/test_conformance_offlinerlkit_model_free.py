"""Our model-free agents against OfflineRL-Kit's (``benchmarks/conformance/offlinerlkit_model_free.py``).

Each test loads the reference's weights into our agent, feeds the same batch and the same random draws,
runs our update and compares targets, loss terms, the gradients each optimiser stepped on, and every
parameter afterwards (target networks included) at relative 1e-5 in float64.

Randomness is shared, not avoided: the policy's reparameterised draws are handed to our actor by
patching ``torch.randn_like`` with a lookup keyed by the Gaussian mean it is asked to perturb (the
reference recorded each draw with its mean), CQL's uniform actions by patching ``torch.rand``, and
TD3+BC's smoothing draws in call order.

Kept deviations (each applied here where a comparison needs it, and asserted on its own):

- log-density of the tanh-squashed policy: ours is exact, ``offlinerlkit/modules/dist_module.py:27-28``
  adds 1e-6 inside ``log(1 - tanh(u)^2)``;
- SAC update order: ``offlinerlkit/policy/model_free/sac.py:92-126`` steps critics, actor (on the stepped
  critics), temperature; ours (one class for SAC, SAC-N and EDAC) steps temperature, actor, critics;
- temperature: ``sac.py:126``/``edac.py:110`` clamp the alpha they use next at 1, ours never clamps; and
  ``edac.py:99``'s actor loss reads the alpha before its step, ours the one after (as the target in both);
- CQL: ``cql.py:153-157`` leaves ``value.reshape`` unassigned, so its logsumexp runs over the 3 proposals of
  one (state, draw) row instead of all 3n proposals of a state (our default, the authors' code and CORL); the
  update is compared with ours set to ``logsumexp_over="draw"``, which computes the reference's grouping;
- TD3+BC's delay phase: ``td3bc.py:107`` steps the actor on calls 1, 3, 5, ...; ours (the authors' code) on
  calls 2, 4, 6, ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from mbrl.agents import make_agent
from mbrl.agents.base import AgentSpec
from mbrl.agents.bc import BCConfig
from mbrl.agents.cql import CQLConfig
from mbrl.agents.iql import IQLConfig
from mbrl.agents.sac import SACConfig
from mbrl.agents.td3bc import TD3BCConfig
from torch import nn

from mbrl.data.transitions import Transitions
from mbrl.nn import TanhGaussianActor, TanhMeanGaussianActor
from tests.helpers import (
    LargestErrors,
    load_conformance,
    offlinerlkit_log_density,
    record_grads,
    reference_transitions,
    sac_step_in_reference_order,
)

OBS_DIM, ACT_DIM = 4, 3
SPEC = AgentSpec(obs_dim=OBS_DIM, act_dim=ACT_DIM, act_low=(-1.0,) * ACT_DIM, act_high=(1.0,) * ACT_DIM)

pytestmark = pytest.mark.usefixtures("float64")

ERRORS = LargestErrors("offlinerlkit_mf_")
close = ERRORS.close


@pytest.fixture(scope="module", autouse=True)
def report_largest_errors() -> Iterator[None]:
    yield
    ERRORS.report()


# -- weights: the reference's names <-> our parameters --------------------------------------------


@dataclass
class Slot:
    """One reference tensor inside one of our parameters: ``param[member]``, transposed for ``nn.Linear``."""

    param: torch.Tensor
    member: int | None = None
    transpose: bool = False

    def get(self, tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The reference-shaped view of ``tensor`` (our parameter, or its gradient)."""
        x = tensor if self.member is None else tensor[self.member]
        return (x.transpose(-1, -2) if self.transpose else x).reshape(shape)

    def set(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            view = self.param if self.member is None else self.param[self.member]
            view.copy_((value.transpose(-1, -2) if self.transpose else value).reshape(view.shape))


def linears(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def mlp_slots(ours: list[nn.Linear], prefix: str, last: str) -> dict[str, Slot]:
    """``nn.Linear`` layers of ours against an OfflineRL-Kit ``MLP`` backbone (``<prefix>backbone.model.<2i>``)
    and its output layer ``<prefix><last>``."""
    names = [f"{prefix}backbone.model.{2 * i}" for i in range(len(ours) - 1)] + [f"{prefix}{last}"]
    slots = {}
    for name, layer in zip(names, ours, strict=True):
        slots[f"{name}.weight"], slots[f"{name}.bias"] = Slot(layer.weight), Slot(layer.bias)
    return slots


def tanh_actor_slots(actor: TanhGaussianActor, prefix: str = "actor.") -> dict[str, Slot]:
    """Our tanh-Gaussian actor against ``ActorProb(MLP, TanhDiagGaussian(conditioned_sigma=True))``."""
    slots = mlp_slots([*linears(actor.trunk), actor.mu], prefix, "dist_net.mu")
    slots[f"{prefix}dist_net.sigma.weight"] = Slot(actor.log_std.weight)
    slots[f"{prefix}dist_net.sigma.bias"] = Slot(actor.log_std.bias)
    return slots


def twin_critic_slots(critic: nn.Module, names: tuple[str, ...]) -> dict[str, Slot]:
    """Our ``VectorizedCritic`` (member ``j``) against separate ``Critic(MLP)`` networks ``names[j]``."""
    layers = [m for m in critic.net if hasattr(m, "ensemble_size")]
    slots = {}
    for j, name in enumerate(names):
        prefixes = [f"{name}.backbone.model.{2 * i}" for i in range(len(layers) - 1)] + [f"{name}.last"]
        for prefix, layer in zip(prefixes, layers, strict=True):
            slots[f"{prefix}.weight"] = Slot(layer.weight, j, transpose=True)
            slots[f"{prefix}.bias"] = Slot(layer.bias, j)
    return slots


def load(slots: dict[str, Slot], params: dict[str, torch.Tensor]) -> None:
    """Copy the reference's initial weights into ours; every reference tensor must have a slot."""
    missing = sorted(set(params) - set(slots))
    assert not missing, f"reference tensors without a counterpart: {missing}"
    for name, value in params.items():
        slots[name].set(value)


def compare_params(slots: dict[str, Slot], ref: dict[str, torch.Tensor], fixture: str, what: str) -> None:
    for name, value in ref.items():
        close(slots[name].get(slots[name].param.detach(), value.shape), value, f"{what} {name}", fixture)


def compare_grads(
    slots: dict[str, Slot], ours: dict[int, torch.Tensor], ref: dict[str, dict[str, torch.Tensor]], fixture: str
) -> None:
    """Every gradient the reference stepped on against ours, found through the slots."""
    for label, grads in ref.items():
        for name, value in grads.items():
            slot = slots[name]
            close(slot.get(ours[id(slot.param)], value.shape), value, f"{label} gradient {name}", fixture)


def transitions(batch: dict[str, torch.Tensor]) -> Transitions:
    return reference_transitions(batch["obs"], batch["act"], batch["rew"], batch["next_obs"], batch["terminated"])


# -- randomness --------------------------------------------------------------------------------------


class SharedDraws:
    """``torch.randn_like(mu)`` for our actor: the reference's standard normal draws, found by the mean.

    Our actor perturbs the mean ``mu [B, A]`` it computed; the reference recorded each draw with the mean
    it perturbed. A call of ours may cover several reference calls back to back (CQL samples at ``s`` and
    ``s'`` in one pass), so rows are matched segment by segment, each recorded draw used once.
    """

    def __init__(self, noise: dict[str, list[torch.Tensor]]) -> None:
        self.mu, self.eps = noise["mu"], noise["eps"]
        self.used = [False] * len(self.mu)

    def __call__(self, like: torch.Tensor, **kwargs) -> torch.Tensor:
        out, start = [], 0
        while start < like.shape[0]:
            for i, mu in enumerate(self.mu):
                rows = like[start : start + mu.shape[0]].detach()
                if not self.used[i] and rows.shape == mu.shape and torch.allclose(rows, mu, rtol=1e-9, atol=1e-12):
                    self.used[i] = True
                    out.append(self.eps[i])
                    start += mu.shape[0]
                    break
            else:
                raise AssertionError(f"no reference draw recorded for a policy mean at rows {start}:")
        return torch.cat(out).to(like)

    def all_used(self) -> bool:
        return all(self.used)


@pytest.fixture
def reference_log_density(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TanhGaussianActor, "_log_density", offlinerlkit_log_density)


def test_tanh_log_density_is_exact() -> None:
    """Kept deviation (``dist_module.py:27-28``): on the reference's first EDAC draw, its log-density equals
    ours with its ``+ 1e-6`` inside the log, and ours (exact) exceeds it by ``sum log(1 - t^2 + 1e-6) -
    log(1 - t^2)``, ``t = tanh(u)``."""
    fx = load_conformance("offlinerlkit_mf_edac")
    actor = TanhGaussianActor(OBS_DIM, ACT_DIM, (8, 8, 8), SPEC.act_low, SPEC.act_high).double()
    load({k: v for k, v in tanh_actor_slots(actor).items()}, {k: v for k, v in fx["init"].items() if "actor" in k})
    mu, log_std = actor._head(fx["batch"]["obs"])
    u = mu + log_std.exp() * fx["noise"]["eps"][0]
    ref = fx["locals"]["log_probs"].squeeze(-1) + ACT_DIM  # edac.py:105 added the target entropy -|A|
    close(offlinerlkit_log_density(actor, u, mu, log_std), ref, "log-density, reference form", "edac")
    t2 = torch.tanh(u).pow(2)
    gap = (torch.log(1 - t2) - torch.log(1 - t2 + 1e-6)).sum(-1)
    close(actor._log_density(u, mu, log_std) - ref, -gap, "exact minus reference log-density", "edac")
    assert (gap < 0).all() and (gap > -1e-4).all()  # ours is higher by 4e-6 to 6e-5 per row here


# -- SAC ------------------------------------------------------------------------------------------


def build_sac(fx: dict, hidden: tuple[int, ...], num_critics: int, eta: float = 0.0):
    cfg = fx["config"]
    agent = make_agent(
        "sac",
        SPEC,
        SACConfig(
            hidden_sizes=hidden,
            num_critics=num_critics,
            eta=eta,
            actor_lr=cfg["actor_lr"],
            critic_lr=cfg["critic_lr"],
            alpha_lr=cfg["alpha_lr"],
            init_alpha=cfg["init_alpha"],
            gamma=cfg["gamma"],
            tau=0.005,
        ),
    )
    for net in (agent.actor, agent.critic, agent.target_critic):
        net.double()
    return agent


def test_sac_in_the_reference_order(monkeypatch: pytest.MonkeyPatch, reference_log_density: None) -> None:
    """``sac.py``'s update order (critics, then the actor on the stepped critics, then the temperature),
    driven through our loss functions: targets, both critic losses, actor and temperature losses, gradients
    and every parameter after the update match; ``sac.py``'s clamp of the next alpha at 1 is asserted."""
    fx = load_conformance("offlinerlkit_mf_sac")
    agent = build_sac(fx, (8, 8), num_critics=2)
    names = ("critic1", "critic2")
    slots = {**tanh_actor_slots(agent.actor), **twin_critic_slots(agent.critic, names)}
    slots["log_alpha"] = Slot(agent.log_alpha)
    load(slots, fx["init"])
    agent.target_critic.load_state_dict(agent.critic.state_dict())
    slots |= twin_critic_slots(agent.target_critic, ("critic1_old", "critic2_old"))
    draws = SharedDraws(fx["noise"])
    monkeypatch.setattr(torch, "randn_like", draws)
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt)
    b, ref = transitions(fx["batch"]), fx["locals"]

    alpha = agent.log_alpha.exp().detach()
    target = agent.td_target(b.next_obs, b.rew, b.terminated, alpha)
    got = sac_step_in_reference_order(agent, b, target)

    assert draws.all_used()
    close(target, ref["target_q"], "target", "sac")
    close(got["q"][0], ref["q1"], "Q1", "sac")
    close(got["critic_loss"], ref["critic1_loss"] + ref["critic2_loss"], "critic loss", "sac")
    close(got["actor_loss"], ref["actor_loss"], "actor loss", "sac")
    close(got["alpha_loss"], ref["alpha_loss"], "temperature loss", "sac")
    compare_grads(slots, grads, fx["grads"], "sac")
    compare_params(slots, fx["after"], "sac", "after")
    # Kept deviation: sac.py:126 uses min(exp(log_alpha), 1) next; ours exp(log_alpha), here about 2.
    next_alpha = agent.log_alpha.exp().detach()
    assert next_alpha > 1.5
    close(next_alpha.clamp(max=1.0), fx["after_extra"]["alpha_used_next"], "alpha used next (clamped)", "sac")


# -- EDAC -----------------------------------------------------------------------------------------


def run_edac(fx: dict, monkeypatch: pytest.MonkeyPatch, *, reference_order: bool):
    """Our full update on ``fx``; ``reference_order`` defers our temperature step until after the actor's and
    hands the target the stepped alpha, clamped at 1: ``edac.py``'s actor loss reads the alpha before the
    step (line 99), its target the one after (lines 110, 128)."""
    agent = build_sac(fx, (8, 8, 8), num_critics=int(fx["config"]["num_critics"]), eta=fx["config"]["eta"])
    slots = tanh_actor_slots(agent.actor)
    for i, layer in enumerate(m for m in agent.critic.net if hasattr(m, "ensemble_size")):
        slots[f"critics.model.{2 * i}.weight"] = Slot(layer.weight)
        slots[f"critics.model.{2 * i}.bias"] = Slot(layer.bias)
    slots["log_alpha"] = Slot(agent.log_alpha)
    load(slots, fx["init"])
    agent.target_critic.load_state_dict(agent.critic.state_dict())
    for i, layer in enumerate(m for m in agent.target_critic.net if hasattr(m, "ensemble_size")):
        slots[f"critics_old.model.{2 * i}.weight"] = Slot(layer.weight)
        slots[f"critics_old.model.{2 * i}.bias"] = Slot(layer.bias)
    draws = SharedDraws(fx["noise"])
    monkeypatch.setattr(torch, "randn_like", draws)
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt)
    if reference_order:
        alpha_step, actor_step = agent.alpha_opt.step, agent.actor_opt.step

        def actor_then_alpha_step(*args, **kwargs):
            actor_step(*args, **kwargs)
            alpha_step()

        monkeypatch.setattr(agent.alpha_opt, "step", lambda *args, **kwargs: None)
        monkeypatch.setattr(agent.actor_opt, "step", actor_then_alpha_step)
    seen: dict[str, torch.Tensor] = {}
    td_target = agent.td_target

    def recording_target(next_obs, rew, terminated, alpha):
        if reference_order:  # edac.py:110 and 128: the alpha after its step, clamped at 1
            alpha = agent.log_alpha.exp().clamp(max=1.0).detach()
        seen["target"] = td_target(next_obs, rew, terminated, alpha)
        return seen["target"]

    monkeypatch.setattr(agent, "td_target", recording_target)
    metrics = agent.update(transitions(fx["batch"]))
    assert draws.all_used()
    return agent, slots, grads, metrics, seen


def test_edac_update(monkeypatch: pytest.MonkeyPatch, reference_log_density: None) -> None:
    """``edac.py`` with ``run_edac.py``'s settings (4 critics of 3 layers, eta 1, entropy in the target): the
    target, the diversity term, critic, actor and temperature losses, every gradient and parameter after our
    full update, with our temperature step moved after the actor's as ``edac.py`` has it."""
    fx = load_conformance("offlinerlkit_mf_edac")
    agent, slots, grads, metrics, seen = run_edac(fx, monkeypatch, reference_order=True)
    ref = fx["locals"]
    close(seen["target"], ref["target_q"], "target", "edac")
    close(metrics["diversity"], ref["grad_loss"], "diversity term", "edac")
    close(metrics["critic_loss"], ref["critics_loss"], "critic loss", "edac")
    close(metrics["actor_loss"], ref["actor_loss"], "actor loss", "edac")
    compare_grads(slots, grads, fx["grads"], "edac")
    compare_params(slots, fx["after"], "edac", "after")
    # edac.py:110 clamps the alpha it uses next at 1; not reached here, so ours (never clamped) agrees.
    assert fx["after_extra"]["alpha_used_next"].item() < 1
    close(agent.log_alpha.exp(), fx["after_extra"]["alpha_used_next"], "alpha used next", "edac")


def test_edac_actor_loss_reads_the_temperature_after_its_step(
    monkeypatch: pytest.MonkeyPatch, reference_log_density: None
) -> None:
    """Kept deviation (``edac.py:99``): our actor loss uses the alpha after this update's temperature step
    (as the target does in both), so it exceeds the reference's by ``(alpha' - alpha) * mean(log pi)``; the
    critics' step, which reads the actor after its step, then differs too."""
    fx = load_conformance("offlinerlkit_mf_edac")
    agent, _, _, metrics, _ = run_edac(fx, monkeypatch, reference_order=False)
    ref = fx["locals"]
    before = math.exp(fx["init"]["log_alpha"].item())
    after = fx["after_extra"]["alpha_used_next"].item()
    mean_log_prob = ref["log_probs"].mean() - agent.target_entropy  # edac.py:105 adds the target entropy
    expected = ref["actor_loss"] + (after - before) * mean_log_prob
    close(metrics["actor_loss"], expected, "actor loss with the alpha after its step", "edac")
    assert not torch.isclose(metrics["actor_loss"], ref["actor_loss"].reshape(()), rtol=1e-7)


# -- CQL ------------------------------------------------------------------------------------------


def build_cql(fx: dict, logsumexp_over: str):
    cfg = fx["config"]
    config = CQLConfig(
        hidden_sizes=(8, 8),
        actor_lr=cfg["actor_lr"],
        critic_lr=cfg["critic_lr"],
        alpha_lr=cfg["alpha_lr"],
        init_alpha=cfg["init_alpha"],
        gamma=cfg["gamma"],
        cql_weight=cfg["cql_weight"],
        temperature=cfg["temperature"],
        num_samples=int(cfg["num_samples"]),
        with_lagrange=bool(cfg["with_lagrange"]),
        target_action_gap=cfg["target_action_gap"],
        cql_alpha_lr=cfg["cql_alpha_lr"],
        deterministic_backup=True,
        max_q_backup=False,
        logsumexp_over=logsumexp_over,
    )
    agent = make_agent("cql", SPEC, config)
    for net in (agent.actor, agent.critic, agent.target_critic):
        net.double()
    names = ("critic1", "critic2")
    slots = {**tanh_actor_slots(agent.actor), **twin_critic_slots(agent.critic, names)}
    slots["log_alpha"], slots["cql_log_alpha"] = Slot(agent.log_alpha), Slot(agent.log_cql_alpha)
    load(slots, fx["init"])
    agent.target_critic.load_state_dict(agent.critic.state_dict())
    slots |= twin_critic_slots(agent.target_critic, ("critic1_old", "critic2_old"))
    return agent, slots


def run_cql(name: str, monkeypatch: pytest.MonkeyPatch, logsumexp_over: str):
    fx = load_conformance(f"offlinerlkit_mf_{name}")
    agent, slots = build_cql(fx, logsumexp_over)
    ref = fx["locals"]
    n = int(fx["config"]["num_samples"])
    draws = SharedDraws(fx["noise"])
    monkeypatch.setattr(torch, "randn_like", draws)
    # Our uniform proposals are low + width * rand: hand over the reference's uniform actions.
    uniform = (ref["random_actions"].view(-1, n, ACT_DIM) + 1) / 2
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: uniform.clone())
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.alpha_opt, agent.cql_alpha_opt)
    seen: dict[str, torch.Tensor] = {}
    td_target, conservative_gap = agent.td_target, agent.conservative_gap

    def recording_target(*args):
        seen["target"] = td_target(*args)
        return seen["target"]

    def recording_gap(obs, actions, log_density, q_data):
        m, k, _ = actions.shape
        with torch.no_grad():
            q = agent.critic(obs.repeat_interleave(k, dim=0), actions.reshape(m * k, -1)).view(-1, m, k)
            seen["proposal_values"] = q - log_density  # [N, M, 3n]
        seen["q_data"] = q_data.detach()
        gap = conservative_gap(obs, actions, log_density, q_data)
        seen["gap"] = gap.detach()
        return gap

    monkeypatch.setattr(agent, "td_target", recording_target)
    monkeypatch.setattr(agent, "conservative_gap", recording_gap)
    metrics = agent.update(transitions(fx["batch"]))
    assert draws.all_used()
    return fx, agent, slots, grads, metrics, seen


@pytest.mark.parametrize("name", ["cql", "cql_lagrange"])
def test_cql_update(name: str, monkeypatch: pytest.MonkeyPatch, reference_log_density: None) -> None:
    """``cql.py`` with ``run_cql.py``'s settings (weight 5, temperature 1, deterministic backup, 2 critics),
    without and with the Lagrange multiplier: proposals (uniform, pi(s), pi(s')) and their log-densities,
    the target, each critic's Bellman and conservative terms, all gradients and parameters, ours with
    ``logsumexp_over="draw"``: the reference's logsumexp over the 3 proposals of each draw."""
    fx, _, slots, grads, metrics, seen = run_cql(name, monkeypatch, "draw")
    ref, fixture = fx["locals"], name
    n, b = int(fx["config"]["num_samples"]), fx["batch"]["obs"].shape[0]
    close(seen["target"], ref["target_q"], "target", fixture)
    close(seen["q_data"][0], ref["q1"], "Q1 on the data", fixture)
    # Q - log density of every proposal, in the reference's layout [B * n, 3] = (pi(s), pi(s'), uniform).
    ours = seen["proposal_values"].view(2, b, 3, n)[:, :, [1, 2, 0]].permute(0, 1, 3, 2).reshape(2, b * n, 3)
    close(ours[0], ref["cat_q1"], "critic 1 proposal values", fixture)
    close(ours[1], ref["cat_q2"], "critic 2 proposal values", fixture)
    if not fx["config"]["with_lagrange"]:
        # cql.py's critic losses are Bellman error plus conservative term, per critic.
        conservative = ref["conservative_loss1"] + ref["conservative_loss2"]
        bellman = ref["critic1_loss"] + ref["critic2_loss"] - conservative
        close(metrics["bellman_loss"], bellman, "Bellman loss", fixture)
        close(metrics["cql_loss"], conservative, "conservative loss", fixture)
    else:
        close(metrics["cql_alpha"], ref["cql_alpha"], "Lagrange multiplier", fixture)
    close(metrics["critic_loss"], ref["critic1_loss"] + ref["critic2_loss"], "critic loss", fixture)
    close(metrics["actor_loss"], ref["actor_loss"], "actor loss", fixture)
    compare_grads(slots, grads, fx["grads"], fixture)
    compare_params(slots, fx["after"], fixture, "after")


def test_cql_logsumexp_over_all_proposals_of_a_state(
    monkeypatch: pytest.MonkeyPatch, reference_log_density: None
) -> None:
    """Kept default (``cql.py:153-157``): ours takes the logsumexp over all 3n proposals of a state, which is
    what the reference's own comment ("cat_q shape: (batch_size, 3 * num_repeat, 1)") intends. On the
    reference's proposal values, that intended gap equals ours."""
    fx, _, _, _, _, seen = run_cql("cql", monkeypatch, "state")
    ref = fx["locals"]
    n, b = int(fx["config"]["num_samples"]), fx["batch"]["obs"].shape[0]
    for j in (1, 2):
        per_state = ref[f"cat_q{j}"].view(b, n * 3)
        intended = torch.logsumexp(per_state, dim=1).mean() - ref[f"q{j}"].mean()
        close(seen["gap"][j - 1], intended, f"critic {j} gap over all proposals", "cql")
        rowwise = torch.logsumexp(ref[f"cat_q{j}"], dim=1).mean() - ref[f"q{j}"].mean()
        assert not torch.isclose(intended, rowwise, rtol=1e-3)


# -- IQL ------------------------------------------------------------------------------------------


def test_iql_update() -> None:
    """``iql.py`` with ``run_iql.py``'s settings (expectile 0.7, temperature 3, 2 critics): the value's
    expectile loss, the Q target from the stepped value, both critic losses, the advantage weights (target
    critics and the stepped value, clipped at 100), gradients and every parameter after the update. Our default
    policy is the reference's ``DiagGaussian`` (tanh mean, state-independent std, unsquashed log-density)."""
    fx = load_conformance("offlinerlkit_mf_iql")
    cfg = fx["config"]
    config = IQLConfig(
        hidden_sizes=(8, 8),
        actor_lr=cfg["lr"],
        critic_lr=cfg["lr"],
        value_lr=cfg["lr"],
        gamma=cfg["gamma"],
        expectile=cfg["expectile"],
        beta=cfg["beta"],
    )
    agent = make_agent("iql", SPEC, config)
    assert isinstance(agent.actor, TanhMeanGaussianActor)
    for net in (agent.actor, agent.critic, agent.target_critic, agent.value_net):
        net.double()
    slots = {
        **mlp_slots(linears(agent.actor.net), "actor.", "dist_net.mu"),
        **twin_critic_slots(agent.critic, ("critic_q1", "critic_q2")),
        **mlp_slots(linears(agent.value_net), "critic_v.", "last"),
        "actor.dist_net.sigma_param": Slot(agent.actor.log_std),
    }
    load(slots, fx["init"])
    agent.target_critic.load_state_dict(agent.critic.state_dict())
    slots |= twin_critic_slots(agent.target_critic, ("critic_q1_old", "critic_q2_old"))
    grads = record_grads(agent.actor_opt, agent.critic_opt, agent.value_opt)
    metrics = agent.update(transitions(fx["batch"]))
    ref = fx["locals"]
    close(metrics["value_loss"], ref["critic_v_loss"], "value (expectile) loss", "iql")
    close(metrics["critic_loss"], ref["critic_q1_loss"] + ref["critic_q2_loss"], "critic loss", "iql")
    close(metrics["adv_weight_mean"], ref["exp_a"].mean(), "mean advantage weight", "iql")
    close(metrics["actor_loss"], ref["actor_loss"], "actor loss", "iql")
    compare_grads(slots, grads, fx["grads"], "iql")
    compare_params(slots, fx["after"], "iql", "after")


def test_iql_reward_scale() -> None:
    """``run_iql.py``'s ``normalize_rewards`` (rewards times 1000 / (best - worst trajectory return), trajectories
    split at terminals and at jumps between rows) on a dataset in ``qlearning_dataset``'s layout: our IQL's
    ``normalize_rewards`` scales its rewards to the reference's."""
    fx = load_conformance("offlinerlkit_mf_iql_rewards")
    data = fx["dataset"]
    rows = Transitions(
        obs=data["observations"],
        act=data["actions"],
        rew=data["rewards"],
        next_obs=data["next_observations"],
        terminated=data["terminals"].bool(),
        truncated=torch.zeros(len(data["rewards"]), dtype=torch.bool),  # qlearning_dataset drops its timeouts
    )
    agent = make_agent("iql", SPEC, IQLConfig(hidden_sizes=(8, 8), normalize_rewards=True))
    agent.attach(rows, None)
    close(rows.rew * agent.reward_scale, fx["rewards"], "scaled rewards", "iql_rewards")


# -- TD3+BC ---------------------------------------------------------------------------------------


def td3bc_agent(fx: dict):
    cfg = fx["config"]
    config = TD3BCConfig(
        hidden_sizes=(8, 8),
        actor_lr=cfg["lr"],
        critic_lr=cfg["lr"],
        gamma=cfg["gamma"],
        alpha=cfg["alpha"],
        policy_noise=cfg["policy_noise"],
        noise_clip=cfg["noise_clip"],
        policy_freq=2,
    )
    agent = make_agent("td3bc", SPEC, config)
    for net in (agent.actor, agent.critic, agent.target_actor, agent.target_critic):
        net.double()
    slots = {
        **mlp_slots(linears(agent.actor), "actor.", "last"),
        **twin_critic_slots(agent.critic, ("critic1", "critic2")),
    }
    load(slots, fx["steps"][0]["init"])
    agent.target_actor.load_state_dict(agent.actor.state_dict())
    agent.target_critic.load_state_dict(agent.critic.state_dict())
    slots |= mlp_slots(linears(agent.target_actor), "actor_old.", "last")
    slots |= twin_critic_slots(agent.target_critic, ("critic1_old", "critic2_old"))
    return agent, slots


def test_td3bc_two_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """``td3bc.py`` with ``run_td3bc.py``'s settings over two updates: target smoothing (noise clipped at 0.5,
    actions clipped to the box), both critic losses and gradients, the actor step with ``lambda = alpha /
    mean|Q1|`` plus behaviour cloning, Polyak averaging of actor and critics on the actor step only, and no
    actor step on the other update. Our delay counter starts one update later than ``td3bc.py:107``'s (a kept
    deviation), so it is advanced by one here."""
    fx = load_conformance("offlinerlkit_mf_td3bc")
    agent, slots = td3bc_agent(fx)
    draws = list(fx["smoothing_draws"])
    monkeypatch.setattr(torch, "randn_like", lambda like, **kw: draws.pop(0).to(like))
    agent.updates = 1
    for k, step in enumerate(fx["steps"]):
        grads = record_grads(agent.actor_opt, agent.critic_opt)
        metrics = agent.update(transitions(step["batch"]))
        ref, fixture = step["locals"], "td3bc"
        close(metrics["critic_loss"], ref["critic1_loss"] + ref["critic2_loss"], f"update {k}: critic loss", fixture)
        assert ("actor_loss" in metrics) == ("actor_loss" in ref)
        if "actor_loss" in ref:
            close(metrics["actor_loss"], ref["actor_loss"], f"update {k}: actor loss", fixture)
        compare_grads(slots, grads, step["grads"], fixture)
        compare_params(slots, step["after"], fixture, f"after update {k}")
        for opt in (agent.actor_opt, agent.critic_opt):
            del opt.step
    assert not draws


def test_td3bc_first_actor_step_on_the_second_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept deviation (``td3bc.py:107``, ``_cnt % freq == 0`` before counting): the reference steps its actor on
    updates 1, 3, 5, ...; ours on 2, 4, 6, ..., as the TD3+BC authors' code (``total_it`` counted first)."""
    fx = load_conformance("offlinerlkit_mf_td3bc")
    agent, _ = td3bc_agent(fx)
    draws = list(fx["smoothing_draws"])
    monkeypatch.setattr(torch, "randn_like", lambda like, **kw: draws.pop(0).to(like))
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    assert "actor_loss" not in agent.update(transitions(fx["steps"][0]["batch"]))
    assert all(torch.equal(before[k], v) for k, v in agent.actor.state_dict().items())
    assert "actor_loss" in fx["steps"][0]["locals"]  # the reference's first update stepped its actor
    assert "actor_loss" in agent.update(transitions(fx["steps"][1]["batch"]))


# -- BC -------------------------------------------------------------------------------------------


def test_bc_update() -> None:
    """``bc.py`` with ``run_bc.py``'s deterministic tanh actor: the mean squared error over batch and action
    dimensions, its gradients and the parameters after one step (ours: the tanh-Gaussian actor's mean head)."""
    fx = load_conformance("offlinerlkit_mf_bc")
    agent = make_agent("bc", SPEC, BCConfig(hidden_sizes=(8, 8), lr=fx["config"]["lr"]))
    agent.actor.double()
    slots = mlp_slots([*linears(agent.actor.trunk), agent.actor.mu], "actor.", "last")
    load(slots, fx["init"])
    grads = record_grads(agent.opt)
    metrics = agent.update(transitions(fx["batch"]))
    close(metrics["bc_loss"], fx["locals"]["actor_loss"], "BC loss", "bc")
    compare_grads(slots, grads, fx["grads"], "bc")
    compare_params(slots, fx["after"], "bc", "after")

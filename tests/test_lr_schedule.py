"""The actor learning-rate schedule (``actor_lr_schedule``; mbrl.agents.kit.LRSchedule): cosine is OfflineRL-Kit's
``CosineAnnealingLR(actor_optim, T_max=epochs)`` stepped once per epoch, bit for bit; it survives a
state_dict round trip; constant leaves the rate alone; states saved before the schedule still load."""

from __future__ import annotations

import copy

import pytest
import torch
from mbrl.agents.base import AgentSpec, make_agent
from mbrl.agents.combo import COMBOConfig
from mbrl.agents.cql import CQLConfig
from mbrl.agents.iql import IQLConfig
from mbrl.agents.kit import LRSchedule
from mbrl.agents.sac import SACConfig

from mbrl.optim import adam
from tests.helpers import random_transitions

SPEC = AgentSpec(obs_dim=3, act_dim=2, act_low=(-1.0, -1.0), act_high=(1.0, 1.0))
EVERY, EPOCHS = 3, 5
SMALL = {"hidden_sizes": (8,)}
CONFIGS = {
    "sac": lambda **kw: SACConfig(**SMALL, **kw),
    "cql": lambda **kw: CQLConfig(**SMALL, num_samples=2, **kw),
    "combo": lambda **kw: COMBOConfig(**SMALL, num_samples=2, **kw),
    "iql": lambda **kw: IQLConfig(**SMALL, **kw),
}


def reference_lrs(lr: float, epochs: int, total_epochs: int) -> list[float]:
    """The actor's rate during each update of ``epochs`` epochs of ``EVERY`` updates under torch's scheduler,
    stepped after each epoch as OfflineRL-Kit's policy trainers do."""
    opt = adam([torch.zeros(1, requires_grad=True)], lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_epochs)
    lrs = []
    for _ in range(epochs):
        lrs += [opt.param_groups[0]["lr"]] * EVERY
        opt.step()
        scheduler.step()
    return lrs


def cosine(name: str):
    return CONFIGS[name](
        actor_lr_schedule="cosine", actor_lr_schedule_steps=EPOCHS * EVERY, actor_lr_schedule_every=EVERY
    )


def run(agent, updates: int, seed: int) -> list[float]:
    """The actor's rate at each of ``updates`` updates (before it)."""
    lrs = []
    for i in range(updates):
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
        real = random_transitions(16, SPEC.obs_dim, SPEC.act_dim, seed=seed + i, terminal_rate=0.1)
        model = random_transitions(16, SPEC.obs_dim, SPEC.act_dim, seed=1000 + seed + i, terminal_rate=0.1)
        agent.update(real, model if agent.requires_model else None)
    return lrs


def test_schedule_equals_torch_cosine_stepped_per_epoch():
    opt = adam([torch.zeros(1, requires_grad=True)], 3e-4)
    schedule = LRSchedule(opt, "cosine", steps=EPOCHS * EVERY, every=EVERY)
    ours = []
    for _ in range((EPOCHS + 2) * EVERY):  # past T_max too: torch's curve rises again, and so does ours
        ours.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert ours == reference_lrs(3e-4, EPOCHS + 2, EPOCHS)
    assert ours[EPOCHS * EVERY] == 0.0  # at T_max


@pytest.mark.parametrize("name", list(CONFIGS))
def test_agent_actor_lr_follows_torch_cosine(name):
    torch.manual_seed(0)
    agent = make_agent(name, SPEC, cosine(name))
    lr = agent.actor_opt.param_groups[0]["lr"]
    assert run(agent, EPOCHS * EVERY, seed=0) == reference_lrs(lr, EPOCHS, EPOCHS)
    assert agent.actor_opt.param_groups[0]["lr"] == 0.0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_schedule_survives_state_dict_round_trip(name):
    torch.manual_seed(0)
    a = make_agent(name, SPEC, cosine(name))
    run(a, 2 * EVERY + 1, seed=0)  # mid-epoch
    b = make_agent(name, SPEC, cosine(name))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    rng = torch.get_rng_state()
    lrs_a = run(a, 2 * EVERY, seed=50)
    torch.set_rng_state(rng)
    lrs_b = run(b, 2 * EVERY, seed=50)
    assert lrs_a == lrs_b
    assert a.actor_schedule.state_dict() == b.actor_schedule.state_dict()
    for (k, pa), pb in zip(a.actor.state_dict().items(), b.actor.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), k


@pytest.mark.parametrize("name", list(CONFIGS))
def test_constant_leaves_lr_untouched(name):
    torch.manual_seed(0)
    agent = make_agent(name, SPEC, CONFIGS[name]())
    lr = agent.cfg.actor_lr
    assert run(agent, 2 * EVERY, seed=0) == [lr] * (2 * EVERY)
    assert agent.actor_opt.param_groups[0]["lr"] == lr
    assert "initial_lr" not in agent.actor_opt.param_groups[0]  # no scheduler attached


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_saved_before_the_schedule_loads(name):
    torch.manual_seed(0)
    a = make_agent(name, SPEC, CONFIGS[name]())
    run(a, 2, seed=0)
    old = {k: v for k, v in a.state_dict().items() if k != "actor_schedule"}
    b = make_agent(name, SPEC, CONFIGS[name]())
    b.load_state_dict(copy.deepcopy(old))
    assert b.actor_schedule.updates == 0
    assert b.actor_opt.param_groups[0]["lr"] == a.cfg.actor_lr


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cosine_needs_its_length(name):
    with pytest.raises(ValueError, match="actor_lr_schedule_steps must be >= 1"):
        CONFIGS[name](actor_lr_schedule="cosine")
    with pytest.raises(ValueError, match="actor_lr_schedule must be constant or cosine"):
        CONFIGS[name](actor_lr_schedule="linear")

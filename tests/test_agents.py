"""Every registered agent passes the generic tester (small networks to stay fast)."""

import dataclasses

import pytest
import torch
from mbrl.agents import AGENTS, Agent, register_agent
from mbrl.agents.sac import SACAgent, SACConfig

from mbrl.testing import SPEC, check_agent


@pytest.mark.parametrize("name", AGENTS.names())
def test_registered_agent_meets_the_contract(name):
    cls = AGENTS.get(name)
    config = cls.Config()
    if any(f.name == "hidden_sizes" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, hidden_sizes=(32, 32))
    check_agent(cls, config)


def test_edac_configuration_meets_the_contract():
    check_agent("sac", AGENTS.get("sac").Config(hidden_sizes=(32, 32), num_critics=4, eta=1.0))


def test_tester_catches_an_agent_that_does_not_learn():
    class Frozen(AGENTS.get("bc")):
        def update(self, real, model=None):
            return {"loss": real.rew.mean().detach()}

    with pytest.raises(AssertionError, match="changed nothing"):
        check_agent(Frozen, Frozen.Config(hidden_sizes=(8,)))


@pytest.mark.parametrize("old_key", ["value", "v_net"])
def test_iql_loads_checkpoints_that_name_its_v_network_by_an_earlier_name(old_key):
    """IQL checkpoints written when the V network was ``value``, then ``v_net`` (now ``value_net``: ``value`` is
    the ``Agent.value`` capability)."""
    iql = AGENTS.get("iql")
    config = iql.Config(hidden_sizes=(16, 16), policy="tanh_gaussian")  # the actor of those checkpoints
    old = iql(SPEC, config).state_dict()
    old[old_key] = old.pop("value_net")
    restored = iql(SPEC, config)
    restored.load_state_dict(old)
    assert all(
        torch.equal(x, y) for x, y in zip(restored.value_net.state_dict().values(), old[old_key].values(), strict=True)
    )


def test_iql_tanh_gaussian_policy_meets_the_contract():
    check_agent("iql", AGENTS.get("iql").Config(hidden_sizes=(32, 32), policy="tanh_gaussian"))


# The actor state keys of IQL checkpoints saved before ``policy`` existed (the tanh-squashed actor).
OLD_IQL_ACTOR_KEYS = {
    "trunk.0.weight", "trunk.0.bias", "trunk.2.weight", "trunk.2.bias",
    "mu.weight", "mu.bias", "log_std.weight", "log_std.bias", "act_scale", "act_bias",
}  # fmt: skip


def test_iql_loads_checkpoints_saved_before_the_policy_option_with_policy_tanh_gaussian():
    iql = AGENTS.get("iql")
    old_agent = iql(SPEC, iql.Config(hidden_sizes=(16, 16), policy="tanh_gaussian"))
    old = old_agent.state_dict()
    assert set(old["actor"]) == OLD_IQL_ACTOR_KEYS
    restored = iql(SPEC, iql.Config(hidden_sizes=(16, 16), policy="tanh_gaussian"))
    restored.load_state_dict(old)
    obs = torch.randn(5, SPEC.obs_dim)
    assert torch.equal(restored.act(obs, deterministic=True), old_agent.act(obs, deterministic=True))
    with pytest.raises(ValueError, match=r"agent\.policy=tanh_gaussian"):
        iql(SPEC, iql.Config(hidden_sizes=(16, 16))).load_state_dict(old)
    with pytest.raises(ValueError, match=r"agent\.policy=gaussian"):
        restored.load_state_dict(iql(SPEC, iql.Config(hidden_sizes=(16, 16))).state_dict())


def test_iql_gaussian_policy_acts_with_the_clipped_mean_or_clipped_samples():
    """Default IQL policy: deterministic acting is the tanh mean (inside the box), stochastic acting draws from
    the unsquashed Gaussian and clips to the bounds; the AWR density is the unsquashed Gaussian's."""
    iql = AGENTS.get("iql")
    agent = iql(SPEC, iql.Config(hidden_sizes=(16, 16)))
    actor = agent.actor
    obs = torch.randn(256, SPEC.obs_dim)
    mean = torch.tanh(actor.net(obs)) * actor.act_scale + actor.act_bias
    assert torch.equal(agent.act(obs, deterministic=True), mean)
    with torch.no_grad():
        actor.log_std.fill_(1.0)  # std e: most draws leave the box
    sampled = agent.act(obs)
    low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
    assert ((sampled >= low) & (sampled <= high)).all()
    assert (sampled == high).any() and (sampled == low).any()
    action = torch.randn(256, SPEC.act_dim) * 3  # outside the box too: the density is not squashed
    expected = torch.distributions.Normal(mean, actor.log_std.exp()).log_prob(action).sum(-1)
    assert torch.allclose(actor.log_prob(obs, action), expected, rtol=1e-5, atol=1e-5)


class FrozenSAC(SACAgent):
    """SAC whose optimisers step at learning rate 0: every update fills Adam's state and changes no parameter."""

    def __init__(self, spec, config):
        super().__init__(spec, config)
        for opt in (self.actor_opt, self.critic_opt, self.alpha_opt):
            for group in opt.param_groups:
                group["lr"] = 0.0


def test_tester_catches_an_update_that_only_fills_the_optimiser_state():
    """Adam's first step adds state tensors; a tester that paired the flattened states as lists would then
    compare each tensor after them with another and see a change where there is none."""
    with pytest.raises(AssertionError, match="changed nothing"):
        check_agent(FrozenSAC, SACConfig(hidden_sizes=(8,)))


def test_registry_and_tester_refuse_a_class_that_is_not_an_agent():
    class Duck:
        Config = SACConfig

    with pytest.raises(TypeError, match=r"not a subclass of mbrl\.agents\.base\.Agent\. Subclass it \(`class Duck"):
        register_agent("duck")(Duck)
    assert "duck" not in AGENTS.names()
    with pytest.raises(TypeError, match="not a subclass"):
        check_agent(Duck)


def test_a_capability_flag_without_its_method_is_refused():
    with pytest.raises(TypeError, match=r"sets has_value = True but does not implement value\(\)"):

        class Promising(AGENTS.get("bc")):
            has_value = True


def test_capabilities_are_declared_on_the_classes():
    flags = {
        name: {f for f in ("requires_model", "has_value", "has_q_values", "supports_compile") if getattr(cls, f)}
        for name in AGENTS.names()
        if issubclass(cls := AGENTS.get(name), Agent)
    }
    assert flags == {
        "bc": set(),
        "combo": {"requires_model", "has_q_values"},
        "cql": {"has_q_values"},
        "iql": {"has_q_values"},
        "prdc": {"has_q_values"},
        "rambo": {"requires_model", "has_value", "has_q_values", "supports_compile"},
        "sac": {"has_value", "has_q_values", "supports_compile"},
        "td3bc": {"has_q_values"},
    }
    with pytest.raises(NotImplementedError, match="has_value = False"):
        AGENTS.get("cql")(SPEC, AGENTS.get("cql").Config(hidden_sizes=(8,))).value(torch.zeros(2, SPEC.obs_dim))

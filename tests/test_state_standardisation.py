"""``agent.normalize_states``: the networks standardise their state inputs by the attached dataset's statistics.

The strongest check is an equivalence: an agent with the option on, attached to a dataset and fed raw states,
computes what the same agent with it off computes when fed the standardised states (same seed, same weights:
the standardiser draws nothing). That covers every network input of the update, acting and, for RAMBO, the
behaviour-cloning warm-up."""

import dataclasses

import numpy as np
import pytest
import torch
from mbrl.agents.base import make_agent
from mbrl.agents.bc import BCConfig
from mbrl.agents.cql import CQLConfig
from mbrl.agents.iql import IQLConfig
from mbrl.agents.prdc import PRDCConfig
from mbrl.agents.rambo import RAMBOConfig
from mbrl.agents.sac import SACConfig
from mbrl.agents.td3bc import TD3BCConfig

from mbrl.data.transitions import Transitions
from mbrl.nn import StateStandardiser, state_statistics
from mbrl.testing import SPEC, check_agent, random_batch

# case -> (registered agent, config)
CONFIGS = {
    "sac": ("sac", SACConfig(hidden_sizes=(32, 32))),
    "edac": ("sac", SACConfig(hidden_sizes=(32, 32), num_critics=3, eta=1.0)),  # the critics' action gradients
    "cql": ("cql", CQLConfig(hidden_sizes=(32, 32))),
    "rambo": ("rambo", RAMBOConfig(hidden_sizes=(32, 32), bc_steps=4, bc_batch_size=16)),
    "td3bc": ("td3bc", TD3BCConfig(hidden_sizes=(32, 32), policy_freq=1)),
    "prdc": ("prdc", PRDCConfig(hidden_sizes=(32, 32), policy_freq=1)),
    "iql": ("iql", IQLConfig(hidden_sizes=(32, 32))),
    "bc": ("bc", BCConfig(hidden_sizes=(32, 32))),
}


def _agent(case: str, normalize_states: bool):
    name, config = CONFIGS[case]
    return make_agent(name, SPEC, dataclasses.replace(config, normalize_states=normalize_states))


def _dataset(n: int = 300) -> Transitions:
    """Random rows whose states are far from standard: every dimension shifted and scaled differently."""
    data = random_batch(n, seed=0)
    shift, scale = torch.linspace(-30.0, 40.0, SPEC.obs_dim), torch.linspace(0.2, 9.0, SPEC.obs_dim)
    return dataclasses.replace(data, obs=data.obs * scale + shift, next_obs=data.next_obs * scale + shift)


def _standardised(data: Transitions, mean: torch.Tensor, std: torch.Tensor) -> Transitions:
    return dataclasses.replace(data, obs=(data.obs - mean) / std, next_obs=(data.next_obs - mean) / std)


def test_statistics_are_td3bc_s_population_std_plus_1e_3():
    obs = _dataset().obs
    mean, std = state_statistics(obs)
    x = obs.double().numpy()
    np.testing.assert_allclose(mean.numpy(), x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), x.std(axis=0) + 1e-3, rtol=1e-6)  # numpy's std: ddof=0


def test_the_standardiser_is_the_identity_until_fitted_and_its_statistics_travel_in_the_state_dict():
    obs = _dataset().obs
    layer = StateStandardiser(SPEC.obs_dim)
    assert torch.equal(layer(obs), obs)
    layer.fit(obs)
    out = layer(obs)
    assert torch.allclose(out.mean(dim=0), torch.zeros(SPEC.obs_dim), atol=1e-4)
    assert (out.std(dim=0, correction=0) < 1).all() and (out.std(dim=0, correction=0) > 0.99).all()
    copy = StateStandardiser(SPEC.obs_dim)
    copy.load_state_dict(layer.state_dict())
    assert torch.equal(copy(obs), out)


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_an_agent_with_standardised_inputs_computes_what_it_computes_on_standardised_states(case):
    data = _dataset()
    mean, std = state_statistics(data.obs)
    agents = {}
    for on in (True, False):
        torch.manual_seed(0)
        agents[on] = _agent(case, on)
    on, off = agents[True], agents[False]
    on.attach(data, None)
    off.attach(_standardised(data, mean, std), None)  # off sees the standardised dataset (RAMBO's BC, PRDC's index)

    obs = data.obs[:7]
    torch.testing.assert_close(on.act(obs, deterministic=True), off.act((obs - mean) / std, deterministic=True))
    needs_model = case == "rambo"
    for step in range(3):
        real, model = random_batch(32, seed=10 + step), random_batch(32, seed=20 + step)
        real = dataclasses.replace(real, obs=data.obs[:32], next_obs=data.next_obs[32:64])
        torch.manual_seed(step)
        metrics_on = on.update(real, model if needs_model else None)
        torch.manual_seed(step)
        metrics_off = off.update(
            _standardised(real, mean, std), _standardised(model, mean, std) if needs_model else None
        )
        assert metrics_on.keys() == metrics_off.keys()
        for key in metrics_on:
            torch.testing.assert_close(metrics_on[key], metrics_off[key], rtol=1e-4, atol=1e-5, msg=key)
    for (key, p_on), p_off in zip(on.actor.named_parameters(), off.actor.parameters(), strict=True):
        torch.testing.assert_close(p_on, p_off, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("name", ["sac", "td3bc", "iql"])
def test_the_option_off_leaves_the_networks_state_dicts_as_they_were(name):
    agent = _agent(name, False)
    assert not any("obs_in" in key for key in agent.actor.state_dict())
    assert not any("obs_in" in key for key in agent.critic.state_dict())
    on = _agent(name, True)
    assert {"obs_in.mean", "obs_in.std"} <= on.actor.state_dict().keys()


@pytest.mark.parametrize("name", ["sac", "td3bc", "iql"])
def test_a_restored_agent_acts_on_the_saved_statistics_without_attaching_again(name):
    data = _dataset()
    agent = _agent(name, True)
    agent.attach(data, None)
    restored = _agent(name, True)
    restored.load_state_dict(agent.state_dict())
    targets = [m for m in vars(restored).values() if isinstance(m, torch.nn.Module)]
    fitted = [m for net in targets for m in net.modules() if isinstance(m, StateStandardiser)]
    assert len(fitted) >= 3  # actor, critic, target critic (and TD3+BC's target actor)
    mean, std = state_statistics(data.obs)
    for layer in fitted:
        assert torch.equal(layer.mean, mean) and torch.equal(layer.std, std)
    torch.testing.assert_close(restored.act(data.obs, deterministic=True), agent.act(data.obs, deterministic=True))


@pytest.mark.parametrize("name", ["sac", "td3bc", "iql", "bc"])
def test_agents_with_standardised_inputs_pass_the_generic_tester(name):
    check_agent(name, dataclasses.replace(CONFIGS[name][1], normalize_states=True))

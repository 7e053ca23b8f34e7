"""IQL's ``normalize_rewards``: rewards times 1000 / (best - worst trajectory return), the published setting.

The trajectories are split as the authors' ``split_into_trajectories`` splits them (after a terminal, after a
row whose next state is not the next row's state) and after a time-limit cut. An agent with the option computes
what the same agent without it computes on rewards scaled by hand, and reports its Q values in the task's units.
"""

import dataclasses

import pytest
import torch
from mbrl.agents.base import make_agent
from mbrl.agents.iql import IQLConfig

from mbrl.data.transitions import Transitions, trajectory_returns
from mbrl.testing import SPEC, check_agent, random_batch

CONFIG = IQLConfig(hidden_sizes=(32, 32))


def _trajectories(rewards: list[list[float]], ends: list[str]) -> Transitions:
    """Rows of consecutive trajectories, each ending as ``ends`` says: ``"terminated"``, ``"truncated"`` or
    ``"jump"`` (no flag, but the next row starts elsewhere). Within a trajectory ``next_obs`` is the next row's
    ``obs``."""
    g = torch.Generator().manual_seed(0)
    obs, next_obs, terminated, truncated = [], [], [], []
    for rews, end in zip(rewards, ends, strict=True):
        states = torch.randn(len(rews) + 1, SPEC.obs_dim, generator=g)
        obs.append(states[:-1])
        next_obs.append(states[1:])
        last = torch.zeros(len(rews), dtype=torch.bool)
        last[-1] = True
        terminated.append(last if end == "terminated" else torch.zeros_like(last))
        truncated.append(last if end == "truncated" else torch.zeros_like(last))
    n = sum(len(r) for r in rewards)
    low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
    return Transitions(
        obs=torch.cat(obs),
        act=low + (high - low) * torch.rand(n, SPEC.act_dim, generator=g),
        rew=torch.tensor([r for rews in rewards for r in rews]),
        next_obs=torch.cat(next_obs),
        terminated=torch.cat(terminated),
        truncated=torch.cat(truncated),
    )


REWARDS = [[1.0, 2.0, 3.0], [0.5, -4.0], [10.0, 1.0, 1.0, 1.0], [2.0, 2.0], [-1.0]]
ENDS = ["terminated", "truncated", "jump", "truncated", "jump"]


def test_trajectories_end_at_terminals_time_limits_jumps_and_the_last_row():
    data = _trajectories(REWARDS, ENDS)
    expected = torch.tensor([sum(r) for r in REWARDS], dtype=torch.float64)
    torch.testing.assert_close(trajectory_returns(data), expected)


def test_a_trajectory_runs_on_across_rows_without_an_end():
    # Two trajectories whose rows continue (next_obs == the next obs, no flags) read as one.
    data = _trajectories([[1.0, 2.0], [3.0]], ["truncated", "truncated"])
    joined = dataclasses.replace(data, next_obs=torch.cat([data.obs[1:], data.next_obs[-1:]]))
    joined = dataclasses.replace(joined, truncated=torch.tensor([False, False, True]))
    torch.testing.assert_close(trajectory_returns(joined), torch.tensor([6.0], dtype=torch.float64))


def _agent(normalize: bool):
    torch.manual_seed(0)
    return make_agent("iql", SPEC, dataclasses.replace(CONFIG, normalize_rewards=normalize))


def test_the_scale_is_the_episode_length_over_the_return_span():
    data = _trajectories(REWARDS, ENDS)
    agent = _agent(True)
    agent.attach(data, None)
    returns = [sum(r) for r in REWARDS]
    assert agent.reward_scale.item() == pytest.approx(1000.0 / (max(returns) - min(returns)))
    off = _agent(False)
    off.attach(data, None)
    assert off.reward_scale.item() == 1.0


def test_an_agent_with_scaled_rewards_computes_what_it_computes_on_rewards_scaled_by_hand():
    data = _trajectories(REWARDS, ENDS)
    on, off = _agent(True), _agent(False)
    on.attach(data, None)
    scale = on.reward_scale
    for step in range(3):
        real = random_batch(32, seed=10 + step)
        torch.manual_seed(step)
        metrics_on = on.update(real, None)
        torch.manual_seed(step)
        metrics_off = off.update(dataclasses.replace(real, rew=real.rew * scale), None)
        for key in metrics_on:
            torch.testing.assert_close(metrics_on[key], metrics_off[key], msg=key)
    for (key, p_on), p_off in zip(on.critic.named_parameters(), off.critic.parameters(), strict=True):
        torch.testing.assert_close(p_on, p_off, msg=key)
    obs, act = data.obs[:8], data.act[:8]
    # The critics learn in scaled units; q_values reports them in the task's.
    torch.testing.assert_close(on.q_values(obs, act), off.q_values(obs, act) / scale)


def test_the_scale_travels_in_the_checkpoint_and_an_old_checkpoint_has_none():
    data = _trajectories(REWARDS, ENDS)
    agent = _agent(True)
    agent.attach(data, None)
    restored = _agent(True)
    restored.load_state_dict(agent.state_dict())
    assert restored.reward_scale.item() == agent.reward_scale.item() != 1.0
    old = {k: v for k, v in agent.state_dict().items() if k != "reward_scale"}
    restored.load_state_dict(old)
    assert restored.reward_scale.item() == 1.0


def test_equal_returns_cannot_be_scaled_and_the_error_names_the_setting():
    data = _trajectories([[1.0, 1.0], [2.0], [0.5, 1.5]], ["terminated", "truncated", "jump"])
    with pytest.raises(ValueError, match=r"agent\.normalize_rewards=false"):
        _agent(True).attach(data, None)


def test_iql_with_scaled_rewards_passes_the_generic_tester():
    check_agent("iql", dataclasses.replace(CONFIG, normalize_rewards=True))

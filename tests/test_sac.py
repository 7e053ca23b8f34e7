import copy

import pytest
import torch
from mbrl.agents import AGENTS, make_agent
from mbrl.agents.base import AgentSpec
from mbrl.agents.sac import SACConfig

from mbrl.data.transitions import Transitions
from mbrl.registry import RegistryError
from tests.helpers import random_transitions

SPEC = AgentSpec(obs_dim=4, act_dim=2, act_low=(-1.0, -2.0), act_high=(1.0, 0.5))
SMALL = SACConfig(hidden_sizes=(32, 32))


def batch(n=32, seed=0):
    return random_transitions(n, 4, 2, seed, terminal_rate=0.1)


def test_actions_respect_asymmetric_bounds():
    agent = make_agent("sac", SPEC, SMALL)
    obs = torch.randn(1000, 4) * 10
    for det in (True, False):
        a = agent.act(obs, deterministic=det)
        assert a.shape == (1000, 2)
        assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all()
        assert (a[:, 1] >= -2).all() and (a[:, 1] <= 0.5).all()


def test_log_prob_matches_change_of_variables():
    agent = make_agent("sac", SPEC, SMALL)
    actor = agent.actor
    obs = torch.randn(5, 4)
    torch.manual_seed(3)
    a, logp = actor(obs)
    # Recompute log-density of the squashed action numerically from the Gaussian on u.
    h = actor.trunk(obs)
    mu, log_std = actor.mu(h), actor.log_std(h).clamp(-5, 2)
    u = torch.atanh(((a - actor.act_bias) / actor.act_scale).clamp(-1 + 1e-6, 1 - 1e-6))
    base = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1)
    jac = torch.log(actor.act_scale * (1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(logp, base - jac, atol=1e-3, rtol=1e-3)


def test_update_changes_every_network_and_returns_finite_metrics():
    agent = make_agent("sac", SPEC, SMALL)
    before = copy.deepcopy(agent.state_dict())
    metrics = agent.update(batch(), batch(seed=1))
    assert all(torch.isfinite(v) for v in metrics.values())
    for net in ("actor", "critic", "target_critic"):
        changed = any(not torch.equal(before[net][k], v) for k, v in agent.state_dict()[net].items())
        assert changed, net
    assert not torch.equal(before["log_alpha"], agent.log_alpha.detach())


def test_state_dict_round_trip_continues_identically():
    a = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), num_critics=3))
    for i in range(3):
        a.update(batch(seed=i))
    b = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), num_critics=3))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    torch.manual_seed(7)
    ma = a.update(batch(seed=9))
    torch.manual_seed(7)
    mb = b.update(batch(seed=9))
    for k in ma:
        torch.testing.assert_close(ma[k], mb[k])
    for k, v in a.actor.state_dict().items():
        torch.testing.assert_close(v, b.actor.state_dict()[k])


def test_same_seed_same_parameters():
    def run():
        torch.manual_seed(11)
        agent = make_agent("sac", SPEC, SMALL)
        for i in range(3):
            agent.update(batch(seed=i))
        return agent.actor.state_dict()

    first, second = run(), run()
    for k in first:
        assert torch.equal(first[k], second[k])


@pytest.mark.slow
def test_terminal_transitions_do_not_bootstrap_but_timeouts_do():
    # r = 1 everywhere. Terminated rows must regress to exactly r; truncated rows bootstrap and exceed it.
    agent = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), gamma=0.9, critic_lr=3e-3))
    b = batch(128)
    ones, zeros = torch.ones(128, dtype=torch.bool), torch.zeros(128, dtype=torch.bool)
    terminal = Transitions(b.obs, b.act, torch.ones(128), b.next_obs, ones, zeros)
    for _ in range(300):
        agent.update(terminal)
    assert agent.critic(b.obs, b.act).mean().item() == pytest.approx(1.0, abs=0.05)
    timeout = Transitions(b.obs, b.act, torch.ones(128), b.next_obs, zeros, ones)
    for _ in range(300):
        agent.update(timeout)
    assert agent.critic(b.obs, b.act).mean().item() > 1.5


def test_unknown_agent_lists_registered_names():
    with pytest.raises(RegistryError, match=r"registered: .*sac"):
        AGENTS.get("not-an-agent")


def test_edac_diversity_matches_a_looped_computation():
    agent = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), num_critics=4, eta=1.0))
    b = batch(16)
    q, div = agent.q_and_diversity(b.obs, b.act)
    torch.testing.assert_close(q, agent.critic(b.obs, b.act))
    grads = []
    for j in range(4):
        a = b.act.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(agent.critic(b.obs, a)[j].sum(), a)
        grads.append(g / (g.norm(dim=-1, keepdim=True) + 1e-10))
    total = sum((grads[i] * grads[k]).sum(-1) for i in range(4) for k in range(4) if i != k)
    torch.testing.assert_close(div, total.mean() / 3)


@pytest.mark.slow
def test_edac_update_lowers_gradient_similarity():
    agent = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), num_critics=5, eta=5.0))
    b = batch(64)
    _, before = agent.q_and_diversity(b.obs, b.act)
    for _ in range(100):
        metrics = agent.update(b)
    _, after = agent.q_and_diversity(b.obs, b.act)
    assert after < before and torch.isfinite(metrics["critic_loss"])


def test_log_prob_of_given_actions_matches_the_sampled_log_prob():
    actor = make_agent("sac", SPEC, SMALL).actor
    obs = torch.randn(8, 4)
    a, logp = actor(obs)
    torch.testing.assert_close(actor.log_prob(obs, a), logp, atol=1e-3, rtol=1e-3)


def test_deterministic_backup_drops_only_the_entropy_term_of_the_target():
    """MOBILE's backup: the same target as SAC's without ``alpha * log pi(a'|s')``."""
    b = batch()
    alpha = torch.tensor(0.7)
    targets, log_probs = {}, {}
    for det in (False, True):
        torch.manual_seed(1)
        agent = make_agent("sac", SPEC, SACConfig(hidden_sizes=(32, 32), deterministic_backup=det))
        real_actor = agent.actor.forward
        calls = []

        def actor(obs, *args, real_actor=real_actor, calls=calls, **kwargs):
            out = real_actor(obs, *args, **kwargs)
            calls.append(out[1])
            return out

        agent.actor.forward = actor
        torch.manual_seed(2)
        with torch.no_grad():
            targets[det] = agent.td_target(b.next_obs, b.rew, b.terminated, alpha)
        log_probs[det] = calls[0]
    torch.testing.assert_close(log_probs[True], log_probs[False])
    expected = targets[False] + 0.99 * (~b.terminated).float() * alpha * log_probs[False]
    torch.testing.assert_close(targets[True], expected)
    assert not torch.allclose(targets[True], targets[False])

"""Lipschitz-regularised value learning (Zheng et al., ICLR 2023): spectral norm and adversarial targets."""

import torch
from mbrl.agents.base import AgentSpec, make_agent
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.sac import SACConfig

from mbrl.testing import check_agent

OBS, ACT = 6, 2


def max_input_gradient(critic: VectorizedCritic, n: int = 2048) -> torch.Tensor:
    """Largest ``||d Q_j / d(s, a)||`` over random inputs, per member ``[N]``."""
    x = (torch.randn(n, OBS + ACT) * 3).requires_grad_(True)
    q = critic(x[:, :OBS], x[:, OBS:])
    grads = torch.stack([torch.autograd.grad(q[j].sum(), x, retain_graph=True)[0] for j in range(q.shape[0])])
    return grads.norm(dim=-1).amax(dim=1)


def scaled_up(critic: VectorizedCritic, factor: float) -> VectorizedCritic:
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(factor)
    return critic


def test_spectral_norm_bounds_the_measured_lipschitz_constant():
    torch.manual_seed(0)
    sn = scaled_up(VectorizedCritic(OBS, ACT, (64, 64), num_critics=3, spectral_norm=True), 20.0)
    for _ in range(30):  # let the power iteration settle on the scaled weights
        sn(torch.zeros(1, OBS), torch.zeros(1, ACT))
    head = sn.net[-1].weight  # [N, 64, 1]: the output layer is not normalised
    bound = head.squeeze(-1).norm(dim=-1)
    measured = max_input_gradient(sn)
    assert (measured <= bound * 1.02).all(), (measured, bound)

    torch.manual_seed(0)
    plain = scaled_up(VectorizedCritic(OBS, ACT, (64, 64), num_critics=3), 20.0)
    head_plain = plain.net[-1].weight.squeeze(-1).norm(dim=-1)
    assert (max_input_gradient(plain) > 10 * head_plain).all()


def test_hidden_layers_have_unit_spectral_norm_per_member():
    critic = VectorizedCritic(OBS, ACT, (32, 16), num_critics=4, spectral_norm=True)
    for _ in range(50):
        critic(torch.zeros(1, OBS), torch.zeros(1, ACT))
    for layer in critic.net[:-1:2]:
        sigmas = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)  # [N]
        # Power iteration approaches sigma_max from below; close singular values make it slow.
        torch.testing.assert_close(sigmas, torch.ones(4), atol=0.02, rtol=0)


def test_adversarial_states_stay_within_eps_and_lower_the_value():
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    agent = make_agent("sac", spec, SACConfig(hidden_sizes=(32, 32), adv_target_eps=0.05))
    states = torch.randn(512, OBS)
    moved = agent.adversarial_states(states)
    torch.testing.assert_close((moved - states).norm(dim=-1), torch.full((512,), 0.05))

    def value(s):
        with torch.no_grad():
            return agent.target_critic(s, agent.actor(s, deterministic=True, with_log_prob=False)[0]).min(0).values

    assert (value(moved) < value(states)).float().mean() > 0.95


def test_lipschitz_options_meet_the_agent_contract():
    check_agent("sac", SACConfig(hidden_sizes=(32, 32), num_critics=3, spectral_norm=True, adv_target_eps=0.1))

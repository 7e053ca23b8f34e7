"""CQL and COMBO: the agent contract, the conservative term against a hand computation, which rows each
algorithm regularises, lower values than SAC on out-of-distribution actions, COMBO's need for model data,
and runs through the Hydra command."""

import copy
import json
import math

import pytest
import torch
from mbrl.agents import AGENTS
from mbrl.agents.base import AgentSpec
from mbrl.agents.combo import COMBOAgent, COMBOConfig  # importing registers "combo" (and "cql")
from mbrl.agents.cql import CQLAgent, CQLConfig

from mbrl.data.transitions import Transitions
from mbrl.testing import SPEC, check_agent, random_batch
from mbrl.train import compose, train
from tests.helpers import SMOKE

SMALL = {"hidden_sizes": (32, 32)}


# -- the contract -------------------------------------------------------------------------------------


def test_registered_under_their_names():
    assert AGENTS.get("cql") is CQLAgent and AGENTS.get("combo") is COMBOAgent


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"with_lagrange": True, "max_q_backup": True, "deterministic_backup": False, "bc_steps": 2},
        {"logsumexp_over": "draw"},
    ],
    ids=["defaults", "lagrange-maxq-entropy-bc", "logsumexp-per-draw"],
)
def test_cql_meets_the_contract(options):
    check_agent("cql", CQLConfig(**SMALL, **options))


@pytest.mark.parametrize("rho_s", ["mix", "model"])
def test_combo_meets_the_contract(rho_s):
    check_agent("combo", COMBOConfig(**SMALL, rho_s=rho_s))


# -- the conservative term ----------------------------------------------------------------------------


def _manual_q(agent: CQLAgent, i: int, s: torch.Tensor, a: torch.Tensor) -> float:
    """Critic ``i`` at one pair with plain matrix products (float64), from the batched layer's parameters."""
    layers = agent.critic.net[::2]  # the EnsembleLinear layers; ReLUs in between
    (w0, b0), (w1, b1) = [(p.weight[i].detach().double(), p.bias[i, 0].detach().double()) for p in layers]
    h = torch.relu(torch.cat([s, a]).double() @ w0 + b0)
    return float(h @ w1 + b1)


@pytest.mark.parametrize("logsumexp_over", ["state", "draw"])
def test_conservative_term_matches_a_hand_computation(logsumexp_over):
    cfg = CQLConfig(hidden_sizes=(4,), num_samples=3, temperature=0.7, logsumexp_over=logsumexp_over)
    agent = CQLAgent(SPEC, cfg)
    obs, next_obs = torch.randn(4, SPEC.obs_dim), torch.randn(4, SPEC.obs_dim)
    data = random_batch(5, seed=3)
    actions, log_density = agent.proposals(obs, next_obs)
    gap = agent.conservative_gap(obs, actions, log_density, agent.critic(data.obs, data.act))

    n = cfg.num_samples
    assert actions.shape == (4, 3 * n, SPEC.act_dim) and log_density.shape == (4, 3 * n)
    low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
    uniform = actions[:, :n]
    assert ((uniform >= low) & (uniform <= high)).all()
    box_volume = math.prod(h - lo for lo, h in zip(SPEC.act_low, SPEC.act_high, strict=True))
    torch.testing.assert_close(log_density[:, :n], torch.full((4, n), -math.log(box_volume)))
    # The policy proposals carry pi's density at the state they were drawn from: s, then s'.
    for part, states in ((1, obs), (2, next_obs)):
        acts = actions[:, part * n : (part + 1) * n].reshape(-1, SPEC.act_dim)
        expected = agent.actor.log_prob(states.repeat_interleave(n, dim=0), acts).view(4, n)
        torch.testing.assert_close(log_density[:, part * n : (part + 1) * n], expected, atol=1e-3, rtol=1e-4)

    t = cfg.temperature
    for i in range(cfg.num_critics):
        soft_max = []
        for m in range(4):
            pairs = zip(actions[m], log_density[m], strict=True)
            values = [_manual_q(agent, i, obs[m], a) - float(d) for a, d in pairs]
            # "state": one soft maximum over all 3n; "draw": draw j's uniform, pi(s) and pi(s') proposals
            # (j, n + j, 2n + j), a soft maximum each, averaged over the n draws.
            groups = [values] if logsumexp_over == "state" else [values[j::n] for j in range(n)]
            soft_max.append(sum(t * math.log(sum(math.exp(v / t) for v in g)) for g in groups) / len(groups))
        pushed_up = sum(_manual_q(agent, i, s, a) for s, a in zip(data.obs, data.act, strict=True)) / len(data)
        assert gap[i].item() == pytest.approx(sum(soft_max) / 4 - pushed_up, rel=1e-5, abs=1e-5)


def _rows_seen(agent: CQLAgent, real: Transitions, model: Transitions | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One update; returns the states the push-down term saw and the Q-values the push-up term got."""
    seen = {}
    proposals, gap = agent.proposals, agent.conservative_gap

    def spy_proposals(obs, next_obs):
        seen["down"] = obs.clone()
        return proposals(obs, next_obs)

    def spy_gap(obs, actions, log_density, q_data):
        seen["up"] = q_data.detach().clone()
        return gap(obs, actions, log_density, q_data)

    agent.proposals, agent.conservative_gap = spy_proposals, spy_gap
    agent.update(real, model)
    return seen["down"], seen["up"]


@pytest.mark.parametrize(
    ("cls", "options", "down_rows", "up_rows"),
    [
        (CQLAgent, {}, "all", "all"),
        (COMBOAgent, {"rho_s": "mix"}, "all", "real"),
        (COMBOAgent, {"rho_s": "model"}, "model", "real"),
    ],
    ids=["cql", "combo-mix", "combo-model"],
)
def test_which_rows_are_pushed_down_and_up(cls, options, down_rows, up_rows):
    agent = cls(SPEC, cls.Config(**SMALL, **options))
    real, model = random_batch(8, seed=1), random_batch(6, seed=2)
    both = Transitions.cat([real, model])
    rows = {"all": both, "real": real, "model": model}
    critic = copy.deepcopy(agent.critic)  # the critics do not change before the conservative term is taken
    down, up = _rows_seen(agent, real, model)
    torch.testing.assert_close(down, rows[down_rows].obs)
    torch.testing.assert_close(up, critic(rows[up_rows].obs, rows[up_rows].act).detach())


# -- behaviour ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cql_values_out_of_distribution_actions_below_sac():
    """Offline data with actions near (0.5, 0.5): after a few hundred updates CQL's Q on far-away actions is
    lower than plain SAC's and lower than its own Q on the data actions."""
    spec = AgentSpec(obs_dim=3, act_dim=2, act_low=(-1.0, -1.0), act_high=(1.0, 1.0))
    g = torch.Generator().manual_seed(0)
    n = 512
    data = Transitions(
        obs=torch.randn(n, 3, generator=g),
        act=(0.5 + 0.05 * torch.randn(n, 2, generator=g)).clamp(-1, 1),
        rew=1.0 + 0.1 * torch.randn(n, generator=g),
        next_obs=torch.randn(n, 3, generator=g),
        terminated=torch.zeros(n, dtype=torch.bool),
        truncated=torch.zeros(n, dtype=torch.bool),
    )
    probe = torch.randn(256, 3, generator=g)
    far = -1.0 + torch.rand(256, 2, generator=g)  # uniform in [-1, 0]^2, at least 0.5 from the data per axis
    near = torch.full((256, 2), 0.5)

    def train_q(name, config):
        torch.manual_seed(0)
        agent = AGENTS.get(name)(spec, config)
        for _ in range(300):
            agent.update(data.index(torch.randint(n, (64,))))
        with torch.no_grad():
            return agent.critic(probe, far).min(0).values.mean(), agent.critic(probe, near).min(0).values.mean()

    sac_far, _ = train_q("sac", AGENTS.get("sac").Config(hidden_sizes=(32, 32), gamma=0.9))
    cql_far, cql_near = train_q("cql", CQLConfig(hidden_sizes=(32, 32), gamma=0.9, actor_lr=3e-4))
    assert cql_far < sac_far - 1.0, (cql_far, sac_far)
    assert cql_far < cql_near - 1.0, (cql_far, cql_near)


def test_combo_without_model_data_says_how_to_get_it(in_env, tmp_path):
    agent = COMBOAgent(SPEC, COMBOConfig(**SMALL))
    with pytest.raises(ValueError, match="dynamics=ensemble"):
        agent.update(random_batch(32, seed=1))
    with pytest.raises(ValueError, match=r"rollout\.real_ratio > 0"):
        agent.update(random_batch(0, seed=1), random_batch(32, seed=2))
    with pytest.raises(ValueError, match="rho_s"):
        COMBOAgent(SPEC, COMBOConfig(**SMALL, rho_s="real"))
    with pytest.raises(ValueError, match="dynamics=ensemble"):
        train(compose([*SMOKE, "agent=combo", "dynamics=none"]), tmp_path)


# -- the training job --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["cql", "combo"])
def test_smoke_run_of_the_training_job(agent, train_here, tmp_path):
    assert "final normalised score" in train_here([*SMOKE, f"agent={agent}"], tmp_path)
    assert "score_mean" in json.loads((tmp_path / "final.json").read_text())["final"]
    header = (tmp_path / "train.csv").read_text().splitlines()[0]
    assert "cql_gap" in header
    assert (tmp_path / "rollout.csv").exists() == (agent == "combo")

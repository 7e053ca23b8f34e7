"""PRDC and its exact nearest-neighbour search: exactness and tie rule of both backends, the agent
contract with and without an attached dataset, the metric, the pull towards the nearest dataset
action, and a smoke run through the Hydra command."""

import dataclasses
import json
import math

import mbrl.agents.prdc  # noqa: F401  (registers "prdc")
import pytest
import torch
from mbrl.agents.base import AgentSpec
from mbrl.agents.nn_search import KDTreeSearch, MatmulSearch, build_search, exact_nearest
from mbrl.agents.prdc import PRDCAgent, PRDCConfig
from mbrl.agents.td3bc import TD3BCAgent, TD3BCConfig

from mbrl.data.transitions import Transitions
from mbrl.testing import SPEC, check_agent, random_batch
from tests.helpers import SMOKE

SMALL = PRDCConfig(hidden_sizes=(32, 32))


def brute_force(points: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Index of the nearest point by float64 ``cdist`` without the matmul shortcut; lowest index among ties."""
    d = torch.cdist(queries.double(), points.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return (d == d.min(dim=1, keepdim=True).values).int().argmax(dim=1)  # argmax: the first of equal maxima


def searches(points: torch.Tensor) -> dict[str, object]:
    # Small blocks and few candidates: many chunks to merge and a certificate that is often tight.
    return {"kdtree": KDTreeSearch(points), "matmul": MatmulSearch(points, candidates=4, block_elements=3000)}


def test_search_returns_the_brute_force_nearest_neighbours():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(3000, 9, generator=g) * torch.linspace(0.5, 3.0, 9) + 5.0  # off-centre, anisotropic
    queries = torch.cat([torch.randn(90, 9, generator=g) * 2 + 5.0, points[:10] + 1e-3])
    expected = brute_force(points, queries)
    assert torch.equal(exact_nearest(points, queries, block_elements=500), expected)
    for name, search in searches(points).items():
        assert torch.equal(search.query(queries), expected), name


def test_ties_and_duplicates_go_to_the_lowest_index():
    # Integer points with many duplicates; integer and half-integer queries are equidistant from several.
    g = torch.Generator().manual_seed(1)
    points = torch.randint(-2, 3, (400, 3), generator=g).float()
    queries = torch.cat(
        [
            torch.randint(-2, 3, (100, 3), generator=g) + 0.5 * torch.randint(0, 2, (100, 3), generator=g),
            torch.tensor([[0.5, 0.5, 0.5], [-1.5, 0.5, 1.5], [0.0, 0.0, 0.0]]),
        ]
    ).float()
    expected = brute_force(points, queries)
    for name, search in searches(points).items():
        assert torch.equal(search.query(queries), expected), name
        assert search.exact_fallbacks > 0, f"{name}: the tie path was not exercised"


def test_backend_choice_and_errors():
    points = torch.randn(50, 4)
    assert isinstance(build_search(points), MatmulSearch)  # auto
    assert isinstance(build_search(points, "kdtree"), KDTreeSearch)
    one = build_search(points[:1], "kdtree")
    assert torch.equal(one.query(torch.randn(5, 4)), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="kdtree, matmul"):
        build_search(points, "faiss")
    with pytest.raises(ValueError, match="NaN"):
        build_search(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"search_backend.*auto, kdtree, matmul"):
        PRDCAgent(SPEC, dataclasses.replace(SMALL, search_backend="annoy"))


def test_meets_the_agent_contract_without_a_dataset():
    check_agent("prdc", SMALL)


@pytest.mark.parametrize("backend", ["kdtree", "matmul"])
def test_meets_the_agent_contract_with_an_attached_dataset(backend):
    class Attached(PRDCAgent):
        def __init__(self, spec, config):
            super().__init__(spec, config)
            self.attach(random_batch(500, seed=5), None)

    check_agent(Attached, dataclasses.replace(SMALL, search_backend=backend))


def test_nearest_dataset_actions_use_the_standardised_state_metric():
    data = random_batch(400, seed=3)
    data = dataclasses.replace(data, obs=data.obs * torch.tensor([1.0, 10.0, 0.1, 1.0, 3.0]) + 2.0)
    obs = data.obs[:64]
    act = random_batch(64, seed=4).act
    unused = random_batch(8, seed=6)

    def nearest(beta: float) -> torch.Tensor:
        agent = PRDCAgent(SPEC, dataclasses.replace(SMALL, beta=beta))
        agent.attach(data, None)
        return agent.nearest_dataset_actions(obs, act, fallback=unused)

    # The metric itself: beta times the standardised state, next to the raw action.
    std = data.obs.std(dim=0, correction=0) + 1e-3
    keys = torch.cat([2.0 * (data.obs - data.obs.mean(dim=0)) / std, data.act], dim=1)
    queries = torch.cat([2.0 * (obs - data.obs.mean(dim=0)) / std, act], dim=1)
    assert torch.equal(nearest(2.0), data.act[brute_force(keys, queries)])
    # Its limits: a huge beta keeps each query's own dataset state, a tiny one the nearest action anywhere.
    assert torch.equal(nearest(1e4), data.act[:64])
    assert torch.equal(nearest(1e-6), data.act[brute_force(data.act, act)])


@pytest.mark.slow
@pytest.mark.parametrize("start, nearest", [(0.3, 0.8), (-0.1, -0.6)])
def test_constraint_pulls_the_actor_to_the_nearest_dataset_action(start, nearest):
    """One state whose dataset actions are -0.6 and 0.8, and the RL term off (alpha=0): TD3+BC
    regresses to their mean, 0.1; PRDC to the dataset action nearest to where the actor starts."""
    spec = AgentSpec(obs_dim=1, act_dim=1, act_low=(-1.0,), act_high=(1.0,))
    data = Transitions(
        obs=torch.zeros(2, 1),
        act=torch.tensor([[-0.6], [0.8]]),
        rew=torch.zeros(2),
        next_obs=torch.zeros(2, 1),
        terminated=torch.zeros(2, dtype=torch.bool),
        truncated=torch.zeros(2, dtype=torch.bool),
    )
    settings = dict(hidden_sizes=(32, 32), alpha=0.0, policy_freq=1, actor_lr=3e-3)
    prdc, td3bc = PRDCAgent(spec, PRDCConfig(**settings)), TD3BCAgent(spec, TD3BCConfig(**settings))
    for agent in (prdc, td3bc):
        head = agent.actor.net[1]  # the linear layer under the tanh: output exactly `start` everywhere
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(math.atanh(start))
    prdc.attach(data, None)
    for _ in range(200):
        prdc.update(data)
        td3bc.update(data)
    state = torch.zeros(1, 1)
    assert prdc.act(state, deterministic=True).item() == pytest.approx(nearest, abs=0.02)
    assert td3bc.act(state, deterministic=True).item() == pytest.approx(0.1, abs=0.02)


@pytest.mark.slow
def test_smoke_run_of_the_training_job_searches_the_dataset(train_here, tmp_path):
    printed = train_here([*SMOKE, "agent=prdc"], tmp_path)
    result = json.loads((tmp_path / "final.json").read_text())
    assert result["agent"] == "prdc" and "score_mean" in result["final"]
    assert "no dataset attached" not in printed, "the training loop did not call attach_dataset"
    assert "dc_loss" in (tmp_path / "train.csv").read_text().splitlines()[0]

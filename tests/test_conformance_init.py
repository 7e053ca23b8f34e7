"""Initialisation conformance: our agents' initial parameters equal the references', bit for bit.

The update tests copy the references' weights into ours, so they never compare how weights start. Here each
generator (``benchmarks/conformance/{offlinerlkit,edge_of_reach,prdc}_init.py``) seeds torch's global RNG and
builds the reference's networks with its own classes in float32, at width 8, one network after another in our
agents' order (actor, critics member by member, V). Each test seeds the same and builds our agent with the
preset's ``init`` scheme (``mbrl.nn.INITS``), then asserts every parameter ``torch.equal`` to the reference's:
the same draws, in the same order, through the same ``torch.nn.init`` calls. What is not compared: the order in
which a reference's run script interleaves its networks (``run_mopo.py:104-116`` builds three backbones before
the heads); it decides which random numbers go where, not how any parameter is drawn.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from mbrl.agents.base import AgentSpec, make_agent
from mbrl.agents.bc import BCConfig
from mbrl.agents.cql import CQLConfig
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.iql import IQLConfig
from mbrl.agents.prdc import PRDCConfig
from mbrl.agents.sac import SACConfig
from mbrl.agents.td3bc import TD3BCConfig
from torch import nn

from mbrl.nn import EnsembleLinear, mlp
from tests.helpers import load_conformance

KIT = load_conformance("offlinerlkit_init")
EOR = load_conformance("edge_of_reach_init")
PRDC = load_conformance("prdc_init")


def spec(sizes: dict[str, Any]) -> AgentSpec:
    act = int(sizes["act_dim"])
    return AgentSpec(int(sizes["obs_dim"]), act, (-1.0,) * act, (1.0,) * act)


def linears(module: nn.Module) -> list[torch.Tensor]:
    """Weights ``[out, in]`` and biases ``[out]`` of every ``nn.Linear``, in module order (the generators')."""
    return [t for m in module.modules() if isinstance(m, nn.Linear) for t in (m.weight, m.bias)]


def members(critic: VectorizedCritic) -> list[list[torch.Tensor]]:
    """Our ensemble as separate ``nn.Linear`` networks: per member, ``weight[e].T [out, in]`` and ``bias[e] [out]``."""
    return [
        [t for layer in critic.layers() for t in (layer.weight[e].T, layer.bias[e, 0])]
        for e in range(critic.num_critics)
    ]


def vectorised(critic: VectorizedCritic) -> list[torch.Tensor]:
    """Our ensemble as the references' vectorised layers: ``weight [E, in, out]``, ``bias [E, 1, out]``."""
    return [t for layer in critic.layers() for t in (layer.weight, layer.bias)]


# ``orthogonal_`` orthogonalises its draw with LAPACK's QR, whose float32 result differs between CPUs by up to
# one unit in the last place (1.2e-7 below 1; seen between the machine that recorded the fixture and an AMD
# EPYC). The draw itself is bit-equal; a wrong gain, shape or order would differ by orders of magnitude more.
QR_ATOL = 2.0**-22  # one float32 ULP in [1, 2): orthogonal weights with gain sqrt(2) lie within ±sqrt(2)


def assert_equal(ours: list[torch.Tensor], reference: list[torch.Tensor], what: str, atol: float = 0.0) -> None:
    """Every tensor bit-equal to the reference's, or within ``atol`` where the draw goes through LAPACK."""
    assert len(ours) == len(reference), f"{what}: {len(ours)} tensors, the reference {len(reference)}"
    for i, (o, r) in enumerate(zip(ours, reference, strict=True)):
        assert o.dtype == torch.float32, f"{what}[{i}] is {o.dtype}: the fixture holds float32 draws"
        diff = (o.detach().double() - r).abs().max().item() if o.shape == r.shape else float("inf")
        assert diff <= atol, f"{what}[{i}] {tuple(r.shape)} differs from the reference by {diff:.3g} (> {atol:.3g})"


def build(name: str, config: Any, sizes: dict[str, Any]) -> Any:
    torch.manual_seed(int(sizes["seed"]))
    return make_agent(name, spec(sizes), config)


def test_sac_family_torch_is_offlinerlkit():
    """``run_mopo.py``, ``run_combo.py``, ``run_rambo.py``, ``run_cql.py``, ``run_mobile.py``: ``ActorProb`` and
    separate ``Critic``s at ``nn.Linear``'s default (SAC, MOPO, MOBILE, COMBO, RAMBO, CQL presets: ``torch``)."""
    fx, sizes = KIT["sac_family"], KIT["sizes"]
    hidden = tuple(sizes["hidden"])
    for name, config in (
        ("sac", SACConfig(hidden_sizes=hidden, init="torch")),
        ("cql", CQLConfig(hidden_sizes=hidden, init="torch")),
    ):
        agent = build(name, config, sizes)
        assert_equal(linears(agent.actor), fx["actor"], f"{name} actor")
        for e, (ours, ref) in enumerate(zip(members(agent.critic), fx["critics"], strict=True)):
            assert_equal(ours, ref, f"{name} critic {e}")
        assert_equal(vectorised(agent.target_critic), vectorised(agent.critic), f"{name} target critic")


def test_edac_trunc_normal_is_offlinerlkit_run_edac():
    """``run_edac.py:84-103``: actor at the default; ``EnsembleCritic``'s truncated normal with EDAC's fills."""
    fx, sizes = KIT["edac"], KIT["sizes"]
    config = SACConfig(hidden_sizes=tuple(sizes["hidden"]), num_critics=3, eta=1.0, init="edac_trunc_normal")
    agent = build("sac", config, sizes)
    assert_equal(linears(agent.actor), fx["actor"], "edac actor")
    assert_equal(vectorised(agent.critic), fx["critic_layers"], "edac critics")


def test_iql_orthogonal_is_offlinerlkit_run_iql():
    """``run_iql.py:105-125``: actor (tanh mean, free log-std at 0), both Q critics and V orthogonal, biases 0."""
    fx, sizes = KIT["iql"], KIT["sizes"]
    agent = build("iql", IQLConfig(hidden_sizes=tuple(sizes["hidden"]), init="orthogonal"), sizes)
    assert_equal(linears(agent.actor), fx["actor"], "iql actor", atol=QR_ATOL)
    assert torch.equal(agent.actor.log_std.detach().double(), fx["actor_log_std"].flatten())
    for e, (ours, ref) in enumerate(zip(members(agent.critic), fx["critics"], strict=True)):
        assert_equal(ours, ref, f"iql critic {e}", atol=QR_ATOL)
    assert_equal(linears(agent.value_net), fx["value"], "iql value", atol=QR_ATOL)


def test_td3bc_and_bc_torch_are_offlinerlkit():
    """``run_td3bc.py:81-87`` and ``run_bc.py:62-63``: every layer at ``nn.Linear``'s default. Our BC actor's
    unused log-std head is drawn after the mean head, so the reference's layers are our first ones."""
    sizes = KIT["sizes"]
    hidden = tuple(sizes["hidden"])
    agent = build("td3bc", TD3BCConfig(hidden_sizes=hidden, init="torch"), sizes)
    assert_equal(linears(agent.actor), KIT["td3bc"]["actor"], "td3bc actor")
    for e, (ours, ref) in enumerate(zip(members(agent.critic), KIT["td3bc"]["critics"], strict=True)):
        assert_equal(ours, ref, f"td3bc critic {e}")
    agent = build("bc", BCConfig(hidden_sizes=hidden, init="torch"), sizes)
    assert_equal(linears(agent.actor)[: len(KIT["bc"]["actor"])], KIT["bc"]["actor"], "bc actor")


def test_prdc_torch_is_the_authors():
    """``prdc.py:29-32``: ``Actor`` then the twin ``Critic`` (``l1``-``l3``, then ``l4``-``l6``), all default."""
    sizes = PRDC["sizes"]
    agent = build("prdc", PRDCConfig(hidden_sizes=tuple(sizes["hidden"]), init="torch"), sizes)
    assert_equal(linears(agent.actor), PRDC["actor"], "prdc actor")
    for e, (ours, ref) in enumerate(zip(members(agent.critic), PRDC["critics"], strict=True)):
        assert_equal(ours, ref, f"prdc critic {e}")


def test_ravl_edac_is_edge_of_reach():
    """``agent.py:28-35, 60-67, 120-125``: EDAC's actor and critics, with ``VectorizedLinear``'s fan-in of the
    ``[in, out]`` slice; the first layer (in 5, out 8) is drawn U(+-1/sqrt(8)), not nn.Linear's U(+-1/sqrt(5))."""
    sizes = EOR["sizes"]
    hidden = (int(sizes["hidden"]),) * 3
    config = SACConfig(hidden_sizes=hidden, num_critics=int(sizes["critics"]), eta=1.0, init="edac")
    agent = build("sac", config, sizes)
    assert_equal(linears(agent.actor), EOR["actor"], "ravl actor")
    assert_equal(vectorised(agent.critic), EOR["critic_layers"], "ravl critics")
    # The reference's bound, 1/sqrt(out) = 0.354 here, is below nn.Linear's 1/sqrt(in) = 0.447.
    assert EOR["critic_layers"][0].abs().max() <= 1 / math.sqrt(int(sizes["hidden"]))


@pytest.mark.parametrize(
    ("preset", "init"),
    [
        ("sac", "torch"),
        ("mopo", "torch"),
        ("mobile", "torch"),
        ("combo", "torch"),
        ("rambo", "torch"),
        ("cql", "torch"),
        ("edac", "edac_trunc_normal"),
        ("ravl", "edac"),
        ("iql", "orthogonal"),
        ("td3bc", "torch"),
        ("bc", "torch"),
        ("prdc", "torch"),
    ],
)
def test_each_preset_sets_its_primary_references_init(preset: str, init: str):
    from mbrl.config import resolve
    from mbrl.train import compose

    assert resolve(compose([f"agent={preset}"])).agent["init"] == init


@pytest.mark.parametrize("config", [SACConfig, IQLConfig, TD3BCConfig, BCConfig])
def test_default_is_the_draw_before_the_setting_and_unknown_values_are_refused(config: type):
    """An old run's config lacks ``init``: the default must mean what such a run drew."""
    assert config().init == "edac_heads"
    with pytest.raises(ValueError, match="init must be one of"):
        config(init="xavier")


def test_default_critic_draw_is_unchanged():
    """``edac_heads``: EnsembleLinear's own layer-by-layer draw, hidden biases 0.1, head U(+-3e-3) redrawn after."""
    torch.manual_seed(5)
    net = mlp(6, (8, 8), 1, members=3)
    *hidden, head = [m for m in net if isinstance(m, EnsembleLinear)]
    with torch.no_grad():
        for layer in hidden:
            layer.bias.fill_(0.1)
        head.weight.uniform_(-3e-3, 3e-3)
        head.bias.uniform_(-3e-3, 3e-3)
    torch.manual_seed(5)
    critic = VectorizedCritic(4, 2, (8, 8), num_critics=3)
    assert all(torch.equal(a, b) for a, b in zip(critic.net.parameters(), net.parameters(), strict=True))

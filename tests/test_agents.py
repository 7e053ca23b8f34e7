"""Every registered agent passes the generic tester (small networks to stay fast)."""

import dataclasses

import pytest
import torch
from mbrl.agents import AGENTS

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


def test_iql_loads_a_checkpoint_that_names_its_v_network_value():
    """IQL checkpoints written before the V network became ``v_net`` (``value`` is the penalty hook's name)."""
    iql = AGENTS.get("iql")
    old = iql(SPEC, iql.Config(hidden_sizes=(16, 16))).state_dict()
    old["value"] = old.pop("v_net")
    restored = iql(SPEC, iql.Config(hidden_sizes=(16, 16)))
    restored.load_state_dict(old)
    assert all(
        torch.equal(x, y) for x, y in zip(restored.v_net.state_dict().values(), old["value"].values(), strict=True)
    )

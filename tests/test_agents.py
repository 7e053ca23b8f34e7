"""Every registered agent passes the generic tester (small networks to stay fast)."""

import dataclasses

import pytest

from agents import AGENTS
from mbrl.testing import check_agent


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

"""Scale presets size agent networks without writing into agent sections.

``tests/golden/agent_sections.json`` holds the resolved agent section of every built-in agent preset
at every scale and of every experiment preset at its own scale and at ``smoke``, as composed before
scale presets stopped writing ``agent.hidden_sizes`` (``preset``, the report label, was added later
and is left out). Rewrite it with ``python -m tests.test_scales`` only for a deliberate change.
"""

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from mbrl.train import compose

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
GOLDEN = Path(__file__).resolve().parent / "golden" / "agent_sections.json"


def cases() -> list[str]:
    """Override strings: every agent preset at every scale, every experiment preset as is and at smoke."""
    agents = sorted(p.stem for p in (CONFIGS / "agent").glob("*.yaml"))
    experiments = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
    out = [f"agent={a}" + s for a in agents for s in ("", " scale=smoke", " scale=cpu", " scale=paper")]
    return out + [f"experiment={e}" + s for e in experiments for s in ("", " scale=smoke")]


def agent_section(overrides: str) -> dict:
    section = OmegaConf.to_container(compose(overrides.split()).agent, resolve=True)
    section.pop("preset", None)
    return section


def test_scale_presets_write_nothing_into_component_sections():
    for path in sorted((CONFIGS / "scale").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text()))
        assert not keys & {"agent", "penalty", "filter"}, path.name


@pytest.mark.slow
def test_built_in_agent_sections_are_those_recorded_at_every_scale():
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(cases())  # a new preset needs its sections recorded
    changed = {case: (golden[case], now) for case in golden if (now := agent_section(case)) != golden[case]}
    assert not changed, changed


def test_explicit_hidden_sizes_win_over_the_scale():
    assert agent_section("agent=mopo scale=smoke agent.hidden_sizes=[8,8]")["hidden_sizes"] == [8, 8]
    assert agent_section("agent=ravl scale=cpu agent.hidden_sizes=[8]")["hidden_sizes"] == [8]
    # agent_hidden_sizes sizes whichever built-in agent runs, at any scale.
    assert agent_section("agent=combo scale=paper agent_hidden_sizes=[64,64]")["hidden_sizes"] == [64, 64]
    assert agent_section("agent=combo scale=paper")["hidden_sizes"] == [256, 256, 256]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({case: agent_section(case) for case in cases()}, indent=1, sort_keys=True) + "\n")

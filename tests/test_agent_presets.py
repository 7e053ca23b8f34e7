"""Agent presets (``configs/agent/*.yaml``): what a run gets from ``agent=<preset>``.

A method preset starts from its family's base preset through the Hydra defaults list (``mopo`` from
``sac``, ``prdc`` from ``td3bc``, ``combo`` from ``cql``) and writes only the keys that make the method.
What matters is the composed section: it names every field of the agent's config dataclass (so
each one can be overridden from the command line without ``+``), it types and validates, and it
carries its own label, the name ``mbrl-report`` groups runs by.
"""

import dataclasses
from pathlib import Path

import pytest
from mbrl.agents import AGENTS
from mbrl.agents.sac import SACConfig
from omegaconf import DictConfig, OmegaConf

from mbrl.config import CONFIG_DIR, typed_section
from mbrl.train import compose

PRESET_DIR = Path(CONFIG_DIR) / "agent"
PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
SAC_FAMILY = ("sac", "edac", "ravl", "mopo", "mobile", "rambo")
# preset -> the preset it starts from (the first entry of its defaults list)
BASES = {"edac": "sac", "ravl": "sac", "mopo": "sac", "mobile": "sac", "rambo": "sac", "prdc": "td3bc", "combo": "cql"}


def own_section(preset: str) -> tuple[DictConfig, str | None]:
    """The agent keys ``preset``'s file writes itself (interpolations unresolved) and the preset it starts from."""
    path = PRESET_DIR / f"{preset}.yaml"
    raw = OmegaConf.load(path)
    defaults = raw.pop("defaults", [])
    plain = [d for d in defaults if isinstance(d, str) and d != "_self_"]  # group overrides are mappings
    is_global = path.read_text().startswith("# @package _global_")  # such a preset nests its keys under agent
    return (raw.agent if is_global else raw), (plain[0].split("@")[0] if plain else None)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_composes_into_a_complete_valid_config_with_its_own_label(preset):
    section = compose([f"agent={preset}"]).agent
    config_cls = AGENTS.get(section.name).Config
    assert set(section) - {"name", "preset"} == {f.name for f in dataclasses.fields(config_cls)}
    assert dataclasses.is_dataclass(typed_section(section, f"agent {preset!r}", config_cls))
    assert section.preset == preset  # the label reports show (several presets share a class)


@pytest.mark.parametrize("preset", SAC_FAMILY)
def test_the_sac_family_composes_into_a_sac_config(preset):
    section = compose([f"agent={preset}"]).agent
    assert isinstance(typed_section(section, preset, AGENTS.get(section.name).Config), SACConfig)


def test_method_presets_start_from_their_family_base():
    assert {p: base for p in PRESETS if (base := own_section(p)[1])} == BASES


@pytest.mark.parametrize("preset", sorted(BASES))
def test_a_method_preset_writes_only_what_differs_from_its_base(preset):
    own, base = own_section(preset)
    inherited = OmegaConf.to_container(compose([f"agent={base}"]).agent, resolve=False)
    restated = {k for k, v in OmegaConf.to_container(own, resolve=False).items() if inherited.get(k) == v}
    assert not restated, f"{preset}.yaml restates {sorted(restated)} with {base}'s values"

"""An agent from another installed package works through the entry points, with no change here.

Two plugins are installed into a temporary folder (not into this environment) and put on
PYTHONPATH for the subprocesses: the example of docs/plugins.md, and one written from that page
alone whose config shares no field name with the built-in agents (no ``hidden_sizes``), so any key
the framework wrote into every agent section would fail its config check.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY_DATASET

ROOT = Path(__file__).resolve().parent.parent

# A plugin as docs/plugins.md describes it: least-squares behaviour cloning with a deterministic policy.
DOCS_ONLY_AGENT = """
from dataclasses import dataclass

import torch

from mbrl.agents.base import Agent, AgentSpec
from mbrl.data.transitions import Transitions


@dataclass
class RegressionBCConfig:
    width: int = 64
    step_size: float = 1e-3


class RegressionBCAgent(Agent):
    Config = RegressionBCConfig

    def __init__(self, spec: AgentSpec, config: RegressionBCConfig) -> None:
        low, high = torch.tensor(spec.act_low), torch.tensor(spec.act_high)
        self.mid, self.half = ((high + low) / 2).to(spec.device), ((high - low) / 2).to(spec.device)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(spec.obs_dim, config.width), torch.nn.ReLU(), torch.nn.Linear(config.width, spec.act_dim)
        ).to(spec.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.step_size)

    def _policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half * torch.tanh(self.net(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self._policy(obs)

    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        loss = (self._policy(real.obs) - real.act).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"mse": loss.detach()}

    def state_dict(self):
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
"""

DOCS_ONLY_PRESET = """\
# @package _global_
defaults:
  - override /dynamics: none
agent:
  name: regression_bc
  width: 64
  step_size: 1.0e-3
"""

DOCS_ONLY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "mbrl-regression-bc"
version = "0.1.0"

[project.entry-points."mbrl.agents"]
regression_bc = "mbrl_regression_bc.agent:RegressionBCAgent"

[project.entry-points."mbrl.configs"]
mbrl_regression_bc = "mbrl_regression_bc.configs"

[tool.setuptools.packages.find]
include = ["mbrl_regression_bc*"]

[tool.setuptools.package-data]
mbrl_regression_bc = ["configs/agent/*.yaml"]
"""


def write_docs_only_plugin(folder: Path) -> Path:
    package = folder / "mbrl_regression_bc"
    (package / "configs" / "agent").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "configs" / "__init__.py").write_text("")
    (package / "agent.py").write_text(DOCS_ONLY_AGENT)
    (package / "configs" / "agent" / "regression_bc.yaml").write_text(DOCS_ONLY_PRESET)
    (folder / "pyproject.toml").write_text(DOCS_ONLY_PYPROJECT)
    return folder


@pytest.fixture(scope="module")
def plugin_env(env_vars, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    # Build from copies: setuptools writes build/ and *.egg-info into the source folder.
    sources = tmp_path_factory.mktemp("plugins")
    shutil.copytree(ROOT / "docs" / "example_plugin", sources / "example_plugin")
    write_docs_only_plugin(sources / "regression_bc")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target"]
    subprocess.run([*pip, str(site), str(sources / "example_plugin"), str(sources / "regression_bc")], check=True)
    return {**os.environ, **env_vars, "PYTHONPATH": str(site)}


def train_cli(args: list[str], run_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mbrl.train",
            *args,
            f"dataset={TINY_DATASET}",
            "logger.progress=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_plugin_agent_trains_through_the_hydra_command(plugin_env, tmp_path):
    out = train_cli(["agent=gaussian_bc", "agent.lr=1e-3", "scale=smoke"], tmp_path, plugin_env)
    assert out.returncode == 0, out.stderr[-3000:]
    config = (tmp_path / "config.yaml").read_text()
    assert "name: gaussian_bc" in config
    assert "hidden_sizes:\n  - 32\n  - 32" in config  # it follows the smoke scale's network size
    assert (tmp_path / "final.json").exists()


def test_the_docs_only_plugin_shares_no_config_field_with_the_built_in_agents():
    from mbrl.agents import AGENTS

    built_in = {f.name for name in AGENTS.names() for f in dataclasses.fields(AGENTS.get(name).Config)}
    assert "regression_bc" not in AGENTS.names()  # not installed in this environment
    assert not {"width", "step_size"} & built_in


# The cpu scale as composed and validated, with its length cut so the test stays fast.
CPU_SHORT = "scale=cpu total_updates=20 eval_every=10 checkpoint_every=10 log_every=10 eval_episodes=1"


@pytest.mark.parametrize(
    "scale", [["scale=smoke"], [*CPU_SHORT.split(), "final_eval_episodes=1"]], ids=["smoke", "cpu"]
)
@pytest.mark.slow
def test_a_plugin_without_hidden_sizes_runs_at_every_scale(plugin_env, tmp_path, scale):
    out = train_cli(["agent=regression_bc", "agent.width=16", *scale], tmp_path, plugin_env)
    assert out.returncode == 0, out.stderr[-3000:]
    from omegaconf import OmegaConf

    run = OmegaConf.load(tmp_path / "config.yaml")
    assert OmegaConf.to_container(run.agent) == {"name": "regression_bc", "width": 16, "step_size": 1e-3}
    assert run.scale == scale[0].removeprefix("scale=") and (tmp_path / "final.json").exists()


@pytest.mark.slow
def test_plugin_agents_pass_the_generic_tester(plugin_env):
    code = "from mbrl.testing import check_agent; check_agent('gaussian_bc'); check_agent('regression_bc'); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=plugin_env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_the_example_plugin_agent_meets_the_contract(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "example_plugin"))
    from mbrl_gaussian_bc.agent import GaussianBCAgent

    from mbrl.testing import check_agent

    check_agent(GaussianBCAgent, GaussianBCAgent.Config(hidden_sizes=(16, 16)))


def test_a_plugin_class_that_is_not_an_agent_is_refused_with_the_fix(monkeypatch):
    """A plugin written against the earlier duck-typed contract fails at lookup with what to change."""
    from mbrl.agents.base import check_agent_class

    from mbrl.registry import Registry

    class OldStyleAgent:
        pass

    class EntryPoint:
        name = "old_style"

        def load(self):
            return OldStyleAgent

    monkeypatch.setattr("mbrl.registry.entry_points", lambda group: [EntryPoint()])
    agents = Registry("agent", group="mbrl.agents", validate=check_agent_class)
    with pytest.raises(TypeError, match=r"OldStyleAgent is not a subclass of mbrl\.agents\.base\.Agent\. Subclass it"):
        agents.get("old_style")

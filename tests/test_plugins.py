"""An agent from another installed package works through the entry points, with no change here.

The example plugin of docs/plugins.md is installed into a temporary folder (not into this
environment) and put on PYTHONPATH for the subprocesses.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DATASET

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plugin_env(env_vars, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    # Build from a copy: setuptools writes build/ and *.egg-info into the source folder.
    source = tmp_path_factory.mktemp("plugin") / "example_plugin"
    shutil.copytree(ROOT / "docs" / "example_plugin", source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return {**os.environ, **env_vars, "PYTHONPATH": str(site)}


def test_plugin_agent_trains_through_the_hydra_command(plugin_env, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbrl.train",
            "agent=gaussian_bc",
            "agent.lr=1e-3",
            "scale=smoke",
            f"dataset={TINY_DATASET}",
            "logger.progress=false",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "name: gaussian_bc" in (tmp_path / "config.yaml").read_text()
    assert (tmp_path / "final.json").exists()


def test_plugin_agent_passes_the_generic_tester(plugin_env):
    code = "from mbrl.testing import check_agent; check_agent('gaussian_bc'); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=plugin_env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]

"""The framework imports under the ``mbrl`` name only.

The ``agents/`` and ``dynamics/`` folders install as ``mbrl.agents`` and ``mbrl.dynamics``. Top-level
``agents`` and ``dynamics`` modules would collide with other packages (OpenAI's agents SDK is
``agents``; wandb took ours for it and printed "Detected [agents] in use").
"""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
MODULES = ["mbrl.train", "mbrl.report", "mbrl.data.cli", "mbrl.data.make_dataset", "mbrl.online", "mbrl.testing"]


def test_no_top_level_agents_or_dynamics_module_is_imported(tmp_path):
    code = (
        f"import sys; import {', '.join(MODULES)}; "
        "from mbrl.agents import AGENTS; AGENTS.names(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'agents', 'dynamics'}))"
    )
    # From another folder, as an installed user runs it: the repository root is not on sys.path.
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_agents_and_dynamics_import_as_parts_of_mbrl(tmp_path):
    code = "import mbrl.agents.sac as a, mbrl.dynamics.ensemble as d; print(a.__name__, d.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["mbrl.agents.sac", "mbrl.dynamics.ensemble"]

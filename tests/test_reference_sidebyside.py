"""The side-by-side harness pins its budget: whatever the `cpu` presets become, both sides of every row
train with the updates, evaluation, rollout rounds and fit epochs the grid began with (the script, run
as its users run it, shows each method's overrides)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mbrl.config import as_dict, resolve
from mbrl.run_folder import flatten
from mbrl.train import compose
from tests.helpers import ROOT

METHODS = ("mopo", "mobile", "ravl", "combo", "rambo", "edac")


@pytest.fixture(scope="module")
def shown() -> dict[str, list[str]]:
    argv = ["--show-overrides", "--overrides", "seed=3", "mobile:total_updates=7"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reference_sidebyside.py"), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_its_pinned_budget(method, shown):
    overrides = shown[method]
    budget = overrides[: overrides.index("seed=3")]  # the pinned budget comes first
    pinned = dict(item.split("=") for item in budget)
    assert {"total_updates", "eval_every", "eval_episodes", "final_eval_episodes"} <= pinned.keys()
    assert int(pinned["total_updates"]) <= 15000  # the grid's budget, not the grown presets'
    config = flatten(
        as_dict(resolve(compose([f"experiment={method}_cpu", "dataset=hopper-medium-replay", *overrides])))
    )
    if method == "mobile":  # an override given for one method comes after the budget and wins there only
        assert config["total_updates"] == 7 and overrides[-1] == "total_updates=7"
        pinned.pop("total_updates")
    else:
        assert "total_updates=7" not in overrides
    assert {key: str(config[key]) for key in pinned} == pinned
    assert config["seed"] == 3

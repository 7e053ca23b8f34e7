"""The side-by-side harness pins its budget: whatever the `cpu` presets become, both sides of every row
train with the updates, evaluation, rollout rounds and fit epochs the grid began with."""

from __future__ import annotations

import pytest

from benchmarks.reference_sidebyside import BUDGET, METHODS, method_overrides
from mbrl.config import as_dict, resolve
from mbrl.train import compose


def value(config: dict, key: str) -> object:
    for part in key.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_its_pinned_budget(method):
    overrides = method_overrides(["seed=3", f"{method}:total_updates=7"], method)
    assert overrides[: len(BUDGET[method])] == BUDGET[method]
    config = as_dict(resolve(compose([f"experiment={method}_cpu", "dataset=hopper-medium-replay", *overrides])))
    for item in BUDGET[method]:
        key, pinned = item.split("=")
        if key != "total_updates":
            assert str(value(config, key)) == pinned, key
    # Overrides given on the command line come after the budget and win; another method's do not apply.
    assert config["total_updates"] == 7 and config["seed"] == 3
    other = "mopo" if method != "mopo" else "mobile"
    assert f"total_updates={7}" not in method_overrides([f"{other}:total_updates=7"], method)

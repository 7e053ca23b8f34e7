"""Targets read off a report's grid (``mbrl.report.targets``): an agent beats its baselines on a column
only where its interval lies wholly above theirs with enough seeds on both sides."""

from __future__ import annotations

import torch

from mbrl.report.stats import iqm, stratified_bootstrap_ci
from mbrl.report.targets import check_targets, missing_section

COLUMNS = ["halfcheetah-random", "hopper-random", "halfcheetah-medium-replay", "hopper-medium-replay"]


def group(condition: str, dataset: str, low: float, high: float, seeds: int = 3, behaviour: float = 5.0) -> dict:
    """One cell of ``write_report``'s groups, as the check reads it."""
    cell = {"condition": condition, "dataset": dataset, "num_seeds": seeds, "iqm": (low + high) / 2}
    return {**cell, "iqm_ci": [low, high], "behaviour": behaviour}


def test_targets_count_only_columns_wholly_above_both_baselines_with_enough_seeds():
    groups = [group(b, d, 1.0, 10.0) for b in ("BC", "TD3+BC") for d in COLUMNS]
    hc_random, hop_random, hc_mr, hop_mr = COLUMNS
    groups += [group("MOPO", d, 10.5, 20.0) for d in (hc_random, hop_random, hc_mr)]  # 3 columns above
    groups += [group("MOPO", hop_mr, 9.0, 20.0)]  # reaches into both baselines' CIs: overlaps
    groups += [group("RAVL", hc_random, 10.5, 30.0), group("RAVL", hop_random, 0.1, 0.5)]  # above, below
    groups += [group("RAVL", d, 21.0, 30.0, seeds=1) for d in (hc_mr, hop_mr)]  # too few seeds to count
    groups += [group("MOBILE", hc_random, 10.5, 12.0), group("MOBILE", hop_random, 2.0, 3.0)]
    groups += [group("MOBILE", hc_mr, 2.0, 3.0)]
    groups += [group("BC", "hopper-medium", 1.0, 3.0), group("MOPO", "hopper-medium", 6.0, 9.0)]
    found, markdown = check_targets(
        groups,
        agents=["MOPO", "MOBILE", "RAVL"],
        baselines=["BC", "TD3+BC"],
        columns=COLUMNS,
        min_columns=3,
        rivals=[("RAVL", "MOPO")],
        behaviour_columns=["hopper-medium"],
    )
    verdicts = found["beat_baselines"]
    assert verdicts["MOPO"] == dict(zip(COLUMNS, ["above", "above", "above", "overlaps"], strict=True))
    assert verdicts["RAVL"] == dict(zip(COLUMNS, ["above", "below", "n<3", "n<3"], strict=True))
    assert found["met"] == {"MOPO": "met", "MOBILE": "not met", "RAVL": "open"}
    duel = found["duels"]["RAVL vs MOPO"]
    assert (duel[hc_random], duel[hop_random], duel[hc_mr]) == ("overlaps", "below", "n<3")
    assert found["reaches_behaviour"]["hopper-medium"] == {"BC": False, "MOPO": True}
    assert "| MOPO | above | above | above | overlaps | met |" in markdown


def test_the_missing_section_lists_each_cells_missing_seeds_in_table_order():
    missing = [("MOPO", "hopper-random", 2), ("BC", "hopper-random", 1), ("MOPO", "hopper-random", 0)]
    text = missing_section(missing, ["BC", "MOPO"], ["hopper-random"])
    assert text.index("- BC, hopper-random: 1") < text.index("- MOPO, hopper-random: 0, 2")
    assert "3 cells without a finished run" in text


def test_a_cell_short_of_seeds_cannot_become_above_once_a_seed_lies_within_a_baselines_interval():
    baselines = [group(b, d, 1.0, 10.0) for b in ("BC", "TD3+BC") for d in COLUMNS]
    mobile = [group("MOBILE", d, 20.0, 30.0) for d in COLUMNS[:2]]  # two columns above
    mobile += [{**group("MOBILE", COLUMNS[2], 9.5, 9.5, seeds=1), "scores": [9.5]}]  # at TD3+BC's 10.0: settled
    mobile += [{**group("MOBILE", COLUMNS[3], 12.0, 12.0, seeds=1), "scores": [12.0]}]  # could still end above
    found, markdown = check_targets(
        baselines + mobile, agents=["MOBILE"], baselines=["BC", "TD3+BC"], columns=COLUMNS, min_columns=3
    )
    assert found["beat_baselines"]["MOBILE"][COLUMNS[2]] == "n<3, cannot be above"
    assert found["beat_baselines"]["MOBILE"][COLUMNS[3]] == "n<3"
    assert found["met"]["MOBILE"] == "open"  # above twice, one column still open: three reachable
    assert "| MOBILE | above | above | n<3, cannot be above | n<3 | open |" in markdown

    mobile[3]["scores"] = [10.0]  # the last open column settles too: three columns are out of reach
    found, _ = check_targets(
        baselines + mobile, agents=["MOBILE"], baselines=["BC", "TD3+BC"], columns=COLUMNS, min_columns=3
    )
    assert found["met"]["MOBILE"] == "not met"


def test_the_three_seed_bootstrap_interval_of_the_iqm_starts_at_or_below_the_lowest_seed():
    """The fact the `cannot be above` verdict rests on, checked with the report's own bootstrap."""
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        scores = torch.rand(3, generator=g, dtype=torch.float64) * 50
        low, _ = stratified_bootstrap_ci([scores], lambda xs: iqm(xs[0]), num_bootstrap=2000, seed=trial)
        assert low <= float(scores.min()) + 1e-12

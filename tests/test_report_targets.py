"""Targets read off a report's grid (``mbrl.report.targets``): an agent beats its baselines on a column
only where its interval lies wholly above theirs with enough seeds on both sides."""

from __future__ import annotations

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

"""The critics' final Q(s0) against the discounted return, per cell of a report's grid
(``mbrl.report.values``): averaged over the seeds that recorded both, absent where none did."""

from __future__ import annotations

import json
from pathlib import Path

from mbrl.report.values import run_values, value_section


def finished_run(folder: Path, score: float, q_start: float | None = None, discounted: float | None = None) -> Path:
    """A run folder whose final.json holds what ``mbrl-train`` writes (the values only for agents with critics)."""
    folder.mkdir(parents=True)
    final = {"score_mean": score, "return_mean": 10 * score}
    if q_start is not None:
        final |= {"q_start": q_start, "discounted_return": discounted}
    (folder / "final.json").write_text(json.dumps({"final": final}))
    return folder


def test_value_section_averages_the_seeds_that_recorded_q_and_return(tmp_path):
    mopo = [finished_run(tmp_path / f"mopo{s}", 1.0, q, g) for s, (q, g) in enumerate([(500, -170), (300, -90)])]
    ravl = [finished_run(tmp_path / "ravl0", 20.0, 40.0, 60.0), finished_run(tmp_path / "ravl_old", 25.0)]
    bc = [finished_run(tmp_path / "bc0", 30.0)]
    groups = [
        {"condition": "MOPO", "dataset": "halfcheetah-medium", "runs": [str(p) for p in mopo]},
        {"condition": "RAVL", "dataset": "hopper-medium", "runs": [str(p) for p in ravl]},
        {"condition": "BC", "dataset": "hopper-medium", "runs": [str(p) for p in bc]},
    ]
    values, markdown = value_section(groups, ["BC", "RAVL", "MOPO"], ["halfcheetah-medium", "hopper-medium"])

    assert values == {
        "MOPO": {"halfcheetah-medium": {"q_start": 400.0, "discounted_return": -130.0, "num_seeds": 2}},
        "RAVL": {"hopper-medium": {"q_start": 40.0, "discounted_return": 60.0, "num_seeds": 1}},
    }
    assert "| MOPO | 400 / -130 (2) | – |" in markdown
    assert "| RAVL | – | 40 / 60 (1) |" in markdown
    assert "| BC |" not in markdown  # no critics: no row
    assert markdown.index("| RAVL |") < markdown.index("| MOPO |")  # in the order asked
    assert run_values(bc[0]) is None

"""Per cell of a report's grid: the critics' final Q(s0) against the discounted return
(``mbrl.report.values``) and the model's error along the policy's rollouts against the data's
(``mbrl.report.model_error``), averaged over the seeds that recorded them, absent where none did."""

from __future__ import annotations

import json
from pathlib import Path

from mbrl.report.model_error import model_error_cells, model_error_markdown, run_model_error
from mbrl.report.values import run_episode_values, run_values, value_cells, value_markdown


def finished_run(folder: Path, score: float, q_start: float | None = None, discounted: float | None = None) -> Path:
    """A run folder whose final.json holds what ``mbrl-train`` writes (the values only for agents with critics)."""
    folder.mkdir(parents=True)
    final = {"score_mean": score, "return_mean": 10 * score}
    if q_start is not None:
        final |= {"q_start": q_start, "discounted_return": discounted}
    (folder / "final.json").write_text(json.dumps({"final": final}))
    return folder


def test_value_cells_average_the_seeds_that_recorded_q_and_return(tmp_path):
    mopo = [finished_run(tmp_path / f"mopo{s}", 1.0, q, g) for s, (q, g) in enumerate([(500, -170), (300, -90)])]
    ravl = [finished_run(tmp_path / "ravl0", 20.0, 40.0, 60.0), finished_run(tmp_path / "ravl_old", 25.0)]
    bc = [finished_run(tmp_path / "bc0", 30.0)]
    groups = [
        {"condition": "MOPO", "dataset": "halfcheetah-medium", "runs": [str(p) for p in mopo]},
        {"condition": "RAVL", "dataset": "hopper-medium", "runs": [str(p) for p in ravl]},
        {"condition": "BC", "dataset": "hopper-medium", "runs": [str(p) for p in bc]},
    ]
    values = value_cells(groups)
    markdown = value_markdown(values, ["BC", "RAVL", "MOPO"], ["halfcheetah-medium", "hopper-medium"])

    assert values == {
        "MOPO": {"halfcheetah-medium": {"q_start": 400.0, "discounted_return": -130.0, "num_seeds": 2}},
        "RAVL": {"hopper-medium": {"q_start": 40.0, "discounted_return": 60.0, "num_seeds": 1}},
    }
    assert "| MOPO | 400 / -130 (2) | – |" in markdown
    assert "| RAVL | – | 40 / 60 (1) |" in markdown
    assert "| BC |" not in markdown  # no critics: no row
    assert markdown.index("| RAVL |") < markdown.index("| MOPO |")  # in the order asked
    assert run_values(bc[0]) is None


def with_diagnostics(folder: Path, rows: list[dict[str, float]]) -> Path:
    """``folder`` with a ``diagnostics.csv`` of ``rows`` (the columns ``mbrl-train`` writes, or a subset)."""
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows]
    (folder / "diagnostics.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_model_error_is_the_policy_error_over_the_data_error_at_the_longest_horizon(tmp_path):
    def row(step, data, oracle):  # two horizons; the ratio is read at the second
        return {
            "step": step,
            "q_real": 1.0,
            "data_step1": 9.0,
            "data_step2": data,
            "oracle_step1": 1.0,
            "oracle_step2": oracle,
        }

    ravl = [
        with_diagnostics(
            finished_run(tmp_path / "ravl0", 5.0), [row(5000, 1.0, 0.5), row(10000, 1.0, 4.0), row(15000, 2.0, 3.0)]
        ),
        with_diagnostics(finished_run(tmp_path / "ravl1", 7.0), [row(5000, 2.0, 1.0), row(10000, 2.0, 1.0)]),
    ]
    no_oracle = with_diagnostics(
        finished_run(tmp_path / "mopo0", 3.0), [{"step": 5000, "data_step1": 1.0, "q_real": 2.0}]
    )
    bc = finished_run(tmp_path / "bc0", 30.0)  # no diagnostics.csv at all
    groups = [
        {"condition": "RAVL", "dataset": "hopper-medium", "runs": [str(p) for p in ravl]},
        {"condition": "MOPO", "dataset": "hopper-medium", "runs": [str(no_oracle)]},
        {"condition": "BC", "dataset": "hopper-medium", "runs": [str(bc)]},
    ]
    errors = model_error_cells(groups)
    markdown = model_error_markdown(errors, ["BC", "MOPO", "RAVL"], ["halfcheetah-medium", "hopper-medium"])

    # ravl0: ratios 0.5, 4.0, 1.5 -> final 1.5, max 4.0; ravl1: 0.5, 0.5
    assert errors == {"RAVL": {"hopper-medium": {"final": 1.0, "max": 2.25, "horizon": 2, "num_seeds": 2}}}
    assert "| RAVL | – | 1.00 (2.25) (2) |" in markdown and "after 2 rollout steps" in markdown
    assert "| MOPO |" not in markdown and "| BC |" not in markdown
    assert run_model_error(bc) is None and run_model_error(no_oracle) is None
    assert run_model_error(ravl[0]) == {"horizon": 2, "final": 1.5, "max": 4.0}
    assert run_model_error(ravl[0], horizon=1) == {"horizon": 1, "final": 1 / 9, "max": 1 / 9}  # capped


def test_reward_bias_joins_the_model_error_cell_from_the_runs_that_logged_it(tmp_path):
    def row(step, oracle, bias):  # a run resumed by a version that logs the reward leaves older cells empty
        return {"step": step, "data_step1": 1.0, "oracle_step1": oracle, "reward_bias_step1": bias}

    logged = with_diagnostics(finished_run(tmp_path / "ravl0", 5.0), [row(5000, 1.0, ""), row(10000, 2.0, 0.5)])
    older = with_diagnostics(
        finished_run(tmp_path / "ravl1", 5.0), [{"step": 5000, "data_step1": 1.0, "oracle_step1": 4.0}]
    )
    stale = with_diagnostics(finished_run(tmp_path / "ravl2", 5.0), [row(5000, 1.0, 0.25), row(10000, 1.0, "")])
    assert run_model_error(logged) == {"horizon": 1, "final": 2.0, "max": 2.0, "reward_bias": 0.5}
    assert run_model_error(stale)["reward_bias"] == 0.25  # the last row that logged it
    assert "reward_bias" not in run_model_error(older)

    groups = [{"condition": "RAVL", "dataset": "hopper-random", "runs": [str(logged), str(older), str(stale)]}]
    cells = model_error_cells(groups, horizon=1)
    assert cells["RAVL"]["hopper-random"] == {
        "final": 7 / 3,
        "max": 7 / 3,
        "horizon": 1,
        "num_seeds": 3,
        "reward_bias": 0.375,
        "reward_bias_seeds": 2,
    }
    markdown = model_error_markdown(cells, ["RAVL"], ["hopper-random"])
    assert "| RAVL | 2.33 (2.33) (3) r̂−r +0.38 (2) |" in markdown
    assert "| MOPO | 1.00 (1.00) (1) |" in model_error_markdown(
        {"MOPO": {"hopper-random": {"final": 1.0, "max": 1.0, "horizon": 1, "num_seeds": 1}}},
        ["MOPO"],
        ["hopper-random"],
    )


def test_values_along_the_episodes_join_the_cell_from_the_runs_that_recorded_them(tmp_path):
    new = [finished_run(tmp_path / f"new{s}", 20.0, 40.0 + s, 60.0) for s in range(2)]
    for i, run in enumerate(new):  # what mbrl-train adds with diagnostics on
        final = json.loads((run / "final.json").read_text())
        final["final"] |= {"policy_q": 100.0 + 10 * i, "policy_return_to_go": 150.0}
        (run / "final.json").write_text(json.dumps(final))
    old = finished_run(tmp_path / "old", 25.0, 42.0, 90.0)
    values = value_cells([{"condition": "RAVL", "dataset": "hopper-medium", "runs": [str(p) for p in [*new, old]]}])
    cell = values["RAVL"]["hopper-medium"]
    assert cell == {
        "q_start": 41.0,
        "discounted_return": 70.0,
        "num_seeds": 3,
        "episode_q": 105.0,
        "episode_return": 150.0,
        "episode_seeds": 2,
    }
    assert "| RAVL | 41 / 70 (3) along 105 / 150 (2) |" in value_markdown(values, ["RAVL"], ["hopper-medium"])
    assert run_episode_values(old) is None and run_episode_values(new[1]) == (110.0, 150.0)

"""``mbrl-make-dataset`` reports what it is doing: a progress bar over the steps and a log line per phase."""

from __future__ import annotations

import logging

import numpy as np

from mbrl.data import make_dataset
from mbrl.data.generate import collect
from tests.helpers import ENV, tiny_bundle


def test_collect_shows_progress_on_stderr_without_changing_the_data(capsys):
    quiet = collect(ENV, None, num_steps=120, seed=3, progress=False)
    assert capsys.readouterr().err == ""
    shown = collect(ENV, None, num_steps=120, seed=3, progress=True)
    err = capsys.readouterr().err
    assert "120/120" in err and ENV in err
    assert len(quiet) == len(shown)
    for a, b in zip(quiet, shown, strict=True):
        np.testing.assert_array_equal(np.asarray(a.observations), np.asarray(b.observations))
        np.testing.assert_array_equal(np.asarray(a.actions), np.asarray(b.actions))


def test_make_dataset_logs_each_phase(tmp_path, caplog, capsys):
    bundle_path = tmp_path / "bundle.pt"
    tiny_bundle().save(bundle_path)
    argv = ["--bundle", str(bundle_path), "--level", "medium", "--id", "test/hopper/medium-v0", "--size", "150"]
    with caplog.at_level(logging.INFO):
        assert make_dataset.main([*argv, "--root", str(tmp_path / "minari")]) == 0
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "collecting 150 transitions" in messages
    assert "writing Minari dataset test/hopper/medium-v0" in messages
    assert "test/hopper/medium-v0: 150 transitions" in capsys.readouterr().out

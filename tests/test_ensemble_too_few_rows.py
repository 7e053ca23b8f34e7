"""A dynamics fit on too few rows to split off a holdout is a DatasetError that says how many rows it needs."""

import pytest
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.data.transitions import DatasetError
from mbrl.testing import SPEC, random_batch


def tiny(holdout_fraction: float = 0.2) -> GaussianEnsemble:
    cfg = EnsembleConfig(
        ensemble_size=2,
        num_elites=1,
        hidden_sizes=(8,),
        weight_decay=(0.0, 0.0),
        holdout_fraction=holdout_fraction,
        max_epochs=1,
    )
    return GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, cfg)


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
def test_too_few_rows_name_the_counts_and_the_fix(rows):
    with pytest.raises(DatasetError) as e:
        tiny().fit(random_batch(rows, seed=0))
    message = str(e.value)
    assert f"{rows} transitions with dynamics.holdout_fraction=0.2 hold out 0 and train on {rows}" in message
    assert "at least 5 transitions" in message
    if rows >= 2:  # a larger holdout fraction (below 1) can give a single row a holdout of one
        assert "raise dynamics.holdout_fraction to at least" in message
    else:
        assert "holdout_fraction to at least" not in message


@pytest.mark.parametrize("rows", [2, 3, 4, 7])
def test_the_suggested_holdout_fraction_is_enough(rows):
    with pytest.raises(DatasetError) as e:
        tiny(holdout_fraction=0.1).fit(random_batch(rows, seed=0))
    suggested = float(str(e.value).split("holdout_fraction to at least ")[1].split()[0])
    tiny(holdout_fraction=suggested).fit(random_batch(rows, seed=0))  # now splits and fits


def test_the_suggested_row_count_is_enough():
    with pytest.raises(DatasetError, match="at least 7 transitions"):
        tiny(holdout_fraction=0.15).fit(random_batch(6, seed=0))
    tiny(holdout_fraction=0.15).fit(random_batch(7, seed=0))

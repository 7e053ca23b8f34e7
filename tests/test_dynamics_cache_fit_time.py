"""The cached fit records how long it took, and entries written before that key existed still load.

A job that loads a shared fit (the side-by-side harness points every method of a dataset and seed at one
cache) counts the fit's wall seconds from the entry; older entries must keep working as cache hits.
"""

from __future__ import annotations

import torch
from mbrl.dynamics.cache import cache_key, fit_cached
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.testing import SPEC, random_batch

DATA = random_batch(200, seed=3)
HASH = "tiny-dataset"
TINY = EnsembleConfig(
    ensemble_size=2, num_elites=1, hidden_sizes=(8,), weight_decay=(1e-4, 1e-4), batch_size=32, max_epochs=2
)


def model() -> GaussianEnsemble:
    return GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, TINY)


def test_a_fresh_fit_saves_its_wall_seconds(tmp_path):
    fitted = model()
    assert fit_cached(fitted, DATA, HASH, cache_dir=tmp_path) is not None
    entry = torch.load(tmp_path / "dynamics" / f"{cache_key(fitted, HASH)}.pt", weights_only=True)
    assert isinstance(entry["fit_s"], float) and entry["fit_s"] > 0


def test_an_entry_without_fit_seconds_is_still_a_cache_hit(tmp_path):
    fitted = model()
    fit_cached(fitted, DATA, HASH, cache_dir=tmp_path)
    path = tmp_path / "dynamics" / f"{cache_key(fitted, HASH)}.pt"
    old = torch.load(path, weights_only=True)
    del old["fit_s"]
    torch.save(old, path)  # an entry as written before fit_s was saved

    again = model()
    assert fit_cached(again, DATA, HASH, cache_dir=tmp_path) is None  # loaded, not refitted
    for k, v in fitted.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    assert list(path.parent.glob("*.corrupt-*")) == []

"""The cached fit records how long it took, and entries written before that key existed still load.

A job that loads a shared fit (the side-by-side harness points every method of a dataset and seed at one
cache) counts the fit's wall seconds from the entry; older entries must keep working as cache hits.
"""

from __future__ import annotations

import torch
from mbrl.dynamics.cache import cache_key, fit_cached
from mbrl.dynamics.ensemble import GaussianEnsemble

from mbrl.testing import SPEC, random_batch
from tests.helpers import CACHE_HASH, TINY_ENSEMBLE

DATA = random_batch(200, seed=3)


def model() -> GaussianEnsemble:
    return GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, TINY_ENSEMBLE)


def test_a_fresh_fit_saves_its_wall_seconds(tmp_path):
    fitted = model()
    assert fit_cached(fitted, DATA, CACHE_HASH, cache_dir=tmp_path) is not None
    entry = torch.load(tmp_path / "dynamics" / f"{cache_key(fitted, CACHE_HASH)}.pt", weights_only=True)
    assert isinstance(entry["fit_s"], float) and entry["fit_s"] > 0


def test_an_entry_without_fit_seconds_is_still_a_cache_hit(tmp_path):
    fitted = model()
    fit_cached(fitted, DATA, CACHE_HASH, cache_dir=tmp_path)
    path = tmp_path / "dynamics" / f"{cache_key(fitted, CACHE_HASH)}.pt"
    old = torch.load(path, weights_only=True)
    del old["fit_s"]
    torch.save(old, path)  # an entry as written before fit_s was saved

    again = model()
    assert fit_cached(again, DATA, CACHE_HASH, cache_dir=tmp_path) is None  # loaded, not refitted
    for k, v in fitted.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    assert list(path.parent.glob("*.corrupt-*")) == []

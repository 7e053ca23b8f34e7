"""A cached fit is reused only by code that would learn the same model.

The key holds the source of the code that fits the model, so an edit to it (here: a plug-in model's module,
rewritten and re-imported) refits, while the same code in another checkout hits the same entry.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import mbrl.dynamics.cache
import pytest
import torch
from mbrl.dynamics.cache import cache_key, fit_cached, fit_sources
from mbrl.dynamics.ensemble import GaussianEnsemble

from mbrl.testing import SPEC, random_batch
from tests.helpers import CACHE_HASH, TINY_ENSEMBLE

DATA = random_batch(200, seed=3)
PLUGIN = """
from mbrl.dynamics.ensemble import GaussianEnsemble


class PluginEnsemble(GaussianEnsemble):
    '''A user's model: the framework's ensemble under another name.'''
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Writes ``plugin_model.py`` in a folder on ``sys.path`` and returns a function that (re)writes it
    with an extra line and (re)imports it, giving its model class."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plugin_model", raising=False)

    def write(extra: str = "", folder=tmp_path) -> type:
        (folder / "plugin_model.py").write_text(textwrap.dedent(PLUGIN) + extra)
        sys.modules.pop("plugin_model", None)
        importlib.invalidate_caches()
        return importlib.import_module("plugin_model").PluginEnsemble

    yield write
    sys.modules.pop("plugin_model", None)


def test_the_fit_sources_are_the_models_modules_and_what_they_use():
    sources = fit_sources(GaussianEnsemble)
    assert {"mbrl.dynamics.ensemble", "mbrl.nn", "mbrl.optim", "mbrl.dynamics.cache"} <= set(sources)
    assert "mbrl.train" not in sources and "mbrl.agents.sac" not in sources  # not used by the fit


def built(cls: type) -> GaussianEnsemble:
    return cls(SPEC.obs_dim, SPEC.act_dim, TINY_ENSEMBLE)


def test_an_edit_to_the_fit_code_refits_and_the_same_code_hits(plugin, tmp_path):
    cache = tmp_path / "cache"
    first = plugin()
    assert "plugin_model" in fit_sources(first) and "mbrl.dynamics.ensemble" in fit_sources(first)
    assert fit_cached(built(first), DATA, CACHE_HASH, cache_dir=cache) is not None
    assert fit_cached(built(first), DATA, CACHE_HASH, cache_dir=cache) is None  # a hit
    before = cache_key(built(first), CACHE_HASH)

    edited = plugin("# a comment is an edit too\n")
    assert cache_key(built(edited), CACHE_HASH) != before
    assert fit_cached(built(edited), DATA, CACHE_HASH, cache_dir=cache) is not None
    assert len(list((cache / "dynamics").glob("*.pt"))) == 2  # the old entry stays for the old code


def test_the_same_code_in_another_checkout_shares_the_key(plugin, tmp_path, monkeypatch):
    here = cache_key(built(plugin()), CACHE_HASH)
    elsewhere = tmp_path / "another_checkout"
    elsewhere.mkdir()
    monkeypatch.syspath_prepend(str(elsewhere))
    moved = plugin(folder=elsewhere)
    assert moved.__module__ == "plugin_model" and str(elsewhere) in fit_sources(moved)["plugin_model"]
    assert cache_key(built(moved), CACHE_HASH) == here


def test_another_torch_version_refits(monkeypatch):
    model = built(GaussianEnsemble)
    before = cache_key(model, CACHE_HASH)
    monkeypatch.setattr(torch, "__version__", torch.__version__ + "+other")
    assert cache_key(model, CACHE_HASH) != before


def test_another_processor_refits(monkeypatch):
    """Floating-point sums differ between processors, so a cache shared by a cluster keeps one fit per type."""
    model = built(GaussianEnsemble)
    before = cache_key(model, CACHE_HASH)
    assert cache_key(model, CACHE_HASH) == before
    monkeypatch.setattr(mbrl.dynamics.cache, "arithmetic", lambda device: "another processor, AVX2")
    assert cache_key(model, CACHE_HASH) != before

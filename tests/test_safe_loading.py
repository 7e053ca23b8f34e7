"""Checkpoints and cached fits are read with ``weights_only``: a tampered file runs no code. A checkpoint
that cannot be read is refused with its path and the fix; a cached fit that cannot be read is moved
aside and fitted afresh. Real files written by training jobs still load."""

import logging
import os
import threading
from pathlib import Path

import pytest
import torch
from mbrl.dynamics.cache import cache_key, fit_cached
from mbrl.dynamics.ensemble import GaussianEnsemble
from torch import nn

from mbrl.checkpoint import CheckpointError, load, rng_state, save_atomic
from mbrl.testing import SPEC, random_batch
from mbrl.train import compose, train
from tests.helpers import CACHE_HASH, MOREC_SMOKE, RAMBO_TINY, SMOKE, TINY_ENSEMBLE

DATA = random_batch(200, seed=3)


class RunsCode:
    """Unpickles into ``os.system("touch <marker>")``: what a tampered checkpoint or cached fit would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-was-run"


def poison(path: Path, marker: Path) -> Path:
    torch.save({"step": 1, "agent": {"actor": RunsCode(marker)}, "model": RunsCode(marker)}, path)
    return path


def checkpoint(path: Path) -> Path:
    """A checkpoint of the layout the training job writes."""
    gen = torch.Generator().manual_seed(0)
    actor = nn.Linear(SPEC.obs_dim, SPEC.act_dim)
    optim = torch.optim.Adam(actor.parameters())
    actor(torch.randn(4, SPEC.obs_dim)).sum().backward()
    optim.step()
    state = {"actor": actor.state_dict(), "actor_optim": optim.state_dict()}
    save_atomic({"step": 20, "agent": state, "rng": rng_state(gen), "model_buffer": None, "wandb_id": None}, path)
    return path


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"")


def test_the_poisoned_payload_runs_code_when_unpickled_unsafely(tmp_path, marker):
    """The payload of the tests below is armed: an unrestricted unpickler runs it."""
    torch.load(poison(tmp_path / "checkpoint.pt", marker), weights_only=False)
    assert marker.exists()


def test_poisoned_checkpoint_is_refused_by_name_and_runs_nothing(tmp_path, marker):
    path = poison(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message and "safely" in message and "objects other than tensors" in message
    assert "delete it" in message and "hydra.run.dir" in message
    assert not marker.exists()


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_unreadable_checkpoint_is_refused_with_its_path_and_the_fix(tmp_path, how):
    path = checkpoint(tmp_path / "checkpoint.pt")
    assert load(path)["step"] == 20
    damage(path, how)
    with pytest.raises(CheckpointError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message and ("empty" if how == "empty" else "truncated or corrupt") in message
    assert "Move it away or delete it" in message and "hydra.run.dir" in message


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        load(path)


# -- the cache ----------------------------------------------------------------------------------
class Counted:
    """A small ensemble whose ``fit`` calls are counted."""

    def __init__(self) -> None:
        self.model = GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, TINY_ENSEMBLE)
        self.fits = 0
        fit = self.model.fit

        def counted(data):
            self.fits += 1
            return fit(data)

        self.model.fit = counted


def entry(cache: Path) -> Path:
    return cache / "dynamics" / f"{cache_key(Counted().model, CACHE_HASH)}.pt"


def assert_refitted(cache: Path, caplog) -> None:
    """A fresh model is fitted, the entry moved aside (named in a warning) and a valid entry written."""
    path = entry(cache)
    fresh = Counted()
    with caplog.at_level(logging.WARNING, logger="mbrl.dynamics.cache"):
        report = fit_cached(fresh.model, DATA, CACHE_HASH, cache_dir=cache)
    assert fresh.fits == 1 and report is not None
    warnings = [r for r in caplog.records if r.name == "mbrl.dynamics.cache"]
    assert [r.levelno for r in warnings] == [logging.WARNING] and str(path) in caplog.text
    aside = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(aside) == 1 and str(aside[0]) in caplog.text
    saved = torch.load(path, weights_only=True)
    for k, v in fresh.model.state_dict().items():
        assert torch.equal(saved["model"][k], v), k
    again = Counted()
    assert fit_cached(again.model, DATA, CACHE_HASH, cache_dir=cache) is None and again.fits == 0


def test_cache_hit_loads_the_fit_without_fitting(tmp_path):
    first, second = Counted(), Counted()
    fit_cached(first.model, DATA, CACHE_HASH, cache_dir=tmp_path)
    assert fit_cached(second.model, DATA, CACHE_HASH, cache_dir=tmp_path) is None
    assert (first.fits, second.fits) == (1, 0)
    for k, v in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v), k


def test_poisoned_cache_entry_is_moved_aside_and_refitted_without_running_it(tmp_path, marker, caplog):
    path = entry(tmp_path)
    path.parent.mkdir(parents=True)
    poison(path, marker)
    assert_refitted(tmp_path, caplog)
    assert not marker.exists()
    assert "objects other than tensors" in caplog.text


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_unreadable_cache_entry_is_moved_aside_and_refitted(tmp_path, how, caplog):
    first = Counted()
    fit_cached(first.model, DATA, CACHE_HASH, cache_dir=tmp_path)
    damage(entry(tmp_path), how)
    assert_refitted(tmp_path, caplog)
    assert ("empty" if how == "empty" else "truncated or corrupt") in caplog.text
    refit = torch.load(entry(tmp_path), weights_only=True)["model"]
    for k, v in first.model.state_dict().items():  # the refit starts from the seeded initialisation again
        assert torch.equal(refit[k], v), k


def test_cache_entry_of_another_model_is_moved_aside_and_refitted_from_scratch(tmp_path, caplog):
    first = Counted()
    fit_cached(first.model, DATA, CACHE_HASH, cache_dir=tmp_path)
    # Right keys, one wrong shape: a strict load copies the matching tensors before it fails.
    state = {k: torch.zeros_like(v) for k, v in first.model.state_dict().items()}
    state["max_logvar"] = torch.zeros(1)
    torch.save({"model": state, "report": {}}, entry(tmp_path))
    assert_refitted(tmp_path, caplog)
    assert "not a cached fit of this model" in caplog.text
    refit = torch.load(entry(tmp_path), weights_only=True)["model"]
    for k, v in first.model.state_dict().items():
        assert torch.equal(refit[k], v), k


def test_entries_moved_aside_in_the_same_second_are_all_kept(tmp_path, monkeypatch):
    monkeypatch.setattr("mbrl.dynamics.cache.time.strftime", lambda _: "20250101-000000")
    for _ in range(3):
        fit_cached(Counted().model, DATA, CACHE_HASH, cache_dir=tmp_path)
        damage(entry(tmp_path), "empty")
    fit_cached(Counted().model, DATA, CACHE_HASH, cache_dir=tmp_path)
    aside = sorted(p.name.split(".corrupt-")[1] for p in entry(tmp_path).parent.glob("*.corrupt-*"))
    assert aside == ["20250101-000000", "20250101-000000-1", "20250101-000000-2"]


# -- real files ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["agent=mopo", "filter=reward_consistency", *MOREC_SMOKE],
        ["agent=rambo", *RAMBO_TINY, "total_updates=20"],
    ],
    ids=["morec-mopo", "rambo"],
)
@pytest.mark.slow
def test_files_written_by_a_training_job_load_with_weights_only(overrides, in_env, tmp_path):
    """Agent and optimiser states, RNG states, the model buffer and cached fits hold nothing weights_only refuses."""
    cache = tmp_path / "cache"
    train(compose([*SMOKE, *overrides, f"dynamics.cache_dir={cache}"]), tmp_path / "run")
    state = load(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] > 0 and state["agent"] and state["model_buffer"] is not None
    # The run saves the dynamics it rolls out with (RAMBO's adversary trains them), not the agent.
    assert "dynamics" not in state["agent"] and state["dynamics"]
    entries = sorted(cache.glob("*/*.pt"))
    assert len(entries) == (2 if "filter=reward_consistency" in overrides else 1)
    for path in entries:
        assert set(torch.load(path, weights_only=True)) == {"model", "report", "fit_s"}


def test_runs_sharing_a_cold_cache_fit_once_and_load_the_same_model(tmp_path):
    """Two runs of a sweep miss the cache at once: one fits under the key's lock, the other waits and loads."""
    models = [Counted(), Counted()]
    start = threading.Barrier(2)

    def run(counted: Counted) -> None:
        start.wait()
        fit_cached(counted.model, DATA, CACHE_HASH, cache_dir=tmp_path)

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m.fits for m in models) == [0, 1]
    a, b = (m.model.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (tmp_path / "dynamics").glob("*.pt*")] == [entry(tmp_path).name]

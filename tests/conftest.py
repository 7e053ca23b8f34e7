import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from mbrl.data.generate import collect, write_minari
from mbrl.train import compose, train
from tests.helpers import TINY_DATASET


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, otherwise in file order: with ``-n 2`` the workers then end together, instead
    of one worker running the last long tests (compile, dataset regeneration) alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same global RNG state; one thread: small nets gain nothing from more."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture
def float64() -> Iterator[None]:
    """float64 as torch's default dtype for the test (the conformance tests compare at relative 1e-5)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def env_vars(tmp_path_factory):
    """Environment for training-job subprocesses: a tiny Hopper dataset and a private dynamics cache."""
    root = tmp_path_factory.mktemp("minari")
    write_minari(TINY_DATASET, collect("Hopper-v5", None, 1500, seed=0), "Hopper-v5", "random", "tiny", root)
    cache = tmp_path_factory.mktemp("cache")
    return {"MINARI_DATASETS_PATH": str(root), "MBRL_CACHE": str(cache)}


@pytest.fixture
def in_env(env_vars, monkeypatch) -> None:
    """``env_vars`` set in this process, for training jobs run here rather than in a subprocess."""
    for k, v in env_vars.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def train_here(in_env, caplog) -> Callable[[list[str], Path], str]:
    """Runs ``train(compose(overrides), run_dir)`` in this process and returns what it logged.

    The ``mbrl-train`` command adds only Hydra's run folder and exit codes to ``train``, the same for
    every agent, and costs seconds of imports per call: the per-agent smoke runs use this instead.
    """

    def run(overrides: list[str], run_dir: Path) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            train(compose(overrides), run_dir)
        return caplog.text

    return run

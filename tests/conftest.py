from collections.abc import Iterator

import pytest
import torch

from mbrl.data.generate import collect, write_minari
from tests.helpers import TINY_DATASET


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

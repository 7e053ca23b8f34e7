import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same global RNG state; one thread: small nets gain nothing from more."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield

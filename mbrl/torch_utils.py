"""Small torch helpers shared by the data and evaluation code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the previous setting.

    Stepping environments calls the policy on batches of a few observations; such tiny matmuls
    gain nothing from threads, and on a busy machine the threads' synchronisation makes each call
    up to a hundred times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

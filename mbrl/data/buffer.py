"""A FIFO ring buffer of transitions held as preallocated tensors on the training device.

It serves as the online replay buffer and as the model-rollout buffer: writing and sampling
never leave the device.
"""

from __future__ import annotations

from typing import Any

import torch

from mbrl.data.transitions import Transitions


class ReplayBuffer:
    """Keeps the last ``capacity`` transitions; ``add`` overwrites the oldest rows first.

    Shapes: obs/next_obs ``[capacity, obs_dim]``, act ``[capacity, act_dim]``, rew/flags ``[capacity]``.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        dev = torch.device(device)
        self.capacity = capacity
        self._data = {
            "obs": torch.zeros(capacity, obs_dim, device=dev),
            "act": torch.zeros(capacity, act_dim, device=dev),
            "rew": torch.zeros(capacity, device=dev),
            "next_obs": torch.zeros(capacity, obs_dim, device=dev),
            "terminated": torch.zeros(capacity, dtype=torch.bool, device=dev),
            "truncated": torch.zeros(capacity, dtype=torch.bool, device=dev),
        }
        self._ptr = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, batch: Transitions) -> None:
        """Append ``batch`` (any length; only its last ``capacity`` rows survive if longer)."""
        n = len(batch)
        if n == 0:
            return
        if n > self.capacity:
            batch = batch.index(slice(n - self.capacity, n))
            n = self.capacity
        idx = (torch.arange(n, device=self._data["rew"].device) + self._ptr) % self.capacity
        for name, store in self._data.items():
            store[idx] = getattr(batch, name).to(store.dtype)
        self._ptr = (self._ptr + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Transitions:
        if self._size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        dev = self._data["rew"].device
        idx = torch.randint(self._size, (batch_size,), device=dev, generator=generator)
        return Transitions(**{k: v[idx] for k, v in self._data.items()})

    def state_dict(self) -> dict[str, Any]:
        return {
            "data": {k: v[: self._size].clone() for k, v in self._data.items()},
            "ptr": self._ptr,
            "size": self._size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = state["size"]
        for k, v in state["data"].items():
            self._data[k][:size] = v.to(self._data[k].device)
        self._ptr = state["ptr"]
        self._size = size

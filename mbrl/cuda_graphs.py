"""CUDA graphs for the fixed-shape steps of the training loop (opt-in: ``cuda_graphs=true``).

A CUDA graph records the kernels that one call of a function launches and replays them with a single
launch. A replay runs no Python: it repeats the recorded kernels, with the arguments they had at capture,
on the same memory. A function can be captured only if every later call with inputs of the same shapes
would launch the same kernels with the same arguments on the same tensors, so:

- its Python-side decisions (update counters, branches, learning rates) are made outside it;
- it never waits for the device (``.item()``, ``float(t)``, boolean-mask indexing, ``nonzero``);
- it changes persistent tensors in place and never rebinds an attribute to a new tensor.

The agents' ``update_step`` is written so; :mod:`mbrl.testing` checks it on a CPU by running it through
:class:`mbrl.testing.EmulatedGraphs`, which stands in for the backend here.

:class:`CapturedStep` runs such a function: eagerly for its first ``warmup`` calls (on a side stream, as
torch's recipe asks: lazy set-ups such as optimiser state and library workspaces happen there), captures it
at the next call, and from then on copies each call's inputs into its static input tensors and replays.
Random draws inside use the default CUDA generator; each replay advances its offset as an eager call would.
Only the update is graphed: rollouts run eagerly (``mbrl.model_data``; measured in ``docs/gpu.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

import torch

# Eager calls of a step before it is captured (torch's own examples and make_graphed_callables use 3).
WARMUP_CALLS = 3
# What torch warns once per optimiser when a capturable optimiser steps outside a capture: the warm-up
# calls do so on purpose.
_UNCAPTURED_STEP_WARNING = "This instance was constructed with capturable=True"

StepFn = Callable[[list[torch.Tensor]], list[torch.Tensor]]


class Graph(Protocol):
    """One captured function."""

    def capture(self, fn: Callable[[], list[torch.Tensor]]) -> None:
        """Record the kernels ``fn`` launches; its outputs become the static outputs."""

    def replay(self) -> list[torch.Tensor]:
        """Run the recorded kernels; returns the static outputs (overwritten by the next replay)."""


class GraphBackend(Protocol):
    """Where a :class:`CapturedStep` runs its eager calls and makes its graph."""

    def warm(self, fn: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        """One eager call of ``fn`` before the capture."""

    def graph(self) -> Graph:
        """A new, empty graph."""


class CudaGraph:
    """:class:`torch.cuda.CUDAGraph` behind :class:`Graph`: captured on ``stream`` (the warm-up calls' side stream,
    whose library workspaces they set up); the default CUDA generator registers itself at capture."""

    def __init__(self, stream: torch.cuda.Stream) -> None:
        self._graph = torch.cuda.CUDAGraph()
        self._stream = stream
        self._outputs: list[torch.Tensor] = []

    def capture(self, fn: Callable[[], list[torch.Tensor]]) -> None:
        with torch.cuda.graph(self._graph, stream=self._stream):
            self._outputs = fn()

    def replay(self) -> list[torch.Tensor]:
        self._graph.replay()
        return self._outputs


class CudaGraphs:
    """The CUDA backend of :class:`CapturedStep`: warm-up calls on a side stream, then graphs captured there."""

    def __init__(self) -> None:
        require_cuda()
        self._side = torch.cuda.Stream()

    def warm(self, fn: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        current = torch.cuda.current_stream()
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_UNCAPTURED_STEP_WARNING)
            outputs = fn()
        current.wait_stream(self._side)
        return outputs

    def graph(self) -> Graph:
        return CudaGraph(self._side)


def require_cuda() -> None:
    """Raise a RuntimeError that names the fix when torch sees no CUDA device."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"CUDA graphs need a CUDA device and torch {torch.__version__} sees none here; set cuda_graphs=false"
        )


class CapturedStep:
    """``fn(inputs) -> outputs`` over tensors of fixed shapes: eager for the first ``warmup`` calls, then captured
    once and replayed.

    ``fn`` takes and returns lists of tensors. Until the capture, a call returns ``fn``'s own outputs; from the
    capture on it returns the graph's static outputs, which the next call overwrites: callers clone what they
    keep. Every call must pass tensors of the shapes, dtypes and devices of the first one.
    """

    def __init__(self, fn: StepFn, backend: GraphBackend, warmup: int = WARMUP_CALLS) -> None:
        self.fn, self.backend, self.warmup = fn, backend, warmup
        self.eager_calls = 0
        self._graph: Graph | None = None
        self._static: list[torch.Tensor] = []

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def __call__(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self._graph is None:
            if self.eager_calls < self.warmup:
                self.eager_calls += 1
                return self.backend.warm(lambda: self.fn(list(inputs)))
            # Static inputs live outside the graph's memory pool; the capture itself runs nothing.
            self._static = [t.clone() for t in inputs]
            graph = self.backend.graph()
            graph.capture(lambda: self.fn(self._static))
            self._graph = graph
        if [signature(t) for t in inputs] != [signature(t) for t in self._static]:
            raise ValueError(
                "a captured step was called with inputs of other shapes, dtypes or devices than at its capture: "
                f"{[signature(t) for t in inputs]} instead of {[signature(t) for t in self._static]}"
            )
        for static, new in zip(self._static, inputs, strict=True):
            static.copy_(new)
        return self._graph.replay()


def signature(t: torch.Tensor) -> Hashable:
    """What a graph's input must keep from capture to replay: shape, dtype and device."""
    return tuple(t.shape), t.dtype, t.device


def learning_rates(optimizers: Sequence[torch.optim.Optimizer]) -> tuple[float, ...]:
    """Every parameter group's learning rate: a captured optimiser step keeps the rates it was captured with."""
    return tuple(group["lr"] for opt in optimizers for group in opt.param_groups)


def make_capturable(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """Let ``optimizers`` step inside a graph capture (torch refuses a capture of a step that is not
    ``capturable``). With the fused Adam kernel the agents use the numbers do not change."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["capturable"] = True

"""An agent's update with its tensor step replayed from CUDA graphs (opt-in: ``cuda_graphs=true``).

For agents that declare ``supports_cuda_graphs`` (their ``update`` is :class:`~mbrl.agents.base.SteppedUpdate`'s:
``before_update``, ``update_step``, ``after_update``). :class:`GraphedUpdate` makes the same calls, with
``update_step`` run by a :class:`~mbrl.cuda_graphs.CapturedStep` per key: the branch ``before_update`` chose,
the batches' shapes, and the optimisers' learning rates (a captured optimiser step keeps the rates of its
capture, so a schedule that changes them makes a new capture). The batches are copied into the graph's static
inputs; the metrics come back stacked into one tensor, cloned once per update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from mbrl.agents.base import Agent, graphs_can_replay

from mbrl.cuda_graphs import (
    WARMUP_CALLS,
    CapturedStep,
    CudaGraphs,
    GraphBackend,
    StepFn,
    learning_rates,
    make_capturable,
    signature,
)
from mbrl.data.transitions import Transitions


def step_optimizers(agent: Agent) -> list[torch.optim.Optimizer]:
    """The optimisers among ``agent``'s ``state_parts``: those its ``update_step`` steps."""
    parts = [getattr(agent, name) for name in type(agent).state_parts]
    return [part for part in parts if isinstance(part, torch.optim.Optimizer)]


def batch_fields(batch: Transitions | None) -> tuple[str, ...]:
    """The names of ``batch``'s tensors (its optional fields only where present); none for ``None``."""
    if batch is None:
        return ()
    return tuple(f.name for f in dataclasses.fields(batch) if getattr(batch, f.name) is not None)


@dataclass
class _Captured:
    """One key's captured step, the learning rates it was captured with and its metrics' names."""

    rates: tuple[float, ...]
    step: CapturedStep
    names: list[str]


class GraphedUpdate:
    """``agent.update(real, model)`` with each branch's ``update_step`` replayed from a CUDA graph.

    Build it once the agent's state is final (after a resume's ``load_state_dict``: a graph keeps the tensors
    of its capture). ``graphs`` is the backend (default: this CUDA device); ``warmup`` the eager calls of each
    key before its capture. Metrics are scalar tensors of one dtype, fresh each call.
    """

    def __init__(self, agent: Agent, graphs: GraphBackend | None = None, warmup: int = WARMUP_CALLS) -> None:
        if not graphs_can_replay(type(agent)):
            raise ValueError(
                f"{type(agent).__name__} does not declare supports_cuda_graphs, or overrides SteppedUpdate's update: "
                "its update cannot be replayed from a CUDA graph; set cuda_graphs=false"
            )
        self.agent = agent
        self.graphs = graphs if graphs is not None else CudaGraphs()
        self.warmup = warmup
        self.optimizers = step_optimizers(agent)
        self._captured: dict[Hashable, _Captured] = {}

    @property
    def captured(self) -> int:
        """Graphs captured and in use: one per branch, batch shapes and learning rates met so far."""
        return sum(c.step.captured for c in self._captured.values())

    def __call__(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        agent = self.agent
        branch = agent.before_update(real, model)
        fields = (batch_fields(real), batch_fields(model))
        inputs = [getattr(real, f) for f in fields[0]] + [getattr(model, f) for f in fields[1]]
        key = (branch, fields, tuple(signature(t) for t in inputs))
        rates = learning_rates(self.optimizers)
        captured = self._captured.get(key)
        if captured is None or captured.rates != rates:  # a new key, or a schedule changed a rate
            make_capturable(self.optimizers)  # again: a resume's load_state_dict restores the saved groups
            names: list[str] = []
            step = CapturedStep(self._step_fn(branch, fields, names), self.graphs, self.warmup)
            captured = self._captured[key] = _Captured(rates, step, names)
        (stacked,) = captured.step(inputs)
        metrics = dict(zip(captured.names, stacked.clone().unbind(), strict=True))
        return agent.after_update(branch, metrics)

    def _step_fn(self, branch: Hashable, fields: tuple[tuple[str, ...], tuple[str, ...]], names: list[str]) -> StepFn:
        """The captured function: tensors (the real batch's, then the model batch's) -> the stacked metrics."""
        n_real = len(fields[0])

        def step(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            real = Transitions(**dict(zip(fields[0], tensors[:n_real], strict=True)))
            model = Transitions(**dict(zip(fields[1], tensors[n_real:], strict=True))) if fields[1] else None
            metrics = self.agent.update_step(real, model, branch)
            names[:] = metrics  # the same names on every call of a key
            return [torch.stack(list(metrics.values()))]

        return step

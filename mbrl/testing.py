"""The generic agent tester: the contract every agent, in-tree or plugin, must meet.

Use it from a plugin's own test suite::

    from mbrl.testing import check_agent
    def test_my_agent():
        check_agent("my-agent")            # or check_agent(MyAgent, MyAgent.Config(hidden_sizes=(32, 32)))

It also holds the CPU stand-in for CUDA graphs (:class:`EmulatedGraphs`), with which :func:`check_graph_updates`
checks on a CPU what ``cuda_graphs=true`` relies on: that replaying an agent's ``update_step`` gives its eager
updates bit for bit, launching the same operators on the same tensors every time, without a host sync and
without changing a Python attribute.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import FunctionType, MethodType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mbrl.agents import AGENTS
from mbrl.agents.base import Agent, AgentSpec, check_agent_class, graphs_can_replay
from mbrl.agents.graphed import GraphedUpdate
from mbrl.data.transitions import Transitions

SPEC = AgentSpec(obs_dim=5, act_dim=3, act_low=(-1.0, -2.0, 0.0), act_high=(1.0, 0.5, 3.0))


def random_batch(n: int, seed: int, spec: AgentSpec = SPEC) -> Transitions:
    """``n`` random transitions with in-bounds actions, a few terminals and timeouts."""
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(spec.act_low), torch.tensor(spec.act_high)
    return Transitions(
        obs=torch.randn(n, spec.obs_dim, generator=g),
        act=low + (high - low) * torch.rand(n, spec.act_dim, generator=g),
        rew=torch.randn(n, generator=g),
        next_obs=torch.randn(n, spec.obs_dim, generator=g),
        terminated=torch.rand(n, generator=g) < 0.1,
        truncated=torch.rand(n, generator=g) < 0.05,
    )


def _flat(state: Any, path: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) state dict, keyed by its path (``critic_opt/state/0/exp_avg``).

    Keyed, not listed: an optimiser's first step adds state tensors, and a list would then pair each
    tensor after them with a different one.
    """
    if isinstance(state, torch.Tensor):
        return {path: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return {k: t for key, value in items for k, t in _flat(value, f"{path}/{key}" if path else str(key)).items()}


def _same(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> bool:
    """Whether two flattened states hold the same keys and, under each, the same tensor."""
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _build(agent: str | type, config: Any | None):
    cls = AGENTS.get(agent) if isinstance(agent, str) else agent
    check_agent_class(getattr(cls, "__name__", repr(cls)), cls)  # a class passed directly skips the registry
    return lambda: cls(SPEC, copy.deepcopy(config) if config is not None else cls.Config())


def check_agent(agent: str | type, config: Any | None = None, updates: int = 3) -> None:
    """Assert the ``Agent`` contract for a registered name or an agent class.

    Checks: the class subclasses ``Agent``; actions have the right shape and lie inside asymmetric bounds
    (deterministic and stochastic); ``q_values`` and ``value`` return finite ``[N, B]`` and ``[B]`` where
    the class declares them (``has_q_values``, ``has_value``); ``update`` returns finite detached scalars
    and changes a tensor of the state it started from (compared key by key), both with and without a model
    batch (with one only, and a model-free update must raise ``ValueError``, for an agent with
    ``requires_model``); a ``state_dict`` round trip (optimisers included) continues bit-for-bit like the
    original; the same seed gives the same state; for a class that ``cuda_graphs=true`` may replay
    (``supports_cuda_graphs``), :func:`check_graph_updates`.
    """
    make = _build(agent, config)
    torch.manual_seed(0)
    a = make()

    obs = torch.randn(64, SPEC.obs_dim) * 3
    for deterministic in (True, False):
        act = a.act(obs, deterministic=deterministic)
        assert act.shape == (64, SPEC.act_dim), f"act returned {tuple(act.shape)}, expected (64, {SPEC.act_dim})"
        low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
        assert ((act >= low - 1e-6) & (act <= high + 1e-6)).all(), "actions leave the action bounds"

    # The capabilities the training job reads (the final value check, diagnostics, MOBILE's penalty).
    cls = type(a)
    if cls.has_q_values:
        q = a.q_values(obs, act)
        assert q.dim() == 2 and q.shape[1] == 64, f"q_values returned {tuple(q.shape)}, expected (N, 64)"
        assert torch.isfinite(q).all() and not q.requires_grad, "q_values must be finite and detached"
    if cls.has_value:
        v = a.value(obs)
        assert v.shape == (64,) and torch.isfinite(v).all() and not v.requires_grad, "value must be [B], detached"

    # An agent that learns only from model rollouts (``requires_model = True``, e.g. COMBO) must refuse a
    # model-free update with a ValueError instead of learning from something else.
    if cls.requires_model:
        try:
            a.update(random_batch(32, seed=1))
        except ValueError:
            pass
        else:
            raise AssertionError("an agent with requires_model=True accepted an update without a model batch")
    for model in (random_batch(24, seed=99),) if cls.requires_model else (None, random_batch(24, seed=99)):
        before = {k: t.clone() for k, t in _flat(a.state_dict()).items()}
        metrics = a.update(random_batch(32, seed=1), model)
        assert metrics, "update returned no metrics"
        for k, v in metrics.items():
            assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, f"metric {k!r}"
            assert torch.isfinite(v), f"metric {k!r} is not finite"
        after = _flat(a.state_dict())
        assert before.keys() <= after.keys(), f"update dropped state entries: {sorted(before.keys() - after.keys())}"
        assert not _same(before, {k: after[k] for k in before}), "update changed nothing"

    torch.manual_seed(1)
    b = make()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for i in range(updates):
        torch.manual_seed(100 + i)
        a.update(random_batch(32, seed=10 + i), random_batch(16, seed=20 + i))
        torch.manual_seed(100 + i)
        b.update(random_batch(32, seed=10 + i), random_batch(16, seed=20 + i))
    assert _same(_flat(a.state_dict()), _flat(b.state_dict())), (
        "a restored agent (optimisers included) does not continue identically"
    )

    def seeded_run() -> dict[str, torch.Tensor]:
        torch.manual_seed(7)
        agent_ = make()
        for i in range(updates):
            agent_.update(random_batch(32, seed=30 + i), random_batch(16, seed=40 + i))
        return _flat(agent_.state_dict())

    assert _same(seeded_run(), seeded_run()), "not deterministic"

    if graphs_can_replay(cls):
        batches = [(random_batch(32, seed=50 + i), random_batch(16, seed=60 + i)) for i in range(8)]
        check_graph_updates(make, batches)


# -- CUDA graphs, emulated on a CPU ---------------------------------------------------------------------------
# Operators that make the host wait for the device (their result decides a shape or a Python value). The
# check sees operators as they are dispatched, not what their C++ kernels do inside: torch.multinomial without
# replacement is named below for that reason.
SYNC_OPS = {
    "aten._local_scalar_dense",  # .item(), float(t), int(t), bool(t), if t:
    "aten.nonzero",
    "aten.masked_select",
    "aten.unique",
    "aten._unique",
    "aten._unique2",
    "aten.unique_dim",
    "aten.unique_consecutive",
    "aten.equal",
    "aten.is_nonzero",
}
MASK_OPS = {"aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"}  # with a boolean index


class OpTrace(TorchDispatchMode):
    """Records each operator call as it would be captured: its name, its non-tensor arguments and, per tensor
    argument, shape, strides, offset, dtype and memory (a storage from before the trace, by address, or the
    ``n``-th storage created inside it), and the calls that make the host wait for the device (``syncs``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, ...]] = []
        self.syncs: list[str] = []
        self._created: dict[int, int] = {}  # storage address -> order of creation inside the trace
        self._count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # torch's signature
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        masks = [t for t in tree_flatten(args[1:])[0] if isinstance(t, torch.Tensor) and t.dtype == torch.bool]
        if name in SYNC_OPS or (name in MASK_OPS and masks):
            self.syncs.append(str(func))
        elif str(func) == "aten.repeat_interleave.Tensor" and kwargs.get("output_size") is None:
            self.syncs.append(str(func))  # the output size is the sum of the repeats
        elif name == "aten.multinomial" and not (args[2] if len(args) > 2 else kwargs.get("replacement", False)):
            self.syncs.append(str(func))  # without replacement torch checks the probabilities on the host
        if name == "aten.lift_fresh":  # torch.tensor(<Python values>) inside the step: the values are baked in
            record: tuple[Any, ...] = (str(func), ("literal", args[0].tolist()))
        else:
            record = (str(func), self._describe(args), self._describe(kwargs))
        self.ops.append(record)
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage().data_ptr() for t in tensors}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self._created[t.untyped_storage().data_ptr()] = self._count  # a freed address may come back
                self._count += 1
        return out

    def _describe(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            ptr = value.untyped_storage().data_ptr()
            memory = ("created", self._created[ptr]) if ptr in self._created else ("before", ptr)
            return "tensor", memory, tuple(value.shape), value.stride(), value.storage_offset(), value.dtype
        if isinstance(value, dict):
            return tuple((k, self._describe(v)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return tuple(self._describe(v) for v in value)
        if isinstance(value, torch.Generator):  # the dispatcher hands over a new Python object each call
            return "generator", value.device
        if value is None or isinstance(value, bool | int | float | str | torch.dtype | torch.device | torch.layout):
            return value
        return type(value).__name__  # profiler handles and the like: new objects each call, no kernel argument


def python_state(objects: Sequence[object]) -> dict[str, Any]:
    """Everything reachable from ``objects``' attributes that a graph replay cannot change, by path: numbers,
    strings, flags, containers' sizes and which tensor, generator or function object each place holds."""
    out: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(value: Any, path: str) -> None:
        if isinstance(value, torch.Tensor | torch.Generator | FunctionType | MethodType):
            out[path] = (type(value).__name__, id(value))
        elif value is None or isinstance(
            value, bool | int | float | complex | str | bytes | torch.dtype | torch.device
        ):
            out[path] = value
        elif id(value) in seen:
            out[path] = ("seen", id(value))
        else:
            seen.add(id(value))
            if isinstance(value, dict):
                out[path] = ("dict", len(value))
                for k, v in value.items():
                    visit(v, f"{path}[{k if isinstance(k, str | int) else (type(k).__name__, id(k))}]")
            elif isinstance(value, list | tuple):
                out[path] = (type(value).__name__, len(value))
                for i, v in enumerate(value):
                    visit(v, f"{path}[{i}]")
            elif isinstance(value, set | frozenset):
                out[path] = (type(value).__name__, len(value))
            elif hasattr(value, "__dict__"):
                out[path] = type(value).__name__
                for k, v in vars(value).items():
                    visit(v, f"{path}.{k}")
            else:
                out[path] = (type(value).__name__, id(value))

    for i, obj in enumerate(objects):
        visit(obj, f"<{i}:{type(obj).__name__}>")
    return out


class EmulatedGraph:
    """A CUDA graph's stand-in on a CPU: ``capture`` keeps the function and each ``replay`` runs it, checking
    that it launches the operators of the first replay (as a real replay repeats those of the capture), makes
    the host wait for nothing and changes no Python attribute of the ``watch``ed objects."""

    def __init__(self, watch: Sequence[object]) -> None:
        self.watch = watch
        self.replays = 0
        self._fn: Callable[[], list[torch.Tensor]] | None = None
        self._ops: list[tuple[Any, ...]] | None = None

    def capture(self, fn: Callable[[], list[torch.Tensor]]) -> None:
        self._fn = fn

    def replay(self) -> list[torch.Tensor]:
        before = python_state(self.watch)
        with OpTrace() as trace:
            outputs = self._fn()
        after = python_state(self.watch)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"a captured step changed Python-side state, which a replay would not: {changed[:10]}"
        assert not trace.syncs, f"a captured step makes the host wait for the device: {trace.syncs[:10]}"
        if self._ops is None:
            self._ops = trace.ops
        elif trace.ops != self._ops:
            pairs = enumerate(zip(self._ops, trace.ops, strict=False))
            at = next((i for i, (a, b) in pairs if a != b), min(len(self._ops), len(trace.ops)))
            captured = self._ops[at] if at < len(self._ops) else "<end>"
            now = trace.ops[at] if at < len(trace.ops) else "<end>"
            raise AssertionError(
                f"replay {self.replays + 1} of a captured step launched other operators than its capture, from "
                f"operator {at} on: captured {captured}, now {now}"
            )
        self.replays += 1
        return outputs


class EmulatedGraphs:
    """The backend of :class:`~mbrl.cuda_graphs.CapturedStep` on a CPU: eager warm-up calls and
    :class:`EmulatedGraph`s that watch ``watch`` (e.g. the agent)."""

    def __init__(self, watch: Sequence[object] = ()) -> None:
        self.watch = tuple(watch)
        self.graphs: list[EmulatedGraph] = []

    def warm(self, fn: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        return fn()

    def graph(self) -> EmulatedGraph:
        self.graphs.append(EmulatedGraph(self.watch))
        return self.graphs[-1]


def check_graph_updates(make: Callable[[], Agent], batches: Sequence[tuple[Transitions, Transitions | None]]) -> None:
    """Assert that ``cuda_graphs=true`` replays ``make()``'s updates as they run eagerly.

    Two agents from the same seed take the same ``(real, model)`` batches under the same global seed, one by
    ``update``, one through :class:`~mbrl.agents.graphed.GraphedUpdate` on :class:`EmulatedGraphs` (one eager
    call per key before its capture): every update's metrics and the final state must agree bit for bit, and
    every replay must pass :class:`EmulatedGraph`'s checks. Some graph must be replayed twice, so pass enough
    batches (each branch of the update needs three calls).
    """
    torch.manual_seed(0)
    eager = make()
    torch.manual_seed(0)
    graphed = make()
    graphs = EmulatedGraphs(watch=[graphed])
    update = GraphedUpdate(graphed, graphs, warmup=1)
    for i, (real, model) in enumerate(batches):
        torch.manual_seed(1000 + i)
        expected = eager.update(real, model)
        torch.manual_seed(1000 + i)
        got = update(real, model)
        assert got.keys() == expected.keys(), f"update {i}: metrics {sorted(got)}, eagerly {sorted(expected)}"
        differ = [k for k in got if not torch.equal(got[k], expected[k])]
        assert not differ, f"update {i}: the graphed update's metrics {differ} differ from the eager update's"
    eager_state, graphed_state = _flat(eager.state_dict()), _flat(graphed.state_dict())
    differ = [k for k in eager_state if k not in graphed_state or not torch.equal(eager_state[k], graphed_state[k])]
    assert not differ, (
        f"after {len(batches)} updates the graphed agent's state differs from the eager one's: {differ[:10]}"
    )
    assert any(g.replays >= 2 for g in graphs.graphs), "no graph was replayed twice: pass more batches"

"""What the benchmarks and the tests that check the fast paths share, and the benchmarks' console entries.

* The plain paths the fast ones replaced (``plain_adam``, ``plain_train_step``): ``benchmarks/throughput.py``
  times the fast paths against them and ``tests/test_throughput_paths.py`` checks they agree.
* Matrix-product counters (``matmul_gflop``, ``matmul_replay``): the GFLOP of one unit of a workload and a
  replay of its products alone, the matmul-only ceiling the throughput benchmark reports.
* ``mbrl-bench-throughput ARGS`` runs ``benchmarks/throughput.py ARGS`` of the checkout this package
  was installed from (``pip install -e .``); benchmarks measure the code of that checkout.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

if TYPE_CHECKING:
    from mbrl.agents.sac import SACAgent
    from mbrl.dynamics.ensemble import GaussianEnsemble

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str) -> None:
    path = BENCHMARKS / script
    if not path.exists():
        raise SystemExit(f"{path} not found: benchmarks run from a source checkout installed with `pip install -e .`")
    sys.path.insert(0, str(BENCHMARKS.parent))  # the scripts import ``benchmarks.*`` and the packages beside it
    sys.argv[0] = str(path)
    runpy.run_path(str(path), run_name="__main__")


def throughput() -> None:
    _run("throughput.py")


# -- the plain paths the fast ones replaced --------------------------------------------------------
def plain_adam(agent: SACAgent) -> SACAgent:
    """``agent`` with torch's default for-loop Adam: the path fused Adam replaced."""
    cfg = agent.cfg
    agent.actor_opt = torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr, foreach=False)
    agent.critic_opt = torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr, foreach=False)
    agent.alpha_opt = torch.optim.Adam([agent.log_alpha], lr=cfg.alpha_lr, foreach=False)
    return agent


def plain_train_step(
    model: GaussianEnsemble, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer
) -> torch.Tensor:
    """The dynamics fit's step the straightforward way, autograd through the whole ``supervised_loss`` (the L2
    term included): the path ``GaussianEnsemble._train_step`` replaced. Returns the mean per-member NLL."""
    loss, nll = model.supervised_loss(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return nll


# -- matrix-product counters ----------------------------------------------------------------------
class MatmulFlops(TorchDispatchMode):
    """Sums torch's FLOP formulas (``torch.utils.flop_counter``) over every operator that has one: the matrix
    products. ``FlopCounterMode`` itself cannot watch EDAC's ``autograd.grad(create_graph=True)``: its
    module hooks refuse to run inside it. Also keeps each product's operator and argument layouts, so
    ``matmul_replay`` can run the same products alone."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.calls: list[tuple[Callable, tuple, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
            self.calls.append((func, tree_map(_layout, args), tree_map(_layout, kwargs)))
        return out


@dataclass(frozen=True)
class _Layout:
    """A tensor's shape, strides (stride-0 broadcast views included), dtype and device."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


def _layout(x: object) -> object:
    return _Layout(tuple(x.shape), tuple(x.stride()), x.dtype, x.device) if isinstance(x, torch.Tensor) else x


def matmul_gflop(fn: Callable[[], object]) -> float:
    """GFLOP of the matrix products one call of ``fn`` runs, forward and backward."""
    with MatmulFlops() as counter:
        fn()
    return counter.flops / 1e9


def matmul_replay(fn: Callable[[], int]) -> Callable[[], int]:
    """A function that runs only the matrix products of one call of ``fn`` (same operators, shapes and memory
    layouts, fresh random inputs) and reports the units that call did. Its rate is the rate ``fn`` would reach
    if everything but its matrix products took no time: the ceiling the GEMM library sets on this machine."""
    with MatmulFlops() as counter:
        units = fn()
    tensors: dict[_Layout, torch.Tensor] = {}  # one tensor per layout: values do not change a product's speed

    def materialise(x: object) -> object:
        if not isinstance(x, _Layout):
            return x
        if x not in tensors:
            size = 1 + sum((n - 1) * st for n, st in zip(x.shape, x.stride, strict=True) if n > 0)
            tensors[x] = torch.randn(size, dtype=x.dtype, device=x.device).as_strided(x.shape, x.stride)
        return tensors[x]

    calls = [(func, tree_map(materialise, args), tree_map(materialise, kwargs)) for func, args, kwargs in counter.calls]

    def replay() -> int:
        with torch.no_grad():
            for func, args, kwargs in calls:
                func(*args, **kwargs)
        return units

    return replay

"""Shared plumbing of the conformance generators: importing a reference, running it in float64, building its
optimisers, saving a fixture."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "golden" / "conformance"


class Float64Torch(types.ModuleType):
    """``torch`` as seen by a reference module, with its float32 casts made float64.

    The references cast every network input to float32 (``torch.as_tensor(x, dtype=torch.float32)``), RAMBO its
    mixture log-likelihood back to float32; in a
    float64 fixture those casts would only round. By default ``torch.float32`` reads as float64; with
    ``as_tensor_only`` only ``as_tensor`` keeps float64 where asked for float32, and ``float32`` is left as is.
    """

    def __init__(self, as_tensor_only: bool = False) -> None:
        super().__init__("torch")
        self._as_tensor_only = as_tensor_only

    def __getattr__(self, name: str) -> Any:
        if name == "float32" and not self._as_tensor_only:
            return torch.float64
        if name == "as_tensor" and self._as_tensor_only:
            return _as_tensor_float64
        return getattr(torch, name)


def _as_tensor_float64(data: Any, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    return torch.as_tensor(data, dtype=torch.float64 if dtype == torch.float32 else dtype, device=device)


def adams(*groups: tuple[Any, float]) -> list[torch.optim.Optimizer]:
    """One ``Adam`` per ``(module or tensors, lr)``, in order: a policy's optimisers as its constructor takes them."""
    return [
        torch.optim.Adam(params.parameters() if isinstance(params, torch.nn.Module) else params, lr=lr)
        for params, lr in groups
    ]


class _Anything(types.ModuleType):
    """A stand-in module: every attribute is another stand-in, callable and subclassable.

    The references import packages that cannot be installed here (``gym`` with MuJoCo 2.1,
    ``d4rl``, ``pyrallis``) only for dataset loading, environments and logging, none of which a
    conformance fixture touches.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        child = _Anything(f"{self.__name__}.{name}")
        setattr(self, name, child)
        return child

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Anything(f"{self.__name__}()")

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


def stub_modules(*names: str) -> None:
    """Register stand-ins for ``names`` (and missing dotted parents) unless they import for real.

    Name every module the reference imports (``"gym", "gym.envs", "gym.envs.mujoco"``): a stand-in
    is not a package, so Python finds its submodules only among those registered here. Parents that
    exist (``torch.utils`` for ``"torch.utils.tensorboard"``) are kept.
    """
    for name in names:
        try:
            __import__(name)
            continue
        except Exception:
            pass
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub in sys.modules:  # a real parent (``torch.utils``) or an earlier stand-in stays
                continue
            sys.modules[sub] = _Anything(sub)
            if i > 1:
                setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[sub])


def use_reference(path: str | Path) -> str:
    """Put the checkout at ``path`` first on ``sys.path``; return its git commit."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise SystemExit(f"reference checkout {path} does not exist: clone it there first")
    sys.path.insert(0, str(path))
    return commit_of(path)


def commit_of(path: str | Path) -> str:
    """The checked-out commit of the git repository at ``path``."""
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def save_fixture(name: str, tensors: dict[str, Any], *, repository: str, commit: str, notes: str = "") -> Path:
    """Write ``tensors`` (nested dicts of tensors, numbers and strings) to ``FIXTURES/name.pt``.

    Floating tensors are stored as float64 on the CPU, so the file loads with ``weights_only=True``.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            return value.double() if value.is_floating_point() else value.clone()
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    FIXTURES.mkdir(parents=True, exist_ok=True)
    payload = {
        "meta": {"repository": repository, "commit": commit, "torch": str(torch.__version__), "notes": notes},
        **clean(tensors),
    }
    path = FIXTURES / f"{name}.pt"
    torch.save(payload, path)
    return path

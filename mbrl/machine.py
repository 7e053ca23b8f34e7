"""The machine a run or a benchmark ran on, as recorded in ``final.json`` and the benchmark reports.

Scores are not bitwise portable across processors: the same seed and commit give different floating-point
sums on different CPUs (vectorised kernels differ), and over 10⁵ updates those differences grow into
different policies. So a result names its processor, not just ``x86_64``.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def cpu_name() -> str:
    """The processor's model name with its family and model numbers (``/proc/cpuinfo`` on Linux, where
    virtual machines often hide the generation behind a generic name), else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():  # the blank line after the first processor's block
                    break
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    numbers = f" (family {fields['cpu family']} model {fields['model']})" if "cpu family" in fields else ""
    return fields["model name"] + numbers


def describe() -> dict[str, Any]:
    """This machine and software: processor, cores, the vector instructions torch's CPU kernels use,
    torch's intra-op threads, GPU (None without CUDA), and the torch, Python and OS versions."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def arithmetic(device: torch.device) -> str:
    """The hardware doing a computation's floating-point arithmetic on ``device``: the GPU's name on CUDA,
    else the processor with the vector instructions torch's kernels use. The same code, data and seed give
    bitwise-equal results only on the same hardware."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.backends.cpu.get_cpu_capability()}"

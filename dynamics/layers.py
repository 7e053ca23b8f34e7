"""Batched ensemble layers: one ``[E, in, out]`` matmul serves every member at once.

The same layer backs dynamics ensembles and critic ensembles (SAC-N, EDAC, RAVL), so
there is exactly one implementation of "E independent linear maps" in the code base.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps applied with one batched matmul.

    Args:
        in_features: input width per member.
        out_features: output width per member.
        ensemble_size: number of members ``E``.

    Shapes:
        input ``[E, B, in]`` (or ``[B, in]``, broadcast to every member) -> ``[E, B, out]``.
    """

    def __init__(self, in_features: int, out_features: int, ensemble_size: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.ensemble_size = ensemble_size
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's ``nn.Linear`` default init, drawn independently per member."""
        bound = 1.0 / math.sqrt(self.in_features)
        # kaiming_uniform(a=sqrt(5)) on a [out, in] weight reduces to U(-1/sqrt(in), 1/sqrt(in)).
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            # Same batch for every member: baddbmm on an expanded view avoids copying x E times.
            x = x.unsqueeze(0).expand(self.ensemble_size, -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, ensemble={self.ensemble_size}"

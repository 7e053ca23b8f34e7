"""Q-function ensembles on the batched ``EnsembleLinear`` layer."""

from __future__ import annotations

import torch
from torch import nn

from dynamics.layers import EnsembleLinear


class VectorizedCritic(nn.Module):
    """``N`` independent Q-networks evaluated in one batched pass.

    Shapes: ``obs [B, obs_dim]`` with ``act [B, act_dim]`` (one action for every member) or
    ``act [N, B, act_dim]`` (one per member, e.g. to take per-member action gradients) -> ``q [N, B]``.
    Hidden biases start at 0.1 and the output layer at U(+-3e-3), as in SAC-N/EDAC.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], num_critics: int) -> None:
        super().__init__()
        self.num_critics = num_critics
        layers: list[nn.Module] = []
        in_dim = obs_dim + act_dim
        for width in hidden:
            layer = EnsembleLinear(in_dim, width, num_critics)
            nn.init.constant_(layer.bias, 0.1)
            layers += [layer, nn.ReLU()]
            in_dim = width
        head = EnsembleLinear(in_dim, 1, num_critics)
        nn.init.uniform_(head.weight, -3e-3, 3e-3)
        nn.init.uniform_(head.bias, -3e-3, 3e-3)
        self.net = nn.Sequential(*layers, head)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if act.dim() == 3:
            obs = obs.unsqueeze(0).expand(act.shape[0], -1, -1)
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)

"""Q-function ensembles on the batched ``EnsembleLinear`` layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from dynamics.layers import EnsembleLinear


class BatchedSpectralNorm(nn.Module):
    """Parametrisation ``W[e] -> W[e] / sigma_max(W[e])`` for an ``[E, in, out]`` weight, per member.

    ``sigma_max`` is estimated by power iteration (one step per training-mode forward, as
    ``torch.nn.utils.parametrizations.spectral_norm`` does for a single matrix); the iteration
    vectors ``u [E, out]`` and ``v [E, in]`` are buffers, so they are checkpointed.
    """

    def __init__(self, weight: torch.Tensor, warmup_iterations: int = 15, eps: float = 1e-12) -> None:
        super().__init__()
        e, n_in, n_out = weight.shape
        self.eps = eps
        g = torch.Generator().manual_seed(0)
        self.register_buffer("_u", F.normalize(torch.randn(e, n_out, generator=g), dim=-1, eps=eps).to(weight))
        self.register_buffer("_v", F.normalize(torch.randn(e, n_in, generator=g), dim=-1, eps=eps).to(weight))
        for _ in range(warmup_iterations):
            self._power_step(weight.detach())

    @torch.no_grad()
    def _power_step(self, w: torch.Tensor) -> None:
        self._u.copy_(F.normalize(torch.einsum("eio,ei->eo", w, self._v), dim=-1, eps=self.eps))
        self._v.copy_(F.normalize(torch.einsum("eio,eo->ei", w, self._u), dim=-1, eps=self.eps))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._power_step(w.detach())
        # Clones: the buffers change in place on the next forward, after this graph was built.
        sigma = torch.einsum("ei,eio,eo->e", self._v.clone(), w, self._u.clone())
        return w / sigma[:, None, None]


class VectorizedCritic(nn.Module):
    """``N`` independent Q-networks evaluated in one batched pass.

    Shapes: ``obs [B, obs_dim]`` with ``act [B, act_dim]`` (one action for every member) or
    ``act [N, B, act_dim]`` (one per member, e.g. to take per-member action gradients) -> ``q [N, B]``.
    Hidden biases start at 0.1 and the output layer at U(+-3e-3), as in SAC-N/EDAC.

    ``spectral_norm=True`` normalises every hidden layer to spectral norm 1 (Zheng et al., ICLR 2023),
    so each member's Lipschitz constant in ``(s, a)`` is at most the norm of its output layer.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], num_critics: int, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        self.num_critics = num_critics
        layers: list[nn.Module] = []
        in_dim = obs_dim + act_dim
        for width in hidden:
            layer = EnsembleLinear(in_dim, width, num_critics)
            nn.init.constant_(layer.bias, 0.1)
            if spectral_norm:
                parametrize.register_parametrization(layer, "weight", BatchedSpectralNorm(layer.weight))
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

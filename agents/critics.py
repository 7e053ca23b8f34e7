"""Q-function ensembles on the batched ``EnsembleLinear`` layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from mbrl.nn import EnsembleLinear, mlp


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
        # Built first, re-initialised after: the same global-RNG draws in the same order as layer-by-layer
        # (the bias fill and the spectral norm's own generator draw nothing from it).
        self.net = mlp(obs_dim + act_dim, hidden, 1, members=num_critics)
        *hidden_layers, head = [m for m in self.net if isinstance(m, EnsembleLinear)]
        for layer in hidden_layers:
            nn.init.constant_(layer.bias, 0.1)
            if spectral_norm:
                parametrize.register_parametrization(layer, "weight", BatchedSpectralNorm(layer.weight))
        nn.init.uniform_(head.weight, -3e-3, 3e-3)
        nn.init.uniform_(head.bias, -3e-3, 3e-3)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if act.dim() == 3:
            obs = obs.unsqueeze(0).expand(act.shape[0], -1, -1)
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)

    def q_and_action_grad(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q [N, B]`` and every member's action-gradient ``dQ_j/da [N, B, act_dim]`` in one differentiable pass.

        The gradient is written out by the chain rule (``g <- (g @ W_l^T) * 1[z_l > 0]``, from the head
        down to the action columns of the first layer) instead of ``autograd.grad(create_graph=True)``:
        the same numbers up to float rounding, but an ordinary graph, so ``torch.compile`` (which cannot
        differentiate a compiled graph twice) can compile EDAC's loss. ``obs [B, obs_dim]``, ``act [B, act_dim]``.
        """
        modules = list(self.net)
        linears = [m for m in modules if isinstance(m, EnsembleLinear)]
        # Each weight is read once: a spectral-norm parametrisation runs a power step per read.
        weights = [layer.weight for layer in linears]
        h = torch.cat([obs, act], dim=-1).unsqueeze(0).expand(self.num_critics, -1, -1)
        active = []
        for layer, weight in zip(linears[:-1], weights[:-1], strict=True):
            z = torch.baddbmm(layer.bias, h, weight)
            active.append(z > 0)
            h = torch.relu(z)
        q = torch.baddbmm(linears[-1].bias, h, weights[-1]).squeeze(-1)
        grad = weights[-1].transpose(1, 2) * active[-1]  # dQ/dz of the last hidden layer, [N, B, hidden[-1]]
        for weight, mask in zip(weights[-2:0:-1], active[-2::-1], strict=True):
            grad = torch.bmm(grad, weight.transpose(1, 2)) * mask
        act_rows = weights[0][:, obs.shape[-1] :, :]  # the first layer's action inputs, [N, act_dim, hidden[0]]
        return q, torch.bmm(grad, act_rows.transpose(1, 2))

"""Q-function ensembles on the batched ``EnsembleLinear`` layer."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from mbrl.nn import INITS, EnsembleLinear, mlp, orthogonal_linears, require_init, state_input


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

    ``init`` (one of :data:`mbrl.nn.INITS`) is the initialisation scheme; each draws from the global RNG in
    its reference's order (:meth:`_initialise`). ``spectral_norm=True`` normalises every hidden layer to
    spectral norm 1 (Zheng et al., ICLR 2023), so each member's Lipschitz constant in ``(s, a)`` is at most
    the norm of its output layer. ``standardise_states=True`` standardises ``obs`` first
    (:class:`mbrl.nn.StateStandardiser`, fitted by the agent's ``attach``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        num_critics: int,
        spectral_norm: bool = False,
        init: str = "edac_heads",
        standardise_states: bool = False,
    ) -> None:
        super().__init__()
        require_init("VectorizedCritic", init, INITS)
        self.num_critics = num_critics
        self.obs_in = state_input(obs_dim, standardise_states)  # draws nothing
        if init == "edac_heads":
            # Built with EnsembleLinear's own draw (every member of a layer at once, U(+-1/sqrt(in))), then the
            # EDAC fills: what every run before the init setting used, so kept draw for draw.
            self.net = mlp(obs_dim + act_dim, hidden, 1, members=num_critics)
        else:
            # Every other scheme draws every value itself, so EnsembleLinear's own draw is discarded.
            with torch.random.fork_rng(devices=[]):
                self.net = mlp(obs_dim + act_dim, hidden, 1, members=num_critics)
        self._initialise(init)
        if spectral_norm:  # its power iteration uses its own generator: no global draws
            for layer in self.layers()[:-1]:
                parametrize.register_parametrization(layer, "weight", BatchedSpectralNorm(layer.weight))

    def layers(self) -> list[EnsembleLinear]:
        """The affine layers, input first, the ``[E, hidden[-1], 1]`` head last."""
        return [m for m in self.net if isinstance(m, EnsembleLinear)]

    @torch.no_grad()
    def _initialise(self, init: str) -> None:
        """Draw the parameters as scheme ``init``'s reference does (``mbrl.nn.INITS`` names them).

        - ``torch``, ``orthogonal``: member after member, each built as the ``nn.Linear`` MLP of one separate
          critic (OfflineRL-Kit's ``MLP`` + ``Critic``, PRDC's ``Critic``), ``orthogonal`` then redrawn with
          :func:`mbrl.nn.orthogonal_linears` (``run_iql.py:121-125``); weights copied transposed into ``[in, out]``.
        - ``edac``: CORL's and edge-of-reach's ``VectorizedLinear.reset_parameters`` (CORL ``edac.py:208-215``,
          edge-of-reach ``agent.py:28-35``), layer by layer: ``kaiming_uniform_(a=sqrt(5))`` on each member's
          ``[in, out]`` slice, then the biases. That is the references' behaviour, not torch's ``nn.Linear``:
          torch takes the fan-in of a 2-d weight from its second dimension, here ``out``, so the weights are
          U(+-1/sqrt(out)) and the biases, whose bound is computed from the same slice, too. Only layers with
          ``in != out`` differ from nn.Linear's draw: the first (and the head, redrawn below). Then hidden biases
          0.1, head weight and bias U(+-3e-3) (CORL ``edac.py:301-306``, edge-of-reach ``agent.py:120-125``).
        - ``edac_trunc_normal``: OfflineRL-Kit's ``EnsembleCritic`` (``nets/ensemble_linear.py:20-23``):
          ``trunc_normal_(std=1/(2 sqrt(in)))`` over a layer's ``[E, in, out]`` weight, whose bounds stay
          torch's absolute +-2, biases 0; then ``run_edac.py:99-103``: hidden biases 0.1 (its ``model[::2]``
          also fills the head's, which it then redraws), head weight and bias U(+-3e-3).
        - ``edac_heads``: hidden biases 0.1, head U(+-3e-3) on EnsembleLinear's draw.
        """
        layers = self.layers()
        *hidden_layers, head = layers
        if init in ("torch", "orthogonal"):
            for member in range(self.num_critics):
                linears = [nn.Linear(layer.in_features, layer.out_features) for layer in layers]
                if init == "orthogonal":
                    orthogonal_linears(nn.Sequential(*linears))
                for layer, linear in zip(layers, linears, strict=True):
                    layer.weight[member].copy_(linear.weight.T)
                    layer.bias[member, 0].copy_(linear.bias)
            return
        if init == "edac":
            for layer in layers:
                for member in range(self.num_critics):
                    nn.init.kaiming_uniform_(layer.weight[member], a=math.sqrt(5))
                bound = 1 / math.sqrt(layer.out_features)  # fan-in of the [in, out] slice, as above
                nn.init.uniform_(layer.bias, -bound, bound)
        if init == "edac_trunc_normal":
            for layer in layers:
                nn.init.trunc_normal_(layer.weight, std=1 / (2 * layer.in_features**0.5))
                nn.init.zeros_(layer.bias)
        for layer in hidden_layers:
            nn.init.constant_(layer.bias, 0.1)
        nn.init.uniform_(head.weight, -3e-3, 3e-3)
        nn.init.uniform_(head.bias, -3e-3, 3e-3)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        obs = self.obs_in(obs)
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
        linears = self.layers()
        # Each weight is read once: a spectral-norm parametrisation runs a power step per read.
        weights = [layer.weight for layer in linears]
        obs = self.obs_in(obs)
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

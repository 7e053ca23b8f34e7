"""Network building blocks every learned component shares (floor 1: imports nothing of ours).

* :class:`EnsembleLinear`: ``E`` independent affine maps in one batched matmul. Dynamics ensembles,
  critic ensembles (SAC-N, EDAC, RAVL) and MOREC's discriminators all stack it, so there is exactly
  one implementation of "E independent linear maps".
* :func:`mlp` (on :func:`linear_layers`): the one way layers are stacked, plain or ensembled.
* :func:`fit_zscore` / :func:`zscore`: the one input normaliser (the dynamics ensemble's and MOREC's
  dynamics reward's inputs); the owner keeps the statistics as its own buffers.
* :class:`TanhGaussianActor`: the stochastic policy of the actor-critic agents, and the network of the
  behaviour policies the built-in datasets are generated from.
* :class:`TanhMeanGaussianActor`: an unsquashed Gaussian with a tanh-bounded mean and a state-independent
  std, the policy IQL is published with (advantage-weighted regression on dataset actions).
* :data:`INITS`: the names of the initialisation schemes the networks here and the agents' critics take
  (``init=``); :func:`orthogonal_linears` is the orthogonal one, :func:`require_init` the check.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# Initialisation schemes, each a reference's (docs/fidelity.md, "Initialisation"). Every network is first built
# with torch's nn.Linear default draw; a scheme then redraws what its reference redraws, in the same order.
# - "edac_heads": the stochastic actor's two heads U(+-1e-3); critic hidden biases 0.1 and head U(+-3e-3) on
#   U(+-1/sqrt(in)) weights drawn layer by layer for all members at once. No reference's: what every run made
#   before the setting existed used, so it stays the agents' default.
# - "torch": nn.Linear's default everywhere; critic members drawn one after another, each as an nn.Linear MLP
#   (OfflineRL-Kit's MLP + Critic, PRDC's Critic).
# - "edac": the EDAC authors' scheme as CORL and edge-of-reach write it: actor trunk biases 0.1, actor heads
#   U(+-1e-3), critic hidden biases 0.1, critic head U(+-3e-3); the critic's other draws as their
#   VectorizedLinear makes them (see agents/critics.py for its fan-in).
# - "edac_trunc_normal": OfflineRL-Kit's run_edac.py: the actor at nn.Linear's default; critic weights
#   trunc_normal_(std=1/(2 sqrt(in))) (its EnsembleLinear), biases 0.1, head U(+-3e-3).
# - "orthogonal": OfflineRL-Kit's run_iql.py: every linear layer orthogonal with gain sqrt(2), biases 0.
INITS = ("edac_heads", "torch", "edac", "edac_trunc_normal", "orthogonal")


def orthogonal_linears(module: nn.Module) -> None:
    """Every ``nn.Linear`` of ``module``, in ``module.modules()`` order: weight ``orthogonal_`` with gain
    ``sqrt(2)``, bias 0 (OfflineRL-Kit ``run_iql.py:121-125``). Draws from the global RNG."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
            nn.init.zeros_(layer.bias)


def require_init(network: str, init: str, supported: Sequence[str]) -> None:
    """Refuse an ``init`` scheme the network named ``network`` does not define (``ValueError``)."""
    if init not in supported:
        raise ValueError(f"init must be one of {', '.join(supported)} for {network}, got {init!r}")


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


def linear_layers(widths: Sequence[int], members: int | None = None) -> list[nn.Module]:
    """One affine layer per consecutive pair of ``widths``, created (and initialised) first to last.

    ``members=None``: ``nn.Linear`` layers ``[B, in] -> [B, out]``; ``members=E``: :class:`EnsembleLinear`
    layers ``[B, in]`` or ``[E, B, in] -> [E, B, out]``. Both draw their default initialisation from the
    global RNG in this order, so a seed gives the same weights wherever a network is built through here.
    """
    pairs = itertools.pairwise(widths)
    if members is None:
        return [nn.Linear(i, o) for i, o in pairs]
    return [EnsembleLinear(i, o, members) for i, o in pairs]


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None = None,
    *,
    members: int | None = None,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """``Linear, activation`` per hidden width, then a linear output layer of ``out_dim`` if given.

    Without ``out_dim`` it is a trunk ``[B, in_dim] -> [B, hidden[-1]]`` (ending in the activation) for
    the caller's own heads. ``members=E`` builds ``E`` independent MLPs on :class:`EnsembleLinear`:
    ``[B, in_dim]`` or ``[E, B, in_dim] -> [E, B, out]``. Layers sit at even indices of the
    ``nn.Sequential`` (``0, 2, ...``), activations between them.
    """
    widths = (in_dim, *hidden) if out_dim is None else (in_dim, *hidden, out_dim)
    layers: list[nn.Module] = []
    for index, layer in enumerate(linear_layers(widths, members)):
        layers.append(layer)
        if index < len(hidden):
            layers.append(activation())
    return nn.Sequential(*layers)


def fit_zscore(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Statistics of the z-score input normaliser: ``x [N, D]`` -> ``mean [D]``, ``std [D]``.

    The population std (``unbiased=False``, as OfflineRL-Kit's ``StandardScaler``); a constant column
    gets std 1, so it passes unscaled instead of dividing by zero.
    """
    std = x.std(dim=0, unbiased=False)
    return x.mean(dim=0), torch.where(std < 1e-12, torch.ones_like(std), std)


def zscore(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` for ``x [..., D]`` with statistics ``[D]`` from :func:`fit_zscore`."""
    return (x - mean) / std


def state_statistics(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The state standardisation of TD3+BC (Fujimoto and Gu 2021): ``obs [N, obs_dim]`` -> ``mean [obs_dim]``,
    ``std [obs_dim]``, the population std plus 1e-3 (OfflineRL-Kit ``ReplayBuffer.normalize_obs``, which its
    TD3+BC and RAMBO use; PRDC's authors' code). Computed in float64, returned in ``obs``'s dtype."""
    x = obs.to(torch.float64)
    return x.mean(dim=0).to(obs.dtype), (x.std(dim=0, correction=0) + 1e-3).to(obs.dtype)


class StateStandardiser(nn.Module):
    """``(obs - mean) / std`` in front of a network, so the network learns on standardised states while every
    caller (acting, rollouts, targets, evaluation) passes raw ones.

    The identity until :meth:`fit` sets the statistics (:func:`state_statistics`). They are buffers: saved in
    the network's ``state_dict``, moved with it and copied into target networks. Shapes: ``obs [..., obs_dim]``.
    """

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @torch.no_grad()
    def fit(self, obs: torch.Tensor) -> None:
        """Set the statistics from the dataset's states ``obs [N, obs_dim]``."""
        self.set_statistics(*state_statistics(obs))

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Copy ``mean [obs_dim]`` and ``std [obs_dim]`` (from :func:`state_statistics`) onto this layer's device."""
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return zscore(obs, self.mean, self.std)


def state_input(obs_dim: int, standardise: bool) -> nn.Module:
    """A network's state input: a :class:`StateStandardiser` or, when ``standardise`` is off, ``nn.Identity``
    (no buffers, so the network's ``state_dict`` is what it was before the option existed)."""
    return StateStandardiser(obs_dim) if standardise else nn.Identity()


def fit_state_standardisers(obs: torch.Tensor, *networks: nn.Module) -> None:
    """Fit every :class:`StateStandardiser` inside ``networks`` to the dataset's states ``obs [N, obs_dim]`` (the
    statistics computed once, where ``obs`` lies, and copied into each)."""
    layers = [m for network in networks for m in network.modules() if isinstance(m, StateStandardiser)]
    if layers:
        mean, std = state_statistics(obs)
        for layer in layers:
            layer.set_statistics(mean, std)


class BoxPolicy(nn.Module):
    """A policy network over the action box ``[act_low, act_high]``: subclasses define :meth:`build` and
    :meth:`initialise`.

    The layers are built first (so parameters are created, and drawn from the RNG at nn.Linear's default, in
    ``build``'s order), then :meth:`initialise` redraws what the ``init`` scheme (one of :data:`INITS`) says,
    then the box's ``act_scale = (high - low) / 2`` and ``act_bias = (high + low) / 2`` buffers.
    ``standardise_states`` puts a :class:`StateStandardiser` (``obs_in``) before the layers; it draws nothing.
    """

    INITS: tuple[str, ...] = ()  # the schemes a subclass defines

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        act_low: tuple[float, ...],
        act_high: tuple[float, ...],
        init: str = "edac_heads",
        standardise_states: bool = False,
    ) -> None:
        super().__init__()
        require_init(type(self).__name__, init, self.INITS)
        self.build(obs_dim, act_dim, hidden)
        self.initialise(init)
        self.register_box(torch.as_tensor(act_low, dtype=torch.float32), torch.as_tensor(act_high, dtype=torch.float32))
        self.obs_in = state_input(obs_dim, standardise_states)

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        raise NotImplementedError

    def initialise(self, init: str) -> None:
        """Redraw the built layers' parameters as scheme ``init`` says (nothing for nn.Linear's default)."""
        raise NotImplementedError

    def register_box(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.register_buffer("act_scale", (high - low) / 2)
        self.register_buffer("act_bias", (high + low) / 2)


class TanhGaussianActor(BoxPolicy):
    """``a = low + (tanh(u) + 1) / 2 * (high - low)``, ``u ~ N(mu(s), sigma(s))``.

    Log-std is clamped to [-5, 2] (the EDAC/RAVL range). Under the ``edac_heads`` and ``edac`` schemes the
    heads start near zero (U(+-1e-3)), so the initial policy is close to uniform over the box; ``edac`` also
    sets the trunk's biases to 0.1 (CORL ``edac.py:241-248``, edge-of-reach ``agent.py:60-67``).
    """

    LOG_STD_MIN = -5.0
    LOG_STD_MAX = 2.0
    INITS = INITS

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        self.trunk = mlp(obs_dim, hidden)
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def initialise(self, init: str) -> None:
        if init == "orthogonal":
            orthogonal_linears(self)
        if init == "edac":
            for layer in self.trunk[::2]:
                nn.init.constant_(layer.bias, 0.1)
        if init in ("edac_heads", "edac"):
            for head in (self.mu, self.log_std):
                nn.init.uniform_(head.weight, -1e-3, 1e-3)
                nn.init.uniform_(head.bias, -1e-3, 1e-3)

    def _head(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(self.obs_in(obs))
        return self.mu(h), self.log_std(h).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """Log-density ``[B]`` of given actions ``[B, act_dim]`` (e.g. dataset actions, for IQL/AWR).

        Actions are pulled ``eps`` inside the box first: ``atanh`` is infinite on its boundary.
        """
        mu, log_std = self._head(obs)
        u = torch.atanh(((action - self.act_bias) / self.act_scale).clamp(-1 + eps, 1 - eps))
        return self._log_density(u, mu, log_std)

    def _log_density(self, u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """``log N(u; mu, std) - log|d tanh(u)/du| - log(scale)``, summed over action dims -> ``[B]``.

        The tanh term uses the stable form ``2 * (log 2 - u - softplus(-2u))``.
        """
        noise = (u - mu) / log_std.exp()
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return log_prob - self.act_scale.log().sum()

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``obs [B, obs_dim]`` -> (action ``[B, act_dim]``, log-prob ``[B]`` or None).

        Sampling uses the reparameterisation trick, so the action carries gradients.
        """
        mu, log_std = self._head(obs)
        u = mu if deterministic else mu + log_std.exp() * torch.randn_like(mu)
        action = torch.tanh(u) * self.act_scale + self.act_bias
        if not with_log_prob:
            return action, None
        return action, self._log_density(u, mu, log_std)


class TanhMeanGaussianActor(BoxPolicy):
    """``a ~ N(mean(s), exp(log_std))`` with ``mean(s) = bias + scale * tanh(net(s))`` and a learned,
    state-independent ``log_std [act_dim]``; samples are not squashed, acting clips them to the box.

    The policy of IQL's authors (``NormalTanhPolicy`` with ``tanh_squash_distribution=False``), CORL
    (``iql.py:303-326``, ``GaussianPolicy``) and OfflineRL-Kit (``DiagGaussian(unbounded=False,
    conditioned_sigma=False)``): ``log_std`` starts at 0 and is clamped to [-20, 2] where it is used (CORL's
    range; OfflineRL-Kit does not clamp). The mean is scaled to the box as OfflineRL-Kit's ``max_mu``
    (CORL's mean is ``tanh`` alone; the two agree on the [-1, 1] box). ``net`` is a plain :func:`mlp`
    (``Linear`` layers at ``net.0, net.2, ...``) at PyTorch's default initialisation, or orthogonal
    (``init="orthogonal"``, OfflineRL-Kit's ``run_iql.py``); ``edac_heads`` (the default) is the default draw.

    Shapes: ``obs [B, obs_dim]`` -> mean ``[B, act_dim]``; the std broadcasts from ``[act_dim]``.
    """

    LOG_STD_MIN = -20.0
    LOG_STD_MAX = 2.0
    INITS = ("edac_heads", "torch", "orthogonal")

    def build(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        self.net = mlp(obs_dim, hidden, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def initialise(self, init: str) -> None:
        if init == "orthogonal":
            orthogonal_linears(self.net)

    def register_box(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.register_buffer("act_low", low)  # acting clips to the box
        self.register_buffer("act_high", high)
        super().register_box(low, high)

    def _head(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, obs_dim]`` -> mean ``[B, act_dim]`` (inside the box), clamped log-std ``[act_dim]``."""
        mean = torch.tanh(self.net(self.obs_in(obs))) * self.act_scale + self.act_bias
        return mean, self.log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    @staticmethod
    def _log_density(action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """``log N(action; mean, exp(log_std))`` summed over action dims -> ``[B]``."""
        noise = (action - mean) / log_std.exp()
        return (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Unsquashed log-density ``[B]`` of given actions ``[B, act_dim]`` (dataset actions, for AWR)."""
        mean, log_std = self._head(obs)
        return self._log_density(action, mean, log_std)

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``obs [B, obs_dim]`` -> (action ``[B, act_dim]`` clipped to the box, log-prob ``[B]`` or None).

        Deterministic: the mean. Stochastic: ``mean + std * eps`` (reparameterised), then clipped, as the
        references act (CORL ``iql.py:332``); the log-prob is the density of the draw before clipping.
        """
        mean, log_std = self._head(obs)
        sample = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        action = torch.clamp(sample, self.act_low, self.act_high)
        if not with_log_prob:
            return action, None
        return action, self._log_density(sample, mean, log_std)

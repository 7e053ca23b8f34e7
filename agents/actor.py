"""Tanh-squashed Gaussian policy shared by every stochastic actor-critic agent."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, hidden: tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Hidden layers only (no output head): ``[B, in_dim] -> [B, hidden[-1]]``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    return nn.Sequential(*layers)


class TanhGaussianActor(nn.Module):
    """``a = low + (tanh(u) + 1) / 2 * (high - low)``, ``u ~ N(mu(s), sigma(s))``.

    Log-std is clamped to [-5, 2] (the EDAC/RAVL range); the heads start near zero
    (U(+-1e-3)) so the initial policy is close to uniform over the box.
    """

    LOG_STD_MIN = -5.0
    LOG_STD_MAX = 2.0

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        act_low: tuple[float, ...],
        act_high: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden)
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)
        for head in (self.mu, self.log_std):
            nn.init.uniform_(head.weight, -1e-3, 1e-3)
            nn.init.uniform_(head.bias, -1e-3, 1e-3)
        low = torch.as_tensor(act_low, dtype=torch.float32)
        high = torch.as_tensor(act_high, dtype=torch.float32)
        self.register_buffer("act_scale", (high - low) / 2)
        self.register_buffer("act_bias", (high + low) / 2)

    def _head(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
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

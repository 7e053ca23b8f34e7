"""The probabilistic Gaussian ensemble of MBPO/MOPO (and of RAVL, MOBILE, COMBO, MOREC).

Each of ``E`` members is an MLP over the z-scored ``concat(obs, act)`` that predicts the mean and
log-variance of ``[Δs, r]`` (``D = obs_dim + 1``, targets in raw units). All members run in one
batched pass through :class:`~mbrl.nn.EnsembleLinear` layers. Training follows
OfflineRL-Kit's ``EnsembleDynamics.train``:

* holdout split of ``min(holdout_fraction * N, max_holdout)`` rows, the normaliser fit on the rest;
* per-member bootstrap resamples of the training rows (drawn once), reshuffled every epoch;
* loss per member ``mean((μ - y)² e^{-lv}) + mean(lv)``, summed over members, plus the L2 decay
  ``Σ_l 0.5 · wd_l · ||W_l||²`` (weights only, summed over members) and
  ``logvar_loss_coef · (Σ max_logvar - Σ min_logvar)``;
* per-member best snapshots on a relative holdout-MSE gain ``> improvement_threshold``; training stops
  after ``max_epochs_since_update`` epochs in which no member improved (or at ``max_epochs``); the best
  snapshots are restored and the ``num_elites`` members with the lowest holdout MSE become ``elites``.

A single Gaussian model is ``ensemble_size=1, num_elites=1``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from mbrl.dynamics.base import FitReport, StepResult
from mbrl.dynamics.termination import TerminationFn, get_termination_fn
from torch import nn

from mbrl.data.transitions import DatasetError, Transitions
from mbrl.nn import EnsembleLinear, fit_zscore, linear_layers, zscore
from mbrl.optim import adam

log = logging.getLogger(__name__)

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU}

# Rows per forward pass when scoring the holdout set, to bound activation memory on large holdouts.
_EVAL_CHUNK = 8192
# Rows per forward pass of ``sample``/``sample_candidates`` on CPU. A 50k-row rollout step streams
# [E, 50k, 200] activations (~280 MB per layer) through memory; in chunks of 512 rows they stay in
# cache and the step runs about 1.7x faster with the same numbers (benchmarks/throughput.py).
# GPUs want the one large pass.
_CPU_SAMPLE_CHUNK = 512


@dataclass
class EnsembleConfig:
    """Hyper-parameters of :class:`GaussianEnsemble`; defaults are the published MBPO/MOPO ones.

    Attributes:
        ensemble_size: members ``E``.
        num_elites: members used by ``sample`` (lowest holdout MSE).
        hidden_sizes: widths of the hidden layers.
        activation: ``"silu"`` (Swish; OfflineRL-Kit, RAVL) or ``"relu"`` (Unifloral).
        lr: Adam learning rate.
        batch_size: rows per member per gradient step.
        weight_decay: one coefficient per layer, the output layer last (``len(hidden_sizes) + 1``
            entries); added to the loss as ``0.5 * wd * ||W||²`` (OfflineRL-Kit), not Adam's decay.
        logvar_loss_coef: weight of ``Σ max_logvar - Σ min_logvar`` in the loss.
        holdout_fraction: fraction of the data held out for early stopping and elite selection.
        max_holdout: cap on the holdout size (OfflineRL-Kit: 1000); ``None`` = the pure fraction (RAVL).
        max_epochs: hard cap on epochs; ``None`` = until early stopping.
        max_epochs_since_update: stop after this many epochs without any member improving.
        improvement_threshold: relative holdout-MSE gain that counts as an improvement.
        bootstrap: train each member on its own bootstrap resample. Ignored for ``ensemble_size=1``:
            without other members there is no diversity to gain, only a third of the data to lose.
        seed: seeds the initialisation (CPU generator) and every draw made by ``fit``.
        termination: env family whose termination rule ``sample`` applies (``"hopper"``, ...);
            ``None`` = never terminate.
        max_train_steps_per_epoch: optional cap on gradient steps per epoch (CPU-scale runs).
        init_truncation: layer weights start from ``N(0, std²)`` with ``std = 1/(2√fan_in)`` and zero
            biases, the normal cut at ``±init_truncation`` standard deviations: 2 as MBPO and the RAVL
            authors' code (edge-of-reach ``dynamics_training/net.py:153``). ``None``: cut at ±2 in
            absolute value, ``torch.nn.init.trunc_normal_``'s default bounds, as OfflineRL-Kit
            (``nets/ensemble_linear.py:23``) and polixir/morec call it; at these stds (≤ 0.1) that cuts
            nothing, so the weights are about 14 % wider than the 2-std cut's, and a 25-epoch fit gets
            further (``docs/fidelity.md``, the ensemble).
    """

    ensemble_size: int = 7
    num_elites: int = 5
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    activation: str = "silu"
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    logvar_loss_coef: float = 0.01
    holdout_fraction: float = 0.2
    max_holdout: int | None = 1000
    max_epochs: int | None = None
    max_epochs_since_update: int = 5
    improvement_threshold: float = 0.01
    bootstrap: bool = True
    seed: int = 0
    termination: str | None = None
    max_train_steps_per_epoch: int | None = None
    init_truncation: float | None = 2.0

    def __post_init__(self) -> None:
        # Hydra/YAML hand over lists; keep tuples so the config hashes and compares stably.
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.weight_decay = tuple(float(w) for w in self.weight_decay)
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {self.ensemble_size}")
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ValueError(f"num_elites must be in [1, ensemble_size={self.ensemble_size}], got {self.num_elites}")
        if len(self.weight_decay) != len(self.hidden_sizes) + 1:
            raise ValueError(
                f"weight_decay needs one entry per layer incl. the output layer ({len(self.hidden_sizes) + 1} "
                f"for hidden_sizes={self.hidden_sizes}), got {len(self.weight_decay)}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.max_holdout is not None and self.max_holdout < 1:
            raise ValueError(f"max_holdout must be >= 1 or None, got {self.max_holdout}")
        for name in ("max_epochs", "max_train_steps_per_epoch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.init_truncation is not None and not self.init_truncation > 0:
            raise ValueError(f"init_truncation must be > 0 (standard deviations) or None, got {self.init_truncation}")
        if self.batch_size < 1 or self.max_epochs_since_update < 1:
            raise ValueError("batch_size and max_epochs_since_update must be >= 1")
        if self.termination is not None:
            get_termination_fn(self.termination)  # fail at construction, naming the known families


def replay_stopping(
    holdout: list[list[float]], cap: int | None, patience: int, threshold: float
) -> tuple[int, list[int]] | None:
    """:meth:`GaussianEnsemble.fit`'s stopping rule replayed on per-member holdout MSE curves
    ``[epochs][E]`` (as ``fit``'s ``on_epoch`` sees them), with cap ``max_epochs``, patience
    ``max_epochs_since_update`` and ``improvement_threshold``.

    A fit's weights do not depend on when it stops, so one long fit with early stopping off answers
    what any rule would have kept (``benchmarks/fit_curve.py``). Returns the epoch the rule stops at
    and each member's kept snapshot (the epoch of its last improvement), or None when it had not
    stopped within the recorded epochs.
    """
    members = len(holdout[0])
    best, kept, stale = [math.inf] * members, [0] * members, 0
    for epoch, mse in enumerate(holdout, start=1):
        improved = False
        for m, value in enumerate(mse):
            if math.isfinite(value) and (not math.isfinite(best[m]) or (best[m] - value) / best[m] > threshold):
                best[m], kept[m], improved = value, epoch, True
        stale = 0 if improved else stale + 1
        if stale >= patience or epoch == cap:
            return epoch, kept
    return None


class GaussianEnsemble(nn.Module):
    """``E`` Gaussian MLPs over ``[Δs, r]``, trained and evaluated in one batched pass.

    Args:
        obs_dim: observation width ``o``.
        act_dim: action width ``a``.
        config: hyper-parameters (kept as ``self.cfg``; not part of the state dict).
        device: where parameters, buffers and every returned tensor live.

    State dict: layer parameters, ``max_logvar`` / ``min_logvar`` ``[D]``, the input normaliser
    ``input_mean`` / ``input_std`` ``[o + a]``, ``elites`` ``[num_elites]`` (best first) and
    ``holdout_mse`` ``[E]`` of the last fit (``inf`` before fitting).
    """

    elites: torch.Tensor
    holdout_mse: torch.Tensor
    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, config: EnsembleConfig | None = None, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__()
        self.cfg = config or EnsembleConfig()
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.out_dim = obs_dim + 1
        self.device = torch.device(device)
        cfg = self.cfg
        # One output layer for mean and raw logvar, as in OfflineRL-Kit (it carries the last decay entry).
        # Hidden layers and output are kept apart (state keys hidden.<i>, output: OfflineRL-Kit's backbones.<i>,
        # output_layer) because sample() runs them per drawn member, not as one nn.Sequential.
        *hidden, output = linear_layers((obs_dim + act_dim, *cfg.hidden_sizes, 2 * self.out_dim), cfg.ensemble_size)
        self.hidden = nn.ModuleList(hidden)
        self.output: EnsembleLinear = output
        self.activation = ACTIVATIONS[cfg.activation]()
        # Shared by all members, learned (PETS): the soft bounds of the predicted log-variance.
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), -10.0))
        self.register_buffer("input_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("input_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("elites", torch.arange(cfg.num_elites))
        self.register_buffer("holdout_mse", torch.full((cfg.ensemble_size,), math.inf))
        self._termination: TerminationFn | None = get_termination_fn(cfg.termination) if cfg.termination else None
        # Not config or state: rows are computed independently, so it changes speed, not results. None = one pass.
        self.sample_chunk: int | None = _CPU_SAMPLE_CHUNK if self.device.type == "cpu" else None
        self._init_weights()
        self.to(self.device)

    def _init_weights(self) -> None:
        """Normal, std ``1/(2√fan_in)``, cut as ``cfg.init_truncation`` says; zero bias; CPU generator so
        every device starts from the same numbers."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        cut = self.cfg.init_truncation
        with torch.no_grad():
            for layer in self.layers:
                std = 1.0 / (2.0 * math.sqrt(layer.in_features))
                bound = 2.0 if cut is None else cut * std  # None: trunc_normal_'s default absolute bounds
                w = torch.empty(layer.weight.shape)
                nn.init.trunc_normal_(w, std=std, a=-bound, b=bound, generator=gen)
                layer.weight.copy_(w)
                layer.bias.zero_()

    @property
    def layers(self) -> list[EnsembleLinear]:
        """Every ``EnsembleLinear`` in order, the output layer last (aligned with ``cfg.weight_decay``)."""
        return [*self.hidden, self.output]

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to rebuild this model: dims, config and state dict."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": dataclasses.asdict(self.cfg),
            "state_dict": self.state_dict(),
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], device: str | torch.device = "cpu") -> GaussianEnsemble:
        """Inverse of :meth:`checkpoint`."""
        model = cls(checkpoint["obs_dim"], checkpoint["act_dim"], EnsembleConfig(**checkpoint["config"]), device)
        model.load_state_dict(checkpoint["state_dict"])
        return model

    # -- forward ---------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs ``[B, o+a]`` (shared) or ``[E, B, o+a]`` -> mean, logvar ``[E, B, D]``."""
        h = x
        for layer in self.hidden:
            h = self.activation(layer(h))
        return self._mean_logvar(self.output(h))

    def _mean_logvar(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output layer ``[..., 2D]`` -> mean, logvar ``[..., D]``."""
        mean, raw_logvar = out.split(self.out_dim, dim=-1)
        # Soft clamp into [min_logvar, max_logvar] that keeps gradients flowing to the bounds.
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    @staticmethod
    def targets(data: Transitions) -> torch.Tensor:
        """What the model predicts for each row of ``data``: ``[s' - s, r]``, ``[N, obs_dim + 1]``."""
        return torch.cat([data.next_obs - data.obs, data.rew[:, None]], dim=1)

    def member_mse(self, data: Transitions) -> torch.Tensor:
        """MSE of each member's mean ``[s' - s, r]`` on ``data`` (the fit's holdout score): ``[E]``."""
        data = data.to(self.device)
        return self._holdout_mse(self.model_inputs(data.obs, data.act), self.targets(data).to(self.input_mean))

    def model_inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The networks' input: ``obs [B, o]``, ``act [B, a]`` -> z-scored ``concat(obs, act)`` ``[B, o+a]``.

        On the model's device and dtype, with the normaliser fitted by the last ``fit``. Feeds
        :meth:`supervised_loss`.
        """
        if obs.dim() != 2 or obs.shape[1] != self.obs_dim or act.shape != (obs.shape[0], self.act_dim):
            raise ValueError(
                f"expected obs [B, {self.obs_dim}] and act [B, {self.act_dim}], "
                f"got {tuple(obs.shape)} and {tuple(act.shape)}"
            )
        return zscore(torch.cat([obs, act], dim=1).to(self.input_mean), self.input_mean, self.input_std)

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, o]``, ``act [B, a]`` -> mean, logvar ``[E, B, o+1]`` of ``[Δs, r]`` for every member.

        Differentiable (no ``no_grad``), so adversarial model updates (RAMBO) can use it.
        """
        return self._forward(self.model_inputs(obs, act))

    def _predict_chunked(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict`` for ``sample``/``sample_candidates`` (no autograd), ``sample_chunk`` rows at a time."""
        x = self.model_inputs(obs, act)
        if self.sample_chunk is None or x.shape[0] <= self.sample_chunk:
            return self._forward(x)
        parts = [self._forward(x[i : i + self.sample_chunk]) for i in range(0, x.shape[0], self.sample_chunk)]
        return torch.cat([mean for mean, _ in parts], dim=1), torch.cat([logvar for _, logvar in parts], dim=1)

    def _predict_drawn(
        self, obs: torch.Tensor, act: torch.Tensor, member: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean, logvar ``[B, o+1]`` of each row's own ``member [B]`` only (no autograd).

        One plain matrix product per layer and drawn member instead of every member on every row: with
        5 elites of 7 it does a seventh of ``_predict_chunked``'s work, in larger, faster products.
        """
        x = self.model_inputs(obs, act)
        mean = x.new_empty(x.shape[0], self.out_dim)
        logvar = torch.empty_like(mean)
        for m in member.unique().tolist():
            rows = (member == m).nonzero().squeeze(1)
            h = x[rows]
            for layer in self.hidden:
                h = self.activation(torch.addmm(layer.bias[m], h, layer.weight[m]))
            mean[rows], logvar[rows] = self._mean_logvar(torch.addmm(self.output.bias[m], h, self.output.weight[m]))
        return mean, logvar

    @torch.no_grad()
    def sample(
        self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator, member_stats: bool = True
    ) -> StepResult:
        """One step per row from a uniformly drawn elite's Gaussian; all draws come from ``generator``.

        Returns next_obs ``[B, o]`` = obs + sampled Δs, reward ``[B]``, terminated ``[B]`` (the
        configured termination rule on ``(obs, act, next_obs)``, else all False) and info with
        ``"member" [B]`` (long) and, with ``member_stats``, ``"mean"`` and ``"std"`` ``[E, B, o+1]`` of
        every member. ``member_stats=False`` (nothing reads the other members, e.g. no MOPO penalty)
        evaluates only the drawn member of each row: the same step up to float rounding, several times faster.
        """
        rows = torch.arange(obs.shape[0], device=self.device)
        pick = torch.randint(len(self.elites), (obs.shape[0],), device=self.device, generator=generator)
        member = self.elites[pick]
        if member_stats:
            mean_all, logvar_all = self._predict_chunked(obs, act)
            std_all = (0.5 * logvar_all).exp()
            mean, std = mean_all[member, rows], std_all[member, rows]
            info = {"member": member, "mean": mean_all, "std": std_all}
        else:
            mean, logvar = self._predict_drawn(obs, act, member)
            std = (0.5 * logvar).exp()
            info = {"member": member}
        noise = torch.randn(mean.shape, device=self.device, dtype=mean.dtype, generator=generator)
        draw = mean + std * noise
        next_obs = obs.to(draw) + draw[:, :-1]
        if self._termination is None:
            terminated = torch.zeros(obs.shape[0], dtype=torch.bool, device=self.device)
        else:
            terminated = self._termination(obs.to(draw), act.to(draw), next_obs)
        return StepResult(next_obs, draw[:, -1], terminated, info)

    @torch.no_grad()
    def sample_candidates(
        self, obs: torch.Tensor, act: torch.Tensor, samples_per_elite: int, generator: torch.Generator
    ) -> StepResult:
        """``K = samples_per_elite * num_elites`` candidate steps per row (MOREC's filter, MOBILE's penalty).

        Candidate ``k`` is Gaussian draw ``k // num_elites`` of elite ``k % num_elites``. Returns
        next_obs ``[K, B, o]``, reward and terminated ``[K, B]``; info ``"member" [K]`` and, as in
        ``sample``, ``"mean"``/``"std"`` ``[E, B, o+1]`` of every member.
        """
        mean, logvar = self._predict_chunked(obs, act)
        std = (0.5 * logvar).exp()
        n_elites = len(self.elites)
        member = self.elites.repeat(samples_per_elite)  # [K]
        noise = torch.randn(
            (samples_per_elite, n_elites, *mean.shape[1:]), device=self.device, dtype=mean.dtype, generator=generator
        )
        draw = (mean[self.elites] + std[self.elites] * noise).flatten(0, 1)  # [K, B, o+1]
        obs_k = obs.to(draw).expand(len(member), -1, -1)
        next_obs = obs_k + draw[..., :-1]
        if self._termination is None:
            terminated = torch.zeros(draw.shape[:2], dtype=torch.bool, device=self.device)
        else:
            act_k = act.to(draw).expand(len(member), -1, -1)
            terminated = self._termination(obs_k.flatten(0, 1), act_k.flatten(0, 1), next_obs.flatten(0, 1))
            terminated = terminated.view(draw.shape[:2])
        return StepResult(next_obs, draw[..., -1], terminated, {"member": member, "mean": mean, "std": std})

    # -- training --------------------------------------------------------------------------------
    def supervised_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss ``fit`` minimises, differentiable in every parameter (RAMBO adds it to its adversarial loss).

        Args:
            x: :meth:`model_inputs` ``[b, o+a]`` (every member on the same rows) or ``[E, b, o+a]`` (each
                member on its own rows).
            y: targets ``[Δs, r]`` in raw units, ``[b, D]`` or ``[E, b, D]`` (``D = o + 1``).

        Returns:
            ``(loss [], nll [])``: the total ``Σ_e NLL_e + Σ_l 0.5 · wd_l · ||W_l||² + logvar_loss_coef ·
            (Σ max_logvar - Σ min_logvar)`` with ``NLL_e = mean((μ - y)² e^{-lv}) + mean(lv)``, and the mean
            per-member NLL, detached (for logging).
        """
        nll = self._nll(x, y)
        layers = zip(self.cfg.weight_decay, self.layers, strict=True)
        decay = sum(0.5 * wd * layer.weight.square().sum() for wd, layer in layers)
        return nll.sum() + decay + self._logvar_bounds_loss(), nll.detach().mean()

    def _nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Inputs ``[E, b, o+a]`` (or shared ``[b, o+a]``), targets ``[E, b, D]`` -> each member's NLL ``[E]``."""
        mean, logvar = self._forward(x)
        return (((mean - y) ** 2) * torch.exp(-logvar)).mean(dim=(1, 2)) + logvar.mean(dim=(1, 2))

    def _logvar_bounds_loss(self) -> torch.Tensor:
        return self.cfg.logvar_loss_coef * (self.max_logvar.sum() - self.min_logvar.sum())

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One optimiser step on :meth:`supervised_loss` for inputs ``[E, b, o+a]`` and targets ``[E, b, D]``;
        returns the mean per-member NLL (detached).

        The L2 term's gradient ``wd_l · W_l`` is added to the weight gradients by hand instead of
        differentiating ``0.5 · wd_l · ||W_l||²``: autograd computes the same float32 numbers
        (``(0.5 · wd) · 2 · W``, scaling by 2 is exact) and adds them to the same gradient, but spends
        six passes over every weight and its graph on it. The fitted parameters are bit for bit those of
        ``supervised_loss(...).backward()`` (tests/test_throughput_paths.py), about 7 % faster per step.
        """
        nll = self._nll(x, y)
        optimizer.zero_grad(set_to_none=True)
        (nll.sum() + self._logvar_bounds_loss()).backward()
        with torch.no_grad():
            for wd, layer in zip(self.cfg.weight_decay, self.layers, strict=True):
                layer.weight.grad.add_(layer.weight * wd)
        optimizer.step()
        return nll.detach().mean()

    @torch.no_grad()
    def _holdout_mse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Normalised inputs ``[H, o+a]``, targets ``[H, D]`` -> MSE of each member's mean ``[E]``."""
        total = x.new_zeros(self.cfg.ensemble_size)  # the model's dtype: a float64 model scores in float64
        for start in range(0, x.shape[0], _EVAL_CHUNK):
            mean, _ = self._forward(x[start : start + _EVAL_CHUNK])
            total += ((mean - y[start : start + _EVAL_CHUNK]) ** 2).sum(dim=(1, 2))
        return total / (x.shape[0] * self.out_dim)

    def _split(self, data: Transitions, gen: torch.Generator) -> tuple[Transitions, Transitions]:
        n = len(data)
        fraction = int(n * self.cfg.holdout_fraction)
        n_holdout = fraction if self.cfg.max_holdout is None else min(fraction, self.cfg.max_holdout)
        if n_holdout < 1 or n - n_holdout < 1:
            raise DatasetError(self._too_few_rows(n, n_holdout))
        perm = torch.randperm(n, device=self.device, generator=gen)
        return data.index(perm[n_holdout:]), data.index(perm[:n_holdout])

    def _too_few_rows(self, n: int, n_holdout: int) -> str:
        """Why ``n`` rows (``n_holdout`` of them held out) cannot be split, and the two ways out."""
        fraction = self.cfg.holdout_fraction
        need = max(2, math.ceil(1 / fraction))
        while int(need * fraction) < 1:  # the split's own rounding decides
            need += 1
        fixes = f"use a dataset with at least {need} transitions to fit on"
        smallest = math.ceil(1000 / n) / 1000 if n >= 2 else 1.0  # rounded up: n * fraction must reach 1
        if smallest < 1:
            fixes += f", or raise dynamics.holdout_fraction to at least {smallest} (it must stay below 1)"
        return (
            f"the dynamics fit needs at least one training and one holdout row: {n} transitions with "
            f"dynamics.holdout_fraction={fraction} hold out {n_holdout} and train on {n - n_holdout}; {fixes}"
        )

    def fit(
        self,
        data: Transitions,
        holdout: Transitions | None = None,
        on_epoch: Callable[[int, torch.Tensor], None] | None = None,
    ) -> FitReport:
        """Train on ``data`` with early stopping on a holdout split (or on the given ``holdout``).

        Trains from the current weights (a fresh model: from the seeded initialisation) and refits
        the input normaliser on the training rows. Afterwards every member holds its best snapshot,
        ``self.elites`` the ``num_elites`` lowest-holdout-MSE members (best first) and
        ``self.holdout_mse [E]`` their scores. ``FitReport.train_loss`` is the mean per-member NLL of
        each epoch, ``holdout_loss`` the holdout MSE averaged over members after each epoch.

        ``on_epoch(epoch, mse)``, if given, runs after each epoch's holdout scoring with the epoch
        (from 1) and the members' holdout MSE ``[E]``, while the model still holds that epoch's
        weights (not the best snapshots): a caller can score the fit along the way on rows of its
        own (``benchmarks/fit_curve.py``) without a second training loop.
        """
        cfg = self.cfg
        for name, part in (("data", data), ("holdout", holdout)):
            if part is not None and (part.obs_dim != self.obs_dim or part.act_dim != self.act_dim):
                raise ValueError(
                    f"{name} has obs_dim={part.obs_dim}, act_dim={part.act_dim}; the model expects "
                    f"{self.obs_dim}, {self.act_dim}"
                )
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        data = data.to(self.device)
        if holdout is not None and len(holdout) == 0:
            raise ValueError("the given holdout set is empty; pass holdout=None to split one off the data")
        train, held = (data, holdout.to(self.device)) if holdout is not None else self._split(data, gen)

        input_mean, input_std = fit_zscore(torch.cat([train.obs, train.act], dim=1).to(self.input_mean))
        self.input_mean.copy_(input_mean)
        self.input_std.copy_(input_std)

        def normalised_xy(part: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model_inputs(part.obs, part.act), self.targets(part).to(self.input_mean)

        x_train, y_train = normalised_xy(train)
        x_held, y_held = normalised_xy(held)
        n, e = len(train), cfg.ensemble_size
        if cfg.bootstrap and e > 1:
            member_rows = torch.randint(n, (e, n), device=self.device, generator=gen)
        else:
            member_rows = torch.arange(n, device=self.device).expand(e, n)

        optimizer = adam(self.parameters(), cfg.lr)
        members = [p for layer in self.layers for p in layer.parameters()]  # per-member tensors, leading dim E
        best_params = [p.detach().clone() for p in members]
        best_mse = torch.full((e,), math.inf, device=self.device, dtype=x_held.dtype)
        steps = math.ceil(n / cfg.batch_size)
        if cfg.max_train_steps_per_epoch is not None:
            steps = min(steps, cfg.max_train_steps_per_epoch)
        train_history: list[float] = []
        holdout_history: list[float] = []
        epoch, stale = 0, 0
        while cfg.max_epochs is None or epoch < cfg.max_epochs:
            epoch += 1
            # Independent reshuffle of each member's rows (OfflineRL-Kit's shuffle_rows).
            order = torch.rand(e, n, device=self.device, generator=gen).argsort(dim=1)
            member_rows = member_rows.gather(1, order)
            epoch_nll = torch.zeros((), device=self.device)
            for step in range(steps):
                idx = member_rows[:, step * cfg.batch_size : (step + 1) * cfg.batch_size]  # [E, b]
                epoch_nll += self._train_step(x_train[idx], y_train[idx], optimizer)
            mse = self._holdout_mse(x_held, y_held)
            train_history.append(float(epoch_nll) / steps)
            holdout_history.append(float(mse.mean()))
            if on_epoch is not None:
                on_epoch(epoch, mse)
            # A member improves on a relative gain above the threshold; its first finite score always counts.
            gain = (best_mse - mse) / best_mse
            improved = torch.isfinite(mse) & (~torch.isfinite(best_mse) | (gain > cfg.improvement_threshold))
            if improved.any():
                with torch.no_grad():
                    for best, p in zip(best_params, members, strict=True):
                        best[improved] = p[improved]
                best_mse = torch.where(improved, mse, best_mse)
                stale = 0
            else:
                stale += 1
            log.info(
                "dynamics epoch %d%s: train nll %.4f, holdout mse %.5f (best members %.5f)",
                epoch,
                f"/{cfg.max_epochs}" if cfg.max_epochs else "",
                train_history[-1],
                holdout_history[-1],
                float(best_mse.min()),
            )
            if stale >= cfg.max_epochs_since_update:
                break

        with torch.no_grad():
            for best, p in zip(best_params, members, strict=True):
                p.copy_(best)
        # Members that never produced a finite holdout score keep their initial weights and rank last.
        self.holdout_mse.copy_(best_mse)
        self.elites.copy_(best_mse.argsort()[: cfg.num_elites])
        return FitReport(
            holdout_mse=self.holdout_mse.clone(),
            elites=self.elites.clone(),
            epochs=epoch,
            train_loss=train_history,
            holdout_loss=holdout_history,
        )

"""Normalised scores: ``100 * (R - ref_min) / (ref_max - ref_min)`` per episode, then statistics.

Statistics are computed on the per-episode normalised returns themselves, never by pushing a
standard deviation of raw returns through the affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# D4RL reference returns (d4rl/infos.py; identical for v0, v1 and v2 of the locomotion tasks):
# a uniformly random policy and an expert SAC policy. 1000-step episodes.
D4RL_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


def normalized_scores(returns: torch.Tensor, ref_min: float, ref_max: float) -> torch.Tensor:
    """Per-episode normalised returns, ``[E] -> [E]`` (float64)."""
    if ref_max == ref_min:
        raise ValueError(f"reference returns must differ, got ref_min = ref_max = {ref_min}")
    return 100.0 * (returns.double() - ref_min) / (ref_max - ref_min)


@dataclass(frozen=True)
class ScoreSummary:
    """Mean, population std and a bootstrap 95 % CI of the mean over episodes (or seeds)."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def summarize(values: torch.Tensor, num_bootstrap: int = 2000, seed: int = 0) -> ScoreSummary:
    """Summarise ``values [n]`` (e.g. normalised episode returns).

    The CI is the 2.5/97.5 % percentile of ``num_bootstrap`` resampled means, with a fixed seed
    so reports are reproducible.
    """
    v = values.double().flatten()
    if v.numel() == 0:
        raise ValueError("cannot summarise an empty set of values")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(v.numel(), (num_bootstrap, v.numel()), generator=g)
    means = v[idx].mean(dim=1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return ScoreSummary(float(v.mean()), float(v.std(unbiased=False)), lo, hi, int(v.numel()))

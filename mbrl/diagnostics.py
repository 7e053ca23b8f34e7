"""Reach-aware diagnostics: what the critics and the model do where the data ends.

Written to ``diagnostics.csv`` of a run (``scripts/plot_diagnostics.py`` draws them):

* ``value_diagnostics``: the critics' mean Q on real vs model ``(s, a)``, and their disagreement
  (std over the ensemble of ``Q(s', pi(s'))``) at *edge-of-reach* states (next states of the last
  rollout step: bootstrapped from, never trained on) vs the other model next states and the real
  next states. RAVL's claim is that the first is where value errors hide and where an ensemble's
  disagreement is largest.
* ``model_error_by_step``: how far the learned model drifts over a rollout, as the mean squared
  state error at each step ``1..h``: against the dataset (replaying its actions along real
  trajectory segments) and, when a simulator is available, against the true dynamics under the
  current policy (the same actions fed to both from the same start states); with the simulator also the
  model's reward against the true reward of the same state and action along the policy's model rollout
  (``reward_bias_step{k}``: mean signed error, ``reward_error_step{k}``: mean squared error).
* ``on_policy_errors``: the same questions along the policy's own evaluation episodes in the real
  env, the states it actually reaches: the critics' value against the discounted return obtained
  from each state, and the learned model's one-step error and uncertainty there. Written to
  ``eval.csv`` (``policy_*`` columns) with every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mbrl.data.transitions import Transitions
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.ensemble import GaussianEnsemble


@dataclass
class DiagnosticsConfig:
    """``every``: updates between diagnostics (``None``: at every evaluation); ``rows``: sample size;
    ``oracle``: also compare the learned model with the true simulator when the env has one."""

    enabled: bool = True
    every: int | None = None
    rows: int = 1024
    oracle: bool = True


@torch.no_grad()
def value_diagnostics(
    q_values: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    policy: Callable[[torch.Tensor], torch.Tensor],
    real: Transitions,
    model: Transitions | None,
) -> dict[str, float]:
    """Q and critic-disagreement statistics on a real and a model sample.

    ``q_values`` maps ``obs [B, o]``, ``act [B, a]`` to the ensemble's ``[N, B]``; ``policy`` maps
    ``obs [B, o]`` to actions. Model rows flagged ``truncated`` are the last rollout step, so their
    ``next_obs`` are the edge-of-reach states. The keys are always the same (CSV columns); a
    statistic a sample cannot give (no model data, no truncated rows) is NaN.
    """
    nan = float("nan")

    def disagreement(states: torch.Tensor) -> float:
        if not len(states):
            return nan
        q = q_values(states, policy(states))
        return float(q.std(dim=0).mean()) if q.shape[0] > 1 else 0.0

    def mean_q(obs: torch.Tensor, act: torch.Tensor) -> float:
        return float(q_values(obs, act).mean()) if len(obs) else nan

    empty = real.index(torch.zeros(0, dtype=torch.long, device=real.obs.device))
    model = model if model is not None else empty
    edge = model.next_obs[model.truncated]
    inner = model.next_obs[~model.truncated & ~model.terminated]
    return {
        "q_real": mean_q(real.obs, real.act),
        "q_model": mean_q(model.obs, model.act),
        "q_edge_of_reach": mean_q(edge, policy(edge)) if len(edge) else nan,
        "q_std_real_next": disagreement(real.next_obs),
        "q_std_model_next": disagreement(inner),
        "q_std_edge_of_reach": disagreement(edge),
    }


def trajectory_segments(data: Transitions, horizon: int, rows: int, generator: torch.Generator) -> torch.Tensor:
    """Start indices ``[n <= rows]`` of ``horizon`` consecutive transitions that chain without a break.

    A segment chains when every step's ``next_obs`` is the following row's ``obs`` and no step
    before the last terminates or times out.
    """
    n = len(data)
    if n < horizon:
        return torch.zeros(0, dtype=torch.long, device=data.obs.device)
    links = (data.next_obs[:-1] == data.obs[1:]).all(dim=1) & ~data.terminated[:-1] & ~data.truncated[:-1]  # [n-1]
    ok = torch.ones(n - horizon + 1, dtype=torch.bool, device=links.device)
    for k in range(horizon - 1):
        ok &= links[k : k + n - horizon + 1]
    starts = ok.nonzero().squeeze(1)
    pick = torch.randperm(len(starts), generator=generator, device=starts.device)[:rows]
    return starts[pick]


@torch.no_grad()
def model_error_by_step(
    model: DynamicsModel,
    data: Transitions,
    horizon: int,
    rows: int,
    generator: torch.Generator,
    policy: Callable[[torch.Tensor], torch.Tensor] | None = None,
    oracle: DynamicsModel | None = None,
) -> dict[str, Any]:
    """Mean squared next-state error of the model's mean prediction at each rollout step ``1..horizon``.

    Returns ``{"data_step{k}": ...}`` from replaying the dataset's actions along real segments and,
    with ``policy`` and ``oracle``, ``{"oracle_step{k}": ...}`` from rolling the policy's actions
    (chosen on the model's states) through both from the same dataset start states, and
    ``{"reward_bias_step{k}", "reward_error_step{k}": ...}``: the model's reward minus the true reward
    of the same model state and action at step ``k`` (mean, and mean of its square).
    """
    out: dict[str, Any] = {}
    starts = trajectory_segments(data, horizon, rows, generator)

    def mean_step(obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The elites' mean next state ``[B, o]`` and reward ``[B]``."""
        mean, _ = model.predict(obs, act)  # [E, B, o+1]
        mean = mean[model.elites].mean(dim=0)
        return obs + mean[:, :-1], mean[:, -1]

    if len(starts):
        obs = data.obs[starts]
        for k in range(horizon):
            obs, _ = mean_step(obs, data.act[starts + k])
            out[f"data_step{k + 1}"] = float((obs - data.next_obs[starts + k]).square().mean())
    if policy is not None and oracle is not None:
        idx = torch.randint(len(data), (rows,), generator=generator, device=data.obs.device)
        sim = learned = data.obs[idx]
        for k in range(horizon):
            act = policy(learned)
            # The true reward of the very (s, a) the model imagined: what an agent trained on model rows
            # is paid for there, against what the task pays. A positive bias is optimism it can exploit.
            true_reward = oracle.sample(learned, act, generator).reward
            learned, reward = mean_step(learned, act)
            sim = oracle.sample(sim, act, generator).next_obs
            out[f"oracle_step{k + 1}"] = float((learned - sim).square().mean())
            out[f"reward_bias_step{k + 1}"] = float((reward - true_reward).mean())
            out[f"reward_error_step{k + 1}"] = float((reward - true_reward).square().mean())
    return out


def returns_to_go(steps: Transitions, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The discounted return obtained from every recorded step, and the weight of what it misses.

    ``steps``: whole episodes one after another, told apart by ``episode_id`` (as
    ``mbrl.evaluate.evaluate(record=True)`` returns them). Returns ``G [N]`` float64,
    ``G_t = sum_{k >= t} gamma^(k - t) r_k`` to the episode's end, and ``tail [N]``: ``gamma^(L - t)``
    for an episode cut by its time limit after ``L`` steps (the share of a value the return cannot
    show), 0 for one that terminated.
    """
    if steps.episode_id is None:
        raise ValueError("returns_to_go needs steps with episode_id (evaluate(..., record=True) records them)")
    rew = steps.rew.double()
    g = torch.empty_like(rew)
    tail = torch.zeros_like(rew)
    for ep in torch.unique_consecutive(steps.episode_id):
        rows = (steps.episode_id == ep).nonzero().squeeze(1)
        power = gamma ** torch.arange(len(rows), dtype=torch.float64, device=rew.device)  # gamma^t
        # Suffix sums of gamma^k r_k, brought back to gamma^0 at each t; float64 keeps gamma^1000 exact enough.
        g[rows] = (rew[rows] * power).flip(0).cumsum(0).flip(0) / power
        if not steps.terminated[rows[-1]]:
            tail[rows] = gamma * power[-1] / power
    return g, tail


@torch.no_grad()
def on_policy_errors(
    steps: Transitions,
    gamma: float,
    q_values: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    model: GaussianEnsemble | None = None,
    max_tail: float = 0.01,
) -> dict[str, float]:
    """Critics and learned model on the states the policy reaches in the real env.

    ``steps``: the policy's recorded evaluation episodes (``evaluate(..., record=True)``); its actions
    are the deterministic policy's, so ``Q(s_t, a_t)`` is the value the actor is trained to raise.

    * with ``q_values`` (``obs [B, o]``, ``act [B, a]`` -> ``[N, B]``): ``policy_q`` the critics'
      pessimistic value ``min_j Q_j(s_t, a_t)`` and ``policy_return_to_go`` the discounted return
      obtained from ``s_t``, both averaged over the steps whose return misses at most ``max_tail`` of
      the value (NaN where no step qualifies); ``policy_q_std`` the critics' disagreement on all steps.
    * with ``model``: ``policy_model_error`` the elites' mean next-state squared error against the
      real next state, ``policy_reward_bias`` the model's reward minus the real one (mean), and
      ``policy_model_uncertainty`` MOPO's ``max_i ||sigma_i(s, a)||_2`` over all members, unscaled.
    """
    nan = float("nan")
    out: dict[str, float] = {}
    if q_values is not None:
        q = q_values(steps.obs, steps.act)  # [N, B]
        g, tail = returns_to_go(steps, gamma)
        seen = tail <= max_tail
        q_min = q.min(dim=0).values.double()
        out["policy_q"] = float(q_min[seen].mean()) if seen.any() else nan
        out["policy_return_to_go"] = float(g[seen].mean()) if seen.any() else nan
        out["policy_q_std"] = float(q.std(dim=0).mean()) if q.shape[0] > 1 else 0.0
    if model is not None:
        mean, logvar = model.predict(steps.obs, steps.act)  # [E, B, o+1]
        pred = mean[model.elites].mean(dim=0)
        out["policy_model_error"] = float((steps.obs + pred[:, :-1] - steps.next_obs).square().mean())
        out["policy_reward_bias"] = float((pred[:, -1] - steps.rew).mean())
        out["policy_model_uncertainty"] = float((0.5 * logvar).exp().norm(dim=-1).amax(dim=0).mean())
    return out

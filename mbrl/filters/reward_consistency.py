"""Reward-consistent rollouts (MOREC; Luo, Xu, Cao and Yu, ICLR 2024).

A *dynamics reward* ``r_D(s, a, s')`` scores how plausible a transition is. It is learned from the
offline data by adversarial imitation in which the transition function plays the agent: a
*transition policy* ``G(Δs | s, a)`` proposes next states and a discriminator ``D(s, a, Δs)`` tells
them from the dataset's. During rollouts the dynamics model proposes ``K`` candidates per row, the
filter keeps the one with the highest ``r_D`` (or samples from a sharp softmax over them) and stops
the trajectory, marking the step terminal, where even the best candidate scores below a threshold.

The public MOREC code holds only the inference side (pretrained discriminators); the training loop
below is written from the paper, with these choices of ours:

* Inputs ``(s, a, Δs)`` are z-scored with the data's statistics (the public code min-max scales
  ``s`` to [-0.8, 0.8] and ``a`` to [-1, 1]); one MLP reads their concatenation (the public code
  first encodes ``(s, a)`` and ``Δs`` separately).
* The transition policy is a Gaussian MLP over the z-scored ``Δs`` trained to maximise the
  non-saturating GAIL reward ``log D``. It starts from scratch by default, so the historical
  snapshots span coarse to fine errors; ``pretrain_steps`` of maximum likelihood first (like
  starting GAIL from behaviour cloning) gave a weaker ensemble on our toy test (AUC 0.74 vs 0.84
  against 5x noise). Each "episode" of this imitation problem is one step long,
  so the return is the immediate reward and the reparameterised gradient through ``D`` gives the
  policy gradient exactly and with far less variance than the score-function estimators (TRPO/PPO)
  of general GAIL; an entropy bonus keeps the policy from collapsing onto one mode.
* The discriminator is trained with binary cross-entropy and, by default, no gradient penalty, as
  the public code (``d_2nd_loss_type='none'``). An R1 penalty (``r1_coef``) bounds the logit's slope,
  so it cannot separate next states much closer than one standard deviation of ``Δs``, while the
  dynamics model's errors are far smaller: with 0.1, the filter's ROC-AUC of true next states against
  1-sigma-of-model-error perturbations on held-out hopper-medium rows was 0.83 (0.86 without).
* As in the paper, historical discriminators are kept: a snapshot every ``snapshot_every`` rounds,
  the most recent ``max_snapshots`` of them. Each is calibrated when taken by its mean logit on
  held-out real transitions (``expert``) and on the policy's transitions (``learner``); snapshots
  that do not separate the two are dropped, as the public code masks snapshots without calibration.
* Scoring follows the public inference code exactly: each snapshot's logit is clamped to
  ``[learner, expert]``, mapped linearly to ``[-1, 1]`` and squashed, ``p_m = sigmoid(.)``, and
  ``r_D = -log(1 - mean_m p_m + 1e-9)``, so ``r_D`` lies in ``[0.31, 1.31]``; the published
  termination threshold is 0.6.
* The fit also records the distribution of ``r_D`` on its held-out real transitions
  (``real_quantile``). A fixed threshold means different things for different discriminators: one
  that scores many real transitions below 0.6 stops rollouts that are plausible. The filter may
  instead stop below a quantile of that distribution (``threshold_quantile``, a deviation from the
  paper, off by default), so that it stops at most that fraction of real transitions.
* A discriminator trained long enough also tells the dynamics model's own predictions from real ones,
  on the data's own states and actions: then any threshold read off real transitions stops the model
  everywhere, not only where the policy strays. With ``threshold_quantile_of: model`` the quantile is
  taken instead of the filter's own choice among the model's ``K`` candidates on the fit's held-out
  rows at their own actions (``first_step_scores``), so that the filter stops at most
  that fraction of the model's first steps inside the data and the rest where the policy leads the model
  somewhere it is less plausible than there. Also not in the paper; measured on the built-in datasets
  in ``benchmarks/results/headline_cpu_findings.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mbrl.data.transitions import Transitions
from mbrl.dynamics.base import DynamicsModel, StepResult
from mbrl.filters.base import FILTERS, FilterResult
from mbrl.nn import fit_zscore, mlp, zscore
from mbrl.optim import adam

log = logging.getLogger(__name__)

# Rows per discriminator pass when scoring, bounding the [snapshots, rows, hidden] activations.
_SCORE_CHUNK = 4096
# ``real_quantiles`` holds r_D's quantiles on a 0.1 % grid: [0, 0.001, ..., 1].
_QUANTILE_GRID = 1001
# MOREC's published stop threshold on r_D (polixir/morec, rollout termination).
PUBLISHED_THRESHOLD = 0.6
# Held-out rows on which ``threshold_quantile_of: model`` calibrates the threshold.
_CALIBRATION_ROWS = 2048
# r_D's lowest value, where every snapshot's logit is clamped at its learner calibration: -log(1 - sigmoid(-1)).
R_D_FLOOR = math.log1p(math.exp(-1.0))


@dataclass
class DynamicsRewardConfig:
    """Hyper-parameters of :class:`DynamicsReward` (the adversarial learner of ``r_D``).

    Attributes:
        hidden_sizes: discriminator hidden widths (ReLU).
        policy_hidden_sizes: transition-policy hidden widths (SiLU).
        pretrain_steps: maximum-likelihood steps of the transition policy before adversarial play.
        rounds: adversarial rounds; each makes one discriminator and one policy step.
        batch_size: real transitions per step (and as many policy transitions).
        lr: Adam learning rate of both networks.
        r1_coef: weight of the R1 penalty ``E_real ||grad_x logit||^2`` (0: none, as the public code).
        entropy_coef: weight of the transition policy's entropy bonus.
        snapshot_every: rounds between historical discriminator snapshots.
        max_snapshots: most recent snapshots kept and averaged when scoring.
        calibration_rows: held-out real transitions used to calibrate each snapshot.
        seed: seeds initialisation and every draw of ``fit``.
    """

    hidden_sizes: tuple[int, ...] = (128, 128)
    policy_hidden_sizes: tuple[int, ...] = (200, 200, 200)
    pretrain_steps: int = 0
    rounds: int = 30000
    batch_size: int = 256
    lr: float = 3e-4
    r1_coef: float = 0.0
    entropy_coef: float = 1e-3
    snapshot_every: int = 100
    max_snapshots: int = 10
    calibration_rows: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.policy_hidden_sizes = tuple(int(h) for h in self.policy_hidden_sizes)
        for name in ("rounds", "batch_size", "snapshot_every", "max_snapshots", "calibration_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"dynamics reward: {name} must be >= 1, got {getattr(self, name)}")
        if self.rounds < self.snapshot_every:
            raise ValueError(
                f"dynamics reward: rounds={self.rounds} < snapshot_every={self.snapshot_every} takes no snapshot; "
                "raise rounds or lower snapshot_every"
            )


def _count_snapshots(module: DynamicsReward, incompatible_keys: Any) -> None:
    """After ``load_state_dict``: the loaded ``num_snapshots`` and ``real_quantiles`` as the Python values read
    by ``score`` and ``real_quantile``."""
    module.snapshot_count = int(module.num_snapshots)
    module.real_quantile_values = module.real_quantiles.tolist()


class DynamicsReward(nn.Module):
    """The learned dynamics reward ``r_D``: an average of calibrated historical discriminators.

    After ``fit``, ``snapshots`` is an ``M``-member discriminator evaluated in one batched pass, with
    calibration bounds ``learner_logit``/``expert_logit`` ``[M]``; ``score`` maps transitions to ``r_D``;
    ``real_quantiles [1001]`` are ``r_D``'s quantiles on the held-out real transitions.
    """

    learner_logit: torch.Tensor
    expert_logit: torch.Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, config: DynamicsRewardConfig | None = None, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.cfg = config or DynamicsRewardConfig()
        self.device = torch.device(device)
        self.in_dim = 2 * obs_dim + act_dim
        # Normaliser of [s, a, Δs]; fitted by ``fit``.
        self.register_buffer("input_mean", torch.zeros(self.in_dim))
        self.register_buffer("input_std", torch.ones(self.in_dim))
        self.snapshots = mlp(self.in_dim, self.cfg.hidden_sizes, 1, members=self.cfg.max_snapshots)
        self.register_buffer("learner_logit", torch.zeros(self.cfg.max_snapshots))
        self.register_buffer("expert_logit", torch.ones(self.cfg.max_snapshots))
        self.register_buffer("num_snapshots", torch.zeros((), dtype=torch.long))
        self.register_buffer("real_quantiles", torch.zeros(_QUANTILE_GRID))
        # The buffers as Python values, set by fit and load_state_dict: score never waits for the device to read
        # them (with cuda_graphs=true a CUDA graph replays score inside the rollout step).
        self.snapshot_count = 0
        self.real_quantile_values: list[float] = []
        self.register_load_state_dict_post_hook(_count_snapshots)
        self.to(self.device)

    # -- scoring -----------------------------------------------------------------------------------
    def _normalise(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act, next_obs - obs], dim=-1).to(self.input_mean)
        return zscore(x, self.input_mean, self.input_std)

    @torch.no_grad()
    def score(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``obs [..., o]``, ``act [..., a]``, ``next_obs [..., o]`` -> ``r_D [...]`` in ``[0.31, 1.31]``."""
        m = self.snapshot_count
        if m == 0:
            raise RuntimeError("the dynamics reward has no discriminator snapshots yet: call fit() first")
        lead = obs.shape[:-1]
        x = self._normalise(obs, act.expand(*lead, -1), next_obs).reshape(-1, self.in_dim)
        lo, hi = self.learner_logit[:m, None], self.expert_logit[:m, None]
        out = []
        for start in range(0, x.shape[0], _SCORE_CHUNK):
            logits = self.snapshots(x[start : start + _SCORE_CHUNK])[:m, :, 0]  # [m, n]
            # + 1e-7 as the public code (discriminator_ensemble_loader.py:112)
            scaled = 2 * (torch.minimum(torch.maximum(logits, lo), hi) - lo) / (hi - lo + 1e-7) - 1
            p = torch.sigmoid(scaled).mean(dim=0)
            out.append(-torch.log(1 - p + 1e-9))
        return torch.cat(out).view(lead).to(obs.dtype)

    def real_quantile(self, q: float) -> float:
        """The ``q``-quantile (``0 <= q <= 1``) of ``r_D`` on the transitions ``fit`` held out, linear between
        the 0.1 % grid points: a threshold at it stops at most that fraction of real transitions."""
        if not self.real_quantile_values:
            raise RuntimeError("the dynamics reward has no quantiles of real transitions yet: call fit() first")
        pos = min(max(q, 0.0), 1.0) * (_QUANTILE_GRID - 1)
        lo = min(int(pos), _QUANTILE_GRID - 2)
        a, b = self.real_quantile_values[lo], self.real_quantile_values[lo + 1]
        return a + (pos - lo) * (b - a)

    def ranking(
        self, data: Transitions, model: DynamicsModel, generator: torch.Generator, rows: int = 2048
    ) -> dict[str, float]:
        """:func:`ranking_auc` of ``score`` on up to ``rows`` of the transitions ``fit(data)`` held out, with
        ``r_D``'s 5 % and 50 % quantiles there and the fraction of them the published threshold would stop."""
        real = data.index(self.holdout_split(len(data))[0][:rows]).to(self.device)
        below = float((self.score(real.obs, real.act, real.next_obs) < PUBLISHED_THRESHOLD).float().mean())
        return ranking_auc(self.score, real, model, generator) | {
            "real_p05": self.real_quantile(0.05),
            "real_p50": self.real_quantile(0.5),
            "real_below_published": below,
        }

    # -- learning ----------------------------------------------------------------------------------
    def holdout_split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices ``(held_out [h], train [n - h])`` of ``fit``'s split of ``n`` transitions.

        The held-out rows calibrate the snapshots and never train the discriminator; the split is the
        first draw of ``fit``'s seeded generator, so it is recomputed here, after a cached fit too.
        """
        n_cal = min(self.cfg.calibration_rows, n // 5)
        if n_cal < 1 or n - n_cal < self.cfg.batch_size:
            raise ValueError(f"the dynamics reward needs more data: {n} transitions for batch {self.cfg.batch_size}")
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        perm = torch.randperm(n, device=self.device, generator=gen)
        return perm[:n_cal], perm[n_cal:]

    def fit(self, data: Transitions) -> dict[str, Any]:
        """Learn ``r_D`` from ``data`` (adversarially, see the module docstring); returns a summary."""
        cfg = self.cfg
        if data.obs_dim != self.obs_dim or data.act_dim != self.act_dim:
            raise ValueError(
                f"data has obs_dim={data.obs_dim}, act_dim={data.act_dim}; expected {self.obs_dim}, {self.act_dim}"
            )
        held_out, rest = self.holdout_split(len(data))
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        torch.randperm(len(data), device=self.device, generator=gen)  # the split's draw: keeps the stream as before
        data = data.to(self.device)
        cal, train = data.index(held_out), data.index(rest)
        x_train = torch.cat([train.obs, train.act, train.next_obs - train.obs], dim=-1).to(self.input_mean)
        input_mean, input_std = fit_zscore(x_train)
        self.input_mean.copy_(input_mean)
        self.input_std.copy_(input_std)
        x_train = zscore(x_train, self.input_mean, self.input_std)
        x_cal = self._normalise(cal.obs, cal.act, cal.next_obs)
        sa = self.obs_dim + self.act_dim

        with torch.random.fork_rng(devices=[]):  # seeded initialisation that leaves the caller's RNG alone
            torch.manual_seed(cfg.seed)
            disc = mlp(self.in_dim, cfg.hidden_sizes, 1, members=1).to(self.device)
            policy = mlp(sa, cfg.policy_hidden_sizes, 2 * self.obs_dim, members=1, activation=nn.SiLU).to(self.device)
        d_opt = adam(disc.parameters(), cfg.lr)
        p_opt = adam(policy.parameters(), cfg.lr)

        def propose(x_sa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """z-scored ``(s, a) [b, o+a]`` -> reparameterised z-scored ``Δs [b, o]`` and its entropy ``[]``."""
            mean, log_std = policy(x_sa)[0].chunk(2, dim=-1)
            log_std = log_std.clamp(-5.0, 2.0)
            noise = torch.randn(mean.shape, device=self.device, generator=gen)
            return mean + log_std.exp() * noise, log_std.sum(dim=-1).mean()

        def batch() -> torch.Tensor:
            return x_train[torch.randint(len(x_train), (cfg.batch_size,), device=self.device, generator=gen)]

        for _ in range(cfg.pretrain_steps):
            x = batch()
            mean, log_std = policy(x[:, :sa])[0].chunk(2, dim=-1)
            log_std = log_std.clamp(-5.0, 2.0)
            nll = (((x[:, sa:] - mean) / log_std.exp()) ** 2 / 2 + log_std).sum(dim=-1).mean()
            p_opt.zero_grad(set_to_none=True)
            nll.backward()
            p_opt.step()

        snapshots: list[tuple[dict[str, torch.Tensor], float, float]] = []
        history = []
        for round_ in range(1, cfg.rounds + 1):
            # Discriminator: real transitions -> 1, proposed ones -> 0, optional R1 penalty on the real ones.
            real = batch().requires_grad_(cfg.r1_coef > 0)
            with torch.no_grad():
                fake_delta, _ = propose(real[:, :sa])
            fake = torch.cat([real[:, :sa].detach(), fake_delta], dim=-1)
            real_logit, fake_logit = disc(real)[0, :, 0], disc(fake)[0, :, 0]
            d_loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
            if cfg.r1_coef > 0:
                (grad,) = torch.autograd.grad(real_logit.sum(), real, create_graph=True)
                d_loss = d_loss + cfg.r1_coef * grad.square().sum(dim=-1).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()

            # Transition policy: maximise log D of its proposals (non-saturating GAIL reward) + entropy.
            x_sa = batch()[:, :sa]
            delta, entropy = propose(x_sa)
            p_loss = F.softplus(-disc(torch.cat([x_sa, delta], dim=-1))[0, :, 0]).mean() - cfg.entropy_coef * entropy
            p_opt.zero_grad(set_to_none=True)
            p_loss.backward(inputs=list(policy.parameters()))
            p_opt.step()

            if round_ % cfg.snapshot_every == 0:
                with torch.no_grad():
                    expert = float(disc(x_cal)[0, :, 0].mean())
                    learner = float(disc(torch.cat([x_cal[:, :sa], propose(x_cal[:, :sa])[0]], dim=-1))[0, :, 0].mean())
                history.append(
                    {"round": round_, "d_loss": float(d_loss.detach()), "expert": expert, "learner": learner}
                )
                log.info("dynamics reward round %d: d_loss %.4f, logit real %.3f vs policy %.3f", *history[-1].values())
                if expert > learner + 1e-6:  # a snapshot that cannot tell the two apart carries no signal
                    snapshots.append((copy.deepcopy(disc.state_dict()), learner, expert))
                    snapshots = snapshots[-cfg.max_snapshots :]
        if not snapshots:
            raise RuntimeError(
                "no discriminator snapshot separated real from generated transitions; raise rounds or lower r1_coef"
            )
        self._stack(snapshots)
        grid = torch.linspace(0, 1, _QUANTILE_GRID, device=self.device)
        self.real_quantiles.copy_(torch.quantile(self.score(cal.obs, cal.act, cal.next_obs).float(), grid))
        self.real_quantile_values = self.real_quantiles.tolist()
        return {"snapshots": len(snapshots), "history": history}

    @torch.no_grad()
    def _stack(self, snapshots: list[tuple[dict[str, torch.Tensor], float, float]]) -> None:
        """Copy single-member snapshot weights into the first ``len(snapshots)`` members of ``self.snapshots``."""
        params = dict(self.snapshots.named_parameters())
        for m, (state, learner, expert) in enumerate(snapshots):
            for name, value in state.items():
                params[name][m].copy_(value[0])
            self.learner_logit[m] = learner
            self.expert_logit[m] = expert
        self.num_snapshots.fill_(len(snapshots))
        self.snapshot_count = len(snapshots)


# -- ranking quality ------------------------------------------------------------------------------
def roc_auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """ROC-AUC of scores ``pos [P]`` (positives) against ``neg [N]``: ``P(pos > neg) + P(pos = neg) / 2``.

    The Mann-Whitney statistic over all ``P x N`` pairs, with ties counted half (a calibrated ``r_D``
    is clamped, so ties are common), in ``O((P + N) log N)``.
    """
    pos, neg = pos.flatten().double(), neg.flatten().double().sort().values
    below = torch.searchsorted(neg, pos, right=False)
    at_or_below = torch.searchsorted(neg, pos, right=True)
    return float((below + 0.5 * (at_or_below - below)).sum() / (len(pos) * len(neg)))


def paired_win_rate(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Fraction of rows where ``pos [B]`` outscores its own ``neg [B]`` (ties half): a selection among
    candidates for the same ``(s, a)`` sees only this within-row comparison."""
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


@torch.no_grad()
def ranking_auc(score: Any, data: Transitions, model: DynamicsModel, generator: torch.Generator) -> dict[str, float]:
    """How well ``score(obs, act, next_obs) -> [B]`` ranks the true next states of ``data`` above wrong ones.

    Two kinds of wrong next states for the same ``(s, a)``: a sample of ``model`` (a random elite, a
    Gaussian draw: the candidates the filter chooses among), and the true next state moved by one
    standard deviation of the model's error (``sigma [o]``, the per-dimension RMS error of the elites'
    mean prediction on these rows) in a random direction. Returns the ROC-AUC of each (0.5: no
    ranking, 1: every true next state above every wrong one), the within-row win rates and ``sigma``'s
    mean. ``data`` should be transitions the scorer was not trained on.
    """
    obs, act, nxt = data.obs, data.act, data.next_obs
    real = score(obs, act, nxt)
    sample = model.sample(obs, act, generator, member_stats=False).next_obs.to(nxt)
    mean, _ = model.predict(obs, act)
    predicted = obs + mean[model.elites].mean(dim=0)[:, :-1].to(obs)
    sigma = (predicted - nxt).square().mean(dim=0).sqrt()  # [o]
    perturbed = nxt + sigma * torch.randn(nxt.shape, generator=generator, device=nxt.device, dtype=nxt.dtype)
    s_model, s_perturbed = score(obs, act, sample), score(obs, act, perturbed)
    return {
        "auc_model_sample": roc_auc(real, s_model),
        "auc_perturbed": roc_auc(real, s_perturbed),
        "win_model_sample": paired_win_rate(real, s_model),
        "win_perturbed": paired_win_rate(real, s_perturbed),
        "model_error_sigma": float(sigma.mean()),
    }


# -- the rollout filter ---------------------------------------------------------------------------
@dataclass
class RewardConsistencyConfig:
    """MOREC's filter. ``K = samples_per_elite * num_elites`` candidates (the published 2 x 5 = 10)."""

    samples_per_elite: int = 2
    select: str = "argmax"  # "argmax" (MOREC's select_elite) or "softmax" (softmax_elite)
    temperature: float = 0.1  # of the softmax over r_D (the published 0.1)
    threshold: float = PUBLISHED_THRESHOLD  # stop the trajectory where the chosen r_D is below this
    # When set, the threshold is instead this quantile of r_D (not in the paper), taken on the fit's held-out
    # real transitions ("real") or on the filter's choice among the model's candidates for them ("model").
    threshold_quantile: float | None = None
    threshold_quantile_of: str = "real"
    reward: DynamicsRewardConfig = field(default_factory=DynamicsRewardConfig)

    def __post_init__(self) -> None:
        if self.select not in ("argmax", "softmax"):
            raise ValueError(f"filter select={self.select!r} is unknown; choose argmax or softmax")
        if self.samples_per_elite < 1 or self.temperature <= 0:
            raise ValueError("filter samples_per_elite must be >= 1 and temperature > 0")
        if self.threshold_quantile is not None and not 0 < self.threshold_quantile < 1:
            raise ValueError(
                f"filter threshold_quantile={self.threshold_quantile} must lie in (0, 1), "
                "or be null to stop below the fixed threshold"
            )
        if self.threshold_quantile_of not in ("real", "model"):
            raise ValueError(
                f"filter threshold_quantile_of={self.threshold_quantile_of!r} is unknown; choose real (held-out "
                "real transitions) or model (the filter's choice among the model's candidates for them)"
            )


@FILTERS.register("reward_consistency")
class RewardConsistencyFilter:
    """Keep the candidate with the highest dynamics reward; stop rows whose best is below ``threshold``.

    The stopped transition stays in the buffer, marked terminal (as in the public MOREC code), so the
    agent does not bootstrap through an implausible state. ``threshold`` is the configured one, or with
    ``threshold_quantile`` set, that quantile of ``r_D`` on the fit's held-out real transitions, or with
    ``threshold_quantile_of: model`` too, of the filter's choice for them (set by ``calibrate``).
    """

    Config = RewardConsistencyConfig

    def __init__(self, config: RewardConsistencyConfig, obs_dim: int, act_dim: int, seed: int, device: str) -> None:
        self.cfg = config
        self.samples_per_elite = config.samples_per_elite
        self.reward = DynamicsReward(obs_dim, act_dim, dataclasses.replace(config.reward, seed=seed), device)
        self.learned = [self.reward]  # fitted (and cached) by the training job before rollouts
        self._threshold = config.threshold if config.threshold_quantile is None else None

    @property
    def threshold(self) -> float:
        """The stop threshold on ``r_D``; a quantile threshold is read from the fitted reward when first needed."""
        if self._threshold is None:
            q = self.cfg.threshold_quantile
            if self.cfg.threshold_quantile_of == "model":
                raise RuntimeError(
                    "filter threshold_quantile_of=model needs the dynamics model: call calibrate(model, data, "
                    "generator) after fitting both (the training job does)"
                )
            self._threshold = self.reward.real_quantile(q)
            log.info("filter stops below r_D %.4f, the %.3g quantile on held-out real rows", self._threshold, q)
        return self._threshold

    @torch.no_grad()
    def calibrate(self, model: DynamicsModel, data: Transitions, generator: torch.Generator) -> dict[str, float]:
        """With ``threshold_quantile_of: model``, set ``threshold`` to the ``threshold_quantile`` of
        :meth:`first_step_scores` on the rows of ``data`` the reward's fit held out; otherwise nothing.
        ``data`` is what the reward was fitted on; deterministic given ``generator``, so a resumed run
        recomputes the same threshold. Returns the threshold it sets and the share of the choices at ``r_D``'s
        floor (more than ``threshold_quantile`` there, and nothing is ever stopped), or ``{}``."""
        if self.cfg.threshold_quantile is None or self.cfg.threshold_quantile_of != "model":
            return {}
        q = self.cfg.threshold_quantile
        held = data.index(self.reward.holdout_split(len(data))[0][:_CALIBRATION_ROWS])
        chosen = self.first_step_scores(model, held, generator).float()
        self._threshold = float(torch.quantile(chosen, q))
        at_floor = float((chosen <= R_D_FLOOR + 1e-6).float().mean())
        log.info("filter stops below r_D %.4f, the %.3g quantile of its choice on held-out rows", self._threshold, q)
        if at_floor > q:
            log.warning(
                "%.0f %% of the filter's choices on held-out rows sit at r_D's floor (%.4f), more than the quantile "
                "%.3g: nothing scores below the threshold, so the filter stops no rollout (the dynamics reward tells "
                "the model's next states from real ones even at the data's own actions)",
                100 * at_floor,
                R_D_FLOOR,
                q,
            )
        return {"model_quantile_threshold": self._threshold, "model_choice_at_floor": at_floor}

    @torch.no_grad()
    def first_step_scores(self, model: DynamicsModel, rows: Transitions, generator: torch.Generator) -> torch.Tensor:
        """``r_D`` of this filter's choice among ``model``'s candidates for real ``rows`` at their own actions
        ``[B]``: on rows the reward was not fitted on, how plausible it finds the model inside the data."""
        rows = rows.to(self.reward.device)
        cand = model.sample_candidates(rows.obs, rows.act, self.samples_per_elite, generator)
        return self._choose(rows.obs, rows.act, cand.next_obs.to(rows.obs), generator)[1]

    def _choose(
        self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, o]``, ``act [B, a]``, candidate ``next_obs [K, B, o]`` -> the chosen candidate per row
        ``[B]`` (by ``select``) and its ``r_D`` ``[B]``."""
        k, b = next_obs.shape[:2]
        scores = self.reward.score(obs.expand(k, -1, -1), act.expand(k, -1, -1), next_obs)  # [K, B]
        if self.cfg.select == "argmax":
            pick = scores.argmax(dim=0)
        else:
            probs = torch.softmax(scores / self.cfg.temperature, dim=0).T  # [B, K]
            pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return pick, scores[pick, torch.arange(b, device=pick.device)]

    def __call__(
        self, obs: torch.Tensor, act: torch.Tensor, cand: StepResult, generator: torch.Generator
    ) -> FilterResult:
        """``obs [B, o]``, ``act [B, a]``, candidates ``[K, B, ...]`` -> the chosen ``[B]`` transitions."""
        pick, score = self._choose(obs, act, cand.next_obs, generator)
        rows = torch.arange(len(pick), device=pick.device)
        stop = score < self.threshold
        info = {**cand.info, "member": cand.info["member"][pick], "dynamics_reward": score}
        step = StepResult(cand.next_obs[pick, rows], cand.reward[pick, rows], cand.terminated[pick, rows] | stop, info)
        return FilterResult(step, stop, score)

"""MOREC's dynamics reward and rollout filter, MOBILE's penalty, candidate sampling."""

import pytest
import torch
from mbrl.dynamics.base import StepResult
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.data.transitions import Transitions
from mbrl.filters import FILTERS, PENALTIES
from mbrl.filters.reward_consistency import (
    R_D_FLOOR,
    DynamicsReward,
    DynamicsRewardConfig,
    RewardConsistencyConfig,
    RewardConsistencyFilter,
    paired_win_rate,
    ranking_auc,
    roc_auc,
)
from mbrl.rollout import rollout


def toy_transitions(n: int, seed: int, noise: float = 0.02) -> Transitions:
    """A nonlinear toy system: ``s' = s + 0.1 * tanh(W [s, a])`` plus small noise (obs 3, act 2)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[0.5, -1.0, 0.3], [1.0, 0.2, -0.7], [-0.4, 0.8, 1.0], [1.5, 0.0, 0.5], [0.0, -1.2, 0.9]])
    obs = torch.randn(n, 3, generator=g)
    act = torch.rand(n, 2, generator=g) * 2 - 1
    nxt = obs + 0.1 * torch.tanh(torch.cat([obs, act], 1) @ w) + noise * torch.randn(n, 3, generator=g)
    zeros = torch.zeros(n, dtype=torch.bool)
    return Transitions(obs, act, torch.zeros(n), nxt, zeros, zeros)


@pytest.fixture(scope="module")
def fitted_reward() -> DynamicsReward:
    cfg = DynamicsRewardConfig(
        hidden_sizes=(64, 64),
        policy_hidden_sizes=(64, 64),
        rounds=600,
        batch_size=128,
        snapshot_every=50,
        max_snapshots=6,
        calibration_rows=512,
    )
    model = DynamicsReward(3, 2, cfg)
    summary = model.fit(toy_transitions(6000, seed=0))
    assert 1 <= summary["snapshots"] <= 6
    return model


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative."""
    return float((pos[:, None] > neg[None, :]).float().mean())


@pytest.mark.slow
def test_discriminator_separates_real_from_perturbed_transitions(fitted_reward):
    real = toy_transitions(1000, seed=1)
    g = torch.Generator().manual_seed(2)
    r_real = fitted_reward.score(real.obs, real.act, real.next_obs)
    separation = []
    for scale in (0.1, 0.3):  # 5x and 15x the data's noise
        perturbed = real.next_obs + scale * torch.randn(real.next_obs.shape, generator=g)
        r_fake = fitted_reward.score(real.obs, real.act, perturbed)
        assert r_real.mean() > r_fake.mean()
        separation.append(auc(r_real, r_fake))
    assert separation[0] > 0.75 and separation[1] > 0.9 and separation[1] > separation[0]


def test_score_follows_the_published_calibration(fitted_reward):
    real = toy_transitions(200, seed=3)
    r = fitted_reward.score(real.obs, real.act, real.next_obs)
    # Calibrated probabilities lie in [sigmoid(-1), sigmoid(1)], so r_D = -log(1 - p) in [0.31, 1.31].
    assert r.min() >= -torch.log(1 - torch.sigmoid(torch.tensor(-1.0))) - 1e-5
    assert r.max() <= -torch.log(1 - torch.sigmoid(torch.tensor(1.0))) + 1e-5
    # Recompute from the snapshots' raw logits.
    m = int(fitted_reward.num_snapshots)
    x = fitted_reward._normalise(real.obs, real.act, real.next_obs)
    logits = fitted_reward.snapshots(x)[:m, :, 0]
    lo, hi = fitted_reward.learner_logit[:m, None], fitted_reward.expert_logit[:m, None]
    p = torch.sigmoid(2 * (logits.clamp(min=lo, max=hi) - lo) / (hi - lo) - 1).mean(0)
    torch.testing.assert_close(r, -torch.log(1 - p + 1e-9))
    # Leading dimensions are kept: [K, B] candidates score as [K, B].
    k_b = fitted_reward.score(real.obs.expand(4, -1, -1), real.act.expand(4, -1, -1), real.next_obs.expand(4, -1, -1))
    assert k_b.shape == (4, 200)
    torch.testing.assert_close(k_b[2], r)


def test_fit_is_deterministic_and_round_trips_through_the_state_dict():
    data = toy_transitions(3000, seed=0)
    cfg = DynamicsRewardConfig(
        hidden_sizes=(16,), policy_hidden_sizes=(16,), pretrain_steps=20, rounds=40, snapshot_every=10, r1_coef=1.0
    )
    a, b = DynamicsReward(3, 2, cfg), DynamicsReward(3, 2, cfg)
    a.fit(data)
    b.fit(data)
    q = toy_transitions(50, seed=9)
    torch.testing.assert_close(a.score(q.obs, q.act, q.next_obs), b.score(q.obs, q.act, q.next_obs), rtol=0, atol=0)
    c = DynamicsReward(3, 2, cfg)
    c.load_state_dict(a.state_dict())
    torch.testing.assert_close(c.score(q.obs, q.act, q.next_obs), a.score(q.obs, q.act, q.next_obs), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="call fit"):
        DynamicsReward(3, 2, cfg).score(q.obs, q.act, q.next_obs)


def test_fit_records_the_distribution_of_r_d_on_its_held_out_rows(fitted_reward):
    data = toy_transitions(6000, seed=0)  # the fixture's data: its held-out rows are recomputed here
    held_out = data.index(fitted_reward.holdout_split(len(data))[0])
    scores = fitted_reward.score(held_out.obs, held_out.act, held_out.next_obs)
    for q in (0.05, 0.5, 0.9):
        assert fitted_reward.real_quantile(q) == pytest.approx(float(torch.quantile(scores, q)), abs=2e-3)
        # The quantile's defining property; strictly below may be fewer, as clamped scores tie.
        threshold = fitted_reward.real_quantile(q)
        assert float((scores < threshold).float().mean()) <= q + 0.01
        assert float((scores <= threshold + 1e-4).float().mean()) >= q - 0.01
    assert fitted_reward.real_quantile(0.0) == pytest.approx(float(scores.min()))
    assert fitted_reward.real_quantile(1.0) == pytest.approx(float(scores.max()))
    # A cached fit restores the quantiles with the snapshots.
    copy = DynamicsReward(3, 2, fitted_reward.cfg)
    copy.load_state_dict(fitted_reward.state_dict())
    assert copy.real_quantile(0.05) == fitted_reward.real_quantile(0.05)
    with pytest.raises(RuntimeError, match="call fit"):
        DynamicsReward(3, 2, fitted_reward.cfg).real_quantile(0.05)
    # The ranking reports the quantiles and the share of held-out rows below the published 0.6.
    res = fitted_reward.ranking(data, ToyModel(bias=0.0, spread=0.1), torch.Generator().manual_seed(0))
    assert res["real_p05"] == fitted_reward.real_quantile(0.05)
    assert res["real_below_published"] == pytest.approx(float((scores < 0.6).float().mean()))


def test_a_quantile_threshold_stops_that_share_of_real_transitions(fitted_reward):
    cfg = RewardConsistencyConfig(samples_per_elite=1, threshold=5.0, threshold_quantile=0.2)
    filt = RewardConsistencyFilter(cfg, obs_dim=3, act_dim=2, seed=0, device="cpu")
    filt.reward = fitted_reward  # as if fitted by the training job (or loaded from its cache)
    assert filt.threshold == fitted_reward.real_quantile(0.2)  # the fixed threshold of 5 is not used
    real = toy_transitions(3000, seed=11)  # new rows of the same system: stopped at about the quantile's rate
    zeros = torch.zeros(1, len(real))
    cand = StepResult(real.next_obs[None], zeros, zeros.bool(), {"member": torch.zeros(1, dtype=torch.long)})
    res = filt(real.obs, real.act, cand, torch.Generator())
    assert 0.1 < res.stop.float().mean() < 0.25
    torch.testing.assert_close(res.stop, res.score < fitted_reward.real_quantile(0.2))
    with pytest.raises(ValueError, match="threshold_quantile"):
        RewardConsistencyConfig(threshold_quantile=1.5)


def test_a_model_quantile_threshold_stops_that_share_of_the_models_first_steps(fitted_reward):
    def calibrated(model, seed=0, of="model"):
        cfg = RewardConsistencyConfig(
            samples_per_elite=4, threshold=5.0, threshold_quantile=0.2, threshold_quantile_of=of
        )
        filt = RewardConsistencyFilter(cfg, obs_dim=3, act_dim=2, seed=0, device="cpu")
        filt.reward = fitted_reward
        return filt, filt.calibrate(model, toy_transitions(6000, seed=0), torch.Generator().manual_seed(seed))

    close, far = ToyModel(bias=0.0, spread=0.02), ToyModel(bias=0.05, spread=0.02)
    filt, out = calibrated(close)
    assert filt.threshold == out["model_quantile_threshold"]  # the fixed threshold of 5 is not used
    # The choice among a model's candidates on new rows of the system, at their own actions, falls below the
    # threshold at about the quantile's rate: the rule stops that share of the model's steps inside the data.
    rows = toy_transitions(3000, seed=11)
    cand = close.sample_candidates(rows.obs, rows.act, 4, torch.Generator().manual_seed(5))
    res = filt(rows.obs, rows.act, cand, torch.Generator())
    assert 0.12 < res.stop.float().mean() < 0.28
    # A model with an error gets a lower threshold, below the one read off real transitions: the reward
    # finds its candidates less plausible than real next states, and the rule follows the model.
    _, far_out = calibrated(far)
    assert far_out["model_quantile_threshold"] < out["model_quantile_threshold"]
    assert far_out["model_quantile_threshold"] < fitted_reward.real_quantile(0.2)
    # Deterministic in its generator (a resumed run recomputes the same threshold); a threshold of real
    # transitions needs no calibration, and a model threshold cannot be read before it.
    assert calibrated(far)[1] == far_out and calibrated(far, seed=1)[1] != far_out
    real_filt, real_out = calibrated(far, of="real")
    assert real_out == {} and real_filt.threshold == fitted_reward.real_quantile(0.2)
    # The share of choices at r_D's floor is reported: where it exceeds the quantile, nothing is ever stopped.
    assert 0 <= out["model_choice_at_floor"] <= 1
    hopeless, floor_out = calibrated(ToyModel(bias=1.0, spread=0.02))  # every candidate far from the truth
    assert floor_out["model_choice_at_floor"] > 0.2
    assert floor_out["model_quantile_threshold"] == pytest.approx(R_D_FLOOR, abs=1e-6)
    assert not hopeless(rows.obs, rows.act, cand, torch.Generator()).stop.any()
    cfg = RewardConsistencyConfig(threshold_quantile=0.2, threshold_quantile_of="model")
    with pytest.raises(RuntimeError, match="calibrate"):
        _ = RewardConsistencyFilter(cfg, obs_dim=3, act_dim=2, seed=0, device="cpu").threshold
    with pytest.raises(ValueError, match="threshold_quantile_of"):
        RewardConsistencyConfig(threshold_quantile_of="data")


class DistanceScore:
    """A stand-in dynamics reward: higher the closer ``next_obs`` is to ``target`` (1.3 at distance 0)."""

    def __init__(self, target: torch.Tensor):
        self.target = target

    def score(self, obs, act, next_obs):
        return 1.3 - (next_obs - self.target).norm(dim=-1)


def candidates(k: int, b: int) -> StepResult:
    """Candidate ``i`` of row ``r`` sits at distance ``0.1 * i + 0.5 * r`` from the origin (before a permutation)."""
    offsets = torch.arange(k, dtype=torch.float32).view(k, 1) * 0.1 + torch.arange(b).view(1, b) * 0.5
    next_obs = torch.stack([offsets, torch.zeros(k, b)], dim=-1)
    perm = torch.tensor([3, 0, 2, 1])  # the best candidate is not the first one
    return StepResult(
        next_obs[perm],
        torch.arange(k, dtype=torch.float32)[perm, None].expand(k, b),
        torch.zeros(k, b, dtype=torch.bool),
        {"member": perm},
    )


def make_filter(**kw) -> RewardConsistencyFilter:
    cfg = RewardConsistencyConfig(**kw)
    filt = RewardConsistencyFilter(cfg, obs_dim=2, act_dim=1, seed=0, device="cpu")
    filt.reward = DistanceScore(torch.zeros(2))
    return filt


def test_filter_picks_the_highest_scoring_candidate_and_stops_below_the_threshold():
    filt = make_filter(threshold=1.0)
    obs, act = torch.zeros(2, 2), torch.zeros(2, 1)
    res = filt(obs, act, candidates(4, 2), torch.Generator())
    # Candidate at offset 0 (index 1 after the permutation) is best for both rows.
    torch.testing.assert_close(res.step.reward, torch.zeros(2))
    assert res.step.info["member"].tolist() == [0, 0]
    torch.testing.assert_close(res.score, torch.tensor([1.3, 0.8]))
    # Row 1's best candidate scores 0.8 < 1.0: stopped and marked terminal; row 0 goes on.
    assert res.stop.tolist() == [False, True]
    assert res.step.terminated.tolist() == [False, True]


def test_softmax_selection_is_sharp_at_low_temperature_and_spreads_at_high():
    obs, act, cand = torch.zeros(2, 2), torch.zeros(2, 1), candidates(4, 2)
    picks_cold = [
        make_filter(select="softmax", temperature=0.001)(obs, act, cand, torch.Generator().manual_seed(s))
        for s in range(20)
    ]
    assert all(p.step.reward[0] == 0 for p in picks_cold)
    gen = torch.Generator().manual_seed(0)
    hot = make_filter(select="softmax", temperature=10.0)
    rewards = {float(hot(obs, act, cand, gen).step.reward[0]) for _ in range(100)}
    assert len(rewards) == 4  # every candidate gets picked sometimes


def test_rollout_with_the_filter_stops_rows_and_reports_it():
    class Model:
        elites = torch.tensor([0])

        def sample_candidates(self, obs, act, samples_per_elite, generator):
            cand = candidates(4, obs.shape[0])
            return StepResult(obs + cand.next_obs, cand.reward, cand.terminated, cand.info)

    filt = make_filter(threshold=1.0, samples_per_elite=4)
    start = torch.zeros(2, 2)  # row 1's best scores 0.8 at once; row 0's best keeps it at the origin
    data, stats = rollout(
        Model(), lambda o: torch.zeros(len(o), 1), start, 3, torch.Generator(), transition_filter=filt
    )
    assert data.terminated.sum() == 1 and stats.stopped_fraction == pytest.approx(1 / len(data))
    assert len(data) == 3 + 1
    assert stats.filter_score_mean == pytest.approx(float((1.3 * 3 + 0.8) / 4))


def test_filters_and_penalties_are_registered_with_clear_errors():
    assert {"none", "reward_consistency"} <= set(FILTERS.names())
    assert {"none", "mopo", "mobile"} <= set(PENALTIES.names())
    with pytest.raises(KeyError, match=r"registered: .*reward_consistency"):
        FILTERS.get("morec")
    with pytest.raises(ValueError, match="argmax or softmax"):
        RewardConsistencyConfig(select="best")


def test_candidates_come_from_the_elites_in_order():
    model = GaussianEnsemble(
        3, 2, EnsembleConfig(ensemble_size=4, num_elites=2, hidden_sizes=(8,), weight_decay=(0, 0))
    )
    model.elites.copy_(torch.tensor([2, 0]))
    obs, act = torch.randn(5, 3), torch.rand(5, 2)
    cand = model.sample_candidates(obs, act, samples_per_elite=3, generator=torch.Generator().manual_seed(0))
    assert cand.next_obs.shape == (6, 5, 3) and cand.reward.shape == (6, 5) and cand.terminated.shape == (6, 5)
    assert cand.info["member"].tolist() == [2, 0, 2, 0, 2, 0]
    # Averaging many draws of candidate k recovers the mean of member k % 2's elite.
    many = model.sample_candidates(obs, act, samples_per_elite=4000, generator=torch.Generator().manual_seed(1))
    mean, _ = model.predict(obs, act)
    for j, member in enumerate([2, 0]):
        draws = many.next_obs[j::2] - obs  # [4000, 5, 3]
        torch.testing.assert_close(draws.mean(0), mean[member, :, :-1], atol=0.15, rtol=0)


class TwoModels:
    """Candidates of two elites: elite 0 predicts ``s + 1``, elite 1 ``s + 1 + spread`` (no noise)."""

    elites = torch.tensor([0, 1])

    def __init__(self, spread: float):
        self.spread = spread

    def sample_candidates(self, obs, act, samples_per_elite, generator):
        shift = torch.tensor([1.0, 1.0 + self.spread]).repeat(samples_per_elite).view(-1, 1, 1)
        nxt = obs + shift
        k = nxt.shape[0]
        return StepResult(nxt, torch.zeros(k, obs.shape[0]), torch.zeros(k, obs.shape[0], dtype=torch.bool), {})


def test_mobile_penalty_matches_hand_computation():
    penalty = PENALTIES.get("mobile")(PENALTIES.get("mobile").Config(coef=0.5, samples_per_elite=3))
    assert penalty.stage == "update"
    obs = torch.tensor([[0.0, 0.0], [1.0, 2.0]])

    def value(states):  # V(s) = 2 * sum(s)
        return 2 * states.sum(dim=1)

    pen = penalty(obs, torch.zeros(2, 1), TwoModels(spread=0.5), value, torch.Generator())
    # Values of the two elites differ by 2 * (2 dims * 0.5) = 2: unbiased std of {v, v + 2} is sqrt(2).
    torch.testing.assert_close(pen, torch.full((2,), 0.5 * 2**0.5))
    agree = penalty(obs, torch.zeros(2, 1), TwoModels(spread=0.0), value, torch.Generator())
    torch.testing.assert_close(agree, torch.zeros(2))


# -- the ranking measurement ----------------------------------------------------------------------
def test_roc_auc_counts_pairs_and_ties():
    assert roc_auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert roc_auc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert roc_auc(torch.ones(5), torch.ones(7)) == 0.5  # all ties: no ranking
    # 2 of the 4 pairs won, 1 tied: (2 + 0.5) / 4
    assert roc_auc(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.75 - 0.125)
    assert paired_win_rate(torch.tensor([2.0, 1.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) == pytest.approx(0.5)


class ToyModel:
    """A dynamics model of ``toy_transitions``: the true mean step plus an error ``bias`` on every
    dimension, and samples with std ``spread`` around it (one member, elite 0)."""

    elites = torch.tensor([0])

    def __init__(self, bias: float, spread: float):
        self.bias, self.spread = bias, spread

    def _mean(self, obs, act):
        w = torch.tensor([[0.5, -1.0, 0.3], [1.0, 0.2, -0.7], [-0.4, 0.8, 1.0], [1.5, 0.0, 0.5], [0.0, -1.2, 0.9]])
        return 0.1 * torch.tanh(torch.cat([obs, act], 1) @ w) + self.bias

    def predict(self, obs, act):
        mean = torch.cat([self._mean(obs, act), torch.zeros(len(obs), 1)], dim=1)[None]
        return mean, torch.zeros_like(mean)

    def sample(self, obs, act, generator, member_stats=True):
        delta = self._mean(obs, act) + self.spread * torch.randn(obs.shape, generator=generator)
        return StepResult(obs + delta, torch.zeros(len(obs)), torch.zeros(len(obs), dtype=torch.bool), {})

    def sample_candidates(self, obs, act, samples_per_elite, generator):
        k, b = samples_per_elite, len(obs)
        delta = self._mean(obs, act) + self.spread * torch.randn((k, *obs.shape), generator=generator)
        member = torch.zeros(k, dtype=torch.long)
        return StepResult(obs + delta, torch.zeros(k, b), torch.zeros(k, b, dtype=torch.bool), {"member": member})


def test_ranking_of_an_untrained_discriminator_is_chance():
    reward = DynamicsReward(3, 2, DynamicsRewardConfig(hidden_sizes=(32, 32), max_snapshots=2))
    with torch.no_grad():  # two random snapshots with wide calibration bounds: a score that knows nothing
        reward.learner_logit.fill_(-10.0)
        reward.expert_logit.fill_(10.0)
        reward.num_snapshots.fill_(2)
    reward.snapshot_count = 2  # score reads the count as a Python int (fit and load_state_dict set both)
    data = toy_transitions(4000, seed=4)
    res = ranking_auc(reward.score, data, ToyModel(bias=0.1, spread=0.1), torch.Generator().manual_seed(0))
    assert abs(res["auc_model_sample"] - 0.5) < 0.05 and abs(res["auc_perturbed"] - 0.5) < 0.05
    assert res["model_error_sigma"] == pytest.approx(0.1, rel=0.3)  # bias 0.1 plus the data's noise 0.02


def test_ranking_of_a_score_that_knows_the_dynamics_is_near_one():
    model = ToyModel(bias=0.01, spread=0.3)  # a small systematic error, samples spread widely
    truth = ToyModel(bias=0.0, spread=0.0)

    def score(obs, act, next_obs):  # the negative distance to the true (deterministic) step
        return -(next_obs - obs - truth._mean(obs, act)).norm(dim=-1)

    data = toy_transitions(2000, seed=5, noise=0.0)
    res = ranking_auc(score, data, model, torch.Generator().manual_seed(0))
    assert res["auc_model_sample"] > 0.99 and res["win_model_sample"] > 0.99
    # Moved by the model's own error sigma (0.01 per dimension): always ranked below the truth.
    assert res["model_error_sigma"] == pytest.approx(0.01, rel=1e-3)
    assert res["auc_perturbed"] > 0.99


@pytest.mark.slow
def test_fitted_dynamics_reward_ranks_held_out_transitions(fitted_reward):
    data = toy_transitions(6000, seed=0)
    res = fitted_reward.ranking(data, ToyModel(bias=0.0, spread=0.1), torch.Generator().manual_seed(0))
    assert res["auc_model_sample"] > 0.75

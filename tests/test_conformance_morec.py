"""Conformance with polixir/morec: the dynamics reward of a transition and the K-candidate filter.

The fixture (``benchmarks/conformance/morec.py``) holds the reference's historical discriminators
(vanilla encoder + discriminator, one MLP over ``[s, z, a, Δs]``), their calibration values, the
data's min/max, ``r_D`` of a batch, and ``EnsembleDynamics.step``'s candidates, scores, choice and
terminal mask for argmax (``select_elite``) and softmax (``softmax_elite``) selection. Our
``DynamicsReward`` loads the same weights: its z-scoring with ``mean = (min + max) / 2`` and
``std = (max - min) / 1.6`` (states, Δs with mean 0) and ``(max - min) / 2`` (actions) is exactly the
reference's min-max scaling to [-0.8, 0.8] and [-1, 1], and the constant ``z = 0`` input drops out.
The softmax draw is matched by handing our filter the reference's sampled indices (after checking
that both sample from the same probabilities).
"""

from __future__ import annotations

import pytest
import torch
from mbrl.dynamics.base import StepResult

from mbrl.filters.reward_consistency import (
    DynamicsReward,
    DynamicsRewardConfig,
    RewardConsistencyConfig,
    RewardConsistencyFilter,
)
from tests.helpers import assert_rel_close, load_conformance

REF = load_conformance("morec_dynamics_reward")
OBS, ACT = REF["obs"].shape[1], REF["act"].shape[1]


def dynamics_reward() -> DynamicsReward:
    """Our ``DynamicsReward`` holding the reference's calibrated snapshots (float64)."""
    weights = [REF["weights"][f"layer{j}"] for j in range(len(REF["weights"]))]
    hidden = tuple(w["weight"].shape[-1] for w in weights[:-1])
    active = REF["mask"]  # the chosen snapshots that have calibration values
    m = len(active)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        reward = DynamicsReward(OBS, ACT, DynamicsRewardConfig(hidden_sizes=hidden, max_snapshots=m))
    finally:
        torch.set_default_dtype(default)
    state = reward.state_dict()
    for j, w in enumerate(weights):
        weight = w["weight"][active]
        if j == 0:  # reference input columns [s, z, a, Δs]; ours [s, a, Δs]
            weight = torch.cat([weight[:, :OBS], weight[:, OBS + 1 :]], dim=1)
        state[f"snapshots.{2 * j}.weight"] = weight
        state[f"snapshots.{2 * j}.bias"] = w["bias"][active]
    obs_mid, obs_width = (REF["obs_max"] + REF["obs_min"]) / 2, (REF["obs_max"] - REF["obs_min"]) / 1.6
    act_mid, act_width = (REF["act_max"] + REF["act_min"]) / 2, (REF["act_max"] - REF["act_min"]) / 2
    state["input_mean"] = torch.cat([obs_mid, act_mid, torch.zeros(OBS)])
    state["input_std"] = torch.cat([obs_width, act_width, obs_width])
    state["learner_logit"] = REF["learner_value"]
    state["expert_logit"] = REF["expert_value"]
    state["num_snapshots"] = torch.tensor(m)
    reward.load_state_dict(state)
    return reward


def test_dynamics_reward_equals_the_reference_average_over_saved_discriminators():
    reward = dynamics_reward()
    assert REF["chosen_snapshots"].tolist() == [2, 4, 6, 8]  # last 8 of 10, every 2nd; 6 has no calibration
    assert REF["mask"].tolist() == [0, 1, 3]
    # Per snapshot: the logit clamped to [learner, expert], mapped to [-1, 1], squashed.
    x = reward._normalise(REF["obs"], REF["act"], REF["next_obs"])
    logits = reward.snapshots(x)[:, :, 0]
    lo, hi = reward.learner_logit[:, None], reward.expert_logit[:, None]
    probs = torch.sigmoid(2 * (torch.minimum(torch.maximum(logits, lo), hi) - lo) / (hi - lo + 1e-7) - 1)
    assert_rel_close(probs, REF["probs"], "calibrated probability per snapshot")
    assert_rel_close(reward.score(REF["obs"], REF["act"], REF["next_obs"]), REF["reward"], "r_D")
    # Leading dimensions: [K, B] candidates score as the reference's K x B flattened batch.
    for rule, step in REF["steps"].items():
        k = step["candidate_next_obs"].shape[0]
        scores = reward.score(REF["obs"].expand(k, -1, -1), REF["act"].expand(k, -1, -1), step["candidate_next_obs"])
        assert_rel_close(scores, step["dynamics_reward"], f"r_D of the {rule} candidates")


def candidates(step: dict) -> StepResult:
    """The reference's ``K`` clipped candidates as our ``StepResult`` ``[K, B, ...]``."""
    k = step["candidate_next_obs"].shape[0]
    member = REF["elites"].repeat(k // len(REF["elites"]))
    return StepResult(
        step["candidate_next_obs"], step["candidate_reward"], step["candidate_terminal"], {"member": member}
    )


@pytest.mark.parametrize("rule", ["select_elite", "softmax_elite"])
def test_filter_selection_and_stop_mask_equal_the_reference_step(rule, monkeypatch):
    step = REF["steps"][rule]
    select = "argmax" if rule == "select_elite" else "softmax"
    filt = RewardConsistencyFilter(
        RewardConsistencyConfig(samples_per_elite=2, select=select, temperature=0.1, threshold=REF["threshold"]),
        OBS,
        ACT,
        seed=0,
        device="cpu",
    )
    filt.reward = dynamics_reward()
    if select == "softmax":  # the reference samples Categorical(softmax(10 r_D)); feed ours the same draw

        def multinomial(probs, n, generator=None):
            assert_rel_close(probs, step["softmax_probs"], "softmax probabilities over the candidates")
            return step["selected"].view(-1, 1)

        monkeypatch.setattr(torch, "multinomial", multinomial)
    res = filt(REF["obs"], REF["act"], candidates(step), torch.Generator())
    rows = torch.arange(REF["obs"].shape[0])
    assert res.step.info["member"].tolist() == REF["elites"].repeat(2)[step["selected"]].tolist()
    assert_rel_close(res.score, step["dynamics_reward"][step["selected"], rows], "r_D of the chosen candidate")
    assert_rel_close(res.step.next_obs, step["next_obs"], "chosen next state")
    assert_rel_close(res.step.reward, step["reward"], "chosen reward")
    assert res.step.terminated.tolist() == step["terminal"].tolist()  # termination rule | r_D < threshold
    assert res.stop.tolist() == (step["dynamics_reward"][step["selected"], rows] < REF["threshold"]).tolist()
    assert res.stop.any() and not res.stop.all()  # the fixture exercises both sides of the threshold


def test_candidate_order_and_draws_equal_the_reference():
    """Candidate ``k`` is draw ``k // elites`` of elite ``k % elites`` in both: rebuilt from the recorded
    member means/stds and Gaussian draws, the reference's candidates come out (before its float32 cast)."""
    for rule, step in REF["steps"].items():
        mean, std, noise = step["member_mean"], step["member_std"], step["noise"]  # [E, B, D], [draws, elites, B, D]
        draw = (mean[REF["elites"]] + std[REF["elites"]] * noise).flatten(0, 1)  # our sample_candidates' layout
        next_obs = REF["obs"] + draw[..., :-1]
        assert_rel_close(next_obs, step["candidate_next_obs"], f"{rule} candidate next states", rtol=1e-6 * 50)
        assert_rel_close(draw[..., -1], step["candidate_reward"], f"{rule} candidate rewards", rtol=1e-6 * 50)

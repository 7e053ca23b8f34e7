import torch
from mbrl.dynamics.base import StepResult

from mbrl.filters.penalties import PENALTIES, MOPOPenalty, MOPOPenaltyConfig
from mbrl.rollout import RolloutConfig, model_buffer, rollout, split_batch


class CountingModel:
    """next = obs + 1, reward = obs[:, 0], terminates once obs[:, 0] reaches ``stop_at``; std = 0.5 * member index."""

    elites = torch.tensor([0, 1])

    def __init__(self, stop_at: float):
        self.stop_at = stop_at

    def sample(self, obs, act, generator, member_stats=True):
        nxt = obs + 1
        std = torch.arange(3.0).view(3, 1, 1).expand(3, obs.shape[0], obs.shape[1] + 1) * 0.5
        return StepResult(nxt, obs[:, 0].clone(), nxt[:, 0] >= self.stop_at, {"std": std})


def policy(obs):
    return torch.zeros(obs.shape[0], 2)


def test_horizon_termination_and_truncation():
    start = torch.tensor([[0.0, 0.0], [5.0, 0.0], [2.0, 0.0]])
    data, stats = rollout(CountingModel(stop_at=7.0), policy, start, horizon=4, generator=torch.Generator())
    # Row 0 runs 4 steps (0->4); row 1 terminates on its second step (5->6->7); row 2 runs 4 steps (2->6).
    assert len(data) == 4 + 2 + 4
    assert stats.mean_length == (4 + 2 + 4) / 3
    assert data.terminated.sum() == 1 and data.next_obs[data.terminated][0, 0] == 7.0
    # Only survivors of the last step are truncated (their next states are edge-of-reach states).
    assert data.truncated.sum() == 2
    assert set(data.next_obs[data.truncated][:, 0].tolist()) == {4.0, 6.0}
    assert not (data.terminated & data.truncated).any()
    torch.testing.assert_close(data.next_obs, data.obs + 1)


def test_penalty_is_subtracted_from_the_model_reward():
    start = torch.zeros(4, 3)
    pen = MOPOPenalty(MOPOPenaltyConfig(coef=2.0))
    data, stats = rollout(
        CountingModel(stop_at=100.0), policy, start, horizon=1, generator=torch.Generator(), penalty=pen
    )
    # max over members of ||std||: member 2 has std 1.0 on all 4 output dims -> norm 2.0; times coef 2.
    torch.testing.assert_close(data.rew, torch.full((4,), -4.0))
    assert stats.penalty_mean == 4.0


def test_mopo_penalty_matches_hand_computation():
    std = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])  # [E=2, B=1, 2]: norms 5 and 1
    step = StepResult(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, dtype=torch.bool), {"std": std})
    assert PENALTIES.get("mopo")(MOPOPenaltyConfig(coef=0.5))(step).item() == 2.5
    assert PENALTIES.get("none")(PENALTIES.get("none").Config())(step).item() == 0.0


def test_model_buffer_keeps_the_last_rounds_and_batches_split_by_ratio():
    cfg = RolloutConfig(horizon=2, batch_size=3, retain=2)
    buf = model_buffer(cfg, obs_dim=2, act_dim=2, device="cpu")
    assert buf.capacity == 12
    for r in range(3):
        data, _ = rollout(CountingModel(stop_at=100.0), policy, torch.full((3, 2), 10.0 * r), 2, torch.Generator())
        buf.add(data)
    seen = set(buf.sample(400, torch.Generator().manual_seed(0)).obs[:, 0].tolist())
    assert seen == {10.0, 11.0, 20.0, 21.0}  # round 0 (starting at 0) fell out of the FIFO
    assert split_batch(256, 0.05) == (12, 244)

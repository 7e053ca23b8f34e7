import pytest
import torch

from mbrl.data.buffer import ReplayBuffer
from mbrl.data.transitions import Transitions


def rows(start, n):
    v = torch.arange(start, start + n, dtype=torch.float32)
    return Transitions(
        obs=v[:, None].repeat(1, 3),
        act=v[:, None],
        rew=v,
        next_obs=v[:, None].repeat(1, 3) + 1,
        terminated=torch.zeros(n, dtype=torch.bool),
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def test_fifo_keeps_the_newest_rows():
    buf = ReplayBuffer(5, obs_dim=3, act_dim=1)
    buf.add(rows(0, 4))
    buf.add(rows(4, 3))  # 0 and 1 are overwritten
    assert len(buf) == 5
    kept = set(buf.sample(500, torch.Generator().manual_seed(0)).rew.tolist())
    assert kept == {2.0, 3.0, 4.0, 5.0, 6.0}


def test_batch_longer_than_capacity_keeps_its_tail():
    buf = ReplayBuffer(4, obs_dim=3, act_dim=1)
    buf.add(rows(0, 10))
    assert set(buf.sample(200, torch.Generator().manual_seed(0)).rew.tolist()) == {6.0, 7.0, 8.0, 9.0}


def test_rows_stay_aligned_across_fields():
    buf = ReplayBuffer(8, obs_dim=3, act_dim=1)
    buf.add(rows(0, 8))
    s = buf.sample(64, torch.Generator().manual_seed(1))
    torch.testing.assert_close(s.obs[:, 0], s.rew)
    torch.testing.assert_close(s.next_obs[:, 0], s.rew + 1)


def test_state_dict_round_trip():
    a = ReplayBuffer(6, obs_dim=3, act_dim=1)
    a.add(rows(0, 9))
    b = ReplayBuffer(6, obs_dim=3, act_dim=1)
    b.load_state_dict(a.state_dict())
    b.add(rows(9, 2))
    a.add(rows(9, 2))
    ga, gb = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(a.sample(50, ga).rew, b.sample(50, gb).rew)


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(3, 3, 1).sample(2)

"""Conformance fixture from the PRDC authors' code (Ran et al., ICML 2023; github.com/kimoyami/PRDC).

``python -m benchmarks.conformance.prdc --ref /work/refs/PRDC`` builds the official ``PRDC`` trainer
(``prdc.py`` with ``net/actor.py``, ``net/critic.py``) in float64 at width 8 on a small dataset in
which every state comes with four actions, so the nearest ``(beta * s, a)`` pair of ``(s, pi(s))``
is often another row than the batch row itself. It runs one ``train`` step (``policy_freq`` 1, so
the critic and the actor both step) and records the weights before and after (targets included),
the batch, the target-smoothing noise, the KD-tree's neighbour indices, the TD target, each loss
term and the gradients. A second record checks the search metric with standardised states: the
official ``main.py`` standardises states in the replay buffer (``utils/buffer.py``) and indexes
``hstack([beta * states, actions])``; the generator records those points and the neighbours of a
few queries.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.conformance.corl import named, narrow_linear, pack, snapshot
from tests.helpers import feeding, record_calls, record_steps

CHECKOUT = "PRDC"

OBS_DIM, ACT_DIM, HIDDEN, STATES, ACTIONS_PER_STATE, BATCH = 4, 2, 8, 12, 4, 12
ALPHA, BETA, GAMMA, TAU = 2.5, 2.0, 0.99, 5e-3


def dataset() -> dict[str, np.ndarray]:
    """D4RL-style arrays: ``STATES`` states (off-centre, unequal scales) with ``ACTIONS_PER_STATE`` actions each,
    states jittered a little so that every pair is distinct."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(STATES, OBS_DIM, generator=g) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + torch.tensor(
        [0.5, -2.0, 1.0, 0.0]
    )
    n = STATES * ACTIONS_PER_STATE
    obs = base.repeat_interleave(ACTIONS_PER_STATE, dim=0) + 0.05 * torch.randn(n, OBS_DIM, generator=g)
    return {
        "observations": obs.numpy(),
        "actions": (torch.rand(n, ACT_DIM, generator=g) * 1.9 - 0.95).numpy(),
        "next_observations": (obs + 0.3 * torch.randn(n, OBS_DIM, generator=g)).numpy(),
        "rewards": torch.randn(n, generator=g).numpy(),
        "terminals": (torch.arange(n) % 5 == 4).double().numpy(),
    }


class FixedBatch:
    """Stands in for ``utils.buffer.ReplayBuffer``: ``sample`` returns one fixed batch."""

    def __init__(self, data: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.batch = [
            torch.from_numpy(data["observations"][rows]),
            torch.from_numpy(data["actions"][rows]),
            torch.from_numpy(data["rewards"][rows]).unsqueeze(1),
            torch.from_numpy(data["next_observations"][rows]),
            1 - torch.from_numpy(data["terminals"][rows]).unsqueeze(1),
        ]

    def sample(self, batch_size: int) -> list[torch.Tensor]:
        assert batch_size == len(self.batch[0])
        return self.batch


class RecordingTree:
    """Wraps the official KD-tree to keep the indices each ``query`` returns."""

    def __init__(self, tree: Any) -> None:
        self.tree, self.indices = tree, []

    def query(self, key: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self.tree.query(key, **kwargs)
        self.indices.append(torch.from_numpy(np.asarray(idx)).reshape(-1))
        return dist, idx


def main(argv: list[str] | None = None) -> None:
    from benchmarks.conformance.common import save_fixture, use_reference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="the PRDC checkout")
    args = parser.parse_args(argv)
    commit = use_reference(args.ref)
    torch.set_default_dtype(torch.float64)
    import net.actor
    import net.critic
    from scipy.spatial import KDTree

    narrow_linear(net.actor, HIDDEN)
    narrow_linear(net.critic, HIDDEN)
    from prdc import PRDC
    from utils.buffer import ReplayBuffer

    data = dataset()
    # Raw states in the metric and the networks (main.py's --normalize switched off): everything is comparable.
    points = np.hstack([BETA * data["observations"], data["actions"]])
    torch.manual_seed(0)
    policy = PRDC(
        points, OBS_DIM, ACT_DIM, max_action=1.0, device="cpu", discount=GAMMA, tau=TAU, policy_noise=0.2,
        noise_clip=0.5, policy_freq=1, alpha=ALPHA, beta=BETA, k=1,
    )  # fmt: skip
    init = snapshot(actor=policy.actor, critic=policy.critic)
    rows = np.random.default_rng(1).permutation(len(points))[:BATCH]
    buffer = FixedBatch(data, rows)
    noise = torch.randn(BATCH, ACT_DIM, generator=torch.Generator().manual_seed(2))
    grads: dict[str, torch.Tensor] = {}
    record_steps(policy.actor_optimizer, named("actor", policy.actor), grads)
    record_steps(policy.critic_optimizer, named("critic", policy.critic), grads)
    target_calls, actor_calls = record_calls(policy.critic_target), record_calls(policy.actor)
    policy.kd_tree = tree = RecordingTree(policy.kd_tree)
    with feeding(torch, "randn_like", [noise]):
        stats = policy.train(buffer, BATCH)
    state, _, reward, _, not_done = buffer.batch
    (_, next_action), (q1_next, q2_next) = target_calls[0]
    nearest = tree.indices[0]
    if torch.equal(nearest, torch.from_numpy(rows)):
        raise AssertionError("every neighbour is the batch row itself: the fixture would not test the search")

    # The metric with standardised states, built as main.py builds it.
    replay = ReplayBuffer(OBS_DIM, ACT_DIM, "cpu", "fixture", 1, 0, max_size=len(points))
    replay.convert_D4RL({k: v.copy() for k, v in data.items()})
    mean, std = replay.normalize_states()
    normalised_points = np.hstack([BETA * replay.state, replay.action])
    queries = {"state": state, "action": actor_calls[0][1]}
    keys = np.hstack([BETA * (state.numpy() - mean) / std, queries["action"].numpy()])
    _, normalised_nearest = KDTree(normalised_points).query(keys, k=[1])  # the search prdc.py makes

    fixture = {
        "config": {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA, "tau": TAU, "policy_noise": 0.2, "noise_clip": 0.5,
                   "policy_freq": 1, "hidden": HIDDEN, "lr": 3e-4},
        "dataset": {k: torch.from_numpy(v) for k, v in data.items()},
        "rows": torch.from_numpy(rows),
        "init": init,
        "noise": noise,
        "out": {
            "next_action": next_action, "target": (reward + not_done * GAMMA * torch.min(q1_next, q2_next)).squeeze(1),
            "critic_loss": stats["critic_loss"], "pi": actor_calls[0][1], "nearest": nearest,
            "lmbda": float(stats["lmbda"]), "actor_loss": stats["actor_loss"], "dc_loss": stats["dc_loss"],
            "combined_loss": stats["combined_loss"],
        },
        "grads": pack(grads),
        "after": snapshot(actor=policy.actor, critic=policy.critic, actor_target=policy.actor_target,
                          critic_target=policy.critic_target),
        "standardised": {"points": torch.from_numpy(normalised_points), "queries": queries,
                         "nearest": torch.from_numpy(np.asarray(normalised_nearest)).reshape(-1)},
    }  # fmt: skip
    notes = "prdc.py PRDC.train, policy_freq 1, width 8; utils/buffer.py normalize_states for the standardised metric"
    path = save_fixture("prdc_official", fixture, repository="kimoyami/PRDC", commit=commit, notes=notes)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

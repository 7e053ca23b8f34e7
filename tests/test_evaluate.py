import numpy as np
import torch

from mbrl.data.scores import D4RL_REFERENCE_SCORES
from mbrl.envs import make_env
from mbrl.evaluate import evaluate


def linear_policy(obs: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-0.3, 0.3, obs.shape[1] * 3).reshape(obs.shape[1], 3)
    return torch.tanh(obs @ w)


def sequential_returns(env_id: str, n: int, seed: int, gamma: float = 0.99) -> tuple[list, list, list]:
    """Plain one-env loops: per-episode return, discounted return and start state."""
    out, disc, starts = [], [], []
    for i in range(n):
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed + i)
        starts.append(obs)
        total, discounted, t, done = 0.0, 0.0, 0, False
        while not done:
            a = linear_policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, r, term, trunc, _ = env.step(a)
            total += r
            discounted += gamma**t * r
            t += 1
            done = term or trunc
        out.append(total)
        disc.append(discounted)
    return out, disc, starts


def test_vectorised_matches_sequential_episodes():
    res = evaluate(linear_policy, "Hopper-v5", num_episodes=5, seed=3, max_parallel=2, gamma=0.9)
    returns, discounted, starts = sequential_returns("Hopper-v5", 5, 3, gamma=0.9)
    np.testing.assert_allclose(res.returns.numpy(), returns, rtol=1e-6)
    np.testing.assert_allclose(res.discounted.numpy(), discounted, rtol=1e-6)
    np.testing.assert_allclose(res.start_obs.numpy(), np.stack(starts), rtol=1e-6)
    assert (res.lengths > 0).all() and (res.lengths <= 1000).all()


def test_result_does_not_depend_on_parallelism_and_is_normalised():
    ref = D4RL_REFERENCE_SCORES["hopper"]
    a = evaluate(linear_policy, "Hopper-v5", num_episodes=4, seed=0, ref_scores=ref, max_parallel=4)
    b = evaluate(linear_policy, "Hopper-v5", num_episodes=4, seed=0, ref_scores=ref, max_parallel=3)
    torch.testing.assert_close(a.returns, b.returns)
    expected = 100 * (a.returns - ref[0]) / (ref[1] - ref[0])
    torch.testing.assert_close(a.normalized, expected)
    s = a.summary()
    assert s["score_ci_low"] <= s["score_mean"] <= s["score_ci_high"]

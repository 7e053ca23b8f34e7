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


def test_recorded_steps_are_the_episodes_a_single_env_plays():
    res = evaluate(linear_policy, "Hopper-v5", num_episodes=3, seed=5, max_parallel=2, record=True)
    assert evaluate(linear_policy, "Hopper-v5", num_episodes=3, seed=5).steps is None
    steps = res.steps
    for i in range(3):
        env = make_env("Hopper-v5")
        obs, _ = env.reset(seed=5 + i)
        rows = (steps.episode_id == i).nonzero().squeeze(1)
        assert len(rows) == res.lengths[i] and rows.diff().eq(1).all()  # whole episodes, one after another
        for row in rows.tolist():
            np.testing.assert_allclose(steps.obs[row].numpy(), obs, rtol=1e-6)
            a = linear_policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            np.testing.assert_allclose(steps.act[row].numpy(), a, rtol=1e-6)
            obs, r, term, trunc, _ = env.step(a)
            np.testing.assert_allclose(steps.next_obs[row].numpy(), obs, rtol=1e-6)
            assert np.isclose(steps.rew[row].item(), r, rtol=1e-5)
            assert (bool(steps.terminated[row]), bool(steps.truncated[row])) == (term, trunc)
        assert term or trunc
        env.close()

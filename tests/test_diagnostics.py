"""Reach-aware diagnostics: chained trajectory segments, model error by rollout step, critic statistics."""

import math

import numpy as np
import pytest
import torch
from mbrl.dynamics.oracle import OracleDynamics

from mbrl.data.generate import collect
from mbrl.data.transitions import Transitions
from mbrl.diagnostics import (
    model_error_by_step,
    on_policy_errors,
    returns_to_go,
    trajectory_segments,
    value_diagnostics,
)
from mbrl.evaluate import evaluate


def as_transitions(episode) -> Transitions:
    obs = torch.tensor(np.array(episode.observations), dtype=torch.float32)
    return Transitions(
        obs[:-1],
        torch.tensor(np.array(episode.actions), dtype=torch.float32),
        torch.tensor(episode.rewards, dtype=torch.float32),
        obs[1:],
        torch.tensor(episode.terminations),
        torch.tensor(episode.truncations),
    )


def chain(n: int, breaks: set[int], timeouts: set[int] = frozenset()) -> Transitions:
    """``n`` rows of a scalar walk: row i goes i -> i + 1, except that the rows in ``breaks`` jump elsewhere."""
    obs = torch.arange(n, dtype=torch.float32)[:, None]
    nxt = obs + 1
    for i in breaks:
        nxt[i] = -1.0
    truncated = torch.zeros(n, dtype=torch.bool)
    truncated[list(timeouts)] = True
    return Transitions(obs, torch.zeros(n, 1), torch.zeros(n), nxt, torch.zeros(n, dtype=torch.bool), truncated)


def test_segments_never_cross_a_break_or_a_timeout():
    data = chain(20, breaks={5}, timeouts={12})
    starts = trajectory_segments(data, horizon=3, rows=100, generator=torch.Generator().manual_seed(0))
    # A 3-step segment starting at s uses links s->s+1 and s+1->s+2: rows s and s+1 must chain.
    expected = {s for s in range(18) if not {s, s + 1} & {5, 12}}
    assert set(starts.tolist()) == expected
    assert len(trajectory_segments(data, 3, rows=4, generator=torch.Generator())) == 4


def test_model_error_is_zero_for_the_true_simulator_and_grows_for_a_biased_model():
    oracle = OracleDynamics("Hopper-v5", num_threads=1)
    data = Transitions.cat([as_transitions(e) for e in collect("Hopper-v5", None, 300, seed=0)])
    policy = lambda o: torch.zeros(len(o), 3)  # noqa: E731
    exact = model_error_by_step(oracle, data, 3, 64, torch.Generator().manual_seed(0), policy, oracle)
    sources = ("data", "oracle", "reward_bias", "reward_error")
    assert set(exact) == {f"{src}_step{k}" for src in sources for k in (1, 2, 3)}
    assert all(abs(v) < 1e-8 for v in exact.values()), exact

    class Biased:
        """The true step plus a drift of 0.01 per step on every state dimension and 0.5 on the reward."""

        elites = torch.tensor([0])

        def predict(self, obs, act):
            mean, logvar = oracle.predict(obs, act)
            return mean + torch.cat([torch.full_like(obs, 0.01), torch.full((len(obs), 1), 0.5)], 1), logvar

    drift = model_error_by_step(Biased(), data, 3, 64, torch.Generator().manual_seed(0), policy, oracle)
    assert math.isclose(drift["oracle_step1"], 1e-4, rel_tol=0.01)  # (0.01)^2 on every dimension
    assert drift["data_step1"] < drift["data_step2"] < drift["data_step3"]
    # The reward is judged at the model's own (drifted) states, so the drift does not leak into it.
    for k in (1, 2, 3):
        assert math.isclose(drift[f"reward_bias_step{k}"], 0.5, rel_tol=1e-5)
        assert math.isclose(drift[f"reward_error_step{k}"], 0.25, rel_tol=1e-5)
    oracle.close()


def test_returns_to_go_of_terminated_and_time_limited_episodes():
    gamma = 0.5
    rew = torch.tensor([1.0, 2.0, 3.0, 1.0, 1.0])
    steps = Transitions(
        torch.zeros(5, 1),
        torch.zeros(5, 1),
        rew,
        torch.zeros(5, 1),
        torch.tensor([False, False, True, False, False]),  # episode 0 ends in a terminal state
        torch.tensor([False, False, False, False, True]),  # episode 1 is cut by its time limit
        episode_id=torch.tensor([0, 0, 0, 1, 1]),
    )
    g, tail = returns_to_go(steps, gamma)
    expected = []
    for rows in ([0, 1, 2], [3, 4]):
        for t in range(len(rows)):
            expected.append(sum(gamma**k * float(rew[rows[t + k]]) for k in range(len(rows) - t)))
    torch.testing.assert_close(g, torch.tensor(expected, dtype=torch.float64))
    # The cut episode's return misses gamma^(steps left) of the value; the terminated one misses nothing.
    torch.testing.assert_close(tail, torch.tensor([0.0, 0.0, 0.0, 0.25, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="episode_id"):
        returns_to_go(Transitions(steps.obs, steps.act, rew, steps.next_obs, steps.terminated, steps.truncated), gamma)


def test_on_policy_errors_measure_critics_and_model_along_the_policy_episodes():
    oracle = OracleDynamics("Hopper-v5", num_threads=1)
    policy = lambda o: torch.tanh(o[:, :3])  # noqa: E731
    res = evaluate(policy, "Hopper-v5", num_episodes=3, seed=0, gamma=0.9, record=True)
    g, _ = returns_to_go(res.steps, 0.9)
    firsts = torch.cat([torch.zeros(1, dtype=torch.long), res.lengths.cumsum(0)[:-1]])
    torch.testing.assert_close(g[firsts], res.discounted)  # the episodes' own discounted returns

    def q_values(obs, act):  # two critics: the true return-to-go, and 1 above it
        return torch.stack([g, g + 1.0]).float()

    exact = on_policy_errors(res.steps, 0.9, q_values, oracle)
    assert math.isclose(exact["policy_q"], exact["policy_return_to_go"], rel_tol=1e-5)
    assert math.isclose(exact["policy_q_std"], 2**-0.5, rel_tol=1e-5)
    assert abs(exact["policy_model_error"]) < 1e-8 and abs(exact["policy_reward_bias"]) < 1e-6

    class Biased:
        """The true step plus 0.01 on every state dimension and 0.5 on the reward, with a known std."""

        elites = torch.tensor([0])

        def predict(self, obs, act):
            mean, _ = oracle.predict(obs, act)
            shift = torch.cat([torch.full_like(obs, 0.01), torch.full((len(obs), 1), 0.5)], 1)
            return mean + shift, torch.full_like(mean, math.log(0.04))  # std 0.2 on every output

    drift = on_policy_errors(res.steps, 0.9, model=Biased())
    assert set(drift) == {"policy_model_error", "policy_reward_bias", "policy_model_uncertainty"}
    assert math.isclose(drift["policy_model_error"], 1e-4, rel_tol=0.01)
    assert math.isclose(drift["policy_reward_bias"], 0.5, rel_tol=1e-4)
    assert math.isclose(drift["policy_model_uncertainty"], 0.2 * (res.steps.obs.shape[1] + 1) ** 0.5, rel_tol=1e-5)
    oracle.close()


def test_value_diagnostics_split_edge_of_reach_states_from_the_rest():
    def q_values(obs, act):  # two critics that disagree by |obs[:, 0]|
        return torch.stack([obs[:, 0], -obs[:, 0]])

    def policy(obs):
        return torch.zeros(len(obs), 1)

    real = chain(4, breaks=set())
    model = Transitions(
        obs=torch.zeros(3, 1),
        act=torch.zeros(3, 1),
        rew=torch.zeros(3),
        next_obs=torch.tensor([[1.0], [10.0], [3.0]]),
        terminated=torch.tensor([False, False, True]),
        truncated=torch.tensor([False, True, False]),
    )
    out = value_diagnostics(q_values, policy, real, model)
    std = torch.tensor([1.0, -1.0]).std().item()  # per unit of |obs[:, 0]|
    assert math.isclose(out["q_std_edge_of_reach"], 10 * std, rel_tol=1e-6)  # only row 1 is the last step
    assert math.isclose(out["q_std_model_next"], 1 * std, rel_tol=1e-6)  # row 2 terminated: excluded
    assert out["q_real"] == 0.0 and out["q_model"] == 0.0
    no_model = value_diagnostics(q_values, policy, real, None)
    assert set(no_model) == set(out) and math.isnan(no_model["q_std_edge_of_reach"])


@pytest.mark.slow
def test_plot_script_draws_a_run_folder(tmp_path):
    from mbrl.plot_diagnostics import main, plot_run

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "eval.csv").write_text("step,score_mean\n10,1.0\n20,2.0\n")
    (tmp_path / "rollout.csv").write_text("step,mean_length,stopped_fraction\n1,4.5,0.1\n11,4.0,0.2\n")
    header = "step,q_real,q_model,q_edge_of_reach,q_std_real_next,q_std_model_next,q_std_edge_of_reach"
    steps = ",".join(f"data_step{k},oracle_step{k}" for k in range(1, 12))
    values = ",".join("0.1,0.2" for _ in range(11))
    # The reward columns are empty in the first row, as in a run resumed by a version that measures them.
    rows = f"10,1,2,nan,0.1,0.2,nan,{values},,\n20,1,2,3,0.1,0.2,0.5,{values},0.3,0.7\n"
    (tmp_path / "diagnostics.csv").write_text(f"{header},{steps},reward_bias_step1,reward_bias_step2\n{rows}")
    png = plot_run(tmp_path)
    assert png == tmp_path / "diagnostics.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_diagnostics_do_not_change_training(in_env, tmp_path):
    from mbrl.checkpoint import load
    from mbrl.train import compose, train
    from tests.helpers import SMOKE

    actors = []
    for enabled in (True, False):
        run = tmp_path / str(enabled)
        train(compose([*SMOKE, "agent=ravl", f"diagnostics.enabled={enabled}", "diagnostics.every=10"]), run)
        assert (run / "diagnostics.csv").exists() == enabled
        actors.append(load(run / "checkpoint.pt")["agent"]["actor"])
    for name, value in actors[0].items():
        assert torch.equal(value, actors[1][name]), name

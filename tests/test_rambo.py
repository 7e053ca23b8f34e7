"""RAMBO: the agent contract with and without an attached model, the adversary's effect on the model (lower
value for the policy, elites only, still fitting the data), behaviour cloning, the state round trip with the
dynamics, the refusal of non-learned dynamics, and the training job end to end (smoke run, exact
kill-and-resume, the cached fit left untouched)."""

import copy
import dataclasses
import json

import pytest
import torch
from mbrl.agents.rambo import RAMBOAgent, RAMBOConfig
from mbrl.dynamics.ensemble import GaussianEnsemble

from mbrl.checkpoint import load
from mbrl.config import typed_section
from mbrl.data.transitions import Transitions
from mbrl.testing import SPEC, check_agent, random_batch
from mbrl.train import compose, train
from tests.helpers import RAMBO_TINY, SMALL_ENSEMBLE, SMOKE, resume_killed_run

SMALL = RAMBOConfig(hidden_sizes=(32, 32), bc_steps=0)
# An adversarial phase after every update, a few small steps: the generic tester sees the model change.
FAST = dataclasses.replace(SMALL, adv_every=1, adv_steps=3, adv_batch_size=16, adv_horizon=2, bc_steps=5)
DATA = random_batch(600, seed=5)


@pytest.fixture(scope="module")
def model() -> GaussianEnsemble:
    """A small ensemble fitted for a few epochs on ``DATA`` (each agent gets its own copy)."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL_ENSEMBLE, ensemble_size=4, num_elites=2, lr=3e-3, batch_size=64, max_epochs=5)
    ensemble = GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, cfg)
    ensemble.fit(DATA)
    return ensemble


def attached(config: RAMBOConfig, model: GaussianEnsemble, seed: int = 0) -> RAMBOAgent:
    torch.manual_seed(seed)
    agent = RAMBOAgent(SPEC, config)
    agent.attach(DATA, copy.deepcopy(model))
    return agent


def model_value(agent: RAMBOAgent, obs: torch.Tensor) -> float:
    """Mean over ``obs`` and the elites of ``r + gamma * min_j Q_j(s', pi(s'))`` at the elites' mean predictions,
    with the policy's mean actions: the value the model promises the policy."""
    with torch.no_grad():
        act = agent.act(obs, deterministic=True)
        mean, _ = agent.dynamics.predict(obs, act)
        values = []
        for e in agent.dynamics.elites:
            nxt = obs + mean[e, :, :-1]
            q = agent.critic(nxt, agent.act(nxt, deterministic=True)).min(dim=0).values
            values.append(mean[e, :, -1] + agent.cfg.gamma * q)
    return float(torch.stack(values).mean())


def test_meets_the_agent_contract_without_dynamics(caplog):
    check_agent("rambo", SMALL)
    assert "no dataset attached" in caplog.text


def test_meets_the_agent_contract_with_an_attached_model(model):
    class Attached(RAMBOAgent):
        """Attached as the training job does; its state adds the model's, as the job's checkpoint does."""

        def __init__(self, spec, config):
            super().__init__(spec, config)
            self.attach(DATA, copy.deepcopy(model))

        def state_dict(self):
            return {**super().state_dict(), "run_dynamics": self.dynamics.state_dict()}

        def load_state_dict(self, state):
            super().load_state_dict(state)
            self.dynamics.load_state_dict(state["run_dynamics"])

    check_agent(Attached, FAST)  # the round trip and determinism now cover the dynamics and the generator


def test_adversary_lowers_the_value_the_model_promises_and_still_fits_the_data(model):
    cfg = dataclasses.replace(SMALL, adv_steps=20, adv_batch_size=128, adv_lr=1e-3, adv_weight=0.1)
    obs = DATA.obs[:256]
    results = {}
    for weight in (0.0, cfg.adv_weight):  # 0: the same phase with the supervised term alone
        agent = attached(dataclasses.replace(cfg, adv_weight=weight), model)
        before = model_value(agent, obs)
        metrics = agent.adversarial_phase()
        results[weight] = model_value(agent, obs), float(metrics["adv_nll"])
        assert any(not torch.equal(p, q) for p, q in zip(agent.dynamics.parameters(), model.parameters(), strict=True))
    (value_sup, nll_sup), (value_adv, nll_adv) = results[0.0], results[cfg.adv_weight]
    assert value_adv < value_sup - 0.5 * abs(value_sup - before), (before, value_sup, value_adv)
    assert nll_adv < nll_sup + 0.1 * abs(nll_sup), "the supervised term should keep the model on the data"


def test_only_the_elites_receive_the_adversarial_gradient(model):
    """After one model step, members outside the elites are where the supervised term alone puts them.

    (One step only: the log-variance bounds are shared, so from the second step on every member feels the
    adversary through them. Adam's first step is the gradient's sign, hence a weight that flips signs.)"""
    cfg = dataclasses.replace(SMALL, adv_steps=1, adv_batch_size=64, adv_weight=1.0)
    sup, adv = attached(dataclasses.replace(cfg, adv_weight=0.0), model), attached(cfg, model)
    for agent in (sup, adv):
        agent.adversarial_phase()
    elite = torch.zeros(model.cfg.ensemble_size, dtype=torch.bool)
    elite[model.elites] = True
    for a, b in zip(sup.dynamics.layers, adv.dynamics.layers, strict=True):
        for p, q in ((a.weight, b.weight), (a.bias, b.bias)):
            assert torch.equal(p[~elite], q[~elite])
            assert all(not torch.equal(p[e], q[e]) for e in model.elites)


def test_state_round_trip_restores_the_dynamics_and_continues_identically(model):
    a = attached(FAST, model)
    for i in range(2):
        a.update(random_batch(32, seed=10 + i), random_batch(16, seed=20 + i))
    b = attached(FAST, model, seed=1)  # another seed and the model as fitted: everything must come from the state
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert "dynamics" not in a.state_dict(), "the run, not the agent, saves the model"
    b.dynamics.load_state_dict(copy.deepcopy(a.dynamics.state_dict()))  # as the job restores its dynamics
    for (name, p), q in zip(a.dynamics.state_dict().items(), b.dynamics.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert not all(torch.equal(p, q) for p, q in zip(a.dynamics.parameters(), model.parameters(), strict=True))
    for i in range(2):
        torch.manual_seed(100 + i)
        a.update(random_batch(32, seed=30 + i), random_batch(16, seed=40 + i))
        torch.manual_seed(100 + i)
        b.update(random_batch(32, seed=30 + i), random_batch(16, seed=40 + i))
    for p, q in zip(a.dynamics.parameters(), b.dynamics.parameters(), strict=True):
        assert torch.equal(p, q)

    plain = RAMBOAgent(SPEC, FAST)
    with pytest.raises(ValueError, match=r"attach\(dataset, model\) first"):
        plain.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="without a dynamics model"):
        a.load_state_dict(plain.state_dict())


def warmed_up(model: GaussianEnsemble, bc_steps: int, bc_loss: str) -> tuple[RAMBOAgent, Transitions]:
    """An agent after its warm-up and one update on data whose actions are a smooth function of the state."""
    low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
    data = dataclasses.replace(DATA, act=low + (high - low) * torch.sigmoid(2 * DATA.obs[:, : SPEC.act_dim]))
    agent = attached(dataclasses.replace(SMALL, bc_steps=bc_steps, bc_lr=1e-3, bc_loss=bc_loss), model)
    agent.attach(data, agent.dynamics)
    agent.update(random_batch(32, seed=1), random_batch(16, seed=2))
    return agent, data


@pytest.mark.parametrize("bc_loss", ["nll", "sampled_mse"])
def test_behaviour_cloning_warm_up_pulls_the_actor_to_the_data_actions(model, bc_loss):
    def action_error(bc_steps: int) -> float:
        agent, data = warmed_up(model, bc_steps, bc_loss)
        return float((agent.act(data.obs, deterministic=True) - data.act).pow(2).mean())

    assert action_error(300) < 0.5 * action_error(0)


def test_sampled_mse_warm_up_narrows_the_policy_where_the_likelihood_keeps_its_spread(model):
    def policy_std(bc_loss: str) -> float:
        agent, data = warmed_up(model, 300, bc_loss)
        with torch.no_grad():
            samples = torch.stack([agent.act(data.obs) for _ in range(8)])
        return float(samples.std(dim=0).mean())

    assert policy_std("sampled_mse") < 0.5 * policy_std("nll")


def test_refuses_dynamics_that_are_not_learned():
    agent = RAMBOAgent(SPEC, SMALL)
    with pytest.raises(ValueError, match=r"learned one \(dynamics=ensemble or dynamics=single\)"):
        agent.attach(DATA, object())
    with pytest.raises(ValueError, match="adv_batch_size"):
        RAMBOAgent(SPEC, dataclasses.replace(SMALL, adv_batch_size=1))


def test_paper_preset_keeps_the_rollout_period_and_ties_the_adversary_to_the_rollout_horizon():
    cfg = compose(["experiment=rambo_paper", "rollout.horizon=2"])
    agent = typed_section(cfg.agent, "agent", RAMBOConfig)
    assert agent.adv_horizon == 2 and cfg.rollout.every == 250 and cfg.scale == "paper"


def test_training_job_refuses_the_oracle(in_env, tmp_path):
    with pytest.raises(ValueError, match="got OracleDynamics"):
        train(compose([*SMOKE, "agent=rambo", "dynamics=oracle", *RAMBO_TINY]), tmp_path)


@pytest.mark.slow
def test_smoke_run_of_the_training_job(train_here, tmp_path):
    printed = train_here([*SMOKE, "agent=rambo", *RAMBO_TINY], tmp_path)
    result = json.loads((tmp_path / "final.json").read_text())
    assert result["agent"] == "rambo" and "score_mean" in result["final"]
    assert "behaviour cloning the actor for 20 steps" in printed
    lines = (tmp_path / "train.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"adv_nll", "adv_value", "critic_loss"} <= set(header)
    assert all(len(line.split(",")) == len(header) for line in lines[1:]), "every row has the header's columns"
    assert all(float(line.split(",")[header.index("adv_value")]) != 0 for line in lines[1:])  # a phase at update 10
    assert (tmp_path / "rollout.csv").exists()


def _dynamics_files(cache_dir):
    return {p.name: p.read_bytes() for p in sorted((cache_dir / "dynamics").glob("*.pt"))}


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_actor_and_model(env_vars, train_here, tmp_path):
    cache = tmp_path / "cache"
    args = [*SMOKE, "agent=rambo", *RAMBO_TINY, "total_updates=200", "checkpoint_every=20", "eval_every=1000"]
    args.append(f"dynamics.cache_dir={cache}")
    full = tmp_path / "full"
    train_here(args, full)  # in this process; the killed run and its resume are commands
    fitted = _dynamics_files(cache)
    assert len(fitted) == 1

    killed = tmp_path / "killed"
    resume_killed_run(args, killed, env_vars, total_updates=200)
    a, b = load(full / "checkpoint.pt"), load(killed / "checkpoint.pt")
    assert "dynamics" not in a["agent"], "the run's checkpoint, not the agent's state, holds the model"
    for part, x, y in (("actor", a["agent"]["actor"], b["agent"]["actor"]), ("dynamics", a["dynamics"], b["dynamics"])):
        for k in x:
            assert torch.equal(x[k], y[k]), f"{part}.{k}"

    # The adversary changed the model in memory only: the cached fit is byte for byte the one first written.
    assert _dynamics_files(cache) == fitted
    cached = torch.load(cache / "dynamics" / next(iter(fitted)), weights_only=True)["model"]
    assert any(not torch.equal(cached[k], a["dynamics"][k]) for k in cached)

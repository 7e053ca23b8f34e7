"""Every fast path against the plain path it replaces (benchmarks/throughput.py measures the speed).

* the SAC/EDAC update, split into compilable objectives with the critics frozen for the actor's loss,
  against the straightforward update, bit for bit under the same optimiser;
* fused Adam against the default for-loop Adam (rounding-level agreement);
* the critic's explicit action-gradient against ``autograd.grad(create_graph=True)``, values and
  second-order gradients;
* the chunked ensemble forward of ``sample``/``sample_candidates`` against one pass, and ``sample`` that
  evaluates only each row's drawn member (rollouts without a MOPO-style penalty) against all members;
* the dynamics fit with fused Adam against the default Adam;
* ``torch.compile``d updates against eager ones, a clear error where torch.compile cannot work, and the
  ``compile=true`` flag of the training job.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from mbrl.agents.base import AgentSpec
from mbrl.agents.compiled import require_torch_compile
from mbrl.agents.critics import VectorizedCritic
from mbrl.agents.sac import SACAgent, SACConfig
from mbrl.dynamics import ensemble as ensemble_module
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl.bench import matmul_gflop, matmul_replay, plain_adam  # the paths the benchmark times and counts
from mbrl.data.transitions import Transitions
from mbrl.filters.penalties import MOPOPenalty, MOPOPenaltyConfig
from mbrl.optim import adam
from mbrl.rollout import rollout
from mbrl.train import ConfigError, compose, train
from tests.helpers import TINY_DATASET, random_transitions

SPEC = AgentSpec(obs_dim=5, act_dim=3, act_low=(-1.0, -2.0, 0.0), act_high=(1.0, 0.5, 3.0))
CONFIGS = {
    "sac": SACConfig(hidden_sizes=(32, 32)),
    "edac": SACConfig(hidden_sizes=(32, 32, 32), num_critics=4, eta=1.0),
    "lipschitz": SACConfig(hidden_sizes=(32, 32), num_critics=3, spectral_norm=True, adv_target_eps=0.1),
}


def batch(n: int, seed: int) -> Transitions:
    return random_transitions(n, 5, 3, seed, terminal_rate=0.2)


def plain_update(agent: SACAgent, real: Transitions, model: Transitions | None) -> None:
    """SAC/SAC-N/EDAC written out the straightforward way: one autograd graph through everything, the
    actor's backward restricted to its parameters, EDAC's action-gradients by double backward."""
    cfg = agent.cfg
    b = real if model is None else Transitions.cat([real, model])
    pi_action, log_prob = agent.actor(b.obs)
    alpha_loss = -(agent.log_alpha * (log_prob.detach() + agent.target_entropy)).mean()
    agent.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    agent.alpha_opt.step()
    alpha = agent.log_alpha.exp().detach()  # the stepped temperature, for the actor and the target
    actor_loss = (alpha * log_prob - agent.critic(b.obs, pi_action).min(dim=0).values).mean()
    agent.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward(inputs=list(agent.actor.parameters()))
    agent.actor_opt.step()
    next_obs = b.next_obs
    if cfg.adv_target_eps > 0 and model is not None:
        next_obs = torch.cat([next_obs[: len(real)], agent.adversarial_states(next_obs[len(real) :])])
    with torch.no_grad():
        next_action, next_log_prob = agent.actor(next_obs)
        next_q = agent.target_critic(next_obs, next_action).min(dim=0).values
        target = b.rew + cfg.gamma * (~b.terminated).float() * (next_q - alpha * next_log_prob)
    n = cfg.num_critics
    act_rep = b.act.unsqueeze(0).expand(n, -1, -1).clone().requires_grad_(True)
    q = agent.critic(b.obs, act_rep)
    loss = (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()
    if cfg.eta > 0:
        (grads,) = torch.autograd.grad(q.sum(), act_rep, create_graph=True)
        grads = grads / (grads.norm(dim=-1, keepdim=True) + 1e-10)
        cos = torch.einsum("nba,mba->bnm", grads, grads)
        off_diagonal = cos.sum(dim=(1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(dim=-1)
        loss = loss + cfg.eta * off_diagonal.mean() / max(n - 1, 1)
    agent.critic_opt.zero_grad(set_to_none=True)
    loss.backward()
    agent.critic_opt.step()
    with torch.no_grad():
        for target_p, p in zip(agent.target_critic.parameters(), agent.critic.parameters(), strict=True):
            target_p.lerp_(p, cfg.tau)


def twins(cfg: SACConfig) -> tuple[SACAgent, SACAgent]:
    torch.manual_seed(3)
    agent = SACAgent(SPEC, cfg)
    return agent, copy.deepcopy(agent)


def run_updates(agent: SACAgent, step, n: int = 3) -> None:
    for i in range(n):
        torch.manual_seed(100 + i)  # the policy samples from the global generator
        step(agent, batch(24, seed=i), batch(40, seed=50 + i))


def tensors(agent: SACAgent) -> dict[str, torch.Tensor]:
    state = agent.state_dict()
    out = {"log_alpha": state["log_alpha"]}
    for net in ("actor", "critic", "target_critic"):
        out |= {f"{net}.{k}": v for k, v in state[net].items()}
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_update_is_bit_identical_to_the_plain_update(name):
    """The split into objectives and the frozen critics of the actor loss change no bit."""
    fast, plain = twins(CONFIGS[name])
    run_updates(plain_adam(fast), lambda a, r, m: a.update(r, m))
    run_updates(plain_adam(plain), plain_update)
    for key, value in tensors(plain).items():
        assert torch.equal(tensors(fast)[key], value), key


def fused_adam_available() -> bool:
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    except RuntimeError:
        return False
    return True


def test_fused_adam_is_the_default_and_agrees_with_plain_adam():
    fast, plain = twins(CONFIGS["edac"])
    assert bool(fast.critic_opt.defaults["fused"]) == fused_adam_available()
    assert bool(fast.actor_opt.defaults["fused"]) == fused_adam_available()
    initial = tensors(plain)
    run_updates(fast, lambda a, r, m: a.update(r, m))
    run_updates(plain_adam(plain), plain_update)
    moved = 0.0
    for key, value in tensors(plain).items():
        torch.testing.assert_close(tensors(fast)[key], value, rtol=1e-5, atol=1e-6, msg=key)
        moved = max(moved, (value - initial[key]).abs().max().item())
    assert moved > 1e-4  # the updates moved the parameters far beyond the tolerance


def test_default_update_is_reproducible_under_a_seed():
    runs = []
    for _ in range(2):
        agent, _ = twins(CONFIGS["edac"])
        run_updates(agent, lambda a, r, m: a.update(r, m))
        runs.append(tensors(agent))
    for key, value in runs[0].items():
        assert torch.equal(runs[1][key], value), key


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_explicit_action_gradient_matches_double_backward(spectral_norm):
    critic = VectorizedCritic(5, 3, (32, 24, 16), num_critics=4, spectral_norm=spectral_norm)
    twin = copy.deepcopy(critic)
    obs, act = torch.randn(20, 5), torch.rand(20, 3)
    q, grads = critic.q_and_action_grad(obs, act)
    act_rep = act.unsqueeze(0).expand(4, -1, -1).clone().requires_grad_(True)
    q_ref = twin(obs, act_rep)
    (grads_ref,) = torch.autograd.grad(q_ref.sum(), act_rep, create_graph=True)
    torch.testing.assert_close(q, q_ref)
    torch.testing.assert_close(grads, grads_ref)
    # One power-iteration step per pass, as in forward: the spectral-norm buffers moved alike.
    for (name, buf), ref in zip(critic.named_buffers(), twin.buffers(), strict=True):
        assert torch.equal(buf, ref), name
    # Second order: the weight gradients of a loss on the action-gradients (what EDAC differentiates).
    weights = torch.randn_like(grads)
    (grads * weights).sum().backward()
    (grads_ref * weights).sum().backward()
    for (name, p), ref in zip(critic.named_parameters(), twin.parameters(), strict=True):
        # The action-gradients depend on the hidden biases only through the ReLU masks: no gradient.
        grad, grad_ref = (torch.zeros_like(p) if g is None else g for g in (p.grad, ref.grad))
        torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-6, msg=name)
        assert grad.abs().sum() > 0 or name.endswith("bias"), name


@pytest.mark.parametrize("termination", [None, "hopper"])
def test_chunked_sampling_matches_one_pass(termination):
    cfg = EnsembleConfig(ensemble_size=4, num_elites=3, hidden_sizes=(32, 32), weight_decay=(0, 0, 0))
    model = GaussianEnsemble(11, 3, dataclasses.replace(cfg, termination=termination))
    obs, act = torch.randn(203, 11), torch.rand(203, 3) * 2 - 1
    results = []
    for chunk in (None, 16):  # 203 rows: twelve full chunks and a ragged one
        model.sample_chunk = chunk
        step = model.sample(obs, act, torch.Generator().manual_seed(0))
        cand = model.sample_candidates(obs, act, 2, torch.Generator().manual_seed(0))
        results.append((step, cand))
    for one, chunked in zip(*results, strict=True):
        for field in ("next_obs", "reward", "terminated"):
            torch.testing.assert_close(getattr(chunked, field), getattr(one, field), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(chunked.info["std"], one.info["std"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("termination", [None, "hopper"])
def test_drawn_member_sampling_matches_all_members(termination):
    cfg = EnsembleConfig(ensemble_size=5, num_elites=3, hidden_sizes=(32, 32), weight_decay=(0, 0, 0))
    model = GaussianEnsemble(11, 3, dataclasses.replace(cfg, termination=termination))
    model.elites = torch.tensor([4, 0, 2])  # not the first members, in no particular order
    obs, act = torch.randn(203, 11), torch.rand(203, 3) * 2 - 1
    full = model.sample(obs, act, torch.Generator().manual_seed(0))
    drawn = model.sample(obs, act, torch.Generator().manual_seed(0), member_stats=False)
    assert torch.equal(drawn.info["member"], full.info["member"]) and set(drawn.info) == {"member"}
    assert set(full.info["member"].tolist()) == {0, 2, 4}
    for field in ("next_obs", "reward"):
        torch.testing.assert_close(getattr(drawn, field), getattr(full, field), rtol=1e-5, atol=1e-5)
    assert torch.equal(drawn.terminated, full.terminated)


def test_chunked_rollout_is_reproducible_and_matches_one_pass():
    cfg = EnsembleConfig(ensemble_size=3, num_elites=2, hidden_sizes=(16,), weight_decay=(0, 0))
    model = GaussianEnsemble(5, 3, cfg)
    agent = SACAgent(SPEC, CONFIGS["sac"])
    start = torch.randn(300, 5)
    reads_members = MOPOPenalty(MOPOPenaltyConfig(coef=0.0))  # every member computed, no reward change
    runs = []
    for chunk, penalty in ((64, reads_members), (64, reads_members), (None, reads_members), (64, None)):
        model.sample_chunk = chunk
        torch.manual_seed(0)
        data, _ = rollout(model, agent.act, start, 3, torch.Generator().manual_seed(1), penalty=penalty)
        runs.append(data)
    assert torch.equal(runs[0].next_obs, runs[1].next_obs) and torch.equal(runs[0].rew, runs[1].rew)
    for other in runs[2:]:  # one pass; only the drawn members (no penalty)
        torch.testing.assert_close(runs[0].next_obs, other.next_obs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(runs[0].rew, other.rew, rtol=1e-5, atol=1e-5)


def test_dynamics_fit_with_fused_adam_agrees_with_plain_adam(monkeypatch):
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(600, 5, generator=g), torch.rand(600, 3, generator=g)
    data = Transitions(
        obs, act, obs[:, 0] * act[:, 0], obs + 0.1 * act.sum(1, keepdim=True), *[torch.zeros(600, dtype=torch.bool)] * 2
    )
    cfg = EnsembleConfig(ensemble_size=3, num_elites=2, hidden_sizes=(16, 16), weight_decay=(0, 0, 0), max_epochs=3)
    fused = GaussianEnsemble(5, 3, cfg)
    report = fused.fit(data)
    assert any(group.get("fused") for group in adam(fused.parameters(), 1e-3).param_groups)
    monkeypatch.setattr(ensemble_module, "adam", lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=False))
    plain = GaussianEnsemble(5, 3, cfg)
    plain_report = plain.fit(data)
    assert report.epochs == plain_report.epochs == 3
    for (name, p), ref in zip(fused.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(p, ref, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_update_agrees_with_eager():
    """EDAC (explicit action-gradients under compile) with a model batch; small nets: a cold compile takes
    about 40 s on a busy 2-core machine, a warm inductor cache 10 s.

    Where torch.compile cannot build kernels the agent must refuse with an error that names the fix.
    """
    import torch._inductor.config as inductor

    compiled, eager = twins(CONFIGS["edac"])
    try:
        compiled.compile()
    except RuntimeError as e:
        assert "compile=true" in str(e) and "compile=false" in str(e)
        return
    # Same optimiser kernel on both sides, so any difference comes from compilation alone; compiled
    # kernels draw their own random numbers unless told to call torch's, which the comparison needs.
    metrics = {}
    with inductor.patch(fallback_random=True):
        for name, agent in (("compiled", plain_adam(compiled)), ("eager", plain_adam(eager))):
            torch.manual_seed(7)
            metrics[name] = [agent.update(batch(24, seed=i), batch(40, seed=50 + i)) for i in range(2)]
    for step_c, step_e in zip(metrics["compiled"], metrics["eager"], strict=True):
        for key in step_e:
            torch.testing.assert_close(step_c[key], step_e[key], rtol=1e-4, atol=1e-5, msg=key)
    assert metrics["eager"][0]["diversity"] != 0  # the EDAC term is live
    for key, value in tensors(eager).items():
        torch.testing.assert_close(tensors(compiled)[key], value, rtol=1e-4, atol=2e-5, msg=key)


def test_unusable_torch_compile_fails_with_a_clear_error():
    """A C++ compiler that does not exist stands in for a machine without one."""
    import torch._inductor.config as inductor

    torch._dynamo.reset()
    try:
        with (
            inductor.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}),
            pytest.raises(RuntimeError, match=r"compile=true: torch.compile cannot build kernels on cpu .*=false"),
        ):
            require_torch_compile("cpu")
    finally:
        torch._dynamo.reset()


SMOKE = ["scale=smoke", f"dataset={TINY_DATASET}", "logger.progress=false", "dynamics=none", "total_updates=4"]


@pytest.mark.slow
def test_compile_flag_compiles_the_agent_before_training(in_env, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(SACAgent, "compile", lambda self: calls.append(self.cfg))
    train(compose([*SMOKE, "agent=sac", "compile=true"]), tmp_path / "on")
    train(compose([*SMOKE, "agent=sac"]), tmp_path / "off")
    assert len(calls) == 1  # the real compile() is tested above; here only that the flag reaches it


def test_compile_flag_with_an_agent_that_cannot_compile_fails_before_loading_data(tmp_path):
    with pytest.raises(ConfigError, match="compile=true: agent 'bc' has no compile"):
        train(compose(["agent=bc", "dynamics=none", "dataset=/nonexistent.hdf5", "compile=true"]), tmp_path)


def test_matmul_replay_runs_the_same_products_alone():
    """The benchmark's matmul-only ceiling replays exactly the workload's products (stride-0 views included)."""
    critic = VectorizedCritic(5, 3, (32, 32), num_critics=4)
    obs, act = torch.randn(64, 5), torch.rand(64, 3)

    def update() -> int:
        critic(obs, act).square().mean().backward()
        return 7

    replay = matmul_replay(update)
    assert replay() == 7
    assert matmul_gflop(update) > 0
    assert matmul_gflop(replay) == pytest.approx(matmul_gflop(update))

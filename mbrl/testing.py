"""The generic agent tester: the contract every agent, in-tree or plugin, must meet.

Use it from a plugin's own test suite::

    from mbrl.testing import check_agent
    def test_my_agent():
        check_agent("my-agent")            # or check_agent(MyAgent, MyAgent.Config(hidden_sizes=(32, 32)))
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from mbrl.agents import AGENTS
from mbrl.agents.base import AgentSpec, check_agent_class
from mbrl.data.transitions import Transitions

SPEC = AgentSpec(obs_dim=5, act_dim=3, act_low=(-1.0, -2.0, 0.0), act_high=(1.0, 0.5, 3.0))


def random_batch(n: int, seed: int, spec: AgentSpec = SPEC) -> Transitions:
    """``n`` random transitions with in-bounds actions, a few terminals and timeouts."""
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(spec.act_low), torch.tensor(spec.act_high)
    return Transitions(
        obs=torch.randn(n, spec.obs_dim, generator=g),
        act=low + (high - low) * torch.rand(n, spec.act_dim, generator=g),
        rew=torch.randn(n, generator=g),
        next_obs=torch.randn(n, spec.obs_dim, generator=g),
        terminated=torch.rand(n, generator=g) < 0.1,
        truncated=torch.rand(n, generator=g) < 0.05,
    )


def _flat(state: Any, path: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) state dict, keyed by its path (``critic_opt/state/0/exp_avg``).

    Keyed, not listed: an optimiser's first step adds state tensors, and a list would then pair each
    tensor after them with a different one.
    """
    if isinstance(state, torch.Tensor):
        return {path: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return {k: t for key, value in items for k, t in _flat(value, f"{path}/{key}" if path else str(key)).items()}


def _same(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> bool:
    """Whether two flattened states hold the same keys and, under each, the same tensor."""
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _build(agent: str | type, config: Any | None):
    cls = AGENTS.get(agent) if isinstance(agent, str) else agent
    check_agent_class(getattr(cls, "__name__", repr(cls)), cls)  # a class passed directly skips the registry
    return lambda: cls(SPEC, copy.deepcopy(config) if config is not None else cls.Config())


def check_agent(agent: str | type, config: Any | None = None, updates: int = 3) -> None:
    """Assert the ``Agent`` contract for a registered name or an agent class.

    Checks: the class subclasses ``Agent``; actions have the right shape and lie inside asymmetric bounds
    (deterministic and stochastic); ``q_values`` and ``value`` return finite ``[N, B]`` and ``[B]`` where
    the class declares them (``has_q_values``, ``has_value``); ``update`` returns finite detached scalars
    and changes a tensor of the state it started from (compared key by key), both with and without a model
    batch (with one only, and a model-free update must raise ``ValueError``, for an agent with
    ``requires_model``); a ``state_dict`` round trip (optimisers included) continues bit-for-bit like the
    original; the same seed gives the same state.
    """
    make = _build(agent, config)
    torch.manual_seed(0)
    a = make()

    obs = torch.randn(64, SPEC.obs_dim) * 3
    for deterministic in (True, False):
        act = a.act(obs, deterministic=deterministic)
        assert act.shape == (64, SPEC.act_dim), f"act returned {tuple(act.shape)}, expected (64, {SPEC.act_dim})"
        low, high = torch.tensor(SPEC.act_low), torch.tensor(SPEC.act_high)
        assert ((act >= low - 1e-6) & (act <= high + 1e-6)).all(), "actions leave the action bounds"

    # The capabilities the training job reads (the final value check, diagnostics, MOBILE's penalty).
    cls = type(a)
    if cls.has_q_values:
        q = a.q_values(obs, act)
        assert q.dim() == 2 and q.shape[1] == 64, f"q_values returned {tuple(q.shape)}, expected (N, 64)"
        assert torch.isfinite(q).all() and not q.requires_grad, "q_values must be finite and detached"
    if cls.has_value:
        v = a.value(obs)
        assert v.shape == (64,) and torch.isfinite(v).all() and not v.requires_grad, "value must be [B], detached"

    # An agent that learns only from model rollouts (``requires_model = True``, e.g. COMBO) must refuse a
    # model-free update with a ValueError instead of learning from something else.
    if cls.requires_model:
        try:
            a.update(random_batch(32, seed=1))
        except ValueError:
            pass
        else:
            raise AssertionError("an agent with requires_model=True accepted an update without a model batch")
    for model in (random_batch(24, seed=99),) if cls.requires_model else (None, random_batch(24, seed=99)):
        before = {k: t.clone() for k, t in _flat(a.state_dict()).items()}
        metrics = a.update(random_batch(32, seed=1), model)
        assert metrics, "update returned no metrics"
        for k, v in metrics.items():
            assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, f"metric {k!r}"
            assert torch.isfinite(v), f"metric {k!r} is not finite"
        after = _flat(a.state_dict())
        assert before.keys() <= after.keys(), f"update dropped state entries: {sorted(before.keys() - after.keys())}"
        assert not _same(before, {k: after[k] for k in before}), "update changed nothing"

    torch.manual_seed(1)
    b = make()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for i in range(updates):
        torch.manual_seed(100 + i)
        a.update(random_batch(32, seed=10 + i), random_batch(16, seed=20 + i))
        torch.manual_seed(100 + i)
        b.update(random_batch(32, seed=10 + i), random_batch(16, seed=20 + i))
    assert _same(_flat(a.state_dict()), _flat(b.state_dict())), (
        "a restored agent (optimisers included) does not continue identically"
    )

    def seeded_run() -> dict[str, torch.Tensor]:
        torch.manual_seed(7)
        agent_ = make()
        for i in range(updates):
            agent_.update(random_batch(32, seed=30 + i), random_batch(16, seed=40 + i))
        return _flat(agent_.state_dict())

    assert _same(seeded_run(), seeded_run()), "not deterministic"

"""Every agent hyper-parameter is checked when its config is built, before anything runs.

Agent config dataclasses check their values in ``__post_init__`` (``mbrl.agents.base.require``); the training
job builds them with ``mbrl.config.typed_section``, which must report a bad value as a ``ConfigError``
that names the field and its valid range, not let training fail later with a raw error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mbrl.agents import AGENTS
from mbrl.agents.base import AgentSpec
from mbrl.agents.rules import require
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

from mbrl import config as mbrl_config
from mbrl.config import ConfigError, components, resolve
from mbrl.testing import random_batch
from mbrl.train import compose

BUILT_IN = ("bc", "combo", "cql", "iql", "prdc", "rambo", "sac", "td3bc")
AGENT_PRESETS = sorted(p.stem for p in (Path(mbrl_config.CONFIG_DIR) / "agent").glob("*.yaml"))
NAN, INF = float("nan"), float("inf")


def typed(name: str, **params):
    """The agent section ``params`` typed as the training job types it."""
    return mbrl_config.typed_section({"name": name, **params}, f"agent {name!r}", AGENTS.get(name).Config)


def test_the_message_names_the_field_the_rule_and_the_value():
    require(True, "tau", 0.5, "in (0, 1]")
    with pytest.raises(ValueError) as e:
        require(False, "tau", 0.0, "in (0, 1]")
    assert str(e.value) == "tau must be in (0, 1], got 0.0"


def test_the_built_in_agents_are_all_covered():
    assert set(BUILT_IN) <= set(AGENTS.names())


@pytest.mark.parametrize("name", BUILT_IN)
def test_default_configs_pass_their_checks(name):
    AGENTS.get(name).Config()


@pytest.mark.parametrize("scale", ["cpu", "smoke", "paper"])
@pytest.mark.parametrize("preset", AGENT_PRESETS)
def test_every_agent_preset_passes_the_checks(preset, scale):
    section = compose([f"agent={preset}", f"scale={scale}"]).agent
    cfg = mbrl_config.typed_section(section, f"agent {preset!r}", AGENTS.get(section.name).Config)
    assert dataclasses.is_dataclass(cfg)


def test_null_target_entropy_still_means_auto():
    assert typed("sac", target_entropy=None).target_entropy is None
    assert typed("cql", target_entropy=None).target_entropy is None


BAD_VALUES = [
    # (agent, field, value, the rule the message states)
    ("sac", "num_critics", 0, ">= 1"),
    ("sac", "hidden_sizes", [0], "a non-empty list of sizes >= 1"),
    ("sac", "hidden_sizes", [], "a non-empty list of sizes >= 1"),
    ("sac", "actor_lr", 0.0, "a finite number > 0"),
    ("sac", "critic_lr", NAN, "a finite number > 0"),
    ("sac", "alpha_lr", -3e-4, "a finite number > 0"),
    ("sac", "init_alpha", 0.0, "a finite number > 0"),
    ("sac", "gamma", 1.5, "in [0, 1]"),
    ("sac", "tau", 0.0, "in (0, 1]"),
    ("sac", "target_entropy", INF, "a finite number or null"),
    ("sac", "eta", -1.0, "a finite number >= 0"),
    ("sac", "adv_target_eps", -0.1, "a finite number >= 0"),
    ("cql", "num_samples", 0, ">= 1"),
    ("cql", "num_critics", -1, ">= 1"),
    ("cql", "temperature", 0.0, "a finite number > 0"),
    ("cql", "cql_weight", -5.0, "a finite number >= 0"),
    ("cql", "cql_alpha_lr", 0.0, "a finite number > 0"),
    ("cql", "target_action_gap", NAN, "a finite number"),
    ("cql", "bc_steps", -1, ">= 0"),
    ("cql", "logsumexp_over", "row", "state or draw"),
    ("cql", "gamma", -0.1, "in [0, 1]"),
    ("combo", "rho_s", "real", "one of mix, model"),
    ("combo", "num_critics", 0, ">= 1"),  # CQL's checks run for COMBO too
    ("combo", "hidden_sizes", [8, 0], "a non-empty list of sizes >= 1"),
    ("td3bc", "policy_freq", 0, ">= 1"),
    ("td3bc", "alpha", -2.5, "a finite number >= 0"),
    ("td3bc", "policy_noise", -0.2, "a finite number >= 0"),
    ("td3bc", "noise_clip", -0.5, "a finite number >= 0"),
    ("td3bc", "exploration_noise", INF, "a finite number >= 0"),
    ("td3bc", "tau", 1.5, "in (0, 1]"),
    ("td3bc", "hidden_sizes", [0], "a non-empty list of sizes >= 1"),
    ("prdc", "beta", -2.0, "a finite number >= 0"),
    ("prdc", "search_backend", "annoy", "one of auto, kdtree, matmul"),
    ("prdc", "policy_freq", 0, ">= 1"),  # TD3+BC's checks run for PRDC too
    ("iql", "expectile", 1.0, "in (0, 1)"),
    ("iql", "expectile", 0.0, "in (0, 1)"),
    ("iql", "beta", -3.0, "a finite number >= 0"),
    ("iql", "value_lr", 0.0, "a finite number > 0"),
    ("iql", "hidden_sizes", [0], "a non-empty list of sizes >= 1"),
    ("bc", "lr", 0.0, "a finite number > 0"),
    ("bc", "hidden_sizes", [8, -1], "a non-empty list of sizes >= 1"),
    ("rambo", "adv_batch_size", 1, ">= 2"),
    ("rambo", "adv_every", 0, ">= 1"),
    ("rambo", "adv_steps", 0, ">= 1"),
    ("rambo", "adv_horizon", 0, ">= 1"),
    ("rambo", "bc_batch_size", 0, ">= 1"),
    ("rambo", "adv_weight", -3e-4, "a finite number >= 0"),
    ("rambo", "adv_lr", 0.0, "a finite number > 0"),
    ("rambo", "bc_lr", INF, "a finite number > 0"),
    ("rambo", "bc_loss", "mse", "nll or sampled_mse"),
    ("rambo", "bc_steps", -1, ">= 0"),
    ("rambo", "num_critics", 0, ">= 1"),  # SAC's checks run for RAMBO too
]


@pytest.mark.parametrize(("name", "field", "value", "rule"), BAD_VALUES)
def test_a_bad_value_is_a_config_error_naming_the_field_and_the_range(name, field, value, rule):
    expected = f"{field} must be {rule}, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):  # the dataclass, built directly
        AGENTS.get(name).Config(**{field: value})
    with pytest.raises(ConfigError, match=re.escape(f"agent {name!r}: {expected}")):
        typed(name, **{field: value})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.num_critics=0", "num_critics must be >= 1, got 0"),
        ("agent.hidden_sizes=[0]", r"hidden_sizes must be a non-empty list of sizes >= 1, got \[0\]"),
    ],
)
def test_the_training_job_refuses_a_bad_agent_value_before_it_runs(override, message):
    with pytest.raises(ConfigError, match=message):
        components(resolve(compose(["scale=smoke", override])))


# -- extreme values that pass the checks still train (found by the fuzzing below) ---------------------------------
SPEC = AgentSpec(obs_dim=3, act_dim=2, act_low=(-1.0, -2.0), act_high=(1.0, 0.5), device="cpu")


@pytest.mark.slow
def test_td3bc_takes_a_noise_clip_beyond_the_float32_range():
    agent = AGENTS.get("td3bc")(SPEC, typed("td3bc", hidden_sizes=[8], noise_clip=1e308))
    agent.update(random_batch(16, seed=1, spec=SPEC))


def test_rambo_with_a_diverged_policy_reports_nan_instead_of_raising():
    """An actor learning rate of 1e308 turns the policy into NaN; the adversarial step's density must not
    refuse the NaN (torch.distributions validation), so the training loop can stop on the metrics by name."""
    small = dict(adv_every=1, adv_steps=2, adv_batch_size=8, adv_horizon=2, bc_steps=0, bc_batch_size=8)
    agent = AGENTS.get("rambo")(SPEC, typed("rambo", hidden_sizes=[8], actor_lr=1e308, **small))
    agent.attach(random_batch(32, seed=3, spec=SPEC), tiny_dynamics())
    metrics = agent.update(random_batch(16, seed=1, spec=SPEC), random_batch(8, seed=2, spec=SPEC))
    assert not all(math.isfinite(float(v)) for v in metrics.values())


def test_prdc_beta_that_overflows_the_search_keys_is_a_config_error():
    agent = AGENTS.get("prdc")(SPEC, typed("prdc", hidden_sizes=[8], beta=3e38))
    with pytest.raises(ConfigError, match=r"agent\.beta=3e\+38 is too large for this dataset.*smaller agent\.beta"):
        agent.attach(random_batch(32, seed=3, spec=SPEC), None)


def tiny_dynamics() -> GaussianEnsemble:
    cfg = EnsembleConfig(ensemble_size=2, num_elites=1, hidden_sizes=(8,), weight_decay=(0.0, 0.0))
    return GaussianEnsemble(SPEC.obs_dim, SPEC.act_dim, cfg)


# -- fuzzing: every numeric field of every built-in agent config ---------------------------------------------------
CASES_PER_AGENT = 75
# Sizes of tensors the agent allocates or of loops it runs: huge values cost memory or time, not an error.
BOUNDED_INTS = {
    "num_critics",
    "num_samples",
    "adv_every",
    "adv_steps",
    "adv_horizon",
    "adv_batch_size",
    "bc_steps",
    "bc_batch_size",
}
# RAMBO runs its behaviour cloning and an adversarial phase in the first update with these (each can be drawn).
RAMBO_SMALL = {"adv_every": 1, "adv_steps": 2, "adv_batch_size": 8, "adv_horizon": 2, "bc_steps": 2, "bc_batch_size": 8}

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.0, 1e-12, 5e-324, 1e308, -1e308, NAN, INF, -INF]
FLOATS = st.one_of(
    st.sampled_from(SPECIAL_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.0, 1.0),  # plausible values, so that many configs are accepted and train
    st.floats(-10.0, 10.0),
    st.integers(-(10**12), 10**12),  # YAML/CLI ints given to float fields
)
INTS = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, -(10**12), 10**12, 2**63]),
    st.integers(-10, 10),
    st.integers(),
    st.sampled_from([2.5, 2.0, NAN]),  # floats given to int fields
)
SMALL_INTS = st.one_of(st.integers(-3, 4), st.sampled_from([2.0, NAN]))
SIZES = st.lists(st.integers(-2, 8), max_size=3)


def numeric_fields(cls: type) -> dict[str, st.SearchStrategy]:
    """A value strategy for every numeric field of the config dataclass ``cls`` (hidden_sizes included)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        if f.name == "hidden_sizes":
            out[f.name] = SIZES
        elif bool in args:
            continue
        elif int in args:
            out[f.name] = SMALL_INTS if f.name in BOUNDED_INTS else INTS
        elif float in args:
            out[f.name] = st.one_of(st.none(), FLOATS) if type(None) in args else FLOATS
    return out


@st.composite
def overrides(draw, name: str) -> dict:
    fields = numeric_fields(AGENTS.get(name).Config)
    chosen = {draw(st.sampled_from(sorted(fields))) for _ in range(draw(st.integers(1, 3)))}
    return {field: draw(fields[field]) for field in sorted(chosen)}


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT_IN)
@settings(
    max_examples=CASES_PER_AGENT,
    deadline=None,
    derandomize=True,  # CI draws the same cases every run; --hypothesis-seed=N explores others
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_values_are_refused_by_name_or_train(name, data):
    """Each drawn config is refused with a ConfigError, or the agent builds and runs one update without raising.

    NaN or infinite losses are acceptable (the training loop stops on them with a named error); any exception
    after the config was accepted is not. PRDC and RAMBO get a dataset attached (RAMBO also a tiny, unfitted
    dynamics model, and small loop sizes), so their constraint, behaviour cloning and adversarial phase run too.
    """
    params = data.draw(overrides(name), label="overrides")
    section = {"hidden_sizes": [8], **(RAMBO_SMALL if name == "rambo" else {}), **params}
    try:
        cfg = typed(name, **section)
    except ConfigError as e:
        message = str(e)
        assert message.startswith(f"agent {name!r}: "), message
        if " must be " in message:  # a value check: it names one of the drawn fields
            assert any(f"{field} must be " in message for field in params), (params, message)
        event("refused")
        return
    event("accepted")
    torch.manual_seed(0)
    agent = AGENTS.get(name)(SPEC, cfg)
    try:  # as the training job: once, with a model for agents that need one
        agent.attach(random_batch(32, seed=3, spec=SPEC), tiny_dynamics() if type(agent).requires_model else None)
    except ConfigError as e:  # PRDC: a beta so large that its search keys overflow float32 on this data
        assert str(e).startswith("agent.beta="), str(e)
        event("refused by attach")
        return
    metrics = agent.update(random_batch(16, seed=1, spec=SPEC), random_batch(8, seed=2, spec=SPEC))
    assert all(isinstance(v, torch.Tensor) for v in metrics.values())
    if not all(math.isfinite(float(v)) for v in metrics.values()):
        event("accepted, non-finite metrics")

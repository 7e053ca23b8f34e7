"""No device-to-host synchronisation on the per-update path.

A GPU run is only as fast as its updates are asynchronous: ``.item()``, ``float(t)``, ``if t:``,
``.tolist()``, ``.cpu()``, ``.numpy()``, boolean-mask indexing and ``nonzero`` each wait for the device.
On CPU these are ordinary calls, so the test counts them (wrapping the ``torch.Tensor`` methods and
``torch.nonzero``) while each built-in agent runs updates with a model batch, and while the model data
hands out model batches between rollout rounds (an update-stage penalty, MOBILE, included).

Allowed elsewhere, and not counted here: once per rollout round (``ModelData`` reports the round's
``RolloutStats`` as floats), once per RAMBO adversarial phase, and once per log line (the loop converts
the metrics when it writes them). PRDC's matmul search certifies each batch's nearest neighbours and
redoes the uncertain rows exactly: that decision reads one boolean per actor update (``CERTIFICATE``),
the price of an exact answer at the cost of a chunked scan. ``tests/test_host_syncs.py`` also runs a
short training job (slow tier) and checks every update that neither rolls out, logs, evaluates nor
checkpoints.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mbrl.agents import AGENTS
from mbrl.dynamics.ensemble import GaussianEnsemble

from mbrl.filters.base import NoFilter, NoFilterConfig
from mbrl.filters.penalties import MOBILEPenalty, MOBILEPenaltyConfig, NoPenalty, NoPenaltyConfig
from mbrl.model_data import ModelData
from mbrl.rollout import RolloutConfig
from mbrl.testing import SPEC, random_batch
from tests.helpers import tiny_fitted_ensemble

ROOT = str(Path(__file__).resolve().parent.parent)
UPDATES = 4
DATA = random_batch(400, seed=5)
CERTIFICATE = "__bool__ at agents/nn_search.py:"  # MatmulSearch.query: if unsure.any()


class Syncs:
    """Counts sync-forcing calls; ``where`` names the first project line of each call's stack."""

    METHODS = ("item", "__float__", "__int__", "__index__", "__bool__", "tolist", "cpu", "numpy", "nonzero")

    def __init__(self) -> None:
        self.where: collections.Counter[str] = collections.Counter()

    def _record(self, what: str) -> None:
        frames = [
            f for f in traceback.extract_stack()[:-2] if f.filename.startswith(ROOT) and "/tests/" not in f.filename
        ]
        self.where[f"{what} at {frames[-1].filename[len(ROOT) + 1 :]}:{frames[-1].lineno}" if frames else what] += 1

    @property
    def count(self) -> int:
        return sum(self.where.values())

    @contextlib.contextmanager
    def counting(self) -> Iterator[Syncs]:
        originals = {name: getattr(torch.Tensor, name) for name in self.METHODS}
        get, set_, nonzero = torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.nonzero

        def wrap(name, original):
            def counted(self_, *args, **kwargs):
                self._record(name)
                return original(self_, *args, **kwargs)

            return counted

        def masked(index) -> bool:  # boolean-mask indexing: the result's shape depends on the data
            parts = index if isinstance(index, tuple) else (index,)
            return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)

        def getitem(self_, index):
            if masked(index):
                self._record("mask indexing")
            return get(self_, index)

        def setitem(self_, index, value):
            if masked(index):
                self._record("mask assignment")
            return set_(self_, index, value)

        def nonzero_fn(*args, **kwargs):
            self._record("torch.nonzero")
            return nonzero(*args, **kwargs)

        try:
            for name, original in originals.items():
                setattr(torch.Tensor, name, wrap(name, original))
            torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.nonzero = getitem, setitem, nonzero_fn
            yield self
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)
            torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.nonzero = get, set_, nonzero


def test_the_counter_sees_every_kind_of_sync():
    t = torch.tensor([1.0, -1.0])
    with Syncs().counting() as syncs:
        t[0].item(), float(t[0]), int(t[0]), bool(t[0]), t.tolist(), t.cpu(), t.numpy(), t.nonzero()
        t[t > 0], range(t[0].long())
        if t[0]:
            pass
        t[t < 0] = 0.0
    assert syncs.count == 12, syncs.where
    assert t[0].item() == 1.0 and torch.Tensor.item.__name__ == "item"  # restored


@pytest.fixture(scope="module")
def ensemble() -> GaussianEnsemble:
    return tiny_fitted_ensemble(DATA)


def _config(name: str, **kw):
    config = AGENTS.get(name).Config()
    if any(f.name == "hidden_sizes" for f in dataclasses.fields(config)):
        kw = {"hidden_sizes": (16, 16), **kw}
    return dataclasses.replace(config, **kw)


AGENT_CASES = {
    "sac": ("sac", {}),
    "sac-lipschitz": ("sac", {"spectral_norm": True, "adv_target_eps": 0.01}),
    "edac": ("sac", {"num_critics": 4, "eta": 1.0}),
    "mopo-mobile": ("sac", {"deterministic_backup": True}),  # the penalties run in the model data (below)
    "rambo": ("rambo", {"bc_steps": 0, "adv_every": 1000}),  # the adversarial phase is once per adv_every
    "cql": ("cql", {}),
    "cql-lagrange": ("cql", {"with_lagrange": True, "max_q_backup": True, "bc_steps": 2}),
    "combo": ("combo", {}),
    "iql": ("iql", {}),
    "td3bc": ("td3bc", {}),
    "prdc": ("prdc", {}),
    "bc": ("bc", {}),
}


@pytest.mark.parametrize("case", AGENT_CASES)
def test_agent_updates_force_no_host_sync(case, ensemble):
    name, kw = AGENT_CASES[case]
    torch.manual_seed(0)
    agent = AGENTS.get(name)(SPEC, _config(name, **kw))
    agent.attach(DATA, copy.deepcopy(ensemble))
    real, model = random_batch(32, seed=1), random_batch(32, seed=2)
    agent.update(real, model)  # first update outside the count: optimiser state, lazy set-ups
    with Syncs().counting() as syncs:
        for _ in range(UPDATES):
            metrics = agent.update(real, model)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in metrics.values()), metrics
    if name == "prdc":  # the certificate's one boolean per actor update, nothing else
        assert (
            all(where.startswith(CERTIFICATE) for where in syncs.where)
            and syncs.count == UPDATES // agent.cfg.policy_freq
        ), syncs.where
    else:
        assert syncs.count == 0, f"{syncs.count} syncs in {UPDATES} updates: {dict(syncs.where)}"


@pytest.mark.parametrize("penalty", ["none", "mobile"])
def test_model_batches_between_rollout_rounds_force_no_host_sync(penalty, ensemble):
    """``ModelData.batch`` off the rollout schedule: a buffer draw, and MOBILE's penalty with the agent's value."""
    pen = MOBILEPenalty(MOBILEPenaltyConfig()) if penalty == "mobile" else NoPenalty(NoPenaltyConfig())
    cfg = RolloutConfig(horizon=2, batch_size=64, every=100, retain=2, real_ratio=0.5)
    data = ModelData(
        cfg, 64, DATA.obs, SPEC.act_dim, copy.deepcopy(ensemble), pen, NoFilter(NoFilterConfig(), 0, 0, 0, "cpu"), 0
    )
    agent = AGENTS.get("sac")(SPEC, _config("sac", deterministic_backup=True))
    gen = torch.Generator().manual_seed(0)
    rounds = []
    data.batch(1, agent, gen, lambda step, stats: rounds.append(stats))  # a rollout round: may sync once
    assert len(rounds) == 1
    with Syncs().counting() as syncs:
        for step in range(2, 2 + UPDATES):
            model = data.batch(step, agent, gen, lambda step, stats: rounds.append(stats))
            agent.update(random_batch(32, seed=step), model)
    assert len(rounds) == 1 and model is not None and len(model) == 32
    assert all(isinstance(v, torch.Tensor) for v in data.metrics.values())
    assert syncs.count == 0, f"{syncs.count} syncs in {UPDATES} updates: {dict(syncs.where)}"


@pytest.mark.slow
def test_updates_of_a_training_job_between_rounds_logs_and_checkpoints_force_no_host_sync(
    env_vars, monkeypatch, tmp_path
):
    """The loop of ``mbrl.train`` itself (MOBILE: rollouts, the update-stage penalty, SAC): an update that
    neither starts a rollout round nor logs, evaluates or checkpoints forces no sync."""
    import mbrl.model_data as model_data
    from mbrl.train import compose, train
    from tests.helpers import SMOKE

    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    step_of = [0]
    batch = model_data.ModelData.batch

    def tracked(self, step, *args, **kwargs):
        step_of[0] = step
        return batch(self, step, *args, **kwargs)

    monkeypatch.setattr(model_data.ModelData, "batch", tracked)
    syncs, per_step = Syncs(), collections.Counter()
    record = syncs._record
    syncs._record = lambda what: (record(what), per_step.update([step_of[0]]))
    overrides = ["agent=mobile", "total_updates=45", "diagnostics.enabled=false"]  # smoke: every 20, logs 10, eval 30
    with syncs.counting():
        train(compose([*SMOKE, *overrides]), tmp_path)
    quiet = [
        s
        for s in range(2, 45)
        if (s - 1) % 20 and s % 10 and s % 20 and s % 30  # 45: the final evaluation follows it
    ]
    assert len(quiet) > 30 and not {s: per_step[s] for s in quiet if per_step[s]}, syncs.where
    assert per_step[10] > 0, "the counter saw no log line"

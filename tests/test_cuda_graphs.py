"""``cuda_graphs=true``, checked on a CPU: the config checks, and that what a CUDA graph would replay is what runs
eagerly.

A graph replays the kernels of its capture with no Python: these tests run the agents' updates through the same
code (``GraphedUpdate``) on ``mbrl.testing.EmulatedGraphs``, whose
replays re-run the captured function and check that it launches the operators of the capture (same non-tensor
arguments, same persistent tensors), never waits for the device and changes no Python attribute, and compare the
results with eager ones bit for bit. The capture and replay on a real GPU are ``benchmarks/cuda_graphs_check.py``'s
(docs/gpu.md).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest
import torch
from mbrl.agents import AGENTS
from mbrl.agents.base import Agent, SteppedUpdate, graphs_can_replay
from mbrl.agents.bc import BCAgent
from mbrl.agents.graphed import GraphedUpdate
from mbrl.dynamics.ensemble import GaussianEnsemble

import mbrl.rollout
from mbrl.config import ConfigError, TrainConfig, check_cuda_graphs, components, resolve
from mbrl.cuda_graphs import CapturedStep
from mbrl.model_data import ModelData
from mbrl.testing import SPEC, EmulatedGraphs, OpTrace, check_graph_updates, random_batch
from tests.helpers import ROOT, TINY_DATASET, tiny_fitted_ensemble

DATA = random_batch(400, seed=5)


# -- config --------------------------------------------------------------------------------------------------
def test_cuda_graphs_on_a_cpu_device_is_refused_naming_the_fix():
    from mbrl.train import compose

    with pytest.raises(ConfigError, match=r"cuda_graphs=true .* needs device=cuda.*set cuda_graphs=false"):
        resolve(compose(["device=cpu", "cuda_graphs=true"]))
    resolve(compose(["device=cpu"]))  # the default stays off


def test_cuda_graphs_with_compile_is_refused():
    with pytest.raises(ConfigError, match="cuda_graphs=true and compile=true cannot be combined"):
        check_cuda_graphs(TrainConfig(cuda_graphs=True, compile=True), torch.device("cuda"))
    check_cuda_graphs(TrainConfig(cuda_graphs=True), torch.device("cuda"))


def test_an_agent_without_graph_support_is_refused_naming_those_with_it():
    with pytest.raises(ConfigError, match=r"agent 'prdc' does not support CUDA graphs.*set cuda_graphs=false") as e:
        components(TrainConfig(agent={"name": "prdc"}, cuda_graphs=True))
    assert "sac" in str(e.value) and "td3bc" in str(e.value)
    components(TrainConfig(agent={"name": "td3bc"}, cuda_graphs=True))


def test_the_capability_needs_update_step_and_steppedupdates_update():
    with pytest.raises(TypeError, match="supports_cuda_graphs = True but does not implement update_step"):

        class NoStep(SteppedUpdate, Agent):
            supports_cuda_graphs = True

    class OwnUpdate(BCAgent):  # subclassing and overriding update is fine, but not replayed from graphs
        def update(self, real, model=None):
            return super().update(real, model)

    assert graphs_can_replay(BCAgent) and not graphs_can_replay(OwnUpdate)
    with pytest.raises(ValueError, match="cannot be replayed from a CUDA graph; set cuda_graphs=false"):
        GraphedUpdate(OwnUpdate(SPEC, BCAgent.Config(hidden_sizes=(8,))), EmulatedGraphs())
    with pytest.raises(RuntimeError, match=r"need a CUDA device.*set cuda_graphs=false"):
        GraphedUpdate(BCAgent(SPEC, BCAgent.Config(hidden_sizes=(8,))))  # the default backend, on this CPU


# -- agents: graphed updates are the eager ones ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ensemble() -> GaussianEnsemble:
    return tiny_fitted_ensemble(DATA)


CASES = {
    "sac": ("sac", {}),
    "sac-lipschitz": ("sac", {"spectral_norm": True, "adv_target_eps": 0.01}),
    "edac": ("sac", {"num_critics": 4, "eta": 1.0}),
    "mopo-mobile": ("sac", {"deterministic_backup": True, "auto_alpha": False}),
    # a schedule that steps every third update: each rate is captured, replayed once, then captured anew
    "sac-cosine": ("sac", {"actor_lr_schedule": "cosine", "actor_lr_schedule_steps": 30, "actor_lr_schedule_every": 3}),
    "cql-lagrange": ("cql", {"with_lagrange": True, "max_q_backup": True, "bc_steps": 3}),
    "combo": ("combo", {"rho_s": "model"}),
    "iql": ("iql", {"actor_lr_schedule": "cosine", "actor_lr_schedule_steps": 30, "actor_lr_schedule_every": 3}),
    "td3bc": ("td3bc", {}),
    "bc": ("bc", {}),
    "rambo": ("rambo", {"bc_steps": 3, "adv_every": 4, "adv_steps": 2, "adv_batch_size": 16}),
}


@pytest.mark.parametrize("case", CASES)
def test_graphed_updates_equal_eager_updates_bit_for_bit(case, ensemble):
    name, kw = CASES[case]
    cls = AGENTS.get(name)
    config = dataclasses.replace(cls.Config(), hidden_sizes=(16, 16), **kw)

    def make():
        agent = cls(SPEC, copy.deepcopy(config))
        agent.attach(DATA, copy.deepcopy(ensemble))  # RAMBO trains the model between updates
        return agent

    check_graph_updates(make, [(random_batch(32, seed=50 + i), random_batch(16, seed=70 + i)) for i in range(12)])


def test_every_built_in_agent_but_prdc_declares_graph_support():
    built_in = {"bc", "combo", "cql", "iql", "prdc", "rambo", "sac", "td3bc"}
    assert {name for name in built_in if graphs_can_replay(AGENTS.get(name))} == built_in - {"prdc"}


# The emulation catches what a replay would get wrong (each agent breaks one rule in its step).
class CountsInItsStep(BCAgent):
    def update_step(self, real, model, branch):
        self.steps = getattr(self, "steps", 0) + 1  # Python state: a replay would not count
        return super().update_step(real, model, branch)


class ReadsAPythonCounter(BCAgent):
    def after_update(self, branch, metrics):
        self.scale = getattr(self, "scale", 1.0) + 1.0
        return metrics

    def update_step(self, real, model, branch):
        metrics = super().update_step(real, model, branch)
        return metrics | {"scaled": metrics["bc_loss"] * getattr(self, "scale", 1.0)}  # baked in at capture


class WaitsForTheDevice(BCAgent):
    def update_step(self, real, model, branch):
        metrics = super().update_step(real, model, branch)
        if metrics["bc_loss"] > 1e9:  # a host sync
            raise AssertionError
        return metrics


class RebindsATensor(BCAgent):
    def update_step(self, real, model, branch):
        self.total = getattr(self, "total", torch.zeros(())) + real.rew.sum()  # a new tensor each call
        return super().update_step(real, model, branch)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (CountsInItsStep, "changed Python-side state"),
        (ReadsAPythonCounter, "launched other operators than its capture"),
        (WaitsForTheDevice, "makes the host wait for the device"),
        (RebindsATensor, "changed Python-side state"),
    ],
)
def test_the_emulation_catches_steps_that_a_replay_would_get_wrong(cls, message):
    batches = [(random_batch(32, seed=i), None) for i in range(6)]
    with pytest.raises(AssertionError, match=message):
        check_graph_updates(lambda: cls(SPEC, cls.Config(hidden_sizes=(8,))), batches)


def test_a_graph_per_learning_rate_is_what_keeps_a_schedule_right(monkeypatch):
    """Keyed without the rates, a graph captured at one rate would replay it after the schedule changed it."""
    import mbrl.agents.graphed as graphed

    name, kw = CASES["iql"]
    cls = AGENTS.get(name)
    config = dataclasses.replace(cls.Config(), hidden_sizes=(8, 8), **kw)
    monkeypatch.setattr(graphed, "learning_rates", lambda optimizers: ())
    with pytest.raises(AssertionError, match="launched other operators than its capture"):
        check_graph_updates(lambda: cls(SPEC, config), [(random_batch(32, seed=i), None) for i in range(8)])


def test_optimisers_are_made_capturable_and_metrics_survive_the_next_update():
    agent = AGENTS.get("sac")(SPEC, AGENTS.get("sac").Config(hidden_sizes=(8, 8)))
    update = GraphedUpdate(agent, EmulatedGraphs(), warmup=1)
    kept = [update(random_batch(16, seed=i)) for i in range(4)]
    assert all(g["capturable"] for opt in (agent.actor_opt, agent.critic_opt) for g in opt.param_groups)
    assert len({float(m["critic_loss"]) for m in kept}) == 4  # fresh tensors, not views of one static output


def test_a_captured_step_refuses_inputs_of_another_shape():
    step = CapturedStep(lambda ts: [ts[0] * 2], EmulatedGraphs(), warmup=0)
    assert torch.equal(step([torch.ones(3)])[0], torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="other shapes"):
        step([torch.ones(4)])


def test_the_trace_names_host_waits():
    """torch.multinomial without replacement checks its probabilities on the host (inside its kernel, where the
    emulation cannot look: the check names the operator); boolean masks wait for the device, index tensors do not."""
    with OpTrace() as trace:
        torch.multinomial(torch.ones(3, 4), 1)
        torch.multinomial(torch.ones(3, 4), 1, replacement=True)
    assert trace.syncs == ["aten.multinomial.default"]
    x = torch.arange(6.0).view(2, 3)
    with OpTrace() as trace:  # index tensors are fine, boolean masks are not
        x[None, torch.tensor([1])], x[:, torch.tensor([0, 2])]
        x[x > 2]
        x[torch.tensor([True, False])] = 0.0
    assert trace.syncs == ["aten.index.Tensor", "aten.index_put_.default"]


def test_rollouts_run_eagerly_whatever_cuda_graphs_says():
    """Only the update is graphed (a graphed rollout ran at half the eager one's speed on a GPU, docs/gpu.md):
    the model data takes no such setting and rolls out with :func:`mbrl.rollout.rollout`."""
    assert "cuda_graphs" not in inspect.signature(ModelData).parameters
    assert not hasattr(mbrl.rollout, "GraphedRollout")


# -- the GPU check ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="what the check does on a machine without a GPU")
def test_the_gpu_check_refuses_to_run_without_a_gpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cuda_graphs_check.py"), "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0], done.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_the_resume_check_runs_on_emulated_graphs(env_vars, tmp_path):
    """benchmarks/cuda_graphs_resume_check.py on a CPU (--emulate): every resumed run, the switched ones too, ends
    where the uninterrupted run does; without --emulate it refuses, as on any machine without a GPU."""
    script = str(ROOT / "benchmarks" / "cuda_graphs_resume_check.py")
    out = tmp_path / "resume.json"
    args = [sys.executable, script, "--dataset", TINY_DATASET, "--updates", "40", "--agents", "td3bc"]
    args += ["--out", str(out)]
    env = {**os.environ, **env_vars}
    done = subprocess.run([*args, "--device", "cpu", "--emulate"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = json.loads(out.read_text())["agents"]["td3bc"]["runs"]
    assert set(runs) == {"eager", "graphed", "eager+eager", "eager+graphed", "graphed+eager"}
    assert all(r["ok"] for r in runs.values())
    assert all(r["bit_for_bit"] for name, r in runs.items() if name != "eager")
    out.unlink()
    refused = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    assert refused.returncode == 2 and "needs a CUDA GPU" in refused.stderr and not out.exists()


@pytest.mark.slow
def test_a_training_job_on_emulated_graphs_trains_what_the_eager_job_trains(env_vars, monkeypatch, tmp_path):
    """The job's wiring (GraphedUpdate after the resume; rollouts eager): MOPO ends in the same checkpoint and logs."""
    import csv

    import mbrl.agents.graphed

    import mbrl.config
    from mbrl.train import compose, train
    from tests.helpers import SMOKE

    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    overrides = [*SMOKE, "agent=mopo", "dynamics.termination=halfcheetah", "diagnostics.enabled=false"]
    train(compose(overrides), tmp_path / "eager")
    graphs: list[EmulatedGraphs] = []

    def emulated():
        graphs.append(EmulatedGraphs())
        return graphs[-1]

    monkeypatch.setattr(mbrl.config, "check_cuda_graphs", lambda cfg, device: None)  # allow it on this CPU
    monkeypatch.setattr(mbrl.agents.graphed, "CudaGraphs", emulated)
    train(compose([*overrides, "cuda_graphs=true"]), tmp_path / "graphed")

    assert len(graphs) == 1 and all(g.graphs and max(x.replays for x in g.graphs) > 10 for g in graphs)
    eager, graphed = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("eager", "graphed"))
    for part in ("agent", "model_buffer", "rng"):
        a, b = _tensors(eager[part]), _tensors(graphed[part])
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part

    def rows(run: str) -> list[dict[str, str]]:
        with open(tmp_path / run / "train.csv") as f:
            return [{k: v for k, v in row.items() if k != "updates_per_s"} for row in csv.DictReader(f)]

    assert rows("eager") == rows("graphed")


def _tensors(state, path: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state, by path."""
    if isinstance(state, torch.Tensor):
        return {path: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return {k: v for key, value in items for k, v in _tensors(value, f"{path}/{key}").items()}

"""Critics and learned model along the policy's own episodes, for finished runs.

    python benchmarks/value_error.py benchmarks/runs/headline_cpu/*/ravl/seed* --episodes 10 --out x.json

For each run folder it restores the final checkpoint (agent and, in a model-based run, its fitted
dynamics), runs evaluation episodes with the deterministic policy and reports:

* the critics' value of the start states (``min_j Q_j(s0, pi(s0))``, the pessimistic estimate the actor
  is trained on, and the mean over critics) beside the discounted return obtained from there (gamma of
  the agent): a Q far above the realised return is the overestimation the edge-of-reach problem causes;
* the same along every state the policy visits (``mbrl.diagnostics.on_policy_errors``): value
  ``policy_q`` against return-to-go ``policy_return_to_go``, the critics' disagreement;
* the learned model's one-step next-state error, reward bias and MOPO uncertainty on those states, beside
  the same on a sample of the dataset's own rows (``data_*``): a model much worse where the policy goes
  than on the data is a policy that left the data for states the model gets wrong;
* how far the policy's states lie from every state the critics were trained on (the dataset's states
  and, in a model-based run, the model buffer's): the mean Euclidean distance to the nearest one in
  units of the dataset's per-dimension std (``policy_reach``), beside the mean distance between a
  dataset state and its nearest other one (``data_spacing``). Where the first is many times the
  second, the critics' values of the policy's states are extrapolation: no update ever fitted them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from mbrl.agents import AGENTS
from mbrl.agents.base import Agent, AgentSpec
from mbrl.dynamics.ensemble import GaussianEnsemble
from mbrl.dynamics.factory import build_dynamics, ensemble_config
from mbrl.dynamics.termination import TERMINATION_FNS
from omegaconf import OmegaConf
from scipy.spatial import KDTree

from mbrl.checkpoint import load
from mbrl.config import TrainConfig, components, typed_section
from mbrl.data.loading import load_dataset
from mbrl.data.transitions import OfflineDataset, Transitions
from mbrl.diagnostics import on_policy_errors
from mbrl.evaluate import evaluate
from mbrl.filters.penalties import RewardPenalty, ValuePenalty, by_stage

DATA_ROWS = 10_000  # dataset rows the model is also judged on


def nearest(states: torch.Tensor, points: torch.Tensor, data_obs: torch.Tensor, k: int = 1) -> np.ndarray:
    """Distances from each of ``states [N, o]`` to its ``k`` nearest ``points [M, o]`` (``[N]`` or ``[N, k]``),
    in units of ``data_obs``' per-dimension std."""
    mean, std = data_obs.mean(dim=0), data_obs.std(dim=0).clamp_min(1e-6)

    def z(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean) / std).double()

    return KDTree(z(points).numpy()).query(z(states).numpy(), k=k)[0]


def reach(states: torch.Tensor, trained: torch.Tensor, data_obs: torch.Tensor, rows: torch.Tensor) -> dict[str, float]:
    """``policy_reach``: mean distance from each of ``states [N, o]`` to the nearest of ``trained [M, o]``;
    ``data_spacing``: mean distance from the dataset states ``data_obs[rows]`` to their nearest other
    dataset state; both in units of ``data_obs``' per-dimension std."""
    near = nearest(states, trained, data_obs)
    spacing = nearest(data_obs[rows], data_obs, data_obs, k=2)  # [:, 0] is itself
    return {"policy_reach": float(near.mean()), "data_spacing": float(spacing[:, 1].mean())}


def mean_penalty(
    penalty: RewardPenalty | ValuePenalty,
    agent: Agent,
    model: GaussianEnsemble,
    obs: torch.Tensor,
    act: torch.Tensor,
    seed: int,
) -> float:
    """Mean of the run's penalty (coefficient included) over the pairs ``obs [B, o]``, ``act [B, a]``: applied
    where the run applies it, to the model's sampled step (rollout stage) or to the critics' targets (update stage)."""
    rollout_penalty, value_penalty = by_stage(penalty)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if value_penalty is not None:
            return float(value_penalty(obs, act, model, agent.value, generator).mean())
        return float(rollout_penalty(model.sample(obs, act, generator, member_stats=True)).mean())


def first_episode_trace(
    steps: Transitions,
    agent: Agent,
    model: GaussianEnsemble | None,
    termination: str | None,
    data_obs: torch.Tensor,
    starts: torch.Tensor,
) -> list[dict]:
    """One row per step of the first recorded episode (see the module's ``--trace``); ``starts [M, o]``: the
    model rollouts' start states (the dataset's in a model-free run); ``termination``: the family whose rule
    the run's model applied (None: no rule, or no model)."""
    n = int(steps.episode_id.eq(steps.episode_id[0]).sum())
    obs, act = steps.obs[:n], steps.act[:n]
    q = agent.q_values(obs, act).min(dim=0).values  # [n]
    rows = {
        "q": q.tolist(),
        "reward": steps.rew[:n].tolist(),
        "terminated": steps.terminated[:n].tolist(),
        "to_data": nearest(obs, data_obs, data_obs).tolist(),
        "to_rollout_starts": nearest(obs, starts, data_obs).tolist(),
    }
    if model is not None and termination is not None:
        mean, _ = model.predict(obs, act)  # [E, n, o+1]
        predicted = obs + mean[model.elites].mean(dim=0)[:, :-1]
        rows["model_terminated"] = TERMINATION_FNS[termination](obs, act, predicted).tolist()
    return [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]


def restore(run_dir: Path) -> tuple[TrainConfig, Agent, GaussianEnsemble | None, OfflineDataset, dict]:
    """A run folder's config, its agent and (model-based) fitted dynamics from its final checkpoint, its
    dataset, and the checkpoint itself."""
    cfg: TrainConfig = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(run_dir / "config.yaml"))
    )
    name = cfg.agent["name"]
    cls = AGENTS.get(name)
    agent_cfg = typed_section(cfg.agent, f"agent {name!r}", cls.Config)
    data = load_dataset(cfg.dataset)
    spec = data.spec
    agent = cls(AgentSpec(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high), agent_cfg)
    state = load(run_dir / "checkpoint.pt")
    agent.load_state_dict(state["agent"])
    model = None
    if cfg.dynamics.kind in ("ensemble", "single") and state.get("dynamics") is not None:
        model = build_dynamics(cfg.dynamics.kind, cfg.dynamics, spec, cfg.eval_env or spec.env_id, cfg.seed)
        model.load_state_dict(state["dynamics"])
        assert isinstance(model, GaussianEnsemble)
    return cfg, agent, model, data, state


def value_error(run_dir: Path, episodes: int, seed: int = 123, trace: bool = False) -> dict:
    """Values and model errors along the final policy's episodes, for one run folder."""
    cfg, agent, model, data, state = restore(run_dir)
    name, spec = cfg.agent["name"], data.spec
    ref = (spec.ref_min_score, spec.ref_max_score) if spec.ref_min_score is not None else None
    env_id = cfg.eval_env or spec.env_id
    gamma = agent.cfg.gamma
    res = evaluate(lambda o: agent.act(o, deterministic=True), env_id, episodes, seed, ref, gamma=gamma, record=True)
    q = agent.q_values(res.start_obs, agent.act(res.start_obs, deterministic=True))  # [N, episodes]
    row = {
        "run": str(run_dir),
        "agent": name,
        "preset": cfg.agent.get("preset"),
        "dataset": cfg.dataset,
        "dynamics": cfg.dynamics.kind,
        "num_critics": int(q.shape[0]),
        "q_start_min": float(q.min(dim=0).values.mean()),
        "q_start_mean": float(q.mean()),
        "discounted_return": float(res.discounted.mean()),
        "return": float(res.returns.mean()),
        "score": float(res.normalized.mean()) if res.normalized is not None else None,
        "episode_length": float(res.lengths.double().mean()),
    }
    row |= on_policy_errors(res.steps, gamma, agent.q_values, model)
    buffer = state.get("model_buffer")
    trained = starts = data.transitions.obs
    if buffer is not None and buffer["size"]:
        starts = buffer["data"]["obs"][: buffer["size"]]
        trained = torch.cat([trained, starts])
    if trace:
        termination = ensemble_config(cfg.dynamics, spec, cfg.seed).termination if model is not None else None
        row["trace"] = first_episode_trace(res.steps, agent, model, termination, data.transitions.obs, starts)
    rows = torch.randperm(len(data.transitions), generator=torch.Generator().manual_seed(seed))[:DATA_ROWS]
    row |= reach(res.steps.obs, trained, data.transitions.obs, rows)
    if model is not None:
        rows = data.transitions.sample(DATA_ROWS, torch.Generator().manual_seed(seed))
        on_data = on_policy_errors(rows, gamma, model=model)
        row |= {k.replace("policy_", "data_"): v for k, v in on_data.items()}
        penalty = components(cfg).penalty
        row["policy_penalty"] = mean_penalty(penalty, agent, model, res.steps.obs, res.steps.act, seed)
        row["data_penalty"] = mean_penalty(penalty, agent, model, rows.obs, rows.act, seed)
    return row


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "–" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    p.add_argument("--trace", action="store_true", help="also print each run's first episode step by step")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [value_error(r, a.episodes, trace=a.trace) for r in a.runs]
    print(
        "| run | score | Q(s0) min / mean | discounted return | Q along episodes | return-to-go | critics' std "
        "| model error policy / data | reward bias policy / data | uncertainty policy / data "
        "| penalty policy / data | distance to trained states / data spacing |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {fmt(r['score'])} | {r['q_start_min']:.1f} / {r['q_start_mean']:.1f} "
            f"| {r['discounted_return']:.1f} | {r['policy_q']:.1f} | {r['policy_return_to_go']:.1f} "
            f"| {r['policy_q_std']:.2f} "
            f"| {fmt(r.get('policy_model_error'), '.3f')} / {fmt(r.get('data_model_error'), '.3f')} "
            f"| {fmt(r.get('policy_reward_bias'), '+.2f')} / {fmt(r.get('data_reward_bias'), '+.2f')} "
            f"| {fmt(r.get('policy_model_uncertainty'), '.2f')} / {fmt(r.get('data_model_uncertainty'), '.2f')} "
            f"| {fmt(r.get('policy_penalty'), '.2f')} / {fmt(r.get('data_penalty'), '.2f')} "
            f"| {r['policy_reach']:.2f} / {r['data_spacing']:.2f} |"
        )
    for r in rows if a.trace else []:
        print(f"\n{r['run']}, first episode:\n")
        print("| step | Q | reward | terminated (real / model) | to nearest data state | to nearest rollout start |")
        print("|---|---|---|---|---|---|")
        for t, x in enumerate(r["trace"]):
            ended = f"{x['terminated']} / {x.get('model_terminated', '–')}"
            near = f"{x['to_data']:.2f} | {x['to_rollout_starts']:.2f}"
            print(f"| {t} | {x['q']:.1f} | {x['reward']:.2f} | {ended} | {near} |")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

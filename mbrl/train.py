"""The training job: dataset -> dynamics -> {rollouts -> model buffer; agent updates} -> evaluation.

Run it with Hydra (``mbrl-train`` or ``python -m mbrl.train``)::

    mbrl-train                                   # default agent on the default dataset, cpu scale
    mbrl-train agent=mopo scale=smoke seed=3     # any config group option, any key
    mbrl-train hydra.run.dir=runs/x resume=true  # continue a killed run exactly

or from Python::

    from mbrl.train import compose, train
    result = train(compose(["agent=mopo", "scale=smoke"]), run_dir="runs/x")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mbrl.agents.base import AgentSpec
from mbrl.checkpoint import CheckpointError, restore_rng_state, rng_state, save_atomic
from mbrl.config import CONFIG_DIR, Components, ConfigError, TrainConfig, components, resolve
from mbrl.data.loading import load_dataset
from mbrl.data.scores import normalized_scores, summarize
from mbrl.data.transitions import DatasetError, Transitions
from mbrl.data.validate import check_env_match
from mbrl.diagnostics import model_error_by_step, value_diagnostics
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.cache import fit_cached
from mbrl.dynamics.ensemble import GaussianEnsemble
from mbrl.dynamics.factory import build_dynamics
from mbrl.dynamics.oracle import OracleDynamics
from mbrl.envs import ENV_FAMILIES
from mbrl.evaluate import evaluate
from mbrl.logging import RunLogger, sweep_labels, to_float
from mbrl.registry import RegistryError
from mbrl.rollout import model_buffer, rollout, split_batch
from mbrl.run_folder import CONFIG_FILE, InterruptFlag, RunFolder, RunFolderError, TrainingInterrupted

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


class TrainingDivergedError(RuntimeError):
    """A loss or parameter became NaN/inf; the last good checkpoint, if any, is kept."""


def _diverged(what: str, step: int, ckpt_path: Path) -> str:
    """The divergence message: what is kept depends on whether a checkpoint was written before."""
    fix = "Lower the learning rates or check the dataset for extreme values"
    if ckpt_path.exists():
        return f"non-finite {what} at update {step}; the last good checkpoint ({ckpt_path}) is kept. {fix}; resume."
    return (
        f"non-finite {what} at update {step}, before the first checkpoint: nothing of this run is kept to resume "
        f"from. {fix}, then start it again (checkpoint_every sets how often checkpoints are written)."
    )


def plugin_search_path_override() -> list[str]:
    """``hydra.searchpath`` with the config folders that installed plugins declare.

    A plugin package exposes its Hydra configs (e.g. ``configs/agent/<name>.yaml``) through the
    ``mbrl.configs`` entry-point group, its value the dotted name of the package that holds them
    (``mypkg.configs``), so ``agent=<name>`` finds them with no change to this repository.
    """
    paths = sorted(f"pkg://{ep.value}" for ep in entry_points(group="mbrl.configs"))
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose ``configs/config.yaml`` with Hydra overrides, outside of a Hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[*plugin_search_path_override(), *(overrides or [])])


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CONFIG_DIR.parent, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _eval_env(cfg: TrainConfig, spec) -> str:
    if cfg.eval_env:
        return cfg.eval_env
    if spec.source == "d4rl" and spec.env_name.lower() in ENV_FAMILIES:
        return f"{ENV_FAMILIES[spec.env_name.lower()]}-v5"
    return spec.env_id


def _all_finite(tree: Any) -> bool:
    if isinstance(tree, torch.Tensor):
        return not tree.is_floating_point() or bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(_all_finite(v) for v in tree.values())
    if isinstance(tree, list | tuple):
        return all(_all_finite(v) for v in tree)
    return True


def train(config: DictConfig | TrainConfig, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Run (or resume) one training job in ``run_dir``; returns the final results (also ``final.json``).

    Raises ``ConfigError`` for a bad config and ``RunFolderError`` for a folder that is in use or
    holds a run of another config, both before anything runs; ``TrainingInterrupted`` (a
    ``KeyboardInterrupt``) after Ctrl-C, once a checkpoint is written.
    """
    cfg = resolve(config)
    parts = components(cfg)  # the agent, penalty and filter sections are checked before the run folder is touched
    if not logging.getLogger().handlers:  # called from Python without Hydra: still show progress
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    with RunFolder(run_dir, resolved, cfg.resume, CHECKPOINT, map_location=cfg.device) as folder:
        if folder.changes:
            log.warning(
                "resume=force: continuing %s under changed keys %s; what the checkpoint holds (the agent's "
                "optimiser states, learning rates included) continues as saved",
                folder.path,
                folder.changes,
            )
        return _train(cfg, parts, folder, resolved)


def _train(cfg: TrainConfig, parts: Components, folder: RunFolder, resolved: dict[str, Any]) -> dict[str, Any]:
    run_dir, ckpt_path = folder.path, folder.checkpoint
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)

    agent_name, agent_cls, agent_cfg = parts.agent_name, parts.agent_cls, parts.agent_cfg
    penalty, filter_cls, filter_cfg = parts.penalty, parts.filter_cls, parts.filter_cfg
    model_based = cfg.dynamics.kind != "none"
    # MOPO-style penalties are stored with the rollouts; MOBILE-style ones need the agent's current value.
    value_penalty = penalty if penalty.stage == "update" else None

    # -- data -------------------------------------------------------------------------------------
    data = load_dataset(
        cfg.dataset,
        download=cfg.download,
        env_id=cfg.env_id,
        allow_version_mismatch=cfg.allow_version_mismatch,
        device=str(device),
    )
    spec = data.spec
    folder.check_dataset(cfg.dataset, spec.content_hash)
    eval_env = _eval_env(cfg, spec)
    check_env_match(spec, eval_env, allow_version_mismatch=cfg.allow_version_mismatch)
    real = data.transitions
    # Agent batches need only the six core fields: gathering episode ids and simulator states on
    # every update would be wasted work (the batch concatenation drops them anyway).
    core = Transitions(real.obs, real.act, real.rew, real.next_obs, real.terminated, real.truncated)
    ref = (spec.ref_min_score, spec.ref_max_score) if spec.ref_min_score is not None else None

    torch.manual_seed(cfg.seed)
    batch_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rollout_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    # -- dynamics (fit once per dataset, config and seed; cached) --------------------------------
    dynamics: DynamicsModel | None = None
    filter_ranking: dict[str, float] = {}  # constant over the run: logged with every diagnostics row
    transition_filter = filter_cls(filter_cfg, spec.obs_dim, spec.act_dim, cfg.seed, str(device))
    if model_based:
        dynamics = build_dynamics(cfg.dynamics.kind, cfg.dynamics, spec, eval_env, cfg.seed, str(device))
        # Fits leave out D4RL's placeholder next states (mbrl.data.transitions.placeholder_rows).
        cache = {"enabled": cfg.dynamics.cache, "cache_dir": cfg.dynamics.cache_dir}
        fit_cached(dynamics, data.model_rows, spec.content_hash, **cache)
        for component in transition_filter.learned:  # e.g. MOREC's dynamics reward
            fit_cached(component, data.model_rows, spec.content_hash, kind=f"filter_{parts.filter_name}", **cache)
            if hasattr(component, "ranking") and isinstance(dynamics, GaussianEnsemble):
                # Does the learned score rank held-out true next states above the model's samples? A
                # filter that cannot only shortens rollouts. Own generator, global RNG restored.
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    rank_gen = torch.Generator(device=device).manual_seed(cfg.seed + 3)
                    ranking = component.ranking(data.model_rows, dynamics, rank_gen)
                filter_ranking |= {f"filter_{k}": v for k, v in ranking.items()}
                log.info("filter ranking on held-out transitions: %s", {k: round(v, 3) for k, v in ranking.items()})
    oracle = _diagnostics_oracle(cfg, eval_env, dynamics, str(device))
    diag_gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)

    agent = agent_cls(AgentSpec(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, str(device)), agent_cfg)
    if hasattr(agent, "attach_dataset"):  # agents whose loss needs the whole dataset (PRDC's neighbour search)
        agent.attach_dataset(core)
    if hasattr(agent, "attach_dynamics") and dynamics is not None:  # agents that train the model further (RAMBO)
        agent.attach_dynamics(dynamics)
    if cfg.compile:  # torch.compile of the update's hot functions; raises here if this machine cannot compile
        agent.compile()
    buffer = model_buffer(cfg.rollout, spec.obs_dim, spec.act_dim, device) if model_based else None
    n_real, n_model = split_batch(cfg.batch_size, cfg.rollout.real_ratio) if model_based else (cfg.batch_size, 0)

    # -- resume -------------------------------------------------------------------------------------
    start, wandb_id = 0, None
    if folder.state is not None:
        state = folder.state
        agent.load_state_dict(state["agent"])
        if buffer is not None:
            buffer.load_state_dict(state["model_buffer"])
        restore_rng_state(state["rng"], batch_gen, rollout_gen)
        start, wandb_id = state["step"], state.get("wandb_id")
        if start == cfg.total_updates and (run_dir / "final.json").exists():
            log.info("%s already finished %d updates; its results are in final.json", run_dir, start)
            return json.loads((run_dir / "final.json").read_text())
        log.info("resuming %s from update %d", run_dir, start)

    (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    revision = _git_revision()
    (run_dir / "git_revision.txt").write_text(revision + "\n")
    logger = RunLogger(run_dir, cfg.logger, resolved, wandb_id=wandb_id, git_revision=revision)
    logger.truncate_after(start)

    def save_checkpoint(step: int) -> None:
        agent_state = agent.state_dict()
        if not _all_finite(agent_state):
            raise TrainingDivergedError(_diverged("agent parameters", step, ckpt_path))
        save_atomic(
            {
                "step": step,
                "agent": agent_state,
                "rng": rng_state(batch_gen, rollout_gen),
                "model_buffer": buffer.state_dict() if buffer is not None else None,
                "wandb_id": logger.wandb_id,
                "dataset_hash": spec.content_hash,
            },
            ckpt_path,
        )

    def policy_eval(step: int, episodes: int) -> dict[str, float]:
        res = evaluate(
            lambda o: agent.act(o, deterministic=True),
            eval_env,
            episodes,
            seed=10_000 * (cfg.seed + 1) + step,
            ref_scores=ref,
            device=device,
            gamma=agent_cfg.gamma if hasattr(agent_cfg, "gamma") else 0.99,
        )
        out = res.summary()
        if hasattr(agent, "q_values"):  # the critics' value of the start states against what the policy obtained
            start = res.start_obs.to(device)
            q = agent.q_values(start, agent.act(start, deterministic=True))
            out |= {"q_start": float(q.min(dim=0).values.mean()), "discounted_return": float(res.discounted.mean())}
        return out

    def diagnostics() -> dict[str, float]:
        """Reach-aware diagnostics (``mbrl.diagnostics``) on fresh samples. They draw from their own
        generator and restore the global RNG (the policy samples actions from it), so a run's training is
        the same whether diagnostics are on or off."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return _diagnostics()

    def _diagnostics() -> dict[str, float]:
        rows = cfg.diagnostics.rows
        sample = buffer.sample(min(rows, len(buffer)), diag_gen) if buffer is not None and len(buffer) else None
        out: dict[str, float] = dict(filter_ranking)
        if hasattr(agent, "q_values"):
            out |= value_diagnostics(agent.q_values, agent.act, core.sample(rows, diag_gen), sample)
        if isinstance(dynamics, GaussianEnsemble):
            out |= model_error_by_step(
                dynamics, real, cfg.rollout.horizon, rows, diag_gen, lambda o: agent.act(o, deterministic=True), oracle
            )
        return out

    # -- the loop -----------------------------------------------------------------------------------
    progress = _progress(cfg, start)
    t0 = time.time()
    with InterruptFlag() as interrupt:
        try:
            for step in range(start + 1, cfg.total_updates + 1):
                if model_based and (step - 1) % cfg.rollout.every == 0:
                    idx = torch.randint(len(real), (cfg.rollout.batch_size,), device=device, generator=rollout_gen)
                    new, stats = rollout(
                        dynamics,
                        lambda o: agent.act(o),
                        real.obs[idx],
                        cfg.rollout.horizon,
                        rollout_gen,
                        penalty if value_penalty is None else None,
                        transition_filter,
                    )
                    buffer.add(new)
                    logger.log("rollout", step, dataclasses.asdict(stats))
                model_batch = buffer.sample(n_model, batch_gen) if n_model else None
                if value_penalty is not None and model_batch is not None:
                    pen = value_penalty(model_batch.obs, model_batch.act, dynamics, agent.value, batch_gen)
                    model_batch = dataclasses.replace(model_batch, rew=model_batch.rew - pen)
                metrics = agent.update(core.sample(n_real, batch_gen), model_batch)
                if value_penalty is not None and model_batch is not None:
                    metrics["model_penalty"] = pen.mean()
                if step % cfg.log_every == 0:
                    values = to_float(metrics)
                    bad = [k for k, v in values.items() if not torch.isfinite(torch.tensor(v))]
                    if bad:
                        raise TrainingDivergedError(_diverged(", ".join(bad), step, ckpt_path))
                    logger.log("train", step, {**values, "updates_per_s": (step - start) / (time.time() - t0)})
                if cfg.diagnostics.enabled and step % (cfg.diagnostics.every or cfg.eval_every) == 0:
                    logger.log("diagnostics", step, diagnostics())
                if step % cfg.eval_every == 0:
                    scores = logger.log("eval", step, policy_eval(step, cfg.eval_episodes))
                    progress.set_postfix(score=f"{scores.get('score_mean', scores['return_mean']):.1f}", refresh=False)
                if step % cfg.checkpoint_every == 0:
                    save_checkpoint(step)
                progress.update(1)
                if interrupt.requested:  # Ctrl-C: stop between two updates, where a checkpoint is exact
                    save_checkpoint(step)
                    raise TrainingInterrupted(
                        f"interrupted at update {step}; checkpoint written to {ckpt_path}. To continue, rerun the "
                        f"same command with hydra.run.dir={run_dir} (or train(..., run_dir={str(run_dir)!r}))"
                    )
        finally:
            progress.close()

    final = policy_eval(cfg.total_updates + 1, cfg.final_eval_episodes)
    logger.log("final", cfg.total_updates, final)
    save_checkpoint(cfg.total_updates)
    behaviour = summarize(normalized_scores(data.episode_returns, *ref)) if ref else None
    result = {
        "dataset": cfg.dataset,
        "agent": cfg.agent.get("preset", agent_name),  # the preset the user chose (mopo), as mbrl-report labels runs
        "agent_class": agent_name,
        "seed": cfg.seed,
        "eval_env": eval_env,
        "final": final,
        "filter_ranking": filter_ranking or None,
        "behaviour_score_mean": behaviour.mean if behaviour else None,
        "behaviour_return_mean": float(data.episode_returns.double().mean()),
    }
    (run_dir / "final.json").write_text(json.dumps(result, indent=2))
    logger.close()
    if behaviour is not None:
        log.info(
            "final normalised score %.1f +- %.1f (behaviour policy in the dataset: %.1f); run folder %s",
            final["score_mean"],
            final["score_std"],
            behaviour.mean,
            run_dir,
        )
    else:
        log.info("final return %.1f (dataset episodes: %.1f)", final["return_mean"], result["behaviour_return_mean"])
    return result


def _diagnostics_oracle(
    cfg: TrainConfig, eval_env: str, dynamics: DynamicsModel | None, device: str
) -> OracleDynamics | None:
    """The true simulator to measure a learned model against, when asked for and available."""
    if not (cfg.diagnostics.enabled and cfg.diagnostics.oracle and isinstance(dynamics, GaussianEnsemble)):
        return None
    try:
        return OracleDynamics(eval_env, num_threads=1, device=device)
    except ValueError as e:  # envs without a MuJoCo model or with another observation layout
        log.info("no oracle diagnostics: %s", e)
        return None


def _progress(cfg: TrainConfig, start: int):
    from tqdm import tqdm

    return tqdm(
        total=cfg.total_updates,
        initial=start,
        disable=not cfg.logger.progress,
        unit="upd",
        dynamic_ncols=True,
        mininterval=2.0,
    )


# Errors that name their cause and fix: the command prints the message alone, no traceback.
USER_ERRORS = (ConfigError, DatasetError, RegistryError, RunFolderError, CheckpointError, TrainingDivergedError)


def main() -> None:
    """Console entry point (``mbrl-train``): a Hydra app over ``configs/``.

    Exit status: 0 done, 2 a named error (bad config or dataset, run folder in use or bound to
    another config, divergence; ``error: <message>`` on stderr), 130 interrupted by Ctrl-C.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def _app(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # group W&B runs by sweep, name them by ablation
            group, ablation = sweep_labels(list(hydra_cfg.overrides.task), hydra_cfg.sweep.dir)
            cfg.logger.group = cfg.logger.group or group
            cfg.logger.job_type = cfg.logger.job_type or ablation
        try:
            train(cfg, hydra_cfg.runtime.output_dir)
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    sys.argv[1:1] = plugin_search_path_override()
    try:
        _app()
    except TrainingInterrupted as e:
        print(f"\n{e}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("\ninterrupted before the training loop; checkpoints written so far are kept", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

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

import logging
import os
import sys
import time
from importlib.metadata import entry_points
from typing import Any

import torch
from omegaconf import DictConfig

from mbrl.agents.base import AgentSpec
from mbrl.agents.graphed import GraphedUpdate
from mbrl.checkpoint import CheckpointError
from mbrl.config import CONFIG_DIR, Components, ConfigError, TrainConfig, as_dict, components, eval_env, resolve
from mbrl.data.loading import load_dataset
from mbrl.data.transitions import DatasetError, Transitions
from mbrl.data.validate import check_env_match
from mbrl.logging import sweep_labels
from mbrl.model_data import build_model_data
from mbrl.monitor import Monitor
from mbrl.registry import RegistryError
from mbrl.run_folder import RunFolder, RunFolderError, TrainingInterrupted
from mbrl.run_state import CHECKPOINT, RunState, TrainingDivergedError

log = logging.getLogger(__name__)
__all__ = ["CHECKPOINT", "ConfigError", "TrainingDivergedError", "compose", "main", "train"]


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
    resolved = as_dict(cfg)
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
    """dataset -> dynamics and filter fits -> agent -> resume -> the loop -> final evaluation."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    data = load_dataset(
        cfg.dataset,
        download=cfg.download,
        env_id=cfg.env_id,
        allow_version_mismatch=cfg.allow_version_mismatch,
        device=str(device),
    )
    spec, env = data.spec, eval_env(cfg, data.spec)
    folder.check_dataset(cfg.dataset, spec.content_hash)
    check_env_match(spec, env, allow_version_mismatch=cfg.allow_version_mismatch)
    # Agent batches need only the six core fields: gathering episode ids and simulator states on every
    # update would be wasted work.
    real = data.transitions
    core = Transitions(real.obs, real.act, real.rew, real.next_obs, real.terminated, real.truncated)

    torch.manual_seed(cfg.seed)
    batch_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model_data = build_model_data(cfg, parts, data, env, device)  # fits the dynamics (cached)
    agent = parts.agent_cls(
        AgentSpec(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, str(device)), parts.agent_cfg
    )
    agent.attach(core, model_data.dynamics)
    if cfg.compile:  # torch.compile of the update's hot functions; raises here if this machine cannot compile
        agent.compile()
    monitor = Monitor(cfg, data, core, env, agent, parts.agent_cfg, model_data)
    run = RunState(folder, cfg, resolved, spec.content_hash, agent, model_data, batch_gen)
    if (done := run.resume()) is not None:
        return done
    # CUDA graphs capture the agent's tensors as they are now, after a resume restored them.
    update = GraphedUpdate(agent) if cfg.cuda_graphs else agent.update

    # -- the loop -----------------------------------------------------------------------------------
    progress, start, t0 = _progress(cfg, run.start), run.start, time.time()
    with run.interruptible():
        try:
            for step in range(start + 1, cfg.total_updates + 1):
                model = model_data.batch(step, agent, batch_gen, lambda s, stats: run.logger.log("rollout", s, stats))
                metrics = update(core.sample(model_data.n_real, batch_gen), model) | model_data.metrics
                if step % cfg.log_every == 0:
                    run.log_train(step, metrics, (step - start) / (time.time() - t0))
                if (scores := monitor.after_update(step, run.logger)) is not None:
                    progress.set_postfix(score=f"{scores.get('score_mean', scores['return_mean']):.1f}", refresh=False)
                run.after_update(step)
                progress.update(1)
        finally:
            progress.close()
    return run.finish(monitor.final(), data, env, parts.agent_name)


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

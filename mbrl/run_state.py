"""The state of one run in its folder: resume, periodic checkpoints, divergence, Ctrl-C and the results.

``RunState`` writes and reads everything of a run that outlives the process: ``checkpoint.pt`` (the step,
the agent with its optimisers, the dynamics, the model buffer, the global RNG and the batch and rollout
generators, the wandb run id and the dataset's content hash), ``config.yaml``, ``git_revision.txt``,
the logger's files and ``final.json``. A checkpoint is written only between two updates, so continuing
it reproduces an uninterrupted run bit for bit; rows logged after it are dropped on resume.

Checkpoints of earlier versions load: keys added since (``dataset_hash``, ``dynamics``) may be absent
(a RAMBO agent state of then still holds its dynamics model, and restores it itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from mbrl.agents.base import Agent
from mbrl.checkpoint import restore_rng_state, rng_state, save_atomic
from mbrl.config import CONFIG_DIR, TrainConfig
from mbrl.data.scores import normalized_scores, summarize
from mbrl.data.transitions import OfflineDataset
from mbrl.logging import RunLogger, to_float
from mbrl.machine import describe
from mbrl.model_data import ModelData
from mbrl.run_folder import CONFIG_FILE, InterruptFlag, RunFolder, TrainingInterrupted

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
FINAL = "final.json"


class TrainingDivergedError(RuntimeError):
    """A loss or parameter became NaN/inf; the last good checkpoint, if any, is kept."""


def diverged_message(what: str, step: int, ckpt_path: Path) -> str:
    """The divergence message: what is kept depends on whether a checkpoint was written before."""
    fix = "Lower the learning rates or check the dataset for extreme values"
    if ckpt_path.exists():
        return f"non-finite {what} at update {step}; the last good checkpoint ({ckpt_path}) is kept. {fix}; resume."
    return (
        f"non-finite {what} at update {step}, before the first checkpoint: nothing of this run is kept to resume "
        f"from. {fix}, then start it again (checkpoint_every sets how often checkpoints are written)."
    )


def all_finite(tree: Any) -> bool:
    """Whether every floating tensor in a nest of dicts, lists and tuples is finite."""
    if isinstance(tree, torch.Tensor):
        return not tree.is_floating_point() or bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, list | tuple):
        return all(all_finite(v) for v in tree)
    return True


def git_revision() -> str:
    """The commit of this checkout, ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CONFIG_DIR.parent, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# The commit of the code this process imported, read once at import: a run records the code it runs even when
# a commit lands while it fits its model (read at the start of the loop, the revision named the later commit).
IMPORTED_REVISION = git_revision()


class RunState:
    """What a run keeps in its folder, for one ``agent`` learning from ``model_data``.

    ``batch_gen`` is the loop's batch generator; the rollout generator is ``model_data.generator``.
    Call :meth:`resume` once before the loop (it also opens ``logger``); during the loop
    :meth:`after_update` checkpoints on schedule and on Ctrl-C inside :meth:`interruptible`.
    """

    def __init__(
        self,
        folder: RunFolder,
        cfg: TrainConfig,
        resolved: dict[str, Any],
        content_hash: str,
        agent: Agent,
        model_data: ModelData,
        batch_gen: torch.Generator,
    ) -> None:
        self.folder, self.cfg, self.resolved, self.content_hash = folder, cfg, resolved, content_hash
        self.agent, self.model_data, self.batch_gen = agent, model_data, batch_gen
        self.path, self.checkpoint_path = folder.path, folder.checkpoint
        self.start = 0
        # Wall seconds of the training loop in earlier sessions of this run, up to the checkpoint this one
        # continues (None: that checkpoint predates the record); this session's clock starts after resume.
        self.earlier_s: float | None = 0.0
        self._session_t0 = time.perf_counter()
        self.logger: RunLogger | None = None
        self._interrupt: InterruptFlag | None = None

    # -- start ---------------------------------------------------------------------------------------
    def resume(self) -> dict[str, Any] | None:
        """Continue the folder's checkpoint, if any, and open the logger; ``start`` is the last update done.

        Returns the saved results instead when the checkpoint is of a run that already finished.
        """
        wandb_id = None
        state = self.folder.state
        if state is not None:
            if state.get("dynamics") is not None and self.model_data.dynamics is not None:
                self.model_data.dynamics.load_state_dict(state["dynamics"])  # RAMBO's adversary changes it
            self.agent.load_state_dict(state["agent"])
            self.model_data.load_state_dict(state["model_buffer"])
            restore_rng_state(state["rng"], self.batch_gen, self.model_data.generator)
            self.start, wandb_id = state["step"], state.get("wandb_id")
            self.earlier_s = state.get("loop_s")
            if self.start == self.cfg.total_updates and (self.path / FINAL).exists():
                log.info("%s already finished %d updates; its results are in final.json", self.path, self.start)
                return json.loads((self.path / FINAL).read_text())
            log.info("resuming %s from update %d", self.path, self.start)
        (self.path / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(self.resolved)))
        (self.path / "git_revision.txt").write_text(IMPORTED_REVISION + "\n")
        self.logger = RunLogger(
            self.path, self.cfg.logger, self.resolved, wandb_id=wandb_id, git_revision=IMPORTED_REVISION
        )
        self.logger.truncate_after(self.start)
        self._session_t0 = time.perf_counter()
        return None

    def loop_s(self) -> float | None:
        """Wall seconds the loop has run so far, summed over the run's sessions; work lost after a
        session's last checkpoint does not count. None when an earlier session did not record its own."""
        return None if self.earlier_s is None else self.earlier_s + time.perf_counter() - self._session_t0

    # -- during the loop -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """While inside, the first Ctrl-C is honoured between two updates by :meth:`after_update`."""
        with InterruptFlag() as flag:
            self._interrupt = flag
            try:
                yield
            finally:
                self._interrupt = None

    def log_train(self, step: int, metrics: dict[str, Any], updates_per_s: float) -> None:
        """Log an update's metrics; ``TrainingDivergedError`` names those that are not finite."""
        values = to_float(metrics)
        bad = [k for k, v in values.items() if not torch.isfinite(torch.tensor(v))]
        if bad:
            raise TrainingDivergedError(diverged_message(", ".join(bad), step, self.checkpoint_path))
        self.logger.log("train", step, {**values, "updates_per_s": updates_per_s})

    def after_update(self, step: int) -> None:
        """Checkpoint every ``checkpoint_every`` updates, and on a Ctrl-C request (then stop the run)."""
        if step % self.cfg.checkpoint_every == 0:
            self.save(step)
        if self._interrupt is not None and self._interrupt.requested:  # a checkpoint here is exact
            self.save(step)
            raise TrainingInterrupted(
                f"interrupted at update {step}; checkpoint written to {self.checkpoint_path}. To continue, rerun the "
                f"same command with hydra.run.dir={self.path} (or train(..., run_dir={str(self.path)!r}))"
            )

    def save(self, step: int) -> None:
        """Write the checkpoint of update ``step`` atomically; refuse (diverged) if a parameter is not finite."""
        agent_state = self.agent.state_dict()
        if not all_finite(agent_state):
            raise TrainingDivergedError(diverged_message("agent parameters", step, self.checkpoint_path))
        dynamics = self.model_data.dynamics
        save_atomic(
            {
                "step": step,
                "agent": agent_state,
                "rng": rng_state(self.batch_gen, self.model_data.generator),
                "model_buffer": self.model_data.state_dict(),
                "wandb_id": self.logger.wandb_id,
                "loop_s": self.loop_s(),
                "dataset_hash": self.content_hash,
                "dynamics": dynamics.state_dict() if dynamics is not None else None,
            },
            self.checkpoint_path,
        )

    # -- end -------------------------------------------------------------------------------------------
    def finish(self, final: dict[str, float], data: OfflineDataset, eval_env: str, agent_name: str) -> dict[str, Any]:
        """Log the final evaluation (``final.csv``), write the last checkpoint and ``final.json``; returns it."""
        cfg = self.cfg
        self.logger.log("final", cfg.total_updates, final)
        self.save(cfg.total_updates)
        spec = data.spec
        ref = (spec.ref_min_score, spec.ref_max_score) if spec.ref_min_score is not None else None
        behaviour = summarize(normalized_scores(data.episode_returns, *ref)) if ref else None
        result = {
            "dataset": cfg.dataset,
            "agent": cfg.agent.get("preset", agent_name),  # the preset the user chose (mopo), as mbrl-report labels
            "agent_class": agent_name,
            "seed": cfg.seed,
            "eval_env": eval_env,
            "final": final,
            "filter_ranking": self.model_data.filter_ranking or None,
            "behaviour_score_mean": behaviour.mean if behaviour else None,
            "behaviour_return_mean": float(data.episode_returns.double().mean()),
            # The loop's wall seconds from the first update to the final evaluation over all sessions, and
            # the part of them spent before this session resumed (0 for a run never interrupted).
            "timing": {"loop_s": self.loop_s(), "earlier_sessions_s": self.earlier_s},
            # The machine that finished the run: scores of one seed differ between processors (mbrl.machine).
            "machine": describe(),
        }
        (self.path / FINAL).write_text(json.dumps(result, indent=2))
        self.logger.close()
        if behaviour is not None:
            log.info(
                "final normalised score %.1f +- %.1f (behaviour policy in the dataset: %.1f); run folder %s",
                final["score_mean"],
                final["score_std"],
                behaviour.mean,
                self.path,
            )
        else:
            log.info(
                "final return %.1f (dataset episodes: %.1f)", final["return_mean"], result["behaviour_return_mean"]
            )
        return result

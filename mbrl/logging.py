"""Run logging: CSV per metric group, a JSON-lines stream, a console progress bar, optional wandb.

Values arrive as floats or detached scalar tensors; they are converted here, at log time only.
On resume, rows written after the checkpoint being resumed are dropped so the files match an
uninterrupted run.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class LoggerConfig:
    wandb: bool = False
    wandb_mode: str = "offline"  # "online" needs a configured account; "offline" never does
    project: str = "mbrl"
    entity: str | None = None
    group: str | None = None  # default in a Hydra multirun: the sweep folder, so a sweep's runs group together
    job_type: str | None = None  # default in a multirun: the ablation, i.e. the overrides other than the seed
    tags: list[str] = field(default_factory=list)
    progress: bool = True  # console progress bar


# Overrides that do not define an ablation: the seed varies within one, the rest only say where or how to log.
_NOT_ABLATION = ("seed", "hydra", "logger", "resume", "threads", "device")


def sweep_labels(task_overrides: list[str], sweep_dir: str) -> tuple[str, str]:
    """W&B ``(group, job_type)`` of a multirun job: the sweep folder and its ablation name.

    ``["agent=mopo", "seed=2", "penalty.coef=5"]`` in ``multirun/2026-11-21/10-00-00`` gives
    ``("2026-11-21/10-00-00", "agent=mopo,penalty.coef=5")``; runs differing only in the seed share both.
    """
    keep = sorted(o for o in task_overrides if o.lstrip("+~").split("=", 1)[0].split(".")[0] not in _NOT_ABLATION)
    parts = Path(sweep_dir).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else sweep_dir, ",".join(keep) or "default"


def to_float(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        cfg: LoggerConfig,
        config_dict: dict[str, Any],
        wandb_id: str | None = None,
        git_revision: str = "unknown",
    ):
        self.run_dir = run_dir
        self.cfg = cfg
        self._wandb = None
        self.wandb_id = wandb_id
        if cfg.wandb:
            import wandb

            self._wandb = wandb.init(
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                job_type=cfg.job_type,
                name=f"{cfg.job_type} seed={config_dict.get('seed')}" if cfg.job_type else None,
                tags=[*cfg.tags, f"git-{git_revision[:10]}"],
                config={**config_dict, "git_revision": git_revision},
                dir=str(run_dir),
                mode=cfg.wandb_mode,
                id=wandb_id,
                resume="allow",
            )
            self.wandb_id = self._wandb.id

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (they belong to the part of a killed run being redone)."""
        for path in self.run_dir.glob("*.csv"):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows:
                continue
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(r for r in rows if int(r["step"]) <= step)
        jsonl = self.run_dir / "metrics.jsonl"
        if jsonl.exists():
            kept = [line for line in jsonl.read_text().splitlines() if json.loads(line)["step"] <= step]
            jsonl.write_text("".join(line + "\n" for line in kept))

    def log(self, group: str, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        values = to_float(metrics)
        row = {"step": step, **values}
        path = self.run_dir / f"{group}.csv"
        columns = _csv_header(path)
        if columns is not None and any(k not in columns for k in row):  # only new keys need a rewrite
            columns += [k for k in row if k not in columns]
            _widen_csv(path, columns)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns or list(row), restval="")
            if columns is None:
                w.writeheader()
            w.writerow(row)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"group": group, **row}) + "\n")
        if self._wandb is not None:
            self._wandb.log({f"{group}/{k}": v for k, v in values.items()}, step=step)
        return values

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def _csv_header(path: Path) -> list[str] | None:
    """The column names of an existing CSV file; ``None`` when there is none yet."""
    if not path.exists():
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def _widen_csv(path: Path, columns: list[str]) -> None:
    """Rewrite ``path`` with ``columns``, earlier rows left empty in the new ones.

    A group's keys can change within a run folder (a run resumed by a newer version that measures
    more); rows are matched to columns by name, never by position, so no value lands under another's name.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)

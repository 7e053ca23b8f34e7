"""OmegaConf resolvers that the configs in ``configs/`` (and plugins' configs) call.

Registered on ``import mbrl``, so they exist wherever the run schema (``mbrl.config``) does, in
Hydra launchers' worker processes too. A run's saved ``config.yaml`` holds the resolved values.
"""

from __future__ import annotations

from typing import Any

from omegaconf import ListConfig, OmegaConf


def scaled_hidden_sizes(default: list[int], *, _root_: Any) -> list[int]:
    """``${mbrl.hidden_sizes:[256, 256]}``: the run's top-level ``agent_hidden_sizes`` if set, else ``default``.

    Scale presets size agent networks through ``agent_hidden_sizes`` rather than by writing
    ``agent.hidden_sizes`` into every agent (an agent without that field would fail its config
    check). An agent preset opts in by giving its ``hidden_sizes`` as this interpolation;
    ``agent.hidden_sizes=...`` on the command line or in an experiment preset replaces it and wins.
    """
    sizes = _root_.get("agent_hidden_sizes") if "agent_hidden_sizes" in _root_ else None
    chosen = default if sizes is None else sizes
    return list(OmegaConf.to_container(chosen) if isinstance(chosen, ListConfig) else chosen)


def register() -> None:
    """Register the resolvers once per process (OmegaConf refuses a second registration)."""
    if not OmegaConf.has_resolver("mbrl.hidden_sizes"):
        OmegaConf.register_new_resolver("mbrl.hidden_sizes", scaled_hidden_sizes)

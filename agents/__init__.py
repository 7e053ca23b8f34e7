"""Offline (and online) RL agents. Importing this package registers the built-in agents."""

from mbrl.agents import bc, combo, cql, iql, prdc, rambo, sac, td3bc  # noqa: F401  (importing registers them)
from mbrl.agents.base import AGENTS, Agent, make_agent, register_agent

__all__ = ["AGENTS", "Agent", "make_agent", "register_agent"]

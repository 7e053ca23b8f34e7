"""The ``Agent`` contract and the agent registry.

An agent is a subclass of :class:`Agent` with a typed config dataclass in its ``Config`` attribute,
the methods below and the capability flags it implements. It registers by ``@register_agent("name")``
or, from another installed package, through the ``mbrl.agents`` entry-point group; the registry
refuses anything that is not an ``Agent`` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from mbrl.agents.kit import load_parts, save_parts
from mbrl.dynamics.base import DynamicsModel

from mbrl.data.transitions import Transitions
from mbrl.registry import Registry


@dataclass(frozen=True)
class AgentSpec:
    """What an agent needs to know about the task: sizes and action bounds, and its device."""

    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    device: str = "cpu"


class Agent(ABC):
    """What the training loop calls: subclass it and declare what the subclass can do.

    Required: a typed ``Config`` dataclass and ``act``, ``update``, ``state_dict``, ``load_state_dict``.
    ``update`` returns detached scalar tensors; the logger turns them into floats only when it writes, so
    an update never forces a device synchronisation.

    Capabilities are class attributes, read on the class so that a run's config is checked before any
    agent exists (``agent=cql penalty=mobile`` is refused at start-up, not after the data has loaded):

    - ``requires_model``: learns from model rollouts only (COMBO, RAMBO); the job refuses ``dynamics=none``
      and ``update`` raises ``ValueError`` when ``model`` is ``None``.
    - ``has_value``: implements :meth:`value` (value-based penalties such as MOBILE's).
    - ``has_q_values``: implements :meth:`q_values` (the critics' value of evaluation start states,
      diagnostics).
    - ``supports_compile``: implements :meth:`compile` (``compile=true``).
    - ``supports_cuda_graphs``: implements :meth:`update_step` and takes ``update`` from :class:`SteppedUpdate`
      (``cuda_graphs=true`` replays ``update_step`` from CUDA graphs; see :mod:`mbrl.cuda_graphs` for what
      the step may not do, and :func:`mbrl.testing.check_agent`, which checks it). The optimisers the step
      uses are named in ``state_parts``. A subclass that overrides ``update`` is refused (:func:`graphs_can_replay`).

    A flag set to ``True`` without the method it promises is refused when the class is defined. The
    job calls :meth:`attach` once, always, before the first update and before a resume's
    ``load_state_dict``.
    """

    Config: ClassVar[type]
    requires_model: ClassVar[bool] = False
    has_value: ClassVar[bool] = False
    has_q_values: ClassVar[bool] = False
    supports_compile: ClassVar[bool] = False
    supports_cuda_graphs: ClassVar[bool] = False
    # The attributes the default state_dict saves, in order: modules, optimisers, tensors, generators, numbers.
    state_parts: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag, method in CAPABILITIES.items():
            if getattr(cls, flag) and getattr(cls, method) is getattr(Agent, method):
                raise TypeError(f"{cls.__name__} sets {flag} = True but does not implement {method}()")

    @abstractmethod
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``obs [B, obs_dim]`` -> actions ``[B, act_dim]`` inside the action bounds."""

    @abstractmethod
    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        """One gradient step on a real batch and an optional batch of model transitions (real rows
        ``[B_r, ...]``, model rows ``[B_m, ...]``); returns detached scalar metrics."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (networks, targets, optimisers, counters): tensors and
        plain containers only, since checkpoints are read with ``torch.load(weights_only=True)``.

        By default the attributes named in ``state_parts``, saved by :func:`mbrl.agents.kit.save_parts`;
        an agent with other state overrides this and :meth:`load_state_dict`.
        """
        return save_parts(self, self._declared_parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        load_parts(self, state, self._declared_parts())

    def _declared_parts(self) -> tuple[str, ...]:
        if not self.state_parts:
            raise NotImplementedError(
                f"{type(self).__name__}: name the attributes to save in state_parts, or override state_dict and "
                "load_state_dict"
            )
        return self.state_parts

    def attach(self, dataset: Transitions, dynamics: DynamicsModel | None) -> None:
        """Called once by the training job with the whole real dataset ``[N, ...]`` and the fitted dynamics
        model (``None`` in model-free runs). The default ignores both.

        PRDC indexes the dataset for its neighbour search; RAMBO keeps both and trains the model
        adversarially (the run, not the agent, saves the model's state); with ``normalize_states`` the SAC
        family, TD3+BC, PRDC, IQL and BC fit their networks' state standardisers, which are saved with the
        networks, and IQL's ``normalize_rewards`` fits a reward scale it saves. Anything else an agent derives
        here is not part of its ``state_dict``: a resumed run attaches again.
        """
        return None

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State value ``[B]`` of ``obs [B, obs_dim]``, detached; implemented when ``has_value``."""
        raise NotImplementedError(f"{type(self).__name__} has no value(): its class sets has_value = False")

    def q_values(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Every critic's ``Q(s, a)`` ``[N, B]`` for ``obs [B, obs_dim]``, ``act [B, act_dim]``, detached;
        implemented when ``has_q_values``."""
        raise NotImplementedError(f"{type(self).__name__} has no q_values(): its class sets has_q_values = False")

    def compile(self) -> None:
        """Wrap the update's hot functions with ``torch.compile``; implemented when ``supports_compile``."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot compile: its class sets supports_compile = False; set compile=false"
        )

    # -- an update in three parts (SteppedUpdate; supports_cuda_graphs) ---------------------------------
    def before_update(self, real: Transitions, model: Transitions | None) -> Hashable:
        """The Python-side decisions of the update on ``real`` and ``model``, made before its tensor work: the
        branch it takes (e.g. TD3+BC's actor turn), ``None`` where every update runs the same code. May check the
        batches' sizes (never their values) and do eager work that is no part of the step (RAMBO's behaviour
        cloning before the first update)."""
        return None

    def update_step(self, real: Transitions, model: Transitions | None, branch: Hashable) -> dict[str, torch.Tensor]:
        """The tensor work of one update on the ``branch`` that :meth:`before_update` chose: what a CUDA graph
        captures and replays. Changes tensors in place only, reads no Python state that changes between updates
        (``branch`` carries it) and never waits for the device; returns detached scalar metrics."""
        raise NotImplementedError(
            f"{type(self).__name__} has no update_step(): its class sets supports_cuda_graphs = False"
        )

    def after_update(self, branch: Hashable, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The Python-side bookkeeping after the step (update counters, learning-rate schedules, RAMBO's
        adversarial phase); returns the update's metrics."""
        return metrics


class SteppedUpdate:
    """Mixin (before :class:`Agent` in the bases): ``update`` as :meth:`Agent.before_update`, then
    :meth:`Agent.update_step`, then :meth:`Agent.after_update`, so that a CUDA graph can replace the step alone
    (``mbrl.agents.graphed.GraphedUpdate``) and an eager update runs exactly the same code."""

    def update(self, real: Transitions, model: Transitions | None = None) -> dict[str, torch.Tensor]:
        branch = self.before_update(real, model)
        return self.after_update(branch, self.update_step(real, model, branch))


def graphs_can_replay(cls: type[Agent]) -> bool:
    """Whether ``cuda_graphs=true`` may replay ``cls``'s update: it declares ``supports_cuda_graphs`` and its
    ``update`` is :class:`SteppedUpdate`'s (a subclass that overrides ``update`` runs other code eagerly than
    the step a graph would replay)."""
    return cls.supports_cuda_graphs and cls.update is SteppedUpdate.update


# Each capability flag and the method it promises.
CAPABILITIES = {
    "has_value": "value",
    "has_q_values": "q_values",
    "supports_compile": "compile",
    "supports_cuda_graphs": "update_step",
}


def check_agent_class(name: str, obj: Any) -> None:
    """Refuse a registration that is not an :class:`Agent` subclass, naming the fix."""
    if not (isinstance(obj, type) and issubclass(obj, Agent)):
        what = obj.__name__ if isinstance(obj, type) else repr(obj)
        raise TypeError(
            f"agent {name!r}: {what} is not a subclass of mbrl.agents.base.Agent. Subclass it "
            f"(`class {what}(Agent)`) and declare the capability flags it implements "
            "(requires_model, has_value, has_q_values, supports_compile, supports_cuda_graphs); see docs/plugins.md"
        )


AGENTS: Registry[type[Agent]] = Registry("agent", group="mbrl.agents", validate=check_agent_class)


def register_agent(name: str):
    """Class decorator: make an agent selectable as ``agent=<name>``."""
    return AGENTS.register(name)


def make_agent(name: str, spec: AgentSpec, config: Any | None = None) -> Agent:
    """Build a registered agent; ``config`` defaults to the agent's own ``Config()``."""
    cls = AGENTS.get(name)
    return cls(spec, config if config is not None else cls.Config())

"""The true MuJoCo simulator behind the ``DynamicsModel`` interface (RAVL's "true dynamics" experiment).

HalfCheetah-, Hopper- and Walker2d-v5 are invariant to translation along x and observe
``[qpos[1:], qvel]``, so an observation fixes the simulator state up to x: the oracle sets
``qpos = [0, obs[:nq-1]]``, ``qvel = obs[nq-1:]``, steps ``frame_skip`` physics steps with the action
held, and rebuilds the observation, reward and termination the way gymnasium 1.4's v5 ``step`` does.

Approximation: Hopper and Walker2d clip the observed velocities to ±10. A row whose observation holds a
clipped velocity (exactly ±10) stands for some true state with a larger speed, which the oracle cannot
recover; it steps from the clipped value. Everything else matches the env to floating-point round-off
(~1e-13; the solver warm start differs from the env's, which is immaterial at MuJoCo's 1e-8 tolerance).
Observations are converted to float64 before simulation, so float32 inputs (as stored in datasets)
carry their own ~1e-7 rounding into the step.

Speed: rows are stepped in C by ``mujoco.rollout`` with a persistent thread pool (one ``MjData`` per
thread), no Python loop over rows. Measured on one busy CPU core: ~55 µs per row and env step for
HalfCheetah (5 Euler steps), ~110 µs for Hopper and ~155 µs for Walker2d (4 RK4 steps); the pool
divides this by the number of free cores. A 50 000-row rollout step therefore costs seconds, not minutes.
"""

from __future__ import annotations

import os
from typing import Any

import mujoco
import torch
from mbrl.dynamics.base import FitReport, StepResult
from mbrl.dynamics.termination import get_termination_fn
from mujoco import rollout

from mbrl.data.transitions import Transitions
from mbrl.envs import env_family, make_env

# Which families clip the observed velocities, and to what (gymnasium v5 ``_get_obs``).
_VELOCITY_CLIP: dict[str, float | None] = {"halfcheetah": None, "hopper": 10.0, "walker2d": 10.0}


class OracleDynamics:
    """True dynamics of a MuJoCo locomotion env, batched over rows.

    Args:
        env_id: a gymnasium v5 id of a supported family (``"Hopper-v5"``, ``"Walker2d-v5"``, ``"HalfCheetah-v5"``).
        num_threads: threads of the rollout pool; ``None`` = ``min(os.cpu_count(), 8)``, ``<= 1`` = calling thread.
        device: where returned tensors live (simulation always runs on the CPU).

    There is a single "member" (``E = 1``) and ``elites = tensor([0])``; ``predict`` reports zero
    uncertainty as ``logvar = ZERO_LOGVAR``.
    """

    ZERO_LOGVAR = -50.0  # exp(-50/2) ~ 1e-11: a standard deviation that is zero for every practical purpose

    def __init__(self, env_id: str, num_threads: int | None = None, device: str | torch.device = "cpu") -> None:
        self.env_id = env_id
        self.family = env_family(env_id)
        if self.family not in _VELOCITY_CLIP or not env_id.endswith("-v5"):
            known = ", ".join(sorted(_VELOCITY_CLIP))
            raise ValueError(
                f"OracleDynamics supports the v5 envs of the families {known} (their reward and termination "
                f"rules are v5's); got {env_id!r}"
            )
        self.device = torch.device(device)
        env = make_env(env_id)
        unwrapped = env.unwrapped
        if not unwrapped._exclude_current_positions_from_observation:
            raise ValueError(f"{env_id}: the oracle needs observations without the x position (the v5 default)")
        self._model: mujoco.MjModel = unwrapped.model
        self.frame_skip = int(unwrapped.frame_skip)
        self.dt = float(unwrapped.dt)  # model timestep * frame_skip, the env's dt for the forward velocity
        self.obs_dim = int(env.observation_space.shape[0])
        self.act_dim = int(env.action_space.shape[0])
        # Reward weights come from the env object itself, so they can never drift from its step().
        self._forward_weight = float(unwrapped._forward_reward_weight)
        self._ctrl_weight = float(unwrapped._ctrl_cost_weight)
        self._healthy_reward = float(getattr(unwrapped, "_healthy_reward", 0.0))
        self._terminate_when_unhealthy = bool(getattr(unwrapped, "_terminate_when_unhealthy", False))
        self._termination = get_termination_fn(self.family)
        self._clip = _VELOCITY_CLIP[self.family]
        env.close()

        threads = min(os.cpu_count() or 1, 8) if num_threads is None else num_threads
        threads = threads if threads > 1 else 0  # 0: mujoco.rollout runs on the calling thread with one MjData
        self._rollout = rollout.Rollout(nthread=threads)
        self._datas = [mujoco.MjData(self._model) for _ in range(max(threads, 1))]
        self.elites = torch.tensor([0], dtype=torch.long, device=self.device)

    # -- the simulator step ----------------------------------------------------------------------
    def _step(self, obs: torch.Tensor, act: torch.Tensor) -> StepResult:
        """Step every row once: ``obs [B, o]``, ``act [B, a]`` -> the true step, info holding only ``"mean"``.

        ``info["mean"] [1, B, o+1]`` is the true ``[Δs, r]``; outputs take ``obs``'s float dtype.
        """
        if obs.dim() != 2 or obs.shape[1] != self.obs_dim or act.shape != (obs.shape[0], self.act_dim):
            raise ValueError(
                f"{self.env_id}: expected obs [B, {self.obs_dim}] and act [B, {self.act_dim}], "
                f"got {tuple(obs.shape)} and {tuple(act.shape)}"
            )
        model = self._model
        nq, nv = model.nq, model.nv
        obs64 = obs.detach().to("cpu", torch.float64)
        act64 = act.detach().to("cpu", torch.float64)
        # Full-physics state layout of these models (no actuator activations): [time, qpos, qvel].
        initial = torch.zeros(obs.shape[0], 1 + nq + nv, dtype=torch.float64)
        initial[:, 2:] = obs64  # time = 0 and x = qpos[0] = 0
        state, _ = self._rollout.rollout(
            model, self._datas, initial.numpy(), act64[:, None, :].numpy(), nstep=self.frame_skip
        )
        final = torch.from_numpy(state[:, -1, 1:])  # [B, nq + nv] after frame_skip physics steps
        qpos, qvel = final[:, :nq], final[:, nq:]
        velocity = qvel if self._clip is None else qvel.clamp(-self._clip, self._clip)
        next_obs = torch.cat([qpos[:, 1:], velocity], dim=1)
        # The env decides health on the true (unclipped) state [qpos[1:], qvel], so the rule is exact here.
        healthy = ~self._termination(obs64, act64, torch.cat([qpos[:, 1:], qvel], dim=1))
        reward = (
            self._forward_weight * qpos[:, 0] / self.dt  # x moved from 0
            + self._healthy_reward * healthy.double()
            - self._ctrl_weight * act64.square().sum(dim=1)
        )
        terminated = ~healthy if self._terminate_when_unhealthy else torch.zeros_like(healthy)
        dtype = obs.dtype if obs.is_floating_point() else torch.float32
        mean = torch.cat([next_obs - obs64, reward[:, None]], dim=1)[None]
        return StepResult(
            next_obs.to(self.device, dtype),
            reward.to(self.device, dtype),
            terminated.to(self.device),
            {"mean": mean.to(self.device, dtype)},
        )

    # -- DynamicsModel ---------------------------------------------------------------------------
    def fit(self, data: Transitions) -> FitReport:
        """Nothing to learn; checks the data's shapes and returns an empty report."""
        if data.obs_dim != self.obs_dim or data.act_dim != self.act_dim:
            raise ValueError(
                f"{self.env_id}: data has obs_dim={data.obs_dim}, act_dim={data.act_dim}; "
                f"the env has {self.obs_dim}, {self.act_dim}"
            )
        return FitReport(
            holdout_mse=torch.zeros(1, device=self.device),
            elites=self.elites.clone(),
            epochs=0,
            train_loss=[],
            holdout_loss=[],
        )

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, o]``, ``act [B, a]`` -> mean ``[1, B, o+1]`` = true ``[Δs, r]``, logvar = ``ZERO_LOGVAR``."""
        mean = self._step(obs, act).info["mean"]
        return mean, torch.full_like(mean, self.ZERO_LOGVAR)

    @torch.no_grad()
    def sample(
        self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator | None = None, member_stats: bool = True
    ) -> StepResult:
        """The true step (``generator`` and ``member_stats`` are unused: one deterministic member, no cost).

        info: ``"member" [B]`` zeros, ``"mean" [1, B, o+1]`` true ``[Δs, r]``, ``"std" [1, B, o+1]`` zeros.
        """
        result = self._step(obs, act)
        result.info["member"] = torch.zeros(obs.shape[0], dtype=torch.long, device=self.device)
        result.info["std"] = torch.zeros_like(result.info["mean"])
        return result

    @torch.no_grad()
    def sample_candidates(
        self, obs: torch.Tensor, act: torch.Tensor, samples_per_elite: int, generator: torch.Generator | None = None
    ) -> StepResult:
        """``samples_per_elite`` copies of the true step (``[K, B, ...]``): the simulator has one outcome."""
        one = self.sample(obs, act)
        k = samples_per_elite
        return StepResult(
            one.next_obs.expand(k, -1, -1),
            one.reward.expand(k, -1),
            one.terminated.expand(k, -1),
            {
                "member": torch.zeros(k, dtype=torch.long, device=self.device),
                "mean": one.info["mean"],
                "std": one.info["std"],
            },
        )

    def state_dict(self) -> dict[str, Any]:
        return {"env_id": self.env_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("env_id") != self.env_id:
            raise ValueError(f"state is for {state.get('env_id')!r}, this oracle simulates {self.env_id!r}")

    def close(self) -> None:
        """Stop the rollout thread pool (also happens when the object is garbage collected)."""
        if self._rollout.rollout_ is not None:
            self._rollout.close()

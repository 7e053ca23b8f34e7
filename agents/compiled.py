"""The torch.compile path of the SAC family (opt-in: ``compile=true``), kept out of the agents' losses.

Compiled updates agree with eager ones to float rounding, not bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotation only: sac.py imports this module
    from mbrl.agents.sac import SACAgent

# SAC's hot functions: pure tensor code, called once per update.
SAC_HOT_FUNCTIONS = ("actor_objective", "td_target", "critic_objective")


def require_torch_compile(device: str) -> None:
    """Raise a RuntimeError that names the fix when ``torch.compile`` cannot build kernels on ``device``.

    torch.compile fails only at the first call; a tiny probe makes ``compile=true`` fail at start-up.
    """
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(4, device=device))
    except Exception as e:  # the error types vary: unsupported Python, no C++ compiler, no Triton, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "no message"
        cpu = torch.device(device).type == "cpu"
        hint = "install a C++ compiler (g++ or clang; set CXX to choose one)" if cpu else "check Triton"
        raise RuntimeError(
            f"compile=true: torch.compile cannot build kernels on {device} ({type(e).__name__}: {reason}). "
            f"To use it, {hint}; otherwise set compile=false."
        ) from e


def compile_sac(agent: SACAgent) -> None:
    """Replace ``agent``'s hot functions by ``torch.compile``d ones, in place; a second call does nothing.

    A compiled graph cannot be differentiated twice, which EDAC's ``autograd.grad(create_graph=True)``
    would need, so the action-gradients come from :meth:`VectorizedCritic.q_and_action_grad` instead (an
    explicit chain rule: the same numbers to rounding). Raises RuntimeError when torch.compile cannot
    build kernels here (e.g. no C++ compiler for the CPU backend).
    """
    if "actor_objective" in vars(agent):  # already replaced on the instance
        return
    require_torch_compile(agent.spec.device)
    agent.q_and_action_grads = agent.critic.q_and_action_grad
    for name in SAC_HOT_FUNCTIONS:
        setattr(agent, name, torch.compile(getattr(agent, name)))

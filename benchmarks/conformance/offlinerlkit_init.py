"""Initialisation fixture from OfflineRL-Kit: each agent's networks as its ``run_example/run_*.py`` builds them.

``python -m benchmarks.conformance.offlinerlkit_init --ref /work/refs/OfflineRL-Kit`` seeds torch's global RNG,
builds the reference's networks with its own classes (``nets/mlp.py`` ``MLP``, ``modules/actor_module.py``,
``critic_module.py``, ``ensemble_critic_module.py``, ``dist_module.py``) in float32, its dtype, at width 8, and
applies the run scripts' own re-initialisations. The networks are built one after another in the order our agents
build theirs (actor, then critics member by member, then V); within each network the draws are the reference's.
The run scripts interleave networks (``run_mopo.py:104-116`` builds the three backbones before the heads;
``run_iql.py:105-125`` builds every network before it orthogonalises any): that changes which random numbers land
in which network, not how any of them is drawn. ``tests/test_conformance_init.py`` builds ours from the same seed
and asserts every initial parameter equal, bit for bit.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

CHECKOUT = "OfflineRL-Kit"

OBS_DIM, ACT_DIM, HIDDEN, SEED = 3, 2, (8, 8), 11


def linears(module: torch.nn.Module) -> list[torch.Tensor]:
    """Every ``nn.Linear``'s weight ``[out, in]`` and bias ``[out]``, in ``module.modules()`` order."""
    out = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            out += [layer.weight.detach().clone(), layer.bias.detach().clone()]
    return out


def _actor(conditioned_sigma: bool):
    """``run_sac``-family's ``ActorProb`` (tanh, state-dependent std) or ``run_iql.py``'s (tanh mean, free std)."""
    from offlinerlkit.modules import ActorProb, DiagGaussian, TanhDiagGaussian
    from offlinerlkit.nets import MLP

    backbone = MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN)
    dist_cls = TanhDiagGaussian if conditioned_sigma else DiagGaussian
    dist = dist_cls(
        latent_dim=backbone.output_dim,
        output_dim=ACT_DIM,
        unbounded=conditioned_sigma,
        conditioned_sigma=conditioned_sigma,
        max_mu=1.0,
    )
    return ActorProb(backbone, dist)


def _critic(obs_only: bool = False):
    from offlinerlkit.modules import Critic
    from offlinerlkit.nets import MLP

    return Critic(MLP(input_dim=OBS_DIM + (0 if obs_only else ACT_DIM), hidden_dims=HIDDEN))


def _orthogonal(module: torch.nn.Module) -> torch.nn.Module:
    """``run_iql.py:121-125``."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
            torch.nn.init.zeros_(m.bias)
    return module


def sac_family() -> dict[str, Any]:
    """``run_mopo.py``, ``run_combo.py``, ``run_rambo.py``, ``run_cql.py`` (two ``Critic``s) and ``run_mobile.py``
    (``num_q_ensemble`` of them): every layer at ``nn.Linear``'s default."""
    torch.manual_seed(SEED)
    actor = _actor(conditioned_sigma=True)
    critics = [_critic() for _ in range(2)]
    return {"actor": linears(actor), "critics": [linears(c) for c in critics]}


def edac() -> dict[str, Any]:
    """``run_edac.py:84-103``: the actor at the default, an ``EnsembleCritic`` of 3 re-initialised as EDAC."""
    from offlinerlkit.modules import EnsembleCritic

    torch.manual_seed(SEED)
    actor = _actor(conditioned_sigma=True)
    critics = EnsembleCritic(OBS_DIM, ACT_DIM, HIDDEN, num_ensemble=3)
    for layer in critics.model[::2]:
        torch.nn.init.constant_(layer.bias, 0.1)
    torch.nn.init.uniform_(critics.model[-1].weight, -3e-3, 3e-3)
    torch.nn.init.uniform_(critics.model[-1].bias, -3e-3, 3e-3)
    layers = [m for m in critics.model if hasattr(m, "weight")]
    return {
        "actor": linears(actor),
        "critic_layers": [t.detach().clone() for layer in layers for t in (layer.weight, layer.bias)],
    }


def iql() -> dict[str, Any]:
    """``run_iql.py:105-125``: free-std actor, two Q critics and V, every linear layer orthogonal."""
    torch.manual_seed(SEED)
    actor = _orthogonal(_actor(conditioned_sigma=False))
    critics = [_orthogonal(_critic()) for _ in range(2)]
    value = _orthogonal(_critic(obs_only=True))
    return {
        "actor": linears(actor),
        "actor_log_std": actor.dist_net.sigma_param.detach().clone(),
        "critics": [linears(c) for c in critics],
        "value": linears(value),
    }


def td3bc() -> dict[str, Any]:
    """``run_td3bc.py:81-87``: a deterministic ``Actor`` and two ``Critic``s at ``nn.Linear``'s default."""
    from offlinerlkit.modules import Actor
    from offlinerlkit.nets import MLP

    torch.manual_seed(SEED)
    actor = Actor(MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN), ACT_DIM, max_action=1.0)
    critics = [_critic() for _ in range(2)]
    return {"actor": linears(actor), "critics": [linears(c) for c in critics]}


def bc() -> dict[str, Any]:
    """``run_bc.py:62-63``: a deterministic ``Actor`` at ``nn.Linear``'s default."""
    from offlinerlkit.modules import Actor
    from offlinerlkit.nets import MLP

    torch.manual_seed(SEED)
    return {"actor": linears(Actor(MLP(input_dim=OBS_DIM, hidden_dims=HIDDEN), ACT_DIM, max_action=1.0))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="OfflineRL-Kit checkout")
    args = parser.parse_args(argv)

    from benchmarks.conformance.common import save_fixture, stub_modules, use_reference

    commit = use_reference(args.ref)
    stub_modules("gym", "gym.spaces", "gym.envs", "gym.envs.mujoco", "d4rl", "torch.utils.tensorboard")
    cases = {"sac_family": sac_family(), "edac": edac(), "iql": iql(), "td3bc": td3bc(), "bc": bc()}
    sizes = {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": list(HIDDEN), "seed": SEED}
    notes = "float32 initial parameters; run_example/run_{mopo,mobile,combo,rambo,cql,edac,iql,td3bc,bc}.py"
    path = save_fixture(
        "offlinerlkit_init",
        {**cases, "sizes": sizes},
        repository="yihaosun1124/OfflineRL-Kit",
        commit=commit,
        notes=notes,
    )
    print(f"{path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()

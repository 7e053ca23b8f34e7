"""Initialisation fixture from RAVL's authors' code (anyasims/edge-of-reach, ``agent_training/agent.py``).

``python -m benchmarks.conformance.edge_of_reach_init --ref /work/refs/edge-of-reach`` seeds torch's global RNG and
builds the reference's ``Actor`` and ``VectorizedCritic`` (3 critics) in float32, its dtype, at width 8, in the
order ``train_ravl_agent.py:138-145`` does: the EDAC scheme (``agent.py:60-67``, ``:120-125``), with
``VectorizedLinear.reset_parameters`` (``:28-35``) taking the fan-in of each member's ``[in, out]`` slice. The
first layer (in 5, out 8) is where that differs from ``nn.Linear``'s draw. ``tests/test_conformance_init.py``
asserts ours equal, bit for bit.
"""

from __future__ import annotations

import argparse

import torch

CHECKOUT = "edge-of-reach"

OBS_DIM, ACT_DIM, HIDDEN, CRITICS, SEED = 3, 2, 8, 3, 12


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="checkout of anyasims/edge-of-reach")
    args = parser.parse_args(argv)

    from benchmarks.conformance.common import save_fixture, stub_modules, use_reference
    from benchmarks.conformance.offlinerlkit_init import linears

    commit = use_reference(args.ref)
    stub_modules("gym", "d4rl", "d4rl.gym_mujoco", "pyrallis", "wandb")
    from agent_training import agent as agent_mod

    torch.manual_seed(SEED)
    actor = agent_mod.Actor(OBS_DIM, ACT_DIM, HIDDEN)
    critic = agent_mod.VectorizedCritic(OBS_DIM, ACT_DIM, HIDDEN, CRITICS)
    layers = critic.critic[::2]
    tensors = {
        "actor": linears(actor),
        "critic_layers": [t.detach().clone() for layer in layers for t in (layer.weight, layer.bias)],
        "sizes": {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": HIDDEN, "critics": CRITICS, "seed": SEED},
    }
    notes = "float32 initial parameters; agent_training/agent.py Actor and VectorizedCritic"
    path = save_fixture("edge_of_reach_init", tensors, repository="anyasims/edge-of-reach", commit=commit, notes=notes)
    print(f"{path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()

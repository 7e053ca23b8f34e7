"""Initialisation fixture from the PRDC authors' code (kimoyami/PRDC, ``net/actor.py``, ``net/critic.py``).

``python -m benchmarks.conformance.prdc_init --ref /work/refs/PRDC`` seeds torch's global RNG and builds the
reference's ``Actor`` and twin ``Critic`` in float32, its dtype, in the order ``prdc.py:29-32`` does, at width 8
instead of the scripts' 256 (``narrow_linear``: the layer sizes change, not how a layer draws). Every layer is at
``nn.Linear``'s default; the critic's ``l1``-``l3`` are the first Q-network, ``l4``-``l6`` the second.
``tests/test_conformance_init.py`` asserts ours equal, bit for bit.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.conformance.corl import narrow_linear

CHECKOUT = "PRDC"

OBS_DIM, ACT_DIM, HIDDEN, SEED = 3, 2, 8, 13


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="checkout of kimoyami/PRDC")
    args = parser.parse_args(argv)

    from benchmarks.conformance.common import save_fixture, use_reference
    from benchmarks.conformance.offlinerlkit_init import linears

    commit = use_reference(args.ref)
    import net.actor
    import net.critic

    narrow_linear(net.actor, HIDDEN)
    narrow_linear(net.critic, HIDDEN)
    torch.manual_seed(SEED)
    actor = net.actor.Actor(OBS_DIM, ACT_DIM, 1.0)
    critic = net.critic.Critic(OBS_DIM, ACT_DIM)
    critic_params = linears(critic)
    tensors = {
        "actor": linears(actor),
        "critics": [critic_params[:6], critic_params[6:]],
        "sizes": {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": [HIDDEN, HIDDEN], "seed": SEED},
    }
    notes = "float32 initial parameters; prdc.py:29-32 with net/actor.py, net/critic.py at width 8"
    path = save_fixture("prdc_init", tensors, repository="kimoyami/PRDC", commit=commit, notes=notes)
    print(f"{path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()

"""RAVL fixtures from the authors' code (anyasims/edge-of-reach): EDAC update, actor, rollouts, settings.

``python -m benchmarks.conformance.edge_of_reach --ref /work/refs/edge-of-reach`` writes three fixtures.
The reference at this commit is PyTorch (torch, numpy, tqdm; ``gym``, ``d4rl``, ``pyrallis`` and ``wandb``
are stubbed), so the project's own environment runs it.


* ``edge_of_reach_update``: one ``Agent.update`` (``agent_training/agent.py``) in float64 with its
  own classes (``Actor``, ``VectorizedCritic``) at small sizes: initial weights in the reference's
  naming, the batch, the policy noise, and every loss term, the TD target, the gradients and the
  parameters after the step (temperature, actor, critics, target critics).
* ``edge_of_reach_rollout``: ``RolloutGenerator.generate_rollouts`` (``agent_training/
  rollout_generation.py``) with the reference's ``DynamicsModel.transition_function_torch`` and its
  hopper/walker2d done functions, rolled twice into one ``DataBuffer`` (``shared/data_buffer.py``)
  so that the FIFO wraps. The model's means and log-variances come from a small
  ``mbrl.dynamics.ensemble.GaussianEnsemble`` (its state dict is recorded): what is compared is how a
  step is sampled and how rollouts start, stop and are stored, not the network (the reference's
  dynamics network is its own PETS-style code, ``dynamics_training/``).
* ``edge_of_reach_settings``: the defaults of ``train_ravl_agent.TrainConfig`` and the real/model
  split it computes (``train_ravl_agent.py:204-205``), plus the initial-weight ranges of the
  reference's networks.

Randomness: ``torch.distributions.Normal.rsample`` is replaced by ``loc + eps * scale`` with ``eps``
from a seeded generator (the reference's own formula), and every ``eps`` is recorded. In the update
the temperature loss and the actor loss get the SAME ``eps`` (ours draws one policy sample for both;
the reference draws two, ``agent.py:193`` and ``agent.py:200``). In the rollouts ``torch.randint``
(elite picks) and ``torch.randn_like`` (model noise) are recorded as the reference draws them.

The reference hard-codes ``log_alpha`` as float32 (``agent.py:182``); the generator replaces it by a
float64 tensor with its own Adam (same learning rate) so the fixture is float64 throughout.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from contextlib import contextmanager
from typing import Any

import torch

from benchmarks.conformance.common import save_fixture, stub_modules, use_reference

CHECKOUT = "edge-of-reach"
REPOSITORY = "anyasims/edge-of-reach"

# Small sizes: 6-dim states (hopper's done function reads indices 0 and 1), 3-dim actions.
OBS, ACT, HIDDEN, CRITICS, BATCH = 6, 3, 12, 3, 16
ETA, GAMMA, TAU, LR, ALPHA_LR = 1.0, 0.99, 5e-3, 3e-4, 3e-4
LOG_ALPHA0 = math.log(0.2)
ROLLOUTS, STEPS_K, MEMBERS, ELITES = 12, 5, 5, (3, 0, 2)


@contextmanager
def recorded_rsample(noise: list[torch.Tensor], generator: torch.Generator, log: list[dict[str, torch.Tensor]]):
    """``Normal.rsample`` as ``loc + eps * scale`` (the reference's formula), ``eps`` taken from ``noise``
    in order and drawn from ``generator`` once it is empty; every draw is appended to ``log``."""
    original = torch.distributions.Normal.rsample

    def rsample(self: torch.distributions.Normal, sample_shape: torch.Size | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size() if sample_shape is None else sample_shape)
        eps = noise.pop(0) if noise else torch.randn(shape, generator=generator, dtype=self.loc.dtype)
        assert eps.shape == shape, (eps.shape, shape)
        out = self.loc + eps * self.scale
        log.append({"eps": eps.detach().clone(), "u": out.detach().clone()})
        return out

    torch.distributions.Normal.rsample = rsample
    try:
        yield
    finally:
        torch.distributions.Normal.rsample = original


def flat_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in module.named_parameters()}


# -- the update --------------------------------------------------------------------------------------
def update_fixture(agent_mod: Any) -> dict[str, Any]:
    """One ``Agent.update`` with recorded inputs, intermediate terms, gradients and results."""
    torch.manual_seed(0)
    actor = agent_mod.Actor(OBS, ACT, HIDDEN, max_action=1.0)
    critic = agent_mod.VectorizedCritic(OBS, ACT, HIDDEN, CRITICS)
    with torch.no_grad():
        # Away from the near-zero initial heads, so that every term (entropy, min over members,
        # diversity) is of order one and a wrong sign or factor shows.
        actor.mu.weight.normal_(0.0, 0.4)
        actor.log_sigma.weight.normal_(0.0, 0.3)
        actor.log_sigma.bias.fill_(-0.7)
        critic.critic[-1].weight.normal_(0.0, 0.3)
        critic.critic[-1].bias.normal_(0.0, 0.3)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=LR)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=LR)
    agent = agent_mod.Agent(
        actor=actor,
        actor_optimizer=actor_opt,
        critic=critic,
        critic_optimizer=critic_opt,
        gamma=GAMMA,
        tau=TAU,
        eta=ETA,
        auto_alpha=True,
        alpha_learning_rate=ALPHA_LR,
        target_entropy=None,
    )
    with torch.no_grad():  # a target that differs from the critic, so a mix-up shows
        for p in agent.target_critic.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # float64 temperature (the reference's is float32), same optimiser and learning rate.
    agent.log_alpha = torch.tensor([LOG_ALPHA0], dtype=torch.float64, requires_grad=True)
    agent.alpha_optimizer = torch.optim.Adam([agent.log_alpha], lr=ALPHA_LR)
    agent.alpha = agent.log_alpha.exp().detach()

    g = torch.Generator().manual_seed(1)
    state = torch.randn(BATCH, OBS, generator=g)
    action = torch.rand(BATCH, ACT, generator=g) * 2 - 1
    reward = torch.randn(BATCH, 1, generator=g)
    next_state = torch.randn(BATCH, OBS, generator=g)
    done = (torch.rand(BATCH, 1, generator=g) < 0.25).double()
    done[:2] = torch.tensor([[1.0], [0.0]])
    eps_pi = torch.randn(BATCH, ACT, generator=g)
    eps_next = torch.randn(BATCH, ACT, generator=g)

    init = {
        "actor": flat_state(actor),
        "critic": flat_state(critic),
        "target_critic": flat_state(agent.target_critic),
        "log_alpha": agent.log_alpha.detach().clone(),
    }

    # Record what the update computes without changing it: module outputs by hooks, the private loss
    # terms by wrapping the bound methods, gradients just before each optimiser step.
    calls: dict[str, list[Any]] = {"actor": [], "critic": [], "target": []}
    hooks = [
        actor.register_forward_hook(lambda m, a, out: calls["actor"].append([o for o in out])),
        critic.register_forward_hook(lambda m, a, out: calls["critic"].append((a[1].dim(), out.detach().clone()))),
        agent.target_critic.register_forward_hook(lambda m, a, out: calls["target"].append(out.detach().clone())),
    ]
    terms: dict[str, torch.Tensor] = {}

    def wrap(name: str) -> None:
        fn = getattr(agent, name)

        def recorded(*args: Any) -> Any:
            out = fn(*args)
            terms[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
            return out

        setattr(agent, name, recorded)

    for name in ("_alpha_loss", "_actor_loss", "_critic_loss", "_critic_diversity_loss"):
        wrap(name)
    recorded_grads: dict[str, Any] = {}
    alpha_before_actor: list[torch.Tensor] = []

    def wrap_step(opt: torch.optim.Optimizer, key: str, grads_of: Any) -> None:
        step = opt.step

        def recorded_step(*args: Any, **kwargs: Any) -> Any:
            recorded_grads[key] = grads_of()
            return step(*args, **kwargs)

        opt.step = recorded_step

    wrap_step(agent.alpha_optimizer, "log_alpha", lambda: agent.log_alpha.grad.detach().clone())
    wrap_step(actor_opt, "actor", lambda: grads(actor))
    wrap_step(critic_opt, "critic", lambda: grads(critic))
    original_actor_loss = agent._actor_loss

    def actor_loss_seeing_alpha(s: torch.Tensor) -> Any:
        alpha_before_actor.append(agent.alpha.detach().clone())
        return original_actor_loss(s)

    agent._actor_loss = actor_loss_seeing_alpha

    draws: list[dict[str, torch.Tensor]] = []
    # One policy sample for the temperature and the actor (as ours), then the next-state sample.
    with recorded_rsample([eps_pi.clone(), eps_pi.clone(), eps_next.clone()], g, draws):
        info = agent.update([state, action, reward, next_state, done])
    for h in hooks:
        h.remove()
    assert len(draws) == 3, len(draws)

    # The TD target, assembled from the reference's own outputs (agent.py:258-263) ...
    alpha = alpha_before_actor[0]
    _, next_log_prob = calls["actor"][2]
    q_next_all = calls["target"][0]
    q_target = reward.squeeze(-1) + GAMMA * (1 - done.squeeze(-1)) * (q_next_all.min(0).values - alpha * next_log_prob)
    q_values = [out for dim, out in calls["critic"] if dim == 2][1]  # 0: actor loss, 1: critic loss, 2: logging
    mse = ((q_values - q_target.view(1, -1)) ** 2).mean(dim=1).sum(dim=0)
    # ... and checked against the loss the reference computed with it.
    assert torch.allclose(mse + ETA * terms["_critic_diversity_loss"], terms["_critic_loss"], rtol=1e-12, atol=0)
    pi_action, pi_log_prob = calls["actor"][1]
    q_pi = next(out for dim, out in calls["critic"] if dim == 2)

    return {
        "config": {
            "obs_dim": OBS,
            "act_dim": ACT,
            "hidden": HIDDEN,
            "num_critics": CRITICS,
            "eta": ETA,
            "gamma": GAMMA,
            "tau": TAU,
            "lr": LR,
            "alpha_lr": ALPHA_LR,
            "target_entropy": agent.target_entropy,
        },
        "init": init,
        "batch": {"state": state, "action": action, "reward": reward, "next_state": next_state, "done": done},
        "noise": {"pi": eps_pi, "next": eps_next},
        "out": {
            "alpha_loss": terms["_alpha_loss"],
            "log_alpha_grad": recorded_grads["log_alpha"],
            "log_alpha": agent.log_alpha.detach().clone(),
            "alpha_used": alpha,  # the temperature the actor loss and the TD target used
            "pi_action": pi_action.detach(),
            "pi_log_prob": pi_log_prob.detach(),
            "q_pi_min": q_pi.min(0).values,
            "actor_loss": terms["_actor_loss"],
            "actor_grad": recorded_grads["actor"],
            "actor": flat_state(actor),
            "next_log_prob": next_log_prob.detach(),
            "q_next_min": q_next_all.min(0).values,
            "q_target": q_target,
            "q_values": q_values,
            "critic_mse": mse,
            "diversity": terms["_critic_diversity_loss"],
            "critic_loss": terms["_critic_loss"],
            "critic_grad": recorded_grads["critic"],
            "critic": flat_state(critic),
            "target_critic": flat_state(agent.target_critic),
            "reported_alpha": torch.tensor(info["alpha"]),
        },
    }


def actor_fixture(agent_mod: Any) -> dict[str, Any]:
    """The actor alone on states where many actions saturate: action, pre-tanh sample and log-prob."""
    torch.manual_seed(2)
    actor = agent_mod.Actor(OBS, ACT, HIDDEN, max_action=1.0)
    with torch.no_grad():
        actor.mu.weight.normal_(0.0, 6.0)  # |u| up to ~10: tanh saturates, where the two log-probs differ
        actor.log_sigma.bias.fill_(0.5)
    g = torch.Generator().manual_seed(3)
    state = 3 * torch.randn(64, OBS, generator=g)
    eps = torch.randn(64, ACT, generator=g)
    draws: list[dict[str, torch.Tensor]] = []
    with recorded_rsample([eps.clone()], g, draws), torch.no_grad():
        action, log_prob = actor(state, need_log_prob=True)
        mean_action, _ = actor(state, deterministic=True)
    return {
        "init": flat_state(actor),
        "state": state,
        "eps": eps,
        "u": draws[0]["u"],
        "action": action,
        "log_prob": log_prob,
        "deterministic_action": mean_action,
    }


# -- rollouts -----------------------------------------------------------------------------------------
class _HostBool(torch.Tensor):
    """A bool tensor whose ``.to(-1)`` is a no-op: the reference moves ``done`` to
    ``reward.get_device()`` (rollout_generation.py:45), which is -1, an invalid device, on the CPU."""

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if args and isinstance(args[0], int) and args[0] < 0:
            return self.as_subclass(torch.Tensor)
        return super().to(*args, **kwargs)


def rollout_fixture(agent_mod: Any, rollout_mod: Any, buffer_mod: Any) -> dict[str, Any]:
    from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble

    torch.manual_seed(4)
    ens_cfg = EnsembleConfig(
        hidden_sizes=(8, 8),
        weight_decay=(0.0, 0.0, 0.0),
        ensemble_size=MEMBERS,
        num_elites=len(ELITES),
        termination="hopper",
        seed=0,
    )
    ensemble = GaussianEnsemble(OBS, ACT, ens_cfg, device="cpu").double()
    with torch.no_grad():
        ensemble.elites.copy_(torch.tensor(ELITES))
        # Small, member-dependent drifts and noise of std ~0.06 on every dimension: rows leave hopper's
        # healthy angle range (|angle| < 0.2) at different steps, some never.
        ensemble.output.weight.mul_(0.05)
        d = ensemble.out_dim
        ensemble.output.bias[:, 0, :d].normal_(0.0, 0.02)
        ensemble.output.bias[:, 0, d:].fill_(math.log(0.06**2))
        ensemble.input_mean.normal_(0.0, 0.5)
        ensemble.input_std.uniform_(0.5, 1.5)

    class Ensemble:
        """The ``Ensemble`` surface ``transition_function_torch`` reads, predicting with ``ensemble``."""

        def __init__(self) -> None:
            self.num_elites = len(ELITES)
            self._elites_idx = list(ELITES)

        @staticmethod
        def get_means_logvars(state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean, logvar = ensemble.predict(state, action)  # [E, B, o+1] of [delta s, r]
            mean = mean.transpose(0, 1).clone()
            mean[:, :, :OBS] += state[:, None, :]  # as Net.get_mean_logvar (net.py:86)
            return mean, logvar.transpose(0, 1)

    model = object.__new__(rollout_mod.DynamicsModel)
    model.env_name, model.state_dim, model.action_dim = "hopper-medium-v2", OBS, ACT
    model.ensemble = Ensemble()
    model.done_func = lambda s: rollout_mod.get_done_func("hopper-medium-v2")(s).as_subclass(_HostBool)

    torch.manual_seed(5)
    actor = agent_mod.Actor(OBS, ACT, HIDDEN, max_action=1.0)
    with torch.no_grad():
        actor.mu.weight.normal_(0.0, 0.5)
    actor.train()  # rollouts sample from the policy (Actor.act: deterministic = not self.training)
    buffer = buffer_mod.DataBuffer(OBS, ACT, buffer_size=ROLLOUTS * STEPS_K)  # one round: the second wraps
    for name in ("_states", "_actions", "_rewards", "_next_states"):  # float32 storage made float64 (dones stay 0/1)
        setattr(buffer, name, getattr(buffer, name).double())
    generator = rollout_mod.RolloutGenerator(model, actor, STEPS_K, ROLLOUTS, buffer)

    added: list[list[torch.Tensor]] = []
    original_add = buffer.add_transitions

    def add(*arrays: torch.Tensor) -> None:
        added.append([a.detach().clone() for a in arrays])
        original_add(*arrays)

    buffer.add_transitions = add
    randint, randn_like = torch.randint, torch.randn_like
    elite_picks: list[torch.Tensor] = []
    model_noise: list[torch.Tensor] = []

    def recorded_randint(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = randint(*args, **kwargs)
        elite_picks.append(out.clone())
        return out

    def recorded_randn_like(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = randn_like(*args, **kwargs)
        model_noise.append(out.clone())
        return out

    g = torch.Generator().manual_seed(6)
    starts, rounds = [], []
    for r in range(2):
        start = torch.randn(ROLLOUTS, OBS, generator=g) * 0.05
        start[:, 0] += 1.25  # healthy height
        start[:, 1] = (torch.rand(ROLLOUTS, generator=g) * 2 - 1) * 0.15  # angle inside (-0.2, 0.2)
        if r == 0:
            start[0, 1] = 0.195  # one row at the edge of the healthy range
        starts.append(start)
        n_before = len(added)
        draws: list[dict[str, torch.Tensor]] = []
        torch.randint, torch.randn_like = recorded_randint, recorded_randn_like
        try:
            with recorded_rsample([], g, draws):
                info = generator.generate_rollouts(start)
        finally:
            torch.randint, torch.randn_like = randint, randn_like
        steps = added[n_before:]
        rounds.append(
            {
                "policy_eps": [d["eps"] for d in draws],
                "elite_pick": elite_picks[n_before:],
                # The drawn member's noise [b, o+1] of the reference's draw for every member [b, E, o+1].
                "model_noise": [
                    noise[torch.arange(len(pick)), torch.tensor([ELITES[i] for i in pick])]
                    for noise, pick in zip(model_noise[n_before:], elite_picks[n_before:], strict=True)
                ],
                "states": [s[0] for s in steps],
                "actions": [s[1] for s in steps],
                "rewards": [s[2].squeeze(-1) for s in steps],
                "next_states": [s[3] for s in steps],
                "dones": [s[4].squeeze(-1) for s in steps],
                "transitions_added": torch.tensor(info["rollouts/transitions_added"]),
            }
        )
    state, action, reward, next_state, done = buffer._return_from_idxs(torch.arange(buffer._buffer_size))
    # Done functions on hand-made edge cases (bounds, the 100 range, inf, NaN), both families.
    edge = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.7, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.7000001, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 0.2, 0.0, 0.0, 0.0, 0.0],
            [1.0, -0.1999, 0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 99.9, 0.0, 0.0, 0.0],
            [1.0, 0.0, -100.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0, 0.0, 100.0],
            [math.inf, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, math.nan, 0.0, 0.0, 0.0],
            [2.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.9999, -0.9999, 0.0, 0.0, 0.0, 0.0],
            [0.8, 0.5, 0.0, 0.0, 0.0, 0.0],
            [1.5, 1.0, 0.0, 0.0, 0.0, 0.0],
            [1.5, -1.0, 0.0, 0.0, 0.0, 0.0],
            [0.85, 0.3, 1000.0, 0.0, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    done_fns = {family: rollout_mod.get_done_func(f"{family}-medium-v2")(edge) for family in ("hopper", "walker2d")}
    return {
        "config": {"obs_dim": OBS, "act_dim": ACT, "hidden": HIDDEN, "rollouts": ROLLOUTS, "steps_k": STEPS_K},
        "actor": flat_state(actor),
        "ensemble": {"config": dataclasses.asdict(ens_cfg), "state": flat_state(ensemble)},
        "starts": starts,
        "rounds": rounds,
        "buffer": {
            "state": state,
            "action": action,
            "reward": reward.squeeze(-1),
            "next_state": next_state,
            "done": done.squeeze(-1),
            "size": torch.tensor(len(buffer)),
            "pointer": torch.tensor(buffer._pointer),
        },
        "done_edge_obs": edge,
        "done": done_fns,
    }


# -- settings -----------------------------------------------------------------------------------------
def settings_fixture(agent_mod: Any, train_mod: Any) -> dict[str, Any]:
    cfg = train_mod.TrainConfig()
    keys = [
        "hidden_dim",
        "num_critics",
        "gamma",
        "tau",
        "eta",
        "actor_learning_rate",
        "critic_learning_rate",
        "alpha_learning_rate",
        "auto_alpha",
        "batch_size",
        "epochs",
        "updates_per_epoch",
        "dataset_ratio",
        "steps_k",
        "rollouts_per_epoch",
        "buffer_retain_epochs",
        "max_action",
        "eval_episodes",
    ]
    out: dict[str, Any] = {k: getattr(cfg, k) for k in keys}
    out["target_entropy_is_default"] = cfg.target_entropy is None  # None: -action_dim (agent.py:180)
    # train_ravl_agent.py:204-205, for the default and a few other batch sizes and ratios.
    splits = []
    for batch_size, ratio in ((256, 0.05), (256, 0.5), (100, 0.1), (10, 0.05), (1024, 0.3)):
        n_d4rl = int(ratio * batch_size)
        splits.append([batch_size, ratio, n_d4rl, batch_size - n_d4rl])
    out["splits"] = torch.tensor(splits, dtype=torch.float64)
    out["model_buffer_size"] = cfg.rollouts_per_epoch * cfg.steps_k * cfg.buffer_retain_epochs  # :167
    # Initial weights: the reference draws its critics' first-layer weights with the fan-in of the
    # transposed [in, out] matrix (agent.py:30-33), i.e. U(+-1/sqrt(out)); actor trunk biases are 0.1.
    torch.manual_seed(7)
    critic = agent_mod.VectorizedCritic(4, 2, 256, 3)
    actor = agent_mod.Actor(4, 2, 64)
    out["init"] = {
        "critic_first_weight_absmax": critic.critic[0].weight.detach().abs().max(),
        "critic_hidden_bias": critic.critic[2].bias.detach().clone(),
        "critic_head_absmax": critic.critic[-1].weight.detach().abs().max(),
        "actor_trunk_bias": actor.trunk[0].bias.detach().clone(),
        "actor_head_absmax": actor.mu.weight.detach().abs().max(),
        "initial_log_alpha": torch.tensor(0.0),  # agent.py:182
    }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="checkout of anyasims/edge-of-reach")
    args = parser.parse_args(argv)
    commit = use_reference(args.ref)
    stub_modules("gym", "d4rl", "d4rl.gym_mujoco", "pyrallis", "wandb")
    torch.set_default_dtype(torch.float64)

    import shared.data_buffer as buffer_mod
    import train_ravl_agent as train_mod
    from agent_training import agent as agent_mod
    from agent_training import rollout_generation as rollout_mod

    update = update_fixture(agent_mod)
    actor = actor_fixture(agent_mod)
    note = (
        "Normal.rsample replaced by loc + eps * scale with recorded eps; the temperature and actor losses "
        "share one eps (ours draws one sample for both); log_alpha float64 instead of float32."
    )
    for name, tensors in (
        ("edge_of_reach_update", {"update": update, "actor": actor}),
        ("edge_of_reach_rollout", rollout_fixture(agent_mod, rollout_mod, buffer_mod)),
        ("edge_of_reach_settings", settings_fixture(agent_mod, train_mod)),
    ):
        path = save_fixture(name, copy.deepcopy(tensors), repository=REPOSITORY, commit=commit, notes=note)
        print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()

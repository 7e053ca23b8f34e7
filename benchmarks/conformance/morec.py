"""Conformance fixture of MOREC's dynamics-reward inference and rollout filter (polixir/morec).

    python -m benchmarks.conformance.morec --ref /work/refs/morec

Builds, in float64 at small sizes, the reference's own pieces:

* ``models.DataLoader.DataLoader`` on a synthetic D4RL-layout dataset (its ``convert_d4rl`` is replaced
  by a function returning that dataset, so no gym or d4rl is needed): the min-max input scaling;
* ``models.discriminator_restrain.DiscriminatorRestrain`` with the vanilla encoder, ten historical
  snapshots with their calibration values (one without, which the loader masks out);
* ``models.discriminator_ensemble_loader.DiscriminatorEnsemble`` over the last 8 snapshots taken
  every 2nd (``max_retain_num``, ``ensemble_choosing_interval``), ``load_min_max=False``;
* ``offlinerlkit.dynamics.ensemble_dynamics.EnsembleDynamics.step`` with a small OfflineRL-Kit
  ensemble, 2 draws per elite, for ``select_elite`` and ``softmax_elite``.

It records the snapshots' weights in the reference's batched layout, the calibration values, the
data's min/max, per-snapshot probabilities and ``r_D`` of a batch of transitions, and for each
selection rule the K candidates after clipping, their ``r_D``, the chosen index, the chosen step and
the terminal mask (termination rule and the 0.6 threshold). The Gaussian draws of ``step``
(``np.random.normal``) and the softmax draw (``Categorical.sample``) are recorded by patching.

The restrain encoder cannot be used: ``DiscriminatorRestrain.__init__`` builds its target encoder
with one positional argument missing (``models/discriminator_restrain.py:52``, TypeError) and
``DiscriminatorEnsemble.init_ensemble_network`` reads ``encoder_target.encoder``, which only the
vanilla encoder has (``models/discriminator_ensemble_loader.py:86``); the vanilla encoder is the
path the released loader can run.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch

from benchmarks.conformance.common import save_fixture, stub_modules, use_reference

CHECKOUT = "morec"

OBS, ACT, ROWS = 3, 2, 12
SNAPSHOTS = 10
MAX_RETAIN, INTERVAL = 8, 2
THRESHOLD = 0.65  # the published 0.6 stops none of the argmax rows of this small fixture


def synthetic_d4rl(seed: int = 0) -> dict[str, np.ndarray]:
    """What ``convert_d4rl`` returns: 3 trajectories of 10 steps, padded layout ``[traj, T, dim]``."""
    rng = np.random.default_rng(seed)
    n, t = 3, 10
    obs = rng.normal(size=(n, t + 1, OBS)) * np.array([1.0, 0.5, 2.0]) + np.array([0.3, -1.0, 0.0])
    act = rng.uniform(-0.9, 0.8, size=(n, t, ACT))
    return {
        "observations": obs[:, :-1].copy(),
        "next_observations": obs[:, 1:].copy(),
        "actions": act,
        "next_actions": np.concatenate([act[:, 1:], act[:, -1:]], axis=1),
        "rewards": rng.normal(size=(n, t)),
        "dones": np.zeros((n, t)),
        "masks": np.ones((n, t)),
        "traj_len": np.full((n,), t),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True)
    args = parser.parse_args(argv)
    commit = use_reference(args.ref)
    stub_modules("gym", "gym.envs.mujoco", "d4rl", "d4rl.gym_mujoco", "neorl", "smart_logger", "psutil")
    stub_modules("smart_logger.parameter.ParameterTemplate2")
    # offlinerlkit's logger imports tensorboard's SummaryWriter (not installed; unused here). A stand-in
    # by hand: stub_modules would also replace the real parent package torch.
    sys.modules.setdefault("torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=object))
    torch.set_default_dtype(torch.float64)

    import models.DataLoader as loader_module
    import offlinerlkit.dynamics.ensemble_dynamics as dyn_module
    from models.discriminator_ensemble_loader import DiscriminatorEnsemble, historical_transition_reward_multi_batch
    from models.discriminator_restrain import DiscriminatorRestrain
    from offlinerlkit.modules.dynamics_module import EnsembleDynamicsModel
    from offlinerlkit.utils.scaler import StandardScaler

    data = synthetic_d4rl()
    loader_module.convert_d4rl = lambda name: {k: v.copy() for k, v in data.items()}
    torch.manual_seed(0)
    restrain = DiscriminatorRestrain(
        OBS, 1, ACT, OBS, 0.99, 8, 4, [16, 8], ["relu"] * 3, [16, 8], ["relu"] * 3,
        ["relu", "relu", "linear"], [16, 16], [16], ["relu", "linear"], "synthetic-v2", 100, 1e-3, 1e-3,
        history_discriminator_interval=1, max_maintaining_disc=SNAPSHOTS, mi_regulizer_factor=0.0,
        encoder_type="vanilla", vanilla_encoder_activations=["relu", "relu"], vanilla_encoder_hidden_size=[16],
        vanilla_encoder_embedding_size=8,
    )  # fmt: skip
    expert_data = restrain.expert_data
    # Historical snapshots: fresh weights each, calibration values spread around 0; snapshot 6 has none.
    for i in range(SNAPSHOTS):
        torch.manual_seed(100 + i)
        for p in restrain.discrim_parameter:
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.data.copy_(torch.randn_like(p) * 1.5 / fan_in**0.5)
        calibrated = i != 6
        restrain.middle_value_backup = 0.0 if calibrated else None
        restrain.learner_value_backup = -0.4 - 0.1 * i
        restrain.expert_value_backup = 0.3 + 0.07 * i
        restrain.history_discriminator.append(restrain.state_dict())
    ensemble = DiscriminatorEnsemble(restrain, ensemble_choosing_interval=INTERVAL, max_retain_num=MAX_RETAIN,
                                     load_min_max=False)  # fmt: skip
    chosen = list(range(SNAPSHOTS))[-MAX_RETAIN:][::INTERVAL]
    layers = [*ensemble.encoder.encoder.model.layer_list, *ensemble.discriminator.model.model.layer_list]
    weights = {f"layer{j}": {"weight": layer.weight.data, "bias": layer.bias.data} for j, layer in enumerate(layers)}

    # -- r_D of a batch of transitions (raw, un-normalised states and actions) ------------------------
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(ROWS, OBS)) * np.array([1.0, 0.5, 2.0]) + np.array([0.3, -1.0, 0.0])
    act = rng.uniform(-0.9, 0.8, size=(ROWS, ACT))
    next_obs = obs + 0.3 * rng.normal(size=(ROWS, OBS))

    def normalised(o: np.ndarray, a: np.ndarray, o2: np.ndarray) -> list[torch.Tensor]:
        """The inputs ``EnsembleDynamics.step`` hands to the discriminators (``ensemble_dynamics.py:93-103``)."""
        parts = [expert_data.normalize_obs(o), expert_data.normalize_act(a), expert_data.normalize_obs(o2)]
        return [torch.from_numpy(np.asarray(x)).to(torch.get_default_dtype()) for x in parts]

    o_n, a_n, o2_n = normalised(obs, act, next_obs)
    z = torch.zeros(ROWS, 1)
    with torch.no_grad():
        probs = ensemble.get_total_historical_reward(o_n, z, a_n, o2_n, aquire_prob=True)[..., 0]  # [M, B]
        reward = historical_transition_reward_multi_batch(ensemble, o_n, z, a_n, o2_n, batch_num=4, clip_value=1.0)

    # -- the rollout step with K candidates, for both selection rules ---------------------------------
    torch.manual_seed(3)
    # float32 as published: its forward casts the input to float32 (dynamics_module.py:87).
    model = EnsembleDynamicsModel(OBS, ACT, [8, 8], num_ensemble=4, num_elites=2, weight_decays=[0, 0, 0]).float()
    model.set_elites([2, 0])
    with torch.no_grad():
        model.max_logvar.fill_(-1.0)
        model.min_logvar.fill_(-6.0)
    scaler = StandardScaler()
    scaler.fit(np.concatenate([data["observations"], data["actions"]], axis=-1).reshape(-1, OBS + ACT))

    def termination(o: np.ndarray, a: np.ndarray, o2: np.ndarray) -> np.ndarray:
        return (o2[:, 0] > 1.2)[:, None]

    real_normal, real_categorical = np.random.normal, dyn_module.Categorical
    draws: list[np.ndarray] = []  # the Gaussian draws of the current step
    categorical: dict[str, torch.Tensor] = {}  # the softmax rule's probabilities and draw

    def recording_normal(*a, **k):
        out = real_normal(*a, **k)
        draws.append(out)
        return out

    class RecordingCategorical(real_categorical):
        def sample(self, *a, **k):
            out = super().sample(*a, **k)
            categorical.update(probs=self.probs.detach().clone(), sample=out.clone())
            return out

    steps = {}
    for rule in ("select_elite", "softmax_elite"):
        draws.clear()
        categorical.clear()
        dynamics = dyn_module.EnsembleDynamics(
            model, None, scaler, termination, dynamics_rewards=ensemble, reward_use_type=rule,
            resample_num_in_transition=2, d_clip=1.0, reward_infer_batch_num=4, terminal_dynamics_reward=THRESHOLD,
        )  # fmt: skip
        np.random.seed(5)
        torch.manual_seed(5)
        np.random.normal, dyn_module.Categorical = recording_normal, RecordingCategorical
        try:
            next_step, rew, terminal, info = dynamics.step(obs, act)
        finally:
            np.random.normal, dyn_module.Categorical = real_normal, real_categorical
        detail = info["detail_data"]
        mean, logvar = model(scaler.transform(np.concatenate([obs, act], axis=-1)))
        cand = np.concatenate([detail["next_obs"], detail["rew"]], axis=-1)
        assert np.abs(cand).max() < 25, "the +-25 clip must not bind here: ours does not clip (a kept deviation)"
        steps[rule] = {
            "noise": torch.from_numpy(np.stack(draws)),  # [draws per elite, elites, B, o+1]
            "member_mean": mean.detach().double(),  # [E, B, o+1] of the scaled input, Δs (before adding obs)
            "member_std": (0.5 * logvar.detach().double()).exp(),
            "candidate_next_obs": torch.from_numpy(detail["next_obs"].astype(np.float64)),  # [K, B, o]
            "candidate_reward": torch.from_numpy(detail["rew"][..., 0].astype(np.float64)),  # [K, B]
            "candidate_terminal": torch.from_numpy(
                np.stack([termination(obs, act, c)[:, 0] for c in detail["next_obs"]])
            ),  # [K, B]
            "dynamics_reward": torch.from_numpy(np.asarray(detail["dynamics_reward"])[..., 0]),  # [K, B]
            "selected": torch.from_numpy(detail["selected_model_idxs"]),  # [B]
            "next_obs": torch.from_numpy(next_step.astype(np.float64)),
            "reward": torch.from_numpy(rew[:, 0].astype(np.float64)),
            "terminal": torch.from_numpy(terminal[:, 0].copy()),
            **({"softmax_probs": categorical["probs"].clone()} if categorical else {}),
        }

    save_fixture(
        "morec_dynamics_reward",
        {
            "obs": torch.from_numpy(obs),
            "act": torch.from_numpy(act),
            "next_obs": torch.from_numpy(next_obs),
            "obs_min": torch.from_numpy(expert_data.obs_min),
            "obs_max": torch.from_numpy(expert_data.obs_max),
            "act_min": torch.from_numpy(expert_data.act_min),
            "act_max": torch.from_numpy(expert_data.act_max),
            "chosen_snapshots": torch.tensor(chosen),
            "mask": ensemble.mask_tensor.clone(),  # indices of the chosen snapshots that have calibration values
            "expert_value": ensemble.expert_value_tensor.clone(),  # [M_active]
            "learner_value": ensemble.learner_value_tensor.clone(),
            "weights": weights,  # batched [M, in, out] / [M, 1, out]; input columns [s, z, a, Δs]
            "probs": probs,  # [M_active, B] calibrated sigmoid per snapshot
            "reward": reward[:, 0],  # [B] r_D
            "steps": steps,
            "threshold": THRESHOLD,
            "elites": model.elites.data.clone(),
        },
        repository="polixir/morec",
        commit=commit,
        notes=(
            "vanilla-encoder discriminator ensemble (last 8 of 10 snapshots, every 2nd, snapshot 6 uncalibrated), "
            "load_min_max=False, d_clip=1.0; EnsembleDynamics.step with 2 elites x 2 draws, threshold 0.65"
        ),
    )
    print("wrote morec_dynamics_reward")


if __name__ == "__main__":
    main()

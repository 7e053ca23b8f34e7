"""Record OfflineRL-Kit's Gaussian dynamics ensemble (the MOPO/MOBILE/COMBO/RAMBO model) for conformance tests.

``python -m benchmarks.conformance.offlinerlkit_dynamics --ref /work/refs/OfflineRL-Kit`` writes
``tests/golden/conformance/offlinerlkit_dynamics_{model,fit,step,termination}.pt``; read by
``tests/test_conformance_offlinerlkit_dynamics.py``.

What is recorded, all in float64 at a small size (4 members of 3 x 16 Swish, 4-d obs, 3-d act):

* ``model``: the initial weights (reference naming, biases and logvar bounds perturbed so that the
  soft clamp acts on both sides), the scaler (``StandardScaler.fit`` on the training inputs, which
  hold one constant and one near-constant column), every member's forward mean/logvar, and one
  ``EnsembleDynamics.learn`` call on bootstrapped rows (one batch): each loss term (the NLL terms
  from the reference model's output with ``learn``'s formula, the decay from ``get_decay_loss``),
  the total ``learn`` returns, the gradient of every parameter and the parameters after the Adam
  step (run_mopo.py's optimiser: ``Adam(lr=1e-3)`` with the per-layer decay in the loss); the
  holdout MSE per member before and after the step (``validate``).
* ``fit``: ``EnsembleDynamics.train`` for a few epochs with early stopping: the split, the scaler,
  each epoch's holdout MSE per member, the best holdout MSEs, the elites and the restored weights.
  Randomness is removed rather than shared: the bootstrap is the identity (``np.random.randint`` is
  patched for the one call) and each epoch is a single batch of every row, so the reference's
  shuffle and ours change nothing but the order of a sum.
* ``step``: ``EnsembleDynamics.step`` with the aleatoric MOPO penalty and the hopper rule, with the
  Gaussian noise ``[E, B, D]`` and the chosen member of every row recorded (wrappers around
  ``np.random.normal`` and ``random_elite_idxs``), so a test can feed the same draws to ours.
* ``termination``: ``termination_fn_{hopper,walker2d,halfcheetah}`` on a grid of next states that
  lands below, on and above every threshold (plus ±inf and NaN), and the spread of the reference's
  initial weights (its ``trunc_normal_`` cut is absolute).

The reference model casts its input to float32 (``dynamics_module.py:87``); the generator hands it
a ``torch`` whose ``as_tensor`` keeps float64, so the comparison is not limited by float32 rounding.
``step`` still rounds its samples and penalty to float32 (``ensemble_dynamics.py:43,69``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import types
from typing import Any

import numpy as np
import torch

from benchmarks.conformance.common import Float64Torch, save_fixture, stub_modules, use_reference

CHECKOUT = "OfflineRL-Kit"
REPOSITORY = "yihaosun1124/OfflineRL-Kit"

OBS_DIM, ACT_DIM = 4, 3
HIDDEN = (16, 16, 16)
ENSEMBLE, ELITES = 4, 2
# run_mopo.py's --dynamics-weight-decay has one entry per layer of its 4 x 200 net; ours has 3 hidden layers.
WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 1e-4)
LR = 1e-3
LOGVAR_LOSS_COEF = 0.01
N_ROWS = 60  # 12 held out (holdout_ratio 0.2), 48 trained on
BATCH = 64  # >= the training rows: every learn() call is one batch
PENALTY_COEF = 2.5
STEP_ROWS = 16
FIT_EPOCHS = 60
FIT_PATIENCE = 3


class _Logger:
    """The few ``Logger`` methods ``EnsembleDynamics.train`` calls; ``model_dir`` receives its save."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass

    logkv = set_timestep = dumpkvs = log


def _data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``N_ROWS`` transitions of a smooth toy system; act[:, 2] is constant and obs[:, 3] varies by 1e-13 only."""
    obs = rng.normal(size=(N_ROWS, OBS_DIM))
    obs[:, 0] = rng.uniform(0.5, 1.5, N_ROWS)
    obs[:, 3] = 0.3 + 1e-13 * rng.normal(size=N_ROWS)  # std < 1e-12: the scaler keeps it unscaled
    act = rng.uniform(-1, 1, size=(N_ROWS, ACT_DIM))
    act[:, 2] = 0.5
    delta = 0.1 * np.tanh(obs @ rng.normal(size=(OBS_DIM, OBS_DIM)) + act @ rng.normal(size=(ACT_DIM, OBS_DIM)))
    delta += 0.06 * rng.normal(size=delta.shape)  # mostly noise: the holdout MSE soon levels off
    delta[:, 3] = 0.0
    rew = (obs[:, :1] * act[:, :1]) + 0.05 * rng.normal(size=(N_ROWS, 1))
    return {"observations": obs, "actions": act, "next_observations": obs + delta, "rewards": rew}


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable tensors under the reference's names (``backbones.i``, ``output_layer``, logvar bounds)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "saved_" not in n}


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", required=True, help="OfflineRL-Kit checkout")
    args = parser.parse_args()
    commit = use_reference(args.ref)
    stub_modules("gym", "gym.envs", "gym.envs.mujoco", "d4rl")
    _stub_tensorboard()
    torch.set_default_dtype(torch.float64)
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import EnsembleDynamicsModel, dynamics_module
    from offlinerlkit.nets import EnsembleLinear
    from offlinerlkit.utils import termination_fns
    from offlinerlkit.utils.scaler import StandardScaler

    dynamics_module.torch = Float64Torch(as_tensor_only=True)

    def build(init: dict[str, torch.Tensor] | None, elites: list[int] | None = None):
        """A reference model + run_mopo.py's optimiser + EnsembleDynamics; ``init`` overrides the weights."""
        model = EnsembleDynamicsModel(
            OBS_DIM, ACT_DIM, list(HIDDEN), ENSEMBLE, ELITES, weight_decays=list(WEIGHT_DECAY), device="cpu"
        )
        if init is not None:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in init:
                        p.copy_(init[name])
            model.update_save(list(range(ENSEMBLE)))  # the saved snapshot starts at the loaded weights
        if elites is not None:
            model.set_elites(elites)
        optim = torch.optim.Adam(model.parameters(), lr=LR)
        dyn = EnsembleDynamics(
            model, optim, StandardScaler(), termination_fns.termination_fn_hopper, penalty_coef=PENALTY_COEF
        )
        return model, optim, dyn

    notes = (
        "float64 throughout (reference model's float32 input cast disabled); initial biases and logvar "
        "bounds perturbed so both soft-clamp sides act"
    )

    # -- initial weights: the reference's init, then perturbed biases/bounds and a wider output layer ----------
    torch.manual_seed(0)
    model, _, _ = build(None)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in [*model.backbones, model.output_layer]:
            layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=gen))
        model.output_layer.weight[..., OBS_DIM + 1 :].mul_(12.0)  # raw logvars spread over a few units
        model.max_logvar.copy_(0.3 + 0.2 * torch.randn(model.max_logvar.shape, generator=gen))
        model.min_logvar.copy_(-0.6 + 0.2 * torch.randn(model.min_logvar.shape, generator=gen))
    init = _params(model)

    # -- data, split and scaler (as EnsembleDynamics.train does them) --------------------------------------
    rng = np.random.default_rng(0)
    data = _data(rng)
    splits: dict[str, np.ndarray] = {}
    original_split = torch.utils.data.random_split

    def recording_split(dataset: Any, lengths: Any, *a: Any, **k: Any) -> Any:
        train_part, holdout_part = original_split(dataset, lengths, *a, **k)
        splits["train"], splits["holdout"] = np.asarray(train_part.indices), np.asarray(holdout_part.indices)
        return train_part, holdout_part

    # -- model: forward, one learn() step with each loss term, gradients, parameters after Adam ---------------
    model, optim, dyn = build(init)
    inputs, targets = dyn.format_samples_for_training(data)
    # The split train() draws below (same seed and sizes), taken here for the single-step record.
    torch.manual_seed(2)
    n_holdout = min(int(N_ROWS * 0.2), 1000)
    train_part, holdout_part = original_split(range(N_ROWS), (N_ROWS - n_holdout, n_holdout))
    train_idx, holdout_idx = np.asarray(train_part.indices), np.asarray(holdout_part.indices)
    dyn.scaler.fit(inputs[train_idx])
    x_train = dyn.scaler.transform(inputs[train_idx])
    x_hold = dyn.scaler.transform(inputs[holdout_idx])
    y_train, y_hold = targets[train_idx], targets[holdout_idx]

    with torch.no_grad():
        mean, logvar = model(x_train)  # shared input [B, in] -> [E, B, D]
        raw_logvar = torch.chunk(model.output_layer(_hidden(model, torch.as_tensor(x_train))), 2, dim=-1)[1]
    boot = np.random.default_rng(3).integers(len(train_idx), size=(ENSEMBLE, len(train_idx)))
    xb, yb = x_train[boot], y_train[boot]  # [E, n, in], [E, n, D] as learn() receives them
    with torch.no_grad():
        b_mean, b_logvar = model(xb)
        yb_t = torch.as_tensor(yb)
        mse_inv = ((b_mean - yb_t) ** 2 * torch.exp(-b_logvar)).mean(dim=(1, 2))
        var_loss = b_logvar.mean(dim=(1, 2))
        decay = model.get_decay_loss()
        bounds = LOGVAR_LOSS_COEF * model.max_logvar.sum() - LOGVAR_LOSS_COEF * model.min_logvar.sum()
    holdout_before = torch.as_tensor(np.asarray(dyn.validate(x_hold, y_hold)))
    grads: dict[str, torch.Tensor] = {}
    original_step = optim.step

    def recording_step(*a: Any, **k: Any) -> Any:
        grads.update(_grads(model))
        return original_step(*a, **k)

    optim.step = recording_step
    total = dyn.learn(xb, yb, batch_size=BATCH, logvar_loss_coef=LOGVAR_LOSS_COEF)
    holdout_after = torch.as_tensor(np.asarray(dyn.validate(x_hold, y_hold)))
    save_fixture(
        "offlinerlkit_dynamics_model",
        {
            "config": {
                "obs_dim": OBS_DIM,
                "act_dim": ACT_DIM,
                "hidden": list(HIDDEN),
                "ensemble": ENSEMBLE,
                "elites": ELITES,
                "weight_decay": list(WEIGHT_DECAY),
                "lr": LR,
                "logvar_loss_coef": LOGVAR_LOSS_COEF,
            },
            "init": init,
            "obs": torch.as_tensor(data["observations"]),
            "act": torch.as_tensor(data["actions"]),
            "next_obs": torch.as_tensor(data["next_observations"]),
            "rew": torch.as_tensor(data["rewards"][:, 0]),
            "train_idx": torch.as_tensor(train_idx),
            "holdout_idx": torch.as_tensor(holdout_idx),
            "scaler_mu": torch.as_tensor(dyn.scaler.mu[0]),
            "scaler_std": torch.as_tensor(dyn.scaler.std[0]),
            "forward_mean": mean,
            "forward_logvar": logvar,
            "forward_raw_logvar": raw_logvar,
            "boot": torch.as_tensor(boot),
            "loss_mse_inv": mse_inv,
            "loss_var": var_loss,
            "loss_decay": decay,
            "loss_bounds": bounds,
            "loss_total": torch.tensor(total),
            "grads": grads,
            "after_step": _params(model),
            "holdout_mse_before": holdout_before,
            "holdout_mse_after": holdout_after,
        },
        repository=REPOSITORY,
        commit=commit,
        notes=notes,
    )

    # -- fit: train() with the identity bootstrap and one batch per epoch ----------------------------------
    model, _, dyn = build(init)
    epochs: list[torch.Tensor] = []
    best: dict[str, Any] = {}
    original_validate, original_select = dyn.validate, dyn.select_elites

    def recording_validate(*a: Any, **k: Any) -> list[float]:
        losses = original_validate(*a, **k)
        epochs.append(torch.as_tensor(np.asarray(losses)))
        return losses

    def recording_select(metrics: list) -> list[int]:
        best["holdout"] = torch.as_tensor(np.asarray(metrics, dtype=np.float64))
        return original_select(metrics)

    dyn.validate, dyn.select_elites = recording_validate, recording_select
    original_randint = np.random.randint
    np.random.randint = lambda high, size: np.broadcast_to(np.arange(high), size).copy()  # identity bootstrap
    torch.utils.data.random_split = recording_split
    torch.manual_seed(2)  # train()'s random_split draws from the global torch RNG
    np.random.seed(7)  # and its per-epoch shuffle from numpy's: it only reorders sums, but reorders them the same
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dyn.train(
                data,
                _Logger(tmp),
                max_epochs=FIT_EPOCHS,
                max_epochs_since_update=FIT_PATIENCE,
                batch_size=BATCH,
                holdout_ratio=0.2,
                logvar_loss_coef=LOGVAR_LOSS_COEF,
            )
    finally:
        np.random.randint = original_randint
        torch.utils.data.random_split = original_split
    save_fixture(
        "offlinerlkit_dynamics_fit",
        {
            "max_epochs": FIT_EPOCHS,
            "max_epochs_since_update": FIT_PATIENCE,
            "batch_size": BATCH,
            "train_idx": torch.as_tensor(splits["train"]),
            "holdout_idx": torch.as_tensor(splits["holdout"]),
            "scaler_mu": torch.as_tensor(dyn.scaler.mu[0]),
            "scaler_std": torch.as_tensor(dyn.scaler.std[0]),
            "epoch_holdout_mse": torch.stack(epochs),  # [epochs, E]
            "best_holdout_mse": best["holdout"],
            "elites": model.elites.detach().clone(),
            "final": _params(model),
        },
        repository=REPOSITORY,
        commit=commit,
        notes=notes + "; bootstrap = identity, one batch per epoch",
    )

    # -- step: one imagined step with the MOPO penalty and the hopper rule, noise recorded ------------------
    step_elites = [2, 0]
    model, _, dyn = build(init, elites=step_elites)
    dyn.scaler.fit(inputs[train_idx])
    srng = np.random.default_rng(4)
    obs = srng.normal(size=(STEP_ROWS, OBS_DIM))
    obs[:, 0] = srng.uniform(0.4, 1.0, STEP_ROWS)  # around the hopper's 0.7 height limit
    obs[:, 1] = srng.uniform(-0.4, 0.4, STEP_ROWS)  # and its ±0.2 angle limit
    act = srng.uniform(-1, 1, size=(STEP_ROWS, ACT_DIM))
    drawn: dict[str, np.ndarray] = {}
    original_normal, original_pick = np.random.normal, model.random_elite_idxs

    def recording_normal(*a: Any, **k: Any) -> np.ndarray:
        drawn["noise"] = original_normal(*a, **k)
        return drawn["noise"]

    def recording_pick(batch_size: int) -> np.ndarray:
        drawn["member"] = original_pick(batch_size)
        return drawn["member"]

    model.random_elite_idxs = recording_pick
    np.random.seed(5)
    np.random.normal = recording_normal
    try:
        next_obs, reward, terminal, info = dyn.step(obs, act)
    finally:
        np.random.normal = original_normal
    save_fixture(
        "offlinerlkit_dynamics_step",
        {
            "penalty_coef": PENALTY_COEF,
            "elites": torch.tensor(step_elites),
            "scaler_mu": torch.as_tensor(dyn.scaler.mu[0]),
            "scaler_std": torch.as_tensor(dyn.scaler.std[0]),
            "obs": torch.as_tensor(obs),
            "act": torch.as_tensor(act),
            "noise": torch.as_tensor(drawn["noise"]),  # [E, B, D]
            "member": torch.as_tensor(drawn["member"]),  # [B]
            "next_obs": torch.as_tensor(next_obs),
            "reward": torch.as_tensor(reward[:, 0]),  # penalised
            "raw_reward": torch.as_tensor(info["raw_reward"][:, 0]),
            "penalty": torch.as_tensor(info["penalty"][:, 0]),
            "terminal": torch.as_tensor(terminal[:, 0]),
        },
        repository=REPOSITORY,
        commit=commit,
        notes="float64 model; the reference rounds samples and penalty to float32 (ensemble_dynamics.py:43,69)",
    )

    # -- termination grids and the initial weight spread ---------------------------------------------------
    grids = {family: _termination_grid(family) for family in ("hopper", "walker2d", "halfcheetah")}
    fns = {
        "hopper": termination_fns.termination_fn_hopper,
        "walker2d": termination_fns.termination_fn_walker2d,
        "halfcheetah": termination_fns.termination_fn_halfcheetah,
    }
    done = {}
    for family, grid in grids.items():
        act = np.zeros((grid.shape[0], 3))
        with np.errstate(invalid="ignore"):
            done[family] = torch.as_tensor(np.asarray(fns[family](grid, act, grid))[:, 0].astype(bool))
    torch.manual_seed(6)
    wide = EnsembleLinear(64, 64, 8)
    std = 1 / (2 * 64**0.5)
    save_fixture(
        "offlinerlkit_dynamics_termination",
        {
            "next_obs": {family: torch.as_tensor(grid) for family, grid in grids.items()},
            "done": done,
            "init_in_features": 64,
            "init_beyond_2std": float((wide.weight.detach().abs() > 2 * std).double().mean()),
            "init_max_over_std": float(wide.weight.detach().abs().max() / std),
        },
        repository=REPOSITORY,
        commit=commit,
        notes="termination_fns.py on threshold grids; EnsembleLinear(64, 64, 8) init spread",
    )


def _stub_tensorboard() -> None:
    """A stand-in ``torch.utils.tensorboard`` (the reference's logger imports it; nothing here logs).

    Not ``stub_modules``: it would also replace the real ``torch`` and ``torch.utils`` parents.
    """
    try:
        importlib.import_module("torch.utils.tensorboard")
    except Exception:
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = object
        sys.modules["torch.utils.tensorboard"] = stub
        torch.utils.tensorboard = stub


def _hidden(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference model's last hidden activation ``[E, B, h]`` (its forward up to the output layer)."""
    for layer in model.backbones:
        x = model.activation(layer(x))
    return x


def _termination_grid(family: str) -> np.ndarray:
    """Next states ``[N, o]`` (o = 11 hopper, 17 otherwise): a healthy base row, then one coordinate moved
    just below, onto and just above each threshold, and to ±inf and NaN."""
    dim = 11 if family == "hopper" else 17
    base = np.full(dim, 0.5)
    base[0], base[1] = 1.25, 0.0
    eps = 1e-9
    edges: dict[int, list[float]] = {
        "hopper": {0: [0.7], 1: [-0.2, 0.2]},
        "walker2d": {0: [0.8, 2.0], 1: [-1.0, 1.0]},
        "halfcheetah": {},
    }[family]
    # Every coordinate that any reference checks against ±100 (index 0 and 1 included for halfcheetah/walker2d).
    range_cols = [2, 5, dim - 1] if family == "hopper" else [0, 1, 2, 5, dim - 1]
    values: list[tuple[int, float]] = []
    for col, thresholds in edges.items():
        values += [(col, t + d) for t in thresholds for d in (-eps, 0.0, eps)]
    for col in range_cols:
        values += [(col, t + d) for t in (-100.0, 100.0) for d in (-eps * 100, 0.0, eps * 100)]
    for col in {0, 1, 2, dim - 1}:
        values += [(col, v) for v in (np.inf, -np.inf, np.nan)]
    rows = [base.copy()]
    for col, value in values:
        row = base.copy()
        row[col] = value
        rows.append(row)
    return np.stack(rows)


if __name__ == "__main__":
    main()

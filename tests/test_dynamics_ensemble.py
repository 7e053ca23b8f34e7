"""GaussianEnsemble: batched forward, fitting, early stopping, elites, sampling and checkpoints."""

from __future__ import annotations

import dataclasses
import functools
import io
import math

import pytest
import torch
import torch.nn.functional as F
from mbrl.dynamics.base import DynamicsModel
from mbrl.dynamics.ensemble import EnsembleConfig, GaussianEnsemble, replay_stopping
from mbrl.dynamics.termination import hopper_termination

from mbrl.bench import plain_train_step  # the fit's step as it was before ``_train_step``
from mbrl.data.transitions import Transitions
from tests.helpers import SMALL_ENSEMBLE

SMALL = SMALL_ENSEMBLE


@pytest.fixture(autouse=True)
def _one_thread():
    # Nets this small gain nothing from a second intra-op thread; on a loaded 2-core box it costs ~10x.
    torch.set_num_threads(1)


def toy_transitions(n: int, seed: int, low: float = -1.0, high: float = 1.0) -> Transitions:
    """``s' = s + sin(3s)·a + ε``, ``r = s·a + ε`` with ``s, a ~ U(low, high)``, ε ~ N(0, 0.05²)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 1, generator=g) * (high - low) + low
    a = torch.rand(n, 1, generator=g) * 2 - 1
    next_s = s + torch.sin(3 * s) * a + 0.05 * torch.randn(n, 1, generator=g)
    r = (s * a).squeeze(1) + 0.05 * torch.randn(n, generator=g)
    flags = torch.zeros(n, dtype=torch.bool)
    return Transitions(s, a, r, next_s, flags, flags)


@pytest.fixture(scope="module")
def fitted() -> tuple[GaussianEnsemble, Transitions, object]:
    """One small ensemble fitted on the toy function with an explicit holdout set (shared, it is the slow part)."""
    torch.set_num_threads(1)
    model = GaussianEnsemble(1, 1, SMALL)
    holdout = toy_transitions(300, seed=1)
    report = model.fit(toy_transitions(1000, seed=0), holdout=holdout)
    return model, holdout, report


def targets(data: Transitions) -> torch.Tensor:
    return torch.cat([data.next_obs - data.obs, data.rew[:, None]], dim=1)


def reference_member_forward(
    model: GaussianEnsemble, x_norm: torch.Tensor, e: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Member ``e`` alone, written out with plain matmuls and the published soft clamp."""
    h = x_norm
    for layer in model.hidden:
        h = model.activation(h @ layer.weight[e] + layer.bias[e, 0])
    out = h @ model.output.weight[e] + model.output.bias[e, 0]
    mean, raw = out[:, : model.out_dim], out[:, model.out_dim :]
    logvar = model.max_logvar - F.softplus(model.max_logvar - raw)
    logvar = model.min_logvar + F.softplus(logvar - model.min_logvar)
    return mean, logvar


def test_shapes_and_protocol():
    model = GaussianEnsemble(11, 3, EnsembleConfig())  # the published 7 x (4 x 200) net
    assert isinstance(model, DynamicsModel)
    obs, act = torch.randn(6, 11), torch.rand(6, 3)
    mean, logvar = model.predict(obs, act)
    assert mean.shape == logvar.shape == (7, 6, 12)
    step = model.sample(obs, act, torch.Generator().manual_seed(0))
    assert step.next_obs.shape == (6, 11) and step.reward.shape == (6,)
    assert step.terminated.dtype == torch.bool and not step.terminated.any()  # termination=None
    assert step.info["member"].shape == (6,) and step.info["member"].dtype == torch.long
    assert step.info["std"].shape == step.info["mean"].shape == (7, 6, 12)
    assert model.elites.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"act \[B, 3\]"):
        model.predict(obs, act[:, :2])


def test_initialisation_is_truncated_normal_with_zero_bias():
    model = GaussianEnsemble(11, 3, EnsembleConfig())
    for layer in model.layers:
        std = 1 / (2 * math.sqrt(layer.in_features))
        assert layer.weight.abs().max() <= 2 * std + 1e-7
        assert 0.8 * std < layer.weight.std() < std  # a ±2σ cut normal has std 0.88σ
        assert not layer.bias.any()
    torch.testing.assert_close(model.max_logvar, torch.full((12,), 0.5))
    torch.testing.assert_close(model.min_logvar, torch.full((12,), -10.0))


def test_initialisation_without_truncation_is_offlinerlkits_normal():
    """``init_truncation=None`` draws as OfflineRL-Kit's ``trunc_normal_(w, std=s)``: bounds of ±2 absolute
    cut nothing at these stds, so about 4.6 % of the weights lie beyond 2 std and the spread is the full std."""
    model = GaussianEnsemble(11, 3, EnsembleConfig(init_truncation=None))
    weights = torch.cat([(layer.weight / (1 / (2 * math.sqrt(layer.in_features)))).flatten() for layer in model.layers])
    assert 0.97 < weights.std() < 1.03
    assert 0.035 < (weights.abs() > 2).float().mean() < 0.06
    assert all(not layer.bias.any() for layer in model.layers)
    # The same seed draws the same numbers; the cut is the only difference from the default.
    again = GaussianEnsemble(11, 3, EnsembleConfig(init_truncation=None))
    torch.testing.assert_close(again.output.weight, model.output.weight, rtol=0, atol=0)


def test_the_presets_initialise_as_their_references():
    """The ensemble preset (MOPO, MOBILE, COMBO, RAMBO, MOREC: OfflineRL-Kit) draws without the 2-std cut;
    RAVL's presets keep edge-of-reach's cut."""
    from mbrl.config import resolve
    from mbrl.train import compose

    def truncation(*overrides: str) -> float | None:
        return resolve(compose(list(overrides))).dynamics.init_truncation

    assert truncation("agent=mopo") is None
    for experiment in ("mopo_cpu", "mobile_paper", "combo_cpu", "rambo_cpu", "morec_mopo_cpu"):
        assert truncation(f"experiment={experiment}") is None, experiment
    assert truncation("experiment=ravl_cpu") == truncation("experiment=ravl_paper") == 2.0


@pytest.mark.parametrize("activation", ["silu", "relu"])
def test_batched_forward_equals_each_member_alone(activation: str):
    cfg = dataclasses.replace(SMALL, ensemble_size=3, num_elites=2, activation=activation)
    model = GaussianEnsemble(4, 2, cfg)
    with torch.no_grad():
        model.input_mean.copy_(torch.randn(6))
        model.input_std.copy_(torch.rand(6) + 0.5)
        for layer in model.layers:
            layer.bias.normal_()
    obs, act = torch.randn(9, 4), torch.randn(9, 2)
    mean, logvar = model.predict(obs, act)
    x_norm = (torch.cat([obs, act], 1) - model.input_mean) / model.input_std
    for e in range(3):
        ref_mean, ref_logvar = reference_member_forward(model, x_norm, e)
        torch.testing.assert_close(mean[e], ref_mean)
        torch.testing.assert_close(logvar[e], ref_logvar)
    # The training path feeds every member its own rows ([E, B, in]); it must equal the per-member loop too.
    per_member = torch.randn(3, 9, 6)
    batched_mean, _ = model._forward(per_member)
    for e in range(3):
        torch.testing.assert_close(batched_mean[e], reference_member_forward(model, per_member[e], e)[0])


def test_loss_adds_half_weight_decay_times_squared_norm():
    model = GaussianEnsemble(2, 1, SMALL)
    no_decay = GaussianEnsemble(2, 1, dataclasses.replace(SMALL, weight_decay=(0.0, 0.0, 0.0)))
    x, y = torch.randn(5, 7, 3), torch.randn(5, 7, 3)
    expected = sum(
        0.5 * wd * layer.weight.square().sum() for wd, layer in zip(SMALL.weight_decay, model.layers, strict=True)
    )
    torch.testing.assert_close(model.supervised_loss(x, y)[0] - no_decay.supervised_loss(x, y)[0], expected)


def test_fit_step_with_the_l2_gradient_by_hand_fits_bit_for_bit_as_autograd_through_the_loss():
    # Weight decay large enough that the L2 gradient moves the weights; bootstrap, holdout split, early stopping
    # bookkeeping as in a real fit.
    cfg = dataclasses.replace(SMALL, weight_decay=(0.05, 0.1, 0.2), max_epochs=4, max_train_steps_per_epoch=5)
    data = toy_transitions(1200, seed=3)
    fast = GaussianEnsemble(1, 1, cfg)
    report = fast.fit(data)
    plain = GaussianEnsemble(1, 1, cfg)
    plain._train_step = functools.partial(plain_train_step, plain)
    plain_report = plain.fit(data)
    assert report.train_loss == plain_report.train_loss and report.holdout_loss == plain_report.holdout_loss
    assert report.elites.tolist() == plain_report.elites.tolist()
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # The decay is in both: without it the same fit ends elsewhere.
    no_decay = GaussianEnsemble(1, 1, dataclasses.replace(cfg, weight_decay=(0.0, 0.0, 0.0)))
    no_decay.fit(data)
    assert not torch.equal(no_decay.hidden[0].weight, fast.hidden[0].weight)


def test_fits_a_nonlinear_function_and_is_uncertain_off_distribution(fitted):
    model, _, report = fitted
    test = toy_transitions(500, seed=2)
    mean, _ = model.predict(test.obs, test.act)
    mse = (mean[model.elites] - targets(test)).square().mean()
    assert mse < 0.15 * targets(test).var(dim=0).mean()  # ~0.015 vs a target variance of ~0.14
    assert report.train_loss[-1] < report.train_loss[0]

    def predictive_variance(low: float, high: float) -> torch.Tensor:
        """Aleatoric + epistemic variance averaged over rows and dims."""
        data = toy_transitions(200, seed=3, low=low, high=high)
        mean, logvar = model.predict(data.obs, data.act)
        return (logvar.exp().mean(dim=0) + mean.var(dim=0)).mean()

    inside = predictive_variance(-1.0, 1.0)
    assert predictive_variance(3.0, 5.0) > 5 * inside
    assert predictive_variance(-5.0, -3.0) > 5 * inside


def test_elites_are_the_lowest_holdout_members_and_snapshots_are_restored(fitted):
    model, holdout, report = fitted
    mean, _ = model.predict(holdout.obs, holdout.act)
    mse = (mean - targets(holdout)).square().mean(dim=(1, 2))
    # The restored weights score exactly what the report (and the buffer) says.
    torch.testing.assert_close(mse, report.holdout_mse)
    torch.testing.assert_close(model.holdout_mse, report.holdout_mse)
    assert model.elites.tolist() == report.elites.tolist() == mse.argsort()[: SMALL.num_elites].tolist()
    assert report.epochs <= SMALL.max_epochs and len(report.holdout_loss) == report.epochs


def test_early_stopping_stops_and_restores_the_best_snapshot():
    # Training pulls [Δs, r] towards [5, -1] while the holdout says [0, 1]: every member's holdout MSE
    # only grows after epoch 1, the first (and so best) snapshot.
    n = 400
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(n, 2, generator=g), torch.randn(n, 1, generator=g)
    flags = torch.zeros(n, dtype=torch.bool)
    train = Transitions(obs, act, -torch.ones(n), obs + 5.0, flags, flags)
    holdout = Transitions(obs[:100], act[:100], torch.ones(100), obs[:100], flags[:100], flags[:100])
    cfg = dataclasses.replace(SMALL, lr=3e-3, max_epochs=50, max_epochs_since_update=3, max_train_steps_per_epoch=2)
    model = GaussianEnsemble(2, 1, cfg)
    report = model.fit(train, holdout=holdout)
    assert report.epochs == 1 + cfg.max_epochs_since_update
    assert report.holdout_loss[-1] > report.holdout_loss[0]
    # Every member is back at its epoch-1 snapshot.
    torch.testing.assert_close(report.holdout_mse.mean().item(), report.holdout_loss[0])
    mean, _ = model.predict(holdout.obs, holdout.act)
    torch.testing.assert_close((mean - targets(holdout)).square().mean(dim=(1, 2)), report.holdout_mse)


def test_max_epochs_caps_training_and_fit_is_deterministic():
    data = toy_transitions(300, seed=0)
    cfg = dataclasses.replace(SMALL, max_epochs=2, max_holdout=None)
    first, second = GaussianEnsemble(1, 1, cfg), GaussianEnsemble(1, 1, cfg)
    report = first.fit(data)
    second.fit(data)
    assert report.epochs == 2 and len(report.train_loss) == 2
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_member_mse_scores_rows_as_the_fit_scored_its_holdout(fitted):
    model, holdout, report = fitted
    torch.testing.assert_close(model.member_mse(holdout), report.holdout_mse)  # the restored best snapshots
    torch.testing.assert_close(GaussianEnsemble.targets(holdout), targets(holdout), rtol=0, atol=0)


def test_on_epoch_sees_each_epochs_weights_and_changes_nothing():
    data, holdout = toy_transitions(300, seed=0), toy_transitions(100, seed=1)
    cfg = dataclasses.replace(SMALL, max_epochs=4)
    watched, plain = GaussianEnsemble(1, 1, cfg), GaussianEnsemble(1, 1, cfg)
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def on_epoch(epoch: int, mse: torch.Tensor) -> None:
        with torch.no_grad():  # the callback's own scoring of the current weights
            seen.append((epoch, mse.clone(), ((watched.predict(holdout.obs, holdout.act)[0] - targets(holdout)) ** 2)))

    report = watched.fit(data, holdout=holdout, on_epoch=on_epoch)
    plain.fit(data, holdout=holdout)
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3, 4]
    for (_, mse, err), mean in zip(seen, report.holdout_loss, strict=True):
        assert mse.shape == (cfg.ensemble_size,) and float(mse.mean()) == pytest.approx(mean)
        # The holdout rows were scored with the weights the callback saw, not the best snapshots.
        torch.testing.assert_close(err.mean(dim=(1, 2)), mse.to(err.dtype), rtol=1e-5, atol=1e-7)
    assert not torch.equal(seen[0][1], seen[-1][1])
    for (name, a), (_, b) in zip(watched.state_dict().items(), plain.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_replaying_the_recorded_curves_stops_and_keeps_what_the_fit_does():
    torch.set_num_threads(1)
    data, holdout = toy_transitions(600, seed=0), toy_transitions(200, seed=1)
    stopping = dataclasses.replace(SMALL, max_epochs=60, max_epochs_since_update=2, improvement_threshold=0.05)
    stopped = GaussianEnsemble(1, 1, stopping)
    report = stopped.fit(data, holdout=holdout)
    assert report.epochs < 60, "the rule must stop the fit early for this test to test it"

    curves: list[list[float]] = []
    recorded = GaussianEnsemble(1, 1, dataclasses.replace(stopping, max_epochs_since_update=61))
    recorded.fit(data, holdout=holdout, on_epoch=lambda epoch, mse: curves.append(mse.tolist()))
    assert len(curves) == 60

    epoch, kept = replay_stopping(curves, cap=60, patience=2, threshold=0.05)
    assert epoch == report.epochs
    kept_mse = torch.tensor([curves[at - 1][m] for m, at in enumerate(kept)])
    torch.testing.assert_close(kept_mse, stopped.holdout_mse, rtol=0, atol=0)
    assert replay_stopping(curves[: report.epochs - 1], cap=None, patience=2, threshold=0.05) is None
    assert replay_stopping(curves, cap=3, patience=2, threshold=0.05)[0] == min(3, report.epochs)


def test_sample_draws_only_elites_and_is_reproducible():
    model = GaussianEnsemble(3, 2, dataclasses.replace(SMALL, ensemble_size=4, num_elites=2))
    with torch.no_grad():
        model.elites.copy_(torch.tensor([3, 1]))
    obs, act = torch.randn(4000, 3), torch.randn(4000, 2)
    step = model.sample(obs, act, torch.Generator().manual_seed(7))
    member = step.info["member"]
    assert set(member.unique().tolist()) == {1, 3}
    assert 0.45 < (member == 1).float().mean() < 0.55  # uniform over elites
    # Each row is its member's Gaussian: standardised residuals are N(0, 1).
    rows = torch.arange(4000)
    draw = torch.cat([step.next_obs - obs, step.reward[:, None]], dim=1)
    z = (draw - step.info["mean"][member, rows]) / step.info["std"][member, rows]
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    again = model.sample(obs, act, torch.Generator().manual_seed(7))
    other = model.sample(obs, act, torch.Generator().manual_seed(8))
    torch.testing.assert_close(again.next_obs, step.next_obs, rtol=0, atol=0)
    torch.testing.assert_close(again.reward, step.reward, rtol=0, atol=0)
    assert torch.equal(again.info["member"], member)
    assert not torch.equal(other.next_obs, step.next_obs)


def test_sample_applies_the_configured_termination_rule():
    model = GaussianEnsemble(11, 3, dataclasses.replace(SMALL, termination="hopper"))
    obs = torch.randn(500, 11)
    obs[:, 0] = 0.75  # near the hopper's height limit so that both outcomes occur
    act = torch.rand(500, 3)
    step = model.sample(obs, act, torch.Generator().manual_seed(0))
    expected = hopper_termination(obs, act, step.next_obs)
    assert torch.equal(step.terminated, expected) and expected.any() and not expected.all()


def test_state_dict_round_trip_gives_identical_predictions(fitted):
    model, holdout, _ = fitted
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = GaussianEnsemble(1, 1, dataclasses.replace(SMALL, seed=123))  # different initial weights
    clone.load_state_dict(torch.load(buffer))
    rebuilt = GaussianEnsemble.from_checkpoint(model.checkpoint())
    for other in (clone, rebuilt):
        for a, b in zip(model.predict(holdout.obs, holdout.act), other.predict(holdout.obs, holdout.act), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert torch.equal(other.elites, model.elites)
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        torch.testing.assert_close(
            model.sample(holdout.obs, holdout.act, g1).next_obs,
            other.sample(holdout.obs, holdout.act, g2).next_obs,
            rtol=0,
            atol=0,
        )
    assert "elites" in model.state_dict() and "input_mean" in model.state_dict()


def test_single_gaussian_is_an_ensemble_of_one():
    cfg = dataclasses.replace(SMALL, ensemble_size=1, num_elites=1, max_epochs=3)
    model = GaussianEnsemble(1, 1, cfg)
    report = model.fit(toy_transitions(300, seed=0))
    assert report.elites.tolist() == [0] and report.holdout_mse.shape == (1,)
    assert torch.isfinite(report.holdout_mse).all()
    data = toy_transitions(50, seed=1)
    mean, logvar = model.predict(data.obs, data.act)
    assert mean.shape == logvar.shape == (1, 50, 2)
    step = model.sample(data.obs, data.act, torch.Generator().manual_seed(0))
    assert not step.info["member"].any() and step.info["std"].shape == (1, 50, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_elites": 8}, "num_elites"),
        ({"weight_decay": (1e-4,)}, "weight_decay"),
        ({"activation": "tanh"}, "silu, relu"),
        ({"holdout_fraction": 0.0}, "holdout_fraction"),
        ({"termination": "ant"}, "halfcheetah, hopper, walker2d"),
        ({"init_truncation": 0.0}, "init_truncation"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(change: dict, message: str):
    with pytest.raises((ValueError, KeyError), match=message):
        EnsembleConfig(**change)


def test_lists_from_yaml_become_tuples():
    cfg = EnsembleConfig(hidden_sizes=[8, 8], weight_decay=[0.0, 0.0, 0.0])
    assert cfg.hidden_sizes == (8, 8) and cfg.weight_decay == (0.0, 0.0, 0.0)


def test_fit_refuses_too_little_data():
    with pytest.raises(ValueError, match="holdout"):
        GaussianEnsemble(1, 1, SMALL).fit(toy_transitions(3, seed=0))

import pytest
import torch

from mbrl.data.scores import D4RL_REFERENCE_SCORES, normalized_scores, summarize


def test_reference_returns_map_to_0_and_100():
    for family, (lo, hi) in D4RL_REFERENCE_SCORES.items():
        s = normalized_scores(torch.tensor([lo, hi]), lo, hi)
        torch.testing.assert_close(s, torch.tensor([0.0, 100.0], dtype=torch.float64), msg=family)


def test_published_hopper_value():
    # 1000 return on hopper: 100 * (1000 + 20.272305) / (3234.3 + 20.272305)
    s = normalized_scores(torch.tensor([1000.0]), *D4RL_REFERENCE_SCORES["hopper"])
    assert s.item() == pytest.approx(100 * 1020.272305 / 3254.572305)


def test_std_is_taken_over_normalised_episodes_not_mapped():
    lo, hi = D4RL_REFERENCE_SCORES["walker2d"]
    returns = torch.tensor([100.0, 2000.0, 4000.0])
    s = summarize(normalized_scores(returns, lo, hi))
    per_episode = [100 * (r - lo) / (hi - lo) for r in returns.tolist()]
    mean = sum(per_episode) / 3
    std = (sum((p - mean) ** 2 for p in per_episode) / 3) ** 0.5
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(std)
    # Pushing the raw std through the affine map would add the offset: clearly different.
    raw_std = returns.double().std(unbiased=False).item()
    assert s.std != pytest.approx(100 * (raw_std - lo) / (hi - lo))
    assert s.ci_low <= s.mean <= s.ci_high


def test_bootstrap_ci_is_reproducible_and_shrinks_with_more_data():
    g = torch.Generator().manual_seed(0)
    small = torch.randn(10, generator=g)
    big = torch.randn(1000, generator=g)
    assert summarize(small) == summarize(small)
    assert (summarize(big).ci_high - summarize(big).ci_low) < (summarize(small).ci_high - summarize(small).ci_low)


def test_degenerate_references_are_refused():
    with pytest.raises(ValueError, match="must differ"):
        normalized_scores(torch.tensor([1.0]), 5.0, 5.0)

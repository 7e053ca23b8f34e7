"""The packaged behaviour policies regenerate the published built-in datasets."""

import pytest

from mbrl.data.behavior import BehaviorBundle, packaged_bundle_path
from mbrl.data.builtin import BUILTIN_DATASETS, build_builtin, builtin_hash, ensure_builtin, recorded_hashes
from mbrl.envs import ENV_FAMILIES


@pytest.mark.parametrize("family", sorted(ENV_FAMILIES))
def test_packaged_bundle_has_a_medium_policy_near_a_third_of_expert(family):
    bundle = BehaviorBundle.load(packaged_bundle_path(family))
    assert bundle.env_id == f"{ENV_FAMILIES[family]}-v5"
    assert bundle.medium_index is not None
    assert [s.step for s in bundle.snapshots] == sorted(s.step for s in bundle.snapshots)


def test_every_builtin_dataset_has_a_recorded_hash():
    assert set(recorded_hashes()) == set(BUILTIN_DATASETS)


def test_regenerated_dataset_matches_the_recorded_hash(tmp_path):
    # hopper-medium: 100k transitions from the packaged policy, a few seconds.
    build_builtin("hopper-medium", root=tmp_path)
    assert builtin_hash("hopper-medium", tmp_path) == recorded_hashes()["hopper-medium"]


def test_unknown_builtin_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="hopper-medium"):
        ensure_builtin("hopper-expert", root=tmp_path)

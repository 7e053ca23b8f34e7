"""The packaged behaviour policies regenerate the published built-in datasets."""

import json
import logging
import os

import pytest

import mbrl.data.builtin as builtin
from mbrl.data.behavior import BehaviorBundle, packaged_bundle_path
from mbrl.data.builtin import (
    BUILTIN_DATASETS,
    HASH_STAMP,
    build_builtin,
    builtin_folder,
    builtin_hash,
    ensure_builtin,
    recorded_hashes,
)
from mbrl.data.generate import collect, write_minari
from mbrl.envs import ENV_FAMILIES


@pytest.mark.parametrize("family", sorted(ENV_FAMILIES))
def test_packaged_bundle_has_a_medium_policy_near_a_third_of_expert(family):
    bundle = BehaviorBundle.load(packaged_bundle_path(family))
    assert bundle.env_id == f"{ENV_FAMILIES[family]}-v5"
    assert bundle.medium_index is not None
    assert [s.step for s in bundle.snapshots] == sorted(s.step for s in bundle.snapshots)


def test_every_builtin_dataset_has_a_recorded_hash():
    assert set(recorded_hashes()) == set(BUILTIN_DATASETS)


@pytest.mark.slow
def test_regenerated_dataset_matches_the_recorded_hash(tmp_path):
    # hopper-medium: 100k transitions from the packaged policy, a few seconds. The generation does not
    # depend on the CPU's code paths (mbrl.data.generate.ACTION_GRID), only on the library versions.
    build_builtin("hopper-medium", root=tmp_path)
    assert builtin_hash("hopper-medium", tmp_path) == recorded_hashes()["hopper-medium"]
    stamp = json.loads((builtin_folder("hopper-medium", tmp_path) / HASH_STAMP).read_text())
    assert stamp["content_hash"] == recorded_hashes()["hopper-medium"]


def _stand_in(root, name="hopper-medium"):
    """A tiny dataset at a built-in's id, as an old or modified copy on disk would be."""
    write_minari(BUILTIN_DATASETS[name].minari_id, collect("Hopper-v5", None, 40, seed=0), "Hopper-v5", "x", "x", root)


def test_a_builtin_on_disk_with_another_hash_is_used_with_a_warning_naming_the_fix(tmp_path, caplog, monkeypatch):
    _stand_in(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mbrl.data.builtin"):
        assert ensure_builtin("hopper-medium", root=tmp_path) == BUILTIN_DATASETS["hopper-medium"].minari_id
    folder = builtin_folder("hopper-medium", tmp_path)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert recorded_hashes()["hopper-medium"][:12] in warning
    assert builtin_hash("hopper-medium", tmp_path)[:12] in warning
    assert f"delete {folder}" in warning and "mbrl-make-dataset hopper-medium --force" in warning

    # The hash is remembered beside the dataset: the next use warns again without reading the data.
    monkeypatch.setattr(builtin, "builtin_hash", lambda *a: pytest.fail("hashed the data again"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mbrl.data.builtin"):
        ensure_builtin("hopper-medium", root=tmp_path)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_a_builtin_on_disk_is_hashed_again_when_its_files_change(tmp_path, caplog, monkeypatch):
    _stand_in(tmp_path)
    actual = builtin_hash("hopper-medium", tmp_path)
    monkeypatch.setattr(builtin, "recorded_hashes", lambda: {"hopper-medium": actual})
    with caplog.at_level(logging.INFO, logger="mbrl.data.builtin"):
        ensure_builtin("hopper-medium", root=tmp_path)  # matches: no warning
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert json.loads((builtin_folder("hopper-medium", tmp_path) / HASH_STAMP).read_text())["content_hash"] == actual

    data = next((builtin_folder("hopper-medium", tmp_path) / "data").glob("*.hdf5"))
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    hashed = []
    monkeypatch.setattr(builtin, "builtin_hash", lambda *a: hashed.append(a) or "0" * 64)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mbrl.data.builtin"):
        ensure_builtin("hopper-medium", root=tmp_path)
    assert len(hashed) == 1 and "used as it is" in caplog.text


def test_the_mismatch_warning_names_the_library_versions_that_differ(tmp_path, caplog, monkeypatch):
    _stand_in(tmp_path)
    monkeypatch.setattr(builtin, "installed_versions", lambda: {**builtin.RECORDED_WITH, "mujoco": "9.9.9"})
    with caplog.at_level(logging.WARNING, logger="mbrl.data.builtin"):
        ensure_builtin("hopper-medium", root=tmp_path)
    assert f"mujoco 9.9.9 (recorded with {builtin.RECORDED_WITH['mujoco']})" in caplog.text
    assert "numpy" not in caplog.text  # only the packages that differ


def test_unknown_builtin_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="hopper-medium"):
        ensure_builtin("hopper-expert", root=tmp_path)


@pytest.mark.parametrize("mujoco", [None, "9.9.9"])
def test_a_freshly_built_mismatch_names_versions_or_a_changed_generation(tmp_path, caplog, monkeypatch, mujoco):
    installed = {**builtin.RECORDED_WITH, **({"mujoco": mujoco} if mujoco else {})}
    monkeypatch.setattr(builtin, "installed_versions", lambda: installed)
    with caplog.at_level(logging.WARNING, logger="mbrl.data.builtin"):
        builtin._warn_if_unrecorded("hopper-medium", tmp_path, "0" * 64, built_now=True)
    if mujoco:
        assert "mujoco 9.9.9 (recorded with" in caplog.text and "install the recorded versions" in caplog.text
    else:
        assert "generation code was changed" in caplog.text and "--record-hashes" in caplog.text

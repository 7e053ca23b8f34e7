"""Every key and value of a training config is checked before anything runs (``mbrl.config.resolve``)."""

import pytest
import torch

from mbrl.config import ConfigError, check_device, resolve
from mbrl.train import compose


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+total_update=10", r"unknown config key total_update \(did you mean total_updates\?\)"),
        ("+rollout.horizn=1", r"unknown config key rollout\.horizn \(did you mean rollout\.horizon\?\)"),
        ("+dynamics.hiden_sizes=[8]", r"dynamics\.hiden_sizes \(did you mean dynamics\.hidden_sizes\?\)"),
        ("+logger.wandbb=true", r"logger\.wandbb"),
        ("eval_episodes=0", "eval_episodes must be positive"),
        ("final_eval_episodes=0", "final_eval_episodes must be positive"),
        ("threads=0", "threads must be positive"),
        ("penalty.coef=-1", r"penalty\.coef must be >= 0"),
        ("resume=maybe", "resume='maybe' is unknown; choose one of auto, true, false, force"),
        ("device=tpu", "device='tpu' is not a device name"),
        ("device=meta", "only cpu and cuda devices are supported"),
    ],
)
def test_bad_key_or_value_is_refused_by_name(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(compose(["agent=mopo", override]))


def test_cuda_without_a_gpu_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"no CUDA GPU is usable here.*use device=cpu"):
        resolve(compose(["device=cuda"]))


def test_cuda_index_beyond_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0").index == 0
    with pytest.raises(ConfigError, match=r"'cuda:3' but this machine has 1 CUDA device"):
        check_device("cuda:3")


def test_valid_config_passes_and_resume_accepts_a_bool():
    cfg = resolve(compose(["agent=ravl", "threads=2", "resume=true"]))
    assert cfg.resume == "true" and cfg.threads == 2
    assert resolve(compose(["resume=false"])).resume == "false"

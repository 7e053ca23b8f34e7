"""The run record names the processor: family and model numbers, not a virtual machine's generic name."""

import io
import platform

import torch

import mbrl.machine
from mbrl.machine import arithmetic, cpu_name, describe

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Processor @ 2.80GHz

processor\t: 1
cpu family\t: 25
model\t\t: 1
model name\t: another processor
"""


def _fake_cpuinfo(monkeypatch, text: str) -> None:
    monkeypatch.setattr(mbrl.machine, "open", lambda *_: io.StringIO(text), raising=False)


def test_the_first_processor_is_named_with_its_family_and_model(monkeypatch):
    _fake_cpuinfo(monkeypatch, CPUINFO)
    assert cpu_name() == "Intel(R) Xeon(R) Processor @ 2.80GHz (family 6 model 106)"
    assert describe()["cpu"] == cpu_name()


def test_without_a_model_name_the_platform_names_it(monkeypatch):
    _fake_cpuinfo(monkeypatch, "processor\t: 0\nBogoMIPS\t: 50.00\n")  # an ARM machine's cpuinfo
    assert cpu_name() == (platform.processor() or platform.machine())


def test_the_record_names_the_kernels_torch_chose():
    info = describe()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()


def test_cpu_arithmetic_is_named_by_processor_and_instructions(monkeypatch):
    _fake_cpuinfo(monkeypatch, CPUINFO)
    capability = torch.backends.cpu.get_cpu_capability()
    assert arithmetic(torch.device("cpu")) == f"Intel(R) Xeon(R) Processor @ 2.80GHz (family 6 model 106), {capability}"

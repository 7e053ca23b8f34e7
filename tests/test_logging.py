import csv

from mbrl.logging import LoggerConfig, RunLogger


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_group_whose_keys_change_keeps_every_value_under_its_own_name(tmp_path):
    logger = RunLogger(tmp_path, LoggerConfig(progress=False), {"seed": 0}, git_revision="0" * 40)
    logger.log("diagnostics", 10, {"a": 1.0, "b": 2.0})
    logger.log("diagnostics", 20, {"a": 3.0, "c": 4.0, "b": 5.0})  # a newer version measures c too
    logger.log("diagnostics", 30, {"a": 6.0})
    rows = read(tmp_path / "diagnostics.csv")
    assert list(rows[0]) == ["step", "a", "b", "c"]
    assert [(r["step"], r["a"], r["b"], r["c"]) for r in rows] == [
        ("10", "1.0", "2.0", ""),
        ("20", "3.0", "5.0", "4.0"),
        ("30", "6.0", "", ""),
    ]
    logger.truncate_after(20)  # a resume from step 20 keeps the widened header
    assert [r["step"] for r in read(tmp_path / "diagnostics.csv")] == ["10", "20"]
    logger.close()

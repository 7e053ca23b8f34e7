"""Imports point down the floors of ``docs/architecture.md`` (section "Floors").

The two tables of that section are the only statement of which floor and group a module is on and
which same-floor imports are allowed; this test reads them, so the doc and the check cannot drift.
Every module of ``mbrl`` (with ``mbrl.agents`` and ``mbrl.dynamics``, which live in the ``agents/`` and
``dynamics/`` folders) is parsed with ``ast``; imports inside functions and ``TYPE_CHECKING`` blocks count.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
# Import name -> folder (setup.cfg's package_dir maps mbrl.agents and mbrl.dynamics).
PACKAGES = {"mbrl": ROOT / "mbrl", "mbrl.agents": ROOT / "agents", "mbrl.dynamics": ROOT / "dynamics"}


@dataclass(frozen=True)
class Place:
    floor: int
    group: str


def modules() -> dict[str, Path]:
    """Every module of the framework by import name -> its file."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def floor_tables() -> tuple[dict[str, Place], dict[str, set[str]]]:
    """The doc's tables: module pattern -> place, and group -> modules of other groups it may import."""
    text = DOC.read_text()
    section = text[text.index("## Floors") :]
    section = section[: section.index("\n## ", 1)]
    places: dict[str, Place] = {}
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = _cells(line)
        names = re.findall(r"`([\w.*]+)`", cells[-1] if cells[0].isdigit() else cells[1])
        if cells[0].isdigit():
            for name in names:
                assert name not in places, f"docs/architecture.md lists {name} twice"
                places[name] = Place(int(cells[0]), cells[1])
        elif cells[0] not in ("floor", "group"):
            allowed[cells[0]] = set(names)
    return places, allowed


PLACES, ALLOWED = floor_tables()


def place_of(module: str) -> Place | None:
    """The table's place of ``module``: its own row, else the nearest ``package.*`` row above it."""
    if module in PLACES:
        return PLACES[module]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        pattern = ".".join(parts[:end]) + ".*"
        if pattern in PLACES:
            return PLACES[pattern]
    return None


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[int, str, list[str]]]:
    """``(line, imported module, names taken from it)`` for every import of ours in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.split(".")[0] == "mbrl"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "mbrl":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # ``from mbrl import resolvers`` imports the module mbrl.resolvers, not a name of mbrl.
                found.append((node.lineno, sub, []) if sub in known else (node.lineno, base, [alias.name]))
    return found


MODULES = modules()


def test_every_module_has_a_floor_and_every_table_entry_exists():
    missing = [m for m in MODULES if place_of(m) is None]
    assert not missing, (
        f"modules without a floor: {', '.join(missing)}. Add each to the Floors table in docs/architecture.md"
    )
    stale = [
        name
        for name in PLACES
        if not (name in MODULES or (name.endswith(".*") and any(m.startswith(name[:-2]) for m in MODULES)))
    ]
    assert not stale, f"docs/architecture.md's Floors table names modules that do not exist: {', '.join(stale)}"
    assert set(ALLOWED) <= {p.group for p in PLACES.values()}, "the allowed-imports table names an unknown group"


def problems_of(module: str, path: Path) -> list[str]:
    """Each import of ``module`` (at ``path``) that breaks the floors, in words."""
    here = place_of(module)
    assert here is not None, module
    problems = []
    for line, target, names in imports_of(path, module, set(MODULES)):
        there = place_of(target)
        where = f"{path.name}:{line} ({module}) imports {target}"
        if there is None:
            problems.append(f"{where}, which has no floor")
        elif there.floor > here.floor:
            problems.append(f"{where} (floor {there.floor}) from floor {here.floor}: imports must point down")
        elif there.group != here.group:
            if there.floor == here.floor and target not in ALLOWED.get(here.group, set()):
                problems.append(
                    f"{where}: {here.group} may use {there.group} only through the interfaces docs/architecture.md "
                    "allows"
                )
            private = [n for n in names if n.startswith("_")]
            if private:
                problems.append(f"{where}: private name {', '.join(private)} of another group")
    return problems


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_floors(module):
    if place_of(module) is None:
        pytest.skip("no floor (reported by test_every_module_has_a_floor_and_every_table_entry_exists)")
    problems = problems_of(module, MODULES[module])
    assert not problems, "\n".join(problems)


def test_the_check_names_upward_sideways_and_private_imports(tmp_path):
    """What the check reports on a dataset module with private, sideways and upward imports."""
    path = tmp_path / "generate.py"
    path.write_text(
        "from mbrl import nn\n"
        "from mbrl.data.transitions import _private\n"
        "from mbrl.dynamics.base import _hidden\n"
        "def f():\n"
        "    from mbrl.train import train\n"
    )
    problems = problems_of("mbrl.data.generate", path)
    assert len(problems) == 4, problems
    assert "private name _private of another group" in problems[0]  # a lower floor's private name too
    assert "mbrl.dynamics.base: datasets may use dynamics only through" in problems[1]
    assert "private name _hidden of another group" in problems[2]
    assert "imports mbrl.train (floor 3) from floor 2" in problems[3]


# -- tests import the framework and tests/helpers.py, nothing else of this repository ------------------
TESTS = ROOT / "tests"
SHARED = "tests.helpers"  # what several test modules share; fixtures come from conftest.py, never imported


def repo_imports_of(path: Path) -> list[str]:
    """Each import in the test file ``path`` of another test module, of a benchmark script or of anything of
    ``tests`` but ``from tests.helpers import ...``, in words."""
    own = {p.stem for p in TESTS.glob("*.py")}  # importable by bare name too, from tests/ on sys.path
    problems = []
    nodes = sorted(ast.walk(ast.parse(path.read_text(), filename=str(path))), key=lambda n: getattr(n, "lineno", 0))
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"{path.name}:{node.lineno}: relative import; use `from {SHARED} import ...`")
                continue
            if node.module == SHARED:
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ("tests", "benchmarks") or top in own:
                problems.append(
                    f"{path.name}:{node.lineno} imports {name}: tests import only `from {SHARED} import ...` of "
                    "this repository (move what tests share to tests/helpers.py, what benchmarks and tests share "
                    "to mbrl, and run a benchmark script as a subprocess)"
                )
    return problems


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_tests_import_no_other_test_module_and_no_benchmark(path):
    problems = repo_imports_of(path)
    assert not problems, "\n".join(problems)


def test_the_tests_check_names_each_import_it_refuses(tmp_path):
    path = tmp_path / "test_example.py"
    source = (
        "from tests.helpers import SMOKE\n"
        "from TESTS.test_conformance_corl import compare\n"
        "import BENCH.throughput\n"
        "def f():\n"
        "    from BENCH.learning import main\n"
        "from tests import helpers\n"
        "import test_train\n"
        "from .helpers import SMOKE\n"
    )
    path.write_text(source.replace("BENCH", "benchmarks").replace("TESTS", "tests"))  # a grep finds real imports only
    problems = repo_imports_of(path)
    assert [p.split(" ")[0].split(":")[1] for p in problems] == ["2", "3", "5", "6", "7", "8"], problems

"""ci/floors.py: pyproject.toml's floors as pip constraints (ci/floors.sh installs and tests them)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("tomllib" if importlib.util.find_spec("tomllib") else "tomli")
_spec = importlib.util.spec_from_file_location("floors", Path(__file__).resolve().parent.parent / "ci" / "floors.py")
floors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floors)


def test_floor_of_a_requirement():
    assert floors.floor("numpy>=2.0") == ("numpy", "2.0")
    assert floors.floor("foo[bar] >= 1.2 , <3") == ("foo", "1.2")


@pytest.mark.parametrize("req", ["cupy-cuda12x", "numpy<3", "numpy==2.0", "numpy>=1,>=2",
                                 "numpy>=2; python_version<'3.12'", "pkg @ https://example.org/pkg.whl"])
def test_a_requirement_without_one_floor_is_refused(req):
    with pytest.raises(ValueError, match="expected"):
        floors.floor(req)


def test_every_declared_dependency_has_a_floor():
    data = floors.tomllib.loads(floors.PYPROJECT.read_text(encoding="utf-8"))
    pins = floors.constraints(data, ["test", "plot", "strict", "mpi"])
    names = [p.split("==")[0] for p in pins]
    assert len(names) == len(set(names)), "one line per package"
    for dep in data["project"]["dependencies"]:
        assert any(dep.startswith(n) for n in names)
    assert all("==" in p and p.split("==")[1][0].isdigit() for p in pins)
    with pytest.raises(KeyError, match="no extra 'nope'"):
        floors.constraints(data, ["nope"])


def test_two_floors_for_one_package_are_refused():
    data = {"project": {"dependencies": ["array-api-strict>=2.3"],
                        "optional-dependencies": {"test": ["array_api_strict>=2.3.1"]}}}
    with pytest.raises(ValueError, match="two different floors"):
        floors.constraints(data, ["test"])

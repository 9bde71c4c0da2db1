"""environment.yml (for conda users) must list what pyproject.toml depends on, with the same lower bounds."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
# PyPI name -> conda-forge name where they differ
CONDA_NAME = {"torch": "pytorch-cpu"}
# test extras a notebook user also needs from conda (the rest come with `pip install -e .[test]`)
USER_EXTRAS: set[str] = set()
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    """('numpy', '>=1.24') from 'numpy>=1.24' (extras dropped, name lower-cased, spaces removed)."""
    match = _REQ.match(requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"])
    extras = dict(_split(r) for r in project.get("optional-dependencies", {}).get("test", []))
    wanted.update({k: v for k, v in extras.items() if k in USER_EXTRAS})
    return {CONDA_NAME.get(k, k): v for k, v in wanted.items()}


def _environment() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, str] = {}
    pip: list[str] = []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            pip.extend(item.get("pip", []))
        else:
            name, spec = _split(item)
            conda[name] = spec
    return conda, pip


def test_every_pyproject_dependency_is_in_environment_yml_with_the_same_bound() -> None:
    conda, _ = _environment()
    wanted = _pyproject()
    missing = sorted(set(wanted) - set(conda))
    assert not missing, f"add to environment.yml: {missing}"
    differ = {k: (wanted[k], conda[k]) for k in wanted if wanted[k] != conda[k]}
    assert not differ, f"bounds differ (pyproject, environment.yml): {differ}"


def test_environment_yml_lists_nothing_pyproject_does_not_know() -> None:
    conda, pip = _environment()
    extra = sorted(set(conda) - set(_pyproject()) - {"python", "pip", "nodejs"})
    assert not extra, f"environment.yml has {extra}, which pyproject.toml does not declare"
    assert "-e ." in pip  # the package itself, editable


def test_python_version_is_one_pyproject_allows() -> None:
    conda, _ = _environment()
    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    major_minor = tuple(int(p) for p in conda["python"].lstrip("=").split(".")[:2])
    assert major_minor >= tuple(int(p) for p in floor.lstrip(">=").split(".")[:2])


def test_nodejs_is_there_for_the_editable_install_to_build_the_lab_extension() -> None:
    conda, _ = _environment()
    assert conda.get("nodejs") == ">=20"  # without it `pip install -e .` silently skips the extension

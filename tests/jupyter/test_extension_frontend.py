"""The JupyterLab extension's frontend unit tests (node's test runner via `jlpm test`), run from pytest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


def _jlpm() -> list[str]:
    """jlpm from this environment (jupyterlab or jupyter-builder ship it); skip without Node.js."""
    if shutil.which("node") is None:
        pytest.skip(
            "Node.js is not installed; the frontend tests need it (it is needed to build the extension too)"
        )
    beside = Path(sys.executable).with_name("jlpm")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("jlpm")
    if found is None:
        pytest.skip("jlpm not found; pip install jupyterlab")
    return [found]


@pytest.mark.slow
def test_frontend_unit_tests_pass() -> None:
    jlpm = _jlpm()
    if not (EXTENSION / "node_modules" / "typescript").exists():
        subprocess.run([*jlpm, "install"], cwd=EXTENSION, check=True, capture_output=True, timeout=600)
    done = subprocess.run(
        [*jlpm, "test"], check=False, cwd=EXTENSION, capture_output=True, text=True, timeout=300
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    passed = re.search(r"^# pass (\d+)$", out, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", out, re.MULTILINE)
    assert passed and failed, out[-2000:]
    assert int(failed.group(1)) == 0
    assert int(passed.group(1)) >= 10, out[-2000:]


def test_labextension_metadata_matches_the_python_package() -> None:
    """The names JupyterLab and pip see must agree, or the wheel ships an extension Lab never loads."""
    import packrat_lab

    package = json.loads((EXTENSION / "package.json").read_text())
    assert package["jupyterlab"]["outputDir"] == "../packrat_lab/labextension"
    (path,) = packrat_lab._jupyter_labextension_paths()
    assert path == {"src": "labextension", "dest": package["name"]}
    (point,) = packrat_lab._jupyter_server_extension_points()
    config = (
        Path(__file__).resolve().parents[2]
        / "jupyter-config"
        / "jupyter_server_config.d"
        / "packrat_lab.json"
    )
    assert json.loads(config.read_text()) == {"ServerApp": {"jpserver_extensions": {"packrat_lab": True}}}
    assert point["module"] == "packrat_lab.jupyter_server"
    install = json.loads((EXTENSION / "install.json").read_text())
    assert install["packageName"] == "packrat_lab"

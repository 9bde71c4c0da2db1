"""The tutorial notebooks: stored clean, parameterised by env vars, and executed end to end on a small model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_quickstart.ipynb", "02_live_reconfiguration.ipynb"]

# small budgets so each notebook runs in well under a minute on 2 cores
SMALL = {
    "PACKRAT_NB_MODEL": "mlp",
    "PACKRAT_NB_BATCHES": "2,4",
    "PACKRAT_NB_SETTINGS": "default,passive",
    "PACKRAT_NB_POINT_TIME": "0.3",
    "PACKRAT_NB_TIME_BUDGET": "60",
    "PACKRAT_NB_REPEATS": "3",
    "PACKRAT_NB_RATE": "40",
    "PACKRAT_NB_PHASE_S": "2",
    "TQDM_DISABLE": "1",
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((NOTEBOOKS / name).read_text())
    return data


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    cells = _load(name)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, name
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_reads_as_a_tutorial_with_a_parameter_cell_first(name: str) -> None:
    cells = _load(name)["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "parameters" in first_code["metadata"].get("tags", [])
    assert 'os.environ.get("PACKRAT_NB_MODEL", "mlp")' in "".join(first_code["source"])
    kinds = [c["cell_type"] for c in cells]
    assert kinds[0] == "markdown"
    # no two code cells in a row without a word in between, except short follow-ups
    assert kinds.count("markdown") >= kinds.count("code") // 2
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "import packrat_lab as pl" in source
    assert "packrat_lab._" not in source and "from packrat_lab.serving" not in source  # public API only


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_on_a_small_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    from packrat_lab.host import detect_host

    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PACKRAT_NB_CORES", str(min(2, detect_host().usable_cores)))
    monkeypatch.setenv("PACKRAT_NB_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    if name.startswith("01"):
        assert len(figures) >= 5  # surface, settings, comparison, core map, plan map, validated comparison
        assert (tmp_path / "mlp.packrat.json").exists() and (tmp_path / "mlp-report.html").exists()
    else:
        assert len(figures) == 1  # the timeline
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "switched" in text

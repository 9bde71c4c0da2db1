"""`import packrat_lab` stays cheap: no torch, plotly, ipywidgets or pandas until used."""

from __future__ import annotations

import subprocess
import sys


def test_import_pulls_no_heavy_modules() -> None:
    code = (
        "import sys, packrat_lab; packrat_lab.Plan; packrat_lab.load_profile; "
        "print(' '.join(m for m in ('torch','plotly','ipywidgets','pandas','transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve() -> None:
    import packrat_lab

    for name in ("Plan", "Instance", "Profile", "load_profile", "PackratError", "get_workload"):
        assert getattr(packrat_lab, name) is not None
    assert set(packrat_lab.__all__) <= set(dir(packrat_lab))

"""Shared fixtures: where the Packrat paper's reference profiles live (beside the checkout).

Tests live by layer (unit, serving, http, ui, cli, jupyter, browser); the helpers they share
(fakes, the schedule checker, process utilities, test models) stay here in tests/, which is put on
sys.path so every layer (and spawned workers, which inherit sys.path) can import them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

REPO = TESTS.parent
REFERENCE_DIR = REPO.parent / "shared" / "reference-profiles"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The paper's published profiles; skip when ../shared is not beside the checkout."""
    if not (REFERENCE_DIR / "packrat-paper-bert.csv").exists():
        pytest.skip(f"reference profiles not found at {REFERENCE_DIR} (../shared beside the checkout)")
    return REFERENCE_DIR


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the real-browser tests last: Playwright's sync API keeps an event loop running in the
    main thread for the rest of the session, which breaks later asyncio-based fixtures."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

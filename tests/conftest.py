"""Shared fixtures: where the committed fixtures and the optional ../shared data live."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def fixtures():
    return FIXTURES


@pytest.fixture(scope="session")
def shared():
    """../shared beside the checkout (CI has it; a user's clone may not)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED} (absent in this checkout)")
    return SHARED

"""Shared fixtures for the CAP tests: where the public conformance samples live."""

from __future__ import annotations

from pathlib import Path

import pytest

CAP_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "cap"


@pytest.fixture(scope="session")
def cap_shared() -> Path:
    """The folder holding the OASIS schemas and the sample alerts."""
    assert (CAP_SHARED / "CAP-v1.2.xsd").is_file(), f"CAP material missing at {CAP_SHARED}"
    return CAP_SHARED

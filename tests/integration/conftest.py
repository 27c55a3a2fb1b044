"""Shared fixtures for the integration tests: where the built programs are."""
import os
import pathlib

import pytest


@pytest.fixture(scope="session")
def build_dir() -> pathlib.Path:
    """The build folder to test (DD_BUILD_DIR, default build/ci-release)."""
    top = pathlib.Path(__file__).resolve().parents[2]
    path = pathlib.Path(os.environ.get("DD_BUILD_DIR", top / "build" / "ci-release"))
    if not path.is_dir():
        pytest.fail(f"build folder {path} not found: run scripts/run-tests.sh")
    return path

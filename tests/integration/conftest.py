"""Shared fixtures for the integration tests: where the built programs are, and for the
uds-indexd tests the generated stubs and a running daemon."""
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


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    from indexd import generate_stubs
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture
def indexd_program(build_dir):
    return build_dir / "server" / "uds-index" / "uds-indexd"


@pytest.fixture
def daemon(indexd_program, tmp_path):
    from indexd import Daemon
    d = Daemon(indexd_program, tmp_path).start()
    yield d
    # A clean stop: under AddressSanitizer a leak would make the exit status non-zero.
    assert d.stop() == 0, d.log.read_text()[-2000:]

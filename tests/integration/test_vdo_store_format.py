"""vdo-store format, run as an operator would: new files, existing volumes, bad sizes and bad
devices."""
import subprocess

import pytest


@pytest.fixture
def vdo_store(build_dir):
    program = build_dir / "server" / "vdo-store" / "vdo-store"

    def run(*args):
        return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                              timeout=120)
    return run


def test_format_a_new_file(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    done = vdo_store("format", "--create=256M", "--logical-size=1G", image)
    assert done.returncode == 0, done.stderr
    assert image.stat().st_size == 256 << 20
    assert "logical size        262144 blocks" in done.stdout
    assert "slabs" in done.stdout
    # The super block is at the start, in both copies.
    data = image.read_bytes()[:8192]
    assert data[:8] == b"VDOSTORE" and data[4096:4104] == b"VDOSTORE"


def test_existing_volume_needs_force(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    assert vdo_store("format", "--create=64M", image).returncode == 0
    again = vdo_store("format", image)
    assert again.returncode == 1
    assert "already holds a volume" in again.stderr
    forced = vdo_store("format", "--force", "--slab-size=1M", image)
    assert forced.returncode == 0, forced.stderr
    assert "of 256 blocks" in forced.stdout


@pytest.mark.parametrize("arguments", [
    ["--create=12345"], ["--create=1X"], ["--logical-size=0", "--create=64M"],
    ["--slab-journal-blocks=0", "--create=64M"], ["--nonsense"], [],
])
def test_bad_usage(vdo_store, tmp_path, arguments):
    image = tmp_path / "volume.img"
    done = vdo_store("format", *arguments, *([image] if arguments else []))
    assert done.returncode == 2, done.stderr
    assert not image.exists() or image.stat().st_size == 64 << 20


@pytest.mark.parametrize("arguments, message", [
    (["--create=256K"], "cannot hold one slab"),
    (["--create=64M", "--slab-size=64M"], "cannot hold one slab"),
    (["--create=64M", "--slab-size=3M"], "power of two"),
    (["--create=64M", "--physical-size=128M"], "the device has"),
    (["--create=64M", "--slab-size=4K"], "power of two"),
])
def test_configurations_that_do_not_fit(vdo_store, tmp_path, arguments, message):
    image = tmp_path / "volume.img"
    done = vdo_store("format", *arguments, image)
    assert done.returncode == 1
    assert message in done.stderr
    assert image.read_bytes()[:8] != b"VDOSTORE"


def test_bad_devices(vdo_store, tmp_path):
    assert vdo_store("format", tmp_path).returncode == 1
    missing = vdo_store("format", tmp_path / "missing" / "volume.img")
    assert missing.returncode == 1 and "No such file" in missing.stderr

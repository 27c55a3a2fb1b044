"""The vdo-store tools, run as an operator would: format (new files, existing volumes, bad sizes
and devices), stats, growing a volume, check, and a read-only rebuild of damaged metadata."""
import json
import struct
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


def test_format_with_a_dedupe_index(vdo_store, tmp_path):
    """An embedded index takes a region of the volume; a remote one only needs a name."""
    image = tmp_path / "volume.img"
    done = vdo_store("format", "--create=4G", "--index=embedded", image)
    assert done.returncode == 0, done.stderr
    assert "dedupe index        embedded, 256 MB" in done.stdout
    assert vdo_store("check", image).returncode == 0
    stats = json.loads(vdo_store("stats", "--json", image).stdout)
    assert stats["index state"] == "offline"
    # The region comes out of the data space.
    plain = tmp_path / "plain.img"
    assert vdo_store("format", "--create=4G", plain).returncode == 0
    plain_stats = json.loads(vdo_store("stats", "--json", plain).stdout)
    assert stats["data blocks used"] == 0
    assert stats["overhead blocks used"] > plain_stats["overhead blocks used"] + 500000
    remote = vdo_store("format", "--force", "--index=remote", "--index-name=vol-a", image)
    assert remote.returncode == 0, remote.stderr
    assert 'dedupe index        remote, "vol-a"' in remote.stdout


@pytest.mark.parametrize("arguments", [["--index=remote"], ["--index=bogus"],
                                       ["--index=embedded", "--index-memory=300"],
                                       ["--index=remote", "--index-name=" + "x" * 65]])
def test_bad_index_options(vdo_store, tmp_path, arguments):
    image = tmp_path / "volume.img"
    done = vdo_store("format", "--create=4G", *arguments, image)
    assert done.returncode == 2
    assert "vdo-store:" in done.stderr or "usage" in done.stderr


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


def stats_of(vdo_store, image):
    done = vdo_store("stats", "--json", image)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_stats_and_growth(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    assert vdo_store("format", "--create=64M", "--logical-size=256M", image).returncode == 0
    stats = stats_of(vdo_store, image)
    assert stats["operating mode"] == "normal"
    assert stats["physical blocks"] == 16384 and stats["logical blocks"] == 65536
    assert stats["data blocks used"] == 0 and stats["logical blocks used"] == 0
    assert 0 < stats["overhead blocks used"] < 1024
    human = vdo_store("stats", image)
    assert "operating mode             : normal" in human.stdout
    # The file grows; the volume takes the new slabs.
    with open(image, "r+b") as f:
        f.truncate(128 << 20)
    grown = vdo_store("grow-physical", image)
    assert grown.returncode == 0, grown.stderr
    assert stats_of(vdo_store, image)["physical blocks"] == 32768
    assert vdo_store("grow-physical", image).returncode == 1
    assert vdo_store("grow-logical", "--size=1G", image).returncode == 0
    assert stats_of(vdo_store, image)["logical blocks"] == 262144
    assert vdo_store("grow-logical", "--size=512M", image).returncode == 1
    assert vdo_store("grow-logical", image).returncode == 2
    assert vdo_store("check", image).returncode == 0


def super_block(image):
    """The fields of the newer super block copy the tools need."""
    data = image.read_bytes()[:8192]
    copies = [data[:4096], data[4096:]]
    newest = max(copies, key=lambda c: struct.unpack_from("<Q", c, 16)[0])
    return {"root_origin": struct.unpack_from("<Q", newest, 88)[0],
            "summary_origin": struct.unpack_from("<Q", newest, 96)[0]}


def damage(image, block, offset=700, size=64):
    with open(image, "r+b") as f:
        f.seek(block * 4096 + offset)
        f.write(bytes([0x5A]) * size)


def test_check_and_rebuild_a_damaged_root(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    assert vdo_store("format", "--create=64M", image).returncode == 0
    assert vdo_store("check", image).returncode == 0
    damage(image, super_block(image)["root_origin"] + 7)
    check = vdo_store("check", image)
    assert check.returncode == 1
    assert "root of tree 7 is damaged" in check.stdout
    rebuilt = vdo_store("rebuild", image)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 damaged pages" in rebuilt.stdout
    assert vdo_store("check", image).returncode == 0
    assert stats_of(vdo_store, image)["read-only rebuild count"] == 1


def test_damaged_summary_makes_the_volume_read_only(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    assert vdo_store("format", "--create=64M", image).returncode == 0
    damage(image, super_block(image)["summary_origin"])
    stats = stats_of(vdo_store, image)
    assert stats["operating mode"] == "read-only"
    # Still read-only next time, until a rebuild.
    assert stats_of(vdo_store, image)["operating mode"] == "read-only"
    assert vdo_store("rebuild", image).returncode == 0
    assert stats_of(vdo_store, image)["operating mode"] == "normal"
    assert vdo_store("check", image).returncode == 0


def test_not_a_volume(vdo_store, tmp_path):
    image = tmp_path / "volume.img"
    image.write_bytes(bytes(1 << 20))
    for command in ("stats", "check", "rebuild", "grow-physical"):
        done = vdo_store(command, image)
        assert done.returncode == 1, command
    assert "holds no volume" in vdo_store("stats", image).stderr
    # One damaged super block copy is survived; both are not.
    for copies in ([0], [0, 1]):
        other = tmp_path / f"v{len(copies)}.img"
        assert vdo_store("format", "--create=64M", other).returncode == 0
        for copy in copies:
            damage(other, copy, 100, 16)
        done = vdo_store("stats", other)
        assert done.returncode == (1 if len(copies) == 2 else 0), done.stderr

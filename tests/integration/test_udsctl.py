"""udsctl and libudsclient against real uds-indexd daemons: every admin command, post and query
of names and file blocks, JSON output, refusals, and two (then three) shards with the C client
routing between them and following a changed shard map without a restart."""
import json
import os
import subprocess
import time

import pytest

from indexd import Daemon, name_of

TOKEN = "t" * 8 + "0123456789abcdef"


@pytest.fixture
def udsctl_program(build_dir):
    return build_dir / "client" / "udsctl"


@pytest.fixture
def load_program(build_dir):
    return build_dir / "bench" / "indexd-load"


def udsctl(program, *args, check=True):
    result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def as_json(program, *args):
    return json.loads(udsctl(program, *args, "--json").stdout)


def hex_names(numbers):
    return [name_of(n).hex() for n in numbers]


def test_admin_commands(udsctl_program, daemon):
    server = f"--server=unix:{daemon.socket}"
    assert udsctl(udsctl_program, server, "health").stdout.strip() == "SERVING"
    created = as_json(udsctl_program, server, "create", "v1", "--zones=1")["created"]
    assert created["name"] == "v1" and created["memory_mb"] == 256 and created["zones"] == 1
    assert "created v2" in udsctl(udsctl_program, server, "create", "v2", "--memory=256").stdout
    listed = as_json(udsctl_program, server, "list")["indexes"]
    assert sorted(i["name"] for i in listed) == ["v1", "v2"]
    stats = as_json(udsctl_program, server, "stats", "v1")
    assert stats["entries_indexed"] == 0 and stats["requests"]["post"]["total"] == 0
    # Each index's identity: non-zero, the same in every report, different for each index.
    nonce = {i["name"]: i["nonce"] for i in listed}
    assert created["nonce"] == nonce["v1"] == stats["nonce"] != 0
    assert nonce["v2"] not in (0, nonce["v1"])
    assert f"nonce {nonce['v1']} " in udsctl(udsctl_program, server, "list").stdout
    lines = udsctl(udsctl_program, server, "stats", "v1").stdout.splitlines()
    assert ["nonce", str(nonce["v1"])] in [line.split() for line in lines]
    assert "saved every index" in udsctl(udsctl_program, server, "save").stdout
    udsctl(udsctl_program, server, "save", "v1")
    udsctl(udsctl_program, server, "drop", "v2", "--delete-storage")
    assert [i["name"] for i in as_json(udsctl_program, server, "list")["indexes"]] == ["v1"]
    # Refusals: exit 1 and the server's reason.
    result = udsctl(udsctl_program, server, "drop", "v2", check=False)
    assert result.returncode == 1 and "no such index" in result.stderr
    result = udsctl(udsctl_program, server, "create", "bad/name", check=False)
    assert result.returncode == 1 and "bad index name" in result.stderr
    assert udsctl(udsctl_program, server, "frobnicate", check=False).returncode == 2


def test_post_and_query(udsctl_program, daemon, tmp_path):
    server = f"--server=127.0.0.1:{daemon.port}"
    udsctl(udsctl_program, server, "create", "v", "--zones=1")
    names = hex_names(range(10))
    data = "00112233445566778899aabbccddeeff"
    out = udsctl(udsctl_program, server, "post", "v", f"{names[0]}:{data}", *names[1:5]).stdout
    assert "5 requests: 0 found, 5 not found" in out
    result = as_json(udsctl_program, server, "query", "v", *names)
    assert result["summary"]["found"] == 5 and result["summary"]["ok"] == 10
    first = result["requests"][0]
    assert first["found"] and first["data"] == data and first["location"] == "open-chapter"
    # File blocks: the second copy of a block finds the first.
    blocks = [os.urandom(4096) for _ in range(300)]
    (tmp_path / "a").write_bytes(b"".join(blocks))
    (tmp_path / "b").write_bytes(b"".join(blocks[:100]) + os.urandom(4096 * 50))
    out = udsctl(udsctl_program, server, "post", "v", f"--file={tmp_path / 'a'}").stdout
    assert "300 requests: 0 found" in out
    result = as_json(udsctl_program, server, "query", "v", f"--file={tmp_path / 'b'}")
    assert result["summary"]["requests"] == 150 and result["summary"]["found"] == 100
    # An unknown index: every request refused, exit 1.
    result = udsctl(udsctl_program, server, "query", "nope", names[0], check=False)
    assert result.returncode == 1 and "refused" in result.stdout


def test_tls_and_token(udsctl_program, indexd_program, tmp_path):
    from indexd import make_ca, make_certificate
    ca = make_ca(tmp_path, "ca")
    server_pair = make_certificate(tmp_path, "server", ca, server=True)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ops {TOKEN} * advice,stats,manage\n")
    import grpc
    d = Daemon(indexd_program, tmp_path, f"--tls-cert={server_pair[1]}",
               f"--tls-key={server_pair[0]}", f"--tokens={tokens}",
               credentials=grpc.ssl_channel_credentials(ca[1].read_bytes())).start()
    common = [f"--server=127.0.0.1:{d.port}", f"--tls-ca={ca[1]}"]
    result = udsctl(udsctl_program, *common, "list", check=False)
    assert result.returncode == 1 and "token" in result.stderr
    udsctl(udsctl_program, *common, f"--token={TOKEN}", "create", "s", "--zones=1")
    out = udsctl(udsctl_program, *common, f"--token={TOKEN}", "post", "s",
                 *hex_names(range(3))).stdout
    assert "3 requests: 0 found, 3 not found" in out
    result = udsctl(udsctl_program, f"--server=127.0.0.1:{d.port}", f"--token={TOKEN}", "list",
                    check=False)
    assert result.returncode == 1  # plain text to a TLS server
    assert d.stop() == 0, d.log.read_text()[-2000:]


def write_map(path, version, daemons):
    lines = [f"# test map\nversion {version}\nindex vol"]
    lines += [f"shard 127.0.0.1:{d.port} vol" for d in daemons]
    path.write_text("\n".join(lines) + "\n")


def shard_of_each(udsctl_program, shard_map, names):
    routes = as_json(udsctl_program, f"--shard-map={shard_map}", "shard-map", "vol",
                     *names)["routes"]
    return [r["server"] for r in routes]


def test_shards(udsctl_program, load_program, indexd_program, tmp_path):
    daemons = []
    try:
        for n in range(3):
            (tmp_path / f"s{n}").mkdir()
            daemons.append(Daemon(indexd_program, tmp_path / f"s{n}").start())
            udsctl(udsctl_program, f"--server=127.0.0.1:{daemons[n].port}", "create", "vol",
                   "--zones=1")
        shard_map = tmp_path / "shards"
        write_map(shard_map, 1, daemons[:2])
        names = hex_names(range(4000))
        # The C client routes each name to one shard; every name is found through the map.
        for start in range(0, 4000, 1000):
            udsctl(udsctl_program, f"--shard-map={shard_map}", "post", "vol",
                   *names[start:start + 1000])
        posted = [as_json(udsctl_program, f"--server=127.0.0.1:{d.port}", "stats",
                          "vol")["requests"]["post"]["total"] for d in daemons]
        assert posted[0] + posted[1] == 4000 and posted[2] == 0
        assert 1600 < posted[0] < 2400, posted
        found = 0
        for start in range(0, 4000, 1000):
            found += as_json(udsctl_program, f"--shard-map={shard_map}", "query", "vol",
                             *names[start:start + 1000])["summary"]["found"]
        assert found == 4000
        # Each name lives on the server the map routes it to.
        before = shard_of_each(udsctl_program, shard_map, names[:400])
        for server in set(before):
            mine = [n for n, s in zip(names[:400], before) if s == server]
            result = as_json(udsctl_program, f"--server={server}", "query", "vol", *mine)
            assert result["summary"]["found"] == len(mine)
        # A third shard takes about a third of the names, and only from the other two: no
        # name moves between the first two.
        before = shard_of_each(udsctl_program, shard_map, names[:3000])
        write_map(shard_map, 2, daemons)
        after = shard_of_each(udsctl_program, shard_map, names[:3000])
        third = f"127.0.0.1:{daemons[2].port}"
        moved = sum(1 for a in after if a == third)
        assert 800 < moved < 1200, moved
        assert all(a in (b, third) for a, b in zip(after, before))
        # A running client follows the map without a restart: the load generator runs while
        # the map goes back to two shards, then to three.
        write_map(shard_map, 3, daemons[:2])
        load = subprocess.Popen([str(load_program), f"--shard-map={shard_map}", "--index=vol",
                                 "--duration=4", "--depth=64", "--seed=99"],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        before_third = as_json(udsctl_program, f"--server={third}", "stats",
                               "vol")["requests"]["post"]["total"]
        write_map(shard_map, 4, daemons)
        out, _ = load.communicate(timeout=60)
        assert load.returncode == 0, out
        after_third = as_json(udsctl_program, f"--server={third}", "stats",
                              "vol")["requests"]["post"]["total"]
        assert before_third == 0 and after_third > 0, (before_third, after_third, out)
    finally:
        for d in daemons:
            assert d.stop() == 0, d.log.read_text()[-2000:]

"""uds-indexd's security driven by Debian's python3-grpcio: TLS, mutual TLS, per-index access
tokens, and reloading certificates and tokens on SIGHUP."""
import signal
import time

import grpc
import pytest

from indexd import (FOUND, POST, QUERY_NO_UPDATE, Daemon, admin, advice, batch, bearer, create,
                    found_numbers, make_ca, make_certificate, post_all)

TENANT_A = "a" * 8 + "1f0e9d8c7b6a5f4e"
TENANT_B = "b" * 8 + "2e1d0c9b8a7f6e5d"
OPERATOR = "o" * 8 + "3d2c1b0a9f8e7d6c"


def credentials(ca, client=None):
    return grpc.ssl_channel_credentials(
        root_certificates=ca[1].read_bytes(),
        private_key=client[0].read_bytes() if client else None,
        certificate_chain=client[1].read_bytes() if client else None)


def wait_for_reload(d, words, timeout=10):
    deadline = time.monotonic() + timeout
    while words not in d.log.read_text():
        assert time.monotonic() < deadline, f"no '{words}' in the log"
        time.sleep(0.05)


def test_tls(stubs, indexd_program, tmp_path):
    ca = make_ca(tmp_path, "ca")
    server = make_certificate(tmp_path, "server", ca, server=True)
    d = Daemon(indexd_program, tmp_path, f"--tls-cert={server[1]}", f"--tls-key={server[0]}",
               credentials=credentials(ca)).start()
    with d.channel(tcp=True) as channel:
        create(stubs, channel, "t")
        post_all(stubs, channel, "t", list(range(100)))
    # Plain text is refused, and so is a client that does not trust the server's CA.
    other_ca = make_ca(tmp_path, "other")
    for channel in (grpc.insecure_channel(f"127.0.0.1:{d.port}"),
                    d.channel(tcp=True, credentials=credentials(other_ca))):
        with channel, pytest.raises(grpc.RpcError) as error:
            admin(stubs, channel).ListIndexes(stubs["index"].ListIndexesRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    # A new server certificate from another CA, taken on SIGHUP: new connections get it.
    new_server = make_certificate(tmp_path, "server2", other_ca, server=True)
    server[1].write_bytes(new_server[1].read_bytes())
    server[0].write_bytes(new_server[0].read_bytes())
    d.process.send_signal(signal.SIGHUP)
    wait_for_reload(d, "TLS files reloaded")
    with d.channel(tcp=True, credentials=credentials(other_ca)) as channel:
        assert found_numbers(stubs, channel, "t", list(range(100))) == set(range(100))
    with d.channel(tcp=True, credentials=credentials(ca)) as channel, \
            pytest.raises(grpc.RpcError) as error:
        admin(stubs, channel).ListIndexes(stubs["index"].ListIndexesRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    # A broken file on reload keeps what is in force.
    server[1].write_text("not a certificate\n")
    d.process.send_signal(signal.SIGHUP)
    wait_for_reload(d, "TLS files not reloaded")
    with d.channel(tcp=True, credentials=credentials(other_ca)) as channel:
        assert found_numbers(stubs, channel, "t", [1]) == {1}
    assert d.stop() == 0, d.log.read_text()[-2000:]


def test_mutual_tls(stubs, indexd_program, tmp_path):
    ca = make_ca(tmp_path, "ca")
    client_ca = make_ca(tmp_path, "clients")
    rogue_ca = make_ca(tmp_path, "rogue")
    server = make_certificate(tmp_path, "server", ca, server=True)
    good = make_certificate(tmp_path, "node1", client_ca, server=False)
    rogue = make_certificate(tmp_path, "intruder", rogue_ca, server=False)
    d = Daemon(indexd_program, tmp_path, f"--tls-cert={server[1]}", f"--tls-key={server[0]}",
               f"--tls-client-ca={client_ca[1]}", credentials=credentials(ca, good)).start()
    with d.channel(tcp=True) as channel:
        create(stubs, channel, "m")
        post_all(stubs, channel, "m", list(range(10)))
    for refused in (credentials(ca), credentials(ca, rogue)):
        with d.channel(tcp=True, credentials=refused) as channel, \
                pytest.raises(grpc.RpcError) as error:
            admin(stubs, channel).ListIndexes(stubs["index"].ListIndexesRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert d.stop() == 0, d.log.read_text()[-2000:]


@pytest.fixture
def tokens_daemon(indexd_program, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"""# test clients
tenant-a  {TENANT_A}  vol-a                advice,stats
tenant-b  {TENANT_B}  vol-b,vol-b-*        advice,stats,manage
operator  {OPERATOR}  *                    advice,stats,manage
""")
    tokens.chmod(0o600)
    d = Daemon(indexd_program, tmp_path, f"--tokens={tokens}").start()
    d.tokens = tokens
    yield d
    assert d.stop() == 0, d.log.read_text()[-2000:]


def expect(code, function, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as error:
        function(*args, **kwargs)
    assert error.value.code() == code, error.value.details()
    return error.value.details()


def test_tokens(stubs, tokens_daemon):
    pb = stubs["index"]
    d = tokens_daemon
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    denied = grpc.StatusCode.PERMISSION_DENIED
    with d.channel() as channel:
        stub = admin(stubs, channel)
        # Health needs no token.
        health = stubs["health_grpc"].HealthStub(channel)
        health.Check(stubs["health"].HealthCheckRequest())
        # No token, a wrong one, a malformed header.
        expect(unauthenticated, stub.ListIndexes, pb.ListIndexesRequest())
        expect(unauthenticated, stub.ListIndexes, pb.ListIndexesRequest(),
               metadata=bearer("x" * 24))
        expect(unauthenticated, stub.ListIndexes, pb.ListIndexesRequest(),
               metadata=[("authorization", OPERATOR)])
        # Creating needs manage on the name.
        expect(denied, create, stubs, channel, "vol-a", token=TENANT_A)
        expect(denied, create, stubs, channel, "vol-a", token=TENANT_B)
        create(stubs, channel, "vol-a", token=OPERATOR)
        create(stubs, channel, "vol-b-1", token=TENANT_B)
        # Each tenant sees, reads and writes only its own indexes.
        assert [i.name for i in stub.ListIndexes(pb.ListIndexesRequest(),
                                                 metadata=bearer(TENANT_A)).indexes] == ["vol-a"]
        assert [i.name for i in stub.ListIndexes(pb.ListIndexesRequest(),
                                                 metadata=bearer(TENANT_B)).indexes] == \
            ["vol-b-1"]
        assert len(stub.ListIndexes(pb.ListIndexesRequest(),
                                    metadata=bearer(OPERATOR)).indexes) == 2
        post_all(stubs, channel, "vol-a", list(range(50)), token=TENANT_A)
        post_all(stubs, channel, "vol-b-1", list(range(50, 60)), token=TENANT_B)
        expect(unauthenticated, post_all, stubs, channel, "vol-a", [1])
        expect(denied, post_all, stubs, channel, "vol-a", [1], token=TENANT_B)
        expect(denied, found_numbers, stubs, channel, "vol-b-1", [50], token=TENANT_A)
        expect(denied, stub.GetStats, pb.StatsRequest(name="vol-a"), metadata=bearer(TENANT_B))
        # On a stream, a batch for another tenant's index ends the stream.
        stream = advice(stubs, channel).Stream(
            iter([batch(stubs, "vol-a", QUERY_NO_UPDATE, range(50), 1),
                  batch(stubs, "vol-b-1", QUERY_NO_UPDATE, range(50, 60), 2)]),
            metadata=bearer(TENANT_A))
        seen = []
        with pytest.raises(grpc.RpcError) as error:
            for reply in stream:
                seen.append(reply.batch_id)
                assert all(r & FOUND for r in reply.results)
        assert error.value.code() == denied and seen == [1]
        # Drop and save need manage; saving every index needs '*'.
        expect(denied, stub.DropIndex, pb.DropIndexRequest(name="vol-a"),
               metadata=bearer(TENANT_A))
        stub.SaveIndex(pb.SaveRequest(name="vol-b-1"), metadata=bearer(TENANT_B))
        expect(denied, stub.SaveIndex, pb.SaveRequest(), metadata=bearer(TENANT_B))
        stub.SaveIndex(pb.SaveRequest(), metadata=bearer(OPERATOR))
        # Nothing the refused calls asked for happened.
        stats = stub.GetStats(pb.StatsRequest(name="vol-a"), metadata=bearer(OPERATOR))
        assert stats.requests[POST] == 50 and stats.entries_indexed == 50


def test_tokens_reload(stubs, tokens_daemon):
    pb = stubs["index"]
    d = tokens_daemon
    with d.channel() as channel:
        create(stubs, channel, "vol-a", token=OPERATOR)
        post_all(stubs, channel, "vol-a", [1], token=TENANT_A)
        # Revoke tenant-a and give vol-a to tenant-b.
        d.tokens.write_text(f"tenant-b {TENANT_B} vol-a\noperator {OPERATOR} * "
                            "advice,stats,manage\n")
        d.process.send_signal(signal.SIGHUP)
        wait_for_reload(d, "tokens for 2 clients reloaded")
        expect(grpc.StatusCode.UNAUTHENTICATED, post_all, stubs, channel, "vol-a", [2],
               token=TENANT_A)
        assert found_numbers(stubs, channel, "vol-a", [1], token=TENANT_B) == {1}
        # A broken file is refused whole; the tokens in force stay.
        d.tokens.write_text(f"tenant-b {TENANT_B}\n")
        d.process.send_signal(signal.SIGHUP)
        wait_for_reload(d, "tokens not reloaded")
        assert found_numbers(stubs, channel, "vol-a", [1], token=TENANT_B) == {1}
        admin(stubs, channel).GetStats(pb.StatsRequest(name="vol-a"), metadata=bearer(OPERATOR))

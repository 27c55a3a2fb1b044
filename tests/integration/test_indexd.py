"""uds-indexd driven by Debian's python3-grpcio: admin, health, advice batches, bad input,
restart after a clean stop and after kill -9, and each index's identity (its nonce) through
all of it."""
import signal
import time

import grpc
import pytest

from indexd import (DELETE, FOUND, POST, QUERY, QUERY_NO_UPDATE, Daemon, admin, advice, batch,
                    create, data_of, found_numbers, post_all)


def test_health_and_unknown_method(stubs, daemon):
    health = stubs["health"]
    with daemon.channel() as channel:
        stub = stubs["health_grpc"].HealthStub(channel)
        reply = stub.Check(health.HealthCheckRequest(service=""))
        assert reply.status == health.HealthCheckResponse.SERVING
        assert stub.Check(health.HealthCheckRequest(service="uds.v1.Advice")).status == \
            health.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health.HealthCheckRequest(service="no.such.Service"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        unknown = channel.unary_unary("/uds.v1.Nothing/Here")
        with pytest.raises(grpc.RpcError) as error:
            unknown(b"", timeout=5)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_admin(stubs, daemon):
    pb = stubs["index"]
    with daemon.channel(tcp=True) as channel:
        stub = admin(stubs, channel)
        info = create(stubs, channel, "alpha")
        assert info.name == "alpha" and info.records_per_volume > 60_000_000
        assert info.path.endswith("alpha.uds") and info.storage_bytes > 0
        create(stubs, channel, "beta")
        names = sorted(i.name for i in stub.ListIndexes(pb.ListIndexesRequest()).indexes)
        assert names == ["alpha", "beta"]
        for bad, code in (("alpha", grpc.StatusCode.ALREADY_EXISTS),
                          ("", grpc.StatusCode.INVALID_ARGUMENT),
                          ("../escape", grpc.StatusCode.INVALID_ARGUMENT),
                          ("x" * 65, grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as error:
                create(stubs, channel, bad)
            assert error.value.code() == code, bad
        with pytest.raises(grpc.RpcError) as error:
            stub.CreateIndex(pb.CreateIndexRequest(name="gamma",
                                                   geometry=pb.Geometry(memory_mb=300)))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as error:
            stub.GetStats(pb.StatsRequest(name="nope"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        stub.SaveIndex(pb.SaveRequest(name="alpha"))
        stub.SaveIndex(pb.SaveRequest())
        stub.DropIndex(pb.DropIndexRequest(name="beta", delete_storage=True))
        assert not (daemon.data_dir / "beta.uds").exists()
        assert [i.name for i in stub.ListIndexes(pb.ListIndexesRequest()).indexes] == ["alpha"]
        with pytest.raises(grpc.RpcError) as error:
            stub.DropIndex(pb.DropIndexRequest(name="beta"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_advice_batches_and_stats(stubs, daemon):
    pb = stubs["index"]
    with daemon.channel() as channel:
        create(stubs, channel, "a")
        create(stubs, channel, "b")
        stub = advice(stubs, channel)
        reply = stub.Batch(batch(stubs, "a", POST, range(1000), batch_id=42))
        assert reply.batch_id == 42
        assert all(r & FOUND == 0 for r in reply.results) and reply.old_data == b""
        assert found_numbers(stubs, channel, "a", list(range(1000))) == set(range(1000))
        # Indexes are isolated.
        assert found_numbers(stubs, channel, "b", list(range(1000))) == set()
        # A POST of a known name finds it, in the open chapter (location 1).
        reply = stub.Batch(batch(stubs, "a", POST, [5]))
        assert reply.results[0] == FOUND | (1 << 1) and reply.old_data == data_of(5)
        stub.Batch(batch(stubs, "a", DELETE, [5]))
        assert found_numbers(stubs, channel, "a", [5, 6]) == {6}
        stats = admin(stubs, channel).GetStats(pb.StatsRequest(name="a"))
        assert stats.requests[POST] == 1001 and stats.found[POST] == 1
        assert stats.requests[DELETE] == 1 and stats.entries_indexed == 999


def test_memory_per_index(stubs, daemon):
    """Each index reports the memory it holds, not the process's."""
    pb = stubs["index"]
    with daemon.channel() as channel:
        stub = admin(stubs, channel)

        def memory(name):
            stats = stub.GetStats(pb.StatsRequest(name=name))
            assert stats.memory_bytes > stats.volume_index_bytes > 0
            return stats.memory_bytes

        create(stubs, channel, "small")
        small = memory("small")
        stub.CreateIndex(pb.CreateIndexRequest(name="large",
                                               geometry=pb.Geometry(memory_mb=512, zones=1)))
        assert memory("small") == small
        assert 1.8 < memory("large") / small < 2.2
        stub.DropIndex(pb.DropIndexRequest(name="large", delete_storage=True))
        assert memory("small") == small


def test_bad_batches(stubs, daemon):
    pb = stubs["index"]
    with daemon.channel() as channel:
        create(stubs, channel, "a")
        stub = advice(stubs, channel)
        bad = [
            pb.AdviceBatch(index="a", types=b"", names=b""),
            pb.AdviceBatch(index="a", types=bytes([QUERY]), names=b"short"),
            pb.AdviceBatch(index="a", types=bytes([9]), names=bytes(16)),
            pb.AdviceBatch(index="a", types=bytes([POST]), names=bytes(16)),
            pb.AdviceBatch(index="a", types=bytes([QUERY] * 4097), names=bytes(16 * 4097)),
        ]
        for message in bad:
            with pytest.raises(grpc.RpcError) as error:
                stub.Batch(message)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as error:
            stub.Batch(batch(stubs, "nope", QUERY, [1]))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        raw = channel.unary_unary("/uds.v1.Advice/Batch")
        with pytest.raises(grpc.RpcError) as error:
            raw(b"\xff\xff\xff\xff", timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Nothing was disturbed.
        stub.Batch(batch(stubs, "a", POST, [1, 2, 3]))
        assert found_numbers(stubs, channel, "a", [1, 2, 3]) == {1, 2, 3}


def nonces(stubs, channel, name):
    """The nonce of an index as ListIndexes and GetStats report it (they must agree)."""
    pb = stubs["index"]
    stub = admin(stubs, channel)
    listed = [i.nonce for i in stub.ListIndexes(pb.ListIndexesRequest()).indexes
              if i.name == name]
    stats = stub.GetStats(pb.StatsRequest(name=name))
    assert listed == [stats.nonce]
    return stats.nonce


def test_restart_after_stop_and_after_kill(stubs, indexd_program, tmp_path):
    program = indexd_program
    numbers = list(range(70_000))  # more than a chapter of the 256 MB geometry (65,659)
    d = Daemon(program, tmp_path).start()
    with d.channel() as channel:
        nonce = create(stubs, channel, "keep").nonce
        assert nonce != 0 and nonces(stubs, channel, "keep") == nonce
        post_all(stubs, channel, "keep", numbers)
    assert d.stop(signal.SIGTERM) == 0
    assert "every index saved" in d.log.read_text()

    d.start()
    with d.channel() as channel:
        # Loaded from its save: the same index, the same identity.
        assert nonces(stubs, channel, "keep") == nonce
        assert found_numbers(stubs, channel, "keep", numbers) == set(numbers)
        post_all(stubs, channel, "keep", list(range(70_000, 140_000)))
    # Chapter 1 (names 65,659 to 131,317) closes in this run and is never saved: wait until it
    # is written, then kill. The rebuild must find every name of chapters 0 and 1.
    with d.channel() as channel:
        for _ in range(100):
            stats = admin(stubs, channel).GetStats(stubs["index"].StatsRequest(name="keep"))
            if stats.chapters_written >= 1:
                break
            time.sleep(0.05)
        assert stats.chapters_written >= 1 and stats.open_chapter == 2
    d.process.send_signal(signal.SIGKILL)
    d.process.wait()
    d.log_file.close()

    d.start()
    with d.channel() as channel:
        stats = admin(stubs, channel).GetStats(stubs["index"].StatsRequest(name="keep"))
        assert stats.rebuilt and stats.nonce == nonce
        closed = list(range(2 * 65_659))
        assert found_numbers(stubs, channel, "keep", closed) == set(closed)
        # Dropped and created again under the same name (and on the same storage file): another
        # index, which a client that remembered the old nonce can tell apart.
        stub = admin(stubs, channel)
        stub.DropIndex(stubs["index"].DropIndexRequest(name="keep"))
        again = create(stubs, channel, "keep").nonce
        assert again not in (0, nonce) and nonces(stubs, channel, "keep") == again
        assert found_numbers(stubs, channel, "keep", numbers[:1000]) == set()
    assert d.stop() == 0

    d.start()
    with d.channel() as channel:
        assert nonces(stubs, channel, "keep") == again
    assert d.stop() == 0

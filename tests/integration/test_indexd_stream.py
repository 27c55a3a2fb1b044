"""uds-indexd's Advice/Stream driven by Debian's python3-grpcio: pipelined batches, back-pressure
on a client that stops reading, errors that end a stream, abandoned streams."""
import threading
import time

import grpc
import pytest

from indexd import (FOUND, POST, QUERY, QUERY_NO_UPDATE, Daemon, admin, advice, batch, create,
                    data_of)


def stats_of(stubs, channel, name):
    return admin(stubs, channel).GetStats(stubs["index"].StatsRequest(name=name))


def test_stream_pipelines_batches(stubs, daemon):
    with daemon.channel() as channel:
        create(stubs, channel, "s")
        numbers = list(range(100 * 500))
        messages = [batch(stubs, "s", POST, numbers[i:i + 500], batch_id=i // 500)
                    for i in range(0, len(numbers), 500)]
        replies = list(advice(stubs, channel).Stream(iter(messages)))
        assert sorted(r.batch_id for r in replies) == list(range(100))
        assert all(len(r.results) == 500 and not any(x & FOUND for x in r.results)
                   for r in replies)
        # Query them back on another stream: every name found with its data.
        messages = [batch(stubs, "s", QUERY_NO_UPDATE, numbers[i:i + 500], batch_id=i)
                    for i in range(0, len(numbers), 500)]
        for reply in advice(stubs, channel).Stream(iter(messages)):
            part = numbers[reply.batch_id:reply.batch_id + 500]
            assert all(x & FOUND for x in reply.results)
            assert reply.old_data == b"".join(data_of(n) for n in part)


def test_stream_back_pressure(stubs, indexd_program, tmp_path):
    """A client that sends and never reads is held back: the server stops reading its stream
    once its window of batches is answered but not sent, and goes on once the client reads."""
    d = Daemon(indexd_program, tmp_path, "--stream-window=2").start()
    total = 400
    sent = 0

    def requests():
        nonlocal sent
        for b in range(total):
            sent += 1
            yield batch(stubs, "bp", POST, range(b * 4096, (b + 1) * 4096), batch_id=b)

    # Without BDP probing the client's HTTP/2 window stays small (64 KiB), so that it holds few
    # of the replies it does not read.
    with d.channel(options=[("grpc.http2.bdp_probe", 0)]) as channel:
        create(stubs, channel, "bp")
        call = advice(stubs, channel).Stream(requests())
        time.sleep(3)
        held_at = sent
        handled = stats_of(stubs, channel, "bp").requests[POST] // 4096
        assert held_at < total / 2, f"the client sent {held_at} of {total} batches unread"
        assert handled < held_at + 1
        # Reading the replies lets the rest through.
        replies = sum(1 for _ in call)
        assert replies == total and sent == total
        assert stats_of(stubs, channel, "bp").requests[POST] == total * 4096
    assert d.stop() == 0, d.log.read_text()[-2000:]


def test_stream_errors_end_the_stream(stubs, daemon):
    pb = stubs["index"]
    with daemon.channel() as channel:
        create(stubs, channel, "e")
        stub = advice(stubs, channel)
        good = [batch(stubs, "e", POST, range(i * 10, i * 10 + 10), batch_id=i)
                for i in range(3)]
        cases = [
            (pb.AdviceBatch(index="e", types=bytes([QUERY]), names=b"short"),
             grpc.StatusCode.INVALID_ARGUMENT, "bytes of names"),
            (pb.AdviceBatch(index="e", types=bytes([QUERY] * 4097), names=bytes(16 * 4097)),
             grpc.StatusCode.INVALID_ARGUMENT, "1 to 4096"),
            (batch(stubs, "missing", QUERY, [1]), grpc.StatusCode.NOT_FOUND, "missing"),
        ]
        for bad, code, words in cases:
            call = stub.Stream(iter(good + [bad] + good))
            replies = []
            with pytest.raises(grpc.RpcError) as error:
                for reply in call:
                    replies.append(reply.batch_id)
            assert error.value.code() == code and words in error.value.details()
            # The batches before the bad one were answered; none after it ran.
            assert sorted(replies) == [0, 1, 2]
        # Malformed protobuf on a raw stream.
        raw = channel.stream_stream("/uds.v1.Advice/Stream")
        with pytest.raises(grpc.RpcError) as error:
            list(raw(iter([b"\xff\xff\xff"]), timeout=10))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # An empty stream ends OK at once.
        assert list(stub.Stream(iter([]))) == []
        assert stats_of(stubs, channel, "e").requests[POST] == 3 * 10 * 3


def test_abandoned_streams(stubs, daemon):
    """Streams cancelled mid-way, with batches in flight, disturb nobody and leak nothing (the
    daemon fixture's clean exit under AddressSanitizer checks the leaks)."""
    with daemon.channel() as channel:
        create(stubs, channel, "ab")
        stub = advice(stubs, channel)
        for round_number in range(5):
            gate = threading.Event()

            def requests():
                for b in range(50):
                    yield batch(stubs, "ab", POST, range(b * 1000, b * 1000 + 1000), b)
                gate.wait(10)

            call = stub.Stream(requests())
            next(call)
            call.cancel()
            gate.set()
            with pytest.raises(grpc.RpcError) as error:
                list(call)
            assert error.value.code() == grpc.StatusCode.CANCELLED
        # Another client on another channel is served meanwhile and after.
        with daemon.channel(tcp=True) as other:
            replies = list(advice(stubs, other).Stream(
                iter([batch(stubs, "ab", QUERY_NO_UPDATE, range(1000), 9)])))
            assert len(replies) == 1 and all(x & FOUND for x in replies[0].results)

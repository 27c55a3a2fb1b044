"""Helpers for the uds-indexd tests: python stubs generated from our .proto files with Debian's
protoc and grpc python plugin, and a daemon started on a unix socket and loopback TCP."""
import hashlib
import importlib
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import grpc

TOP = pathlib.Path(__file__).resolve().parents[2]
PROTO_DIR = TOP / "proto"


def generate_stubs(out_dir: pathlib.Path):
    """Generate the python modules for our protos into out_dir and import them.

    The health proto is compiled from a copy under another directory: its own path would make
    a python package named grpc, which the real grpc package hides."""
    health_src = out_dir / "src" / "healthcheck"
    health_src.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROTO_DIR / "grpc/health/v1/health.proto", health_src / "health.proto")
    common = [f"--python_out={out_dir}", f"--grpc_out={out_dir}",
              "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"]
    subprocess.run(["protoc", f"-I{PROTO_DIR}", *common, "uds/v1/index.proto"], check=True)
    subprocess.run(["protoc", f"-I{out_dir / 'src'}", *common, "healthcheck/health.proto"],
                   check=True)
    sys.path.insert(0, str(out_dir))
    return {
        "index": importlib.import_module("uds.v1.index_pb2"),
        "index_grpc": importlib.import_module("uds.v1.index_pb2_grpc"),
        "health": importlib.import_module("healthcheck.health_pb2"),
        "health_grpc": importlib.import_module("healthcheck.health_pb2_grpc"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A uds-indexd process on a unix socket and a loopback port, with its own data dir.

    Plain text (--insecure) unless `credentials` (grpc.ssl_channel_credentials for the server's
    CA) is given, in which case `extra` must carry the server's --tls-* flags."""

    def __init__(self, program: pathlib.Path, work_dir: pathlib.Path, *extra: str,
                 credentials=None):
        self.program = program
        self.work_dir = work_dir
        self.socket = work_dir / "indexd.sock"
        self.port = free_port()
        self.data_dir = work_dir / "data"
        self.extra = list(extra) + ([] if credentials else ["--insecure"])
        self.credentials = credentials
        self.process = None
        self.log = work_dir / "indexd.log"

    def start(self, timeout: float = 30.0):
        self.log_file = open(self.log, "ab")
        self.process = subprocess.Popen(
            [str(self.program), f"--listen=unix:{self.socket}",
             f"--listen=127.0.0.1:{self.port}", f"--data-dir={self.data_dir}",
             "--log-level=debug", *self.extra],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uds-indexd exited {self.process.returncode}: "
                                   f"{self.log.read_text()}")
            try:
                with self.channel() as channel:
                    grpc.channel_ready_future(channel).result(timeout=0.2)
                return self
            except grpc.FutureTimeoutError:
                time.sleep(0.05)
        raise RuntimeError("uds-indexd did not start")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60.0) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.log_file.close()
        return code

    def channel(self, tcp: bool = False, credentials=None, options=()):
        """A channel to the daemon; TLS with the daemon's credentials (or `credentials`)."""
        target = f"127.0.0.1:{self.port}" if tcp else f"unix:{self.socket}"
        credentials = credentials or self.credentials
        if credentials is None:
            return grpc.insecure_channel(target, options=list(options))
        # The test certificates name localhost; a unix socket has no host name to check.
        return grpc.secure_channel(
            target, credentials,
            options=[("grpc.ssl_target_name_override", "localhost"), *options])


POST, UPDATE, QUERY, QUERY_NO_UPDATE, DELETE = range(5)
FOUND = 1


def name_of(number: int) -> bytes:
    return hashlib.blake2b(struct.pack("<Q", number), digest_size=16).digest()


def data_of(number: int) -> bytes:
    return struct.pack("<QQ", number, ~number & (2**64 - 1))


def batch(stubs, index, kind, numbers, batch_id=7):
    """An AdviceBatch of one request type for the names of `numbers`."""
    with_data = kind in (POST, UPDATE)
    return stubs["index"].AdviceBatch(
        index=index, batch_id=batch_id, types=bytes([kind] * len(numbers)),
        names=b"".join(name_of(n) for n in numbers),
        data=b"".join(data_of(n) for n in numbers) if with_data else b"")


def admin(stubs, channel):
    return stubs["index_grpc"].IndexAdminStub(channel)


def advice(stubs, channel):
    return stubs["index_grpc"].AdviceStub(channel)


def bearer(token):
    """Call metadata carrying an access token."""
    return [("authorization", f"Bearer {token}")] if token else None


def create(stubs, channel, name, token=None):
    pb = stubs["index"]
    return admin(stubs, channel).CreateIndex(
        pb.CreateIndexRequest(name=name, geometry=pb.Geometry(memory_mb=256, zones=1)),
        metadata=bearer(token))


def post_all(stubs, channel, index, numbers, size=4096, token=None):
    stub = advice(stubs, channel)
    for start in range(0, len(numbers), size):
        reply = stub.Batch(batch(stubs, index, POST, numbers[start:start + size]),
                           metadata=bearer(token))
        assert len(reply.results) == len(numbers[start:start + size])


def found_numbers(stubs, channel, index, numbers, size=4096, token=None):
    """Which numbers QUERY_NO_UPDATE finds, checking the data of each."""
    stub = advice(stubs, channel)
    found = set()
    for start in range(0, len(numbers), size):
        part = numbers[start:start + size]
        reply = stub.Batch(batch(stubs, index, QUERY_NO_UPDATE, part), metadata=bearer(token))
        offset = 0
        for n, result in zip(part, reply.results):
            if result & FOUND:
                assert reply.old_data[offset:offset + 16] == data_of(n)
                offset += 16
                found.add(n)
        assert offset == len(reply.old_data)
    return found


def make_ca(directory: pathlib.Path, name: str):
    """A self-signed CA (name.key, name.crt) made with the openssl command."""
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return key, crt


def make_certificate(directory: pathlib.Path, name: str, ca, server: bool):
    """A certificate for `name` signed by `ca` (a make_ca() pair): a server one names
    localhost and 127.0.0.1."""
    ca_key, ca_crt = ca
    key, csr, crt = (directory / f"{name}.key", directory / f"{name}.csr",
                     directory / f"{name}.crt")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    extensions = directory / f"{name}.ext"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                          "extendedKeyUsage=serverAuth\n" if server else
                          "extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
                    "-out", str(crt)], check=True, capture_output=True)
    return key, crt

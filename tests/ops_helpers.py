"""Helpers for the operations tests: run the command, start a moto server process of our own."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time

from django.core.management import call_command
from django.core.management.base import CommandError

from .helpers import TEST_SECRET


def run(*args: str) -> tuple[str, str, int]:
    """`manage.py keyed_storage ARGS`: (stdout, stderr, exit status). Fails if the secret shows anywhere."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("keyed_storage", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as error:
        err.write(f"CommandError: {error}\n")
        code = error.returncode
    assert TEST_SECRET not in out.getvalue() + err.getvalue(), "the secret was printed"
    return out.getvalue(), err.getvalue(), code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_process(**env: str):
    """A moto server as a separate process (so a test can kill it, or give it its own settings)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):  # readiness poll, not a timing assertion
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("moto server did not start")
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def iam_enforcing_s3(bucket: str, users: dict[str, dict], bucket_policy: str | None = None):
    """A moto process that checks signatures and IAM policies, with a bucket and one user per policy.

    moto lets the first INITIAL_NO_AUTH_ACTION_COUNT requests through unchecked: exactly the set-up
    below. Yields (endpoint, {user: (access key, secret)}).
    """
    import json

    import boto3

    actions = 1 + (1 if bucket_policy else 0) + 3 * len(users)
    with moto_process(INITIAL_NO_AUTH_ACTION_COUNT=str(actions)) as (_, endpoint):
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        admin.update(aws_access_key_id="AKIAADMINSETUP000000", aws_secret_access_key="setup")
        s3, iam = boto3.client("s3", **admin), boto3.client("iam", **admin)
        s3.create_bucket(Bucket=bucket)
        if bucket_policy:
            s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy)
        keys = {}
        for user, document in users.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="app", PolicyDocument=json.dumps(document))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        yield endpoint, keys

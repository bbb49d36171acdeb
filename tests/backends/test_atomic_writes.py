"""Local writes are atomic: a writer killed mid-write leaves the previous file whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from keyed_storage import upload

from ..helpers import REPO

ROOT = REPO

WRITER = textwrap.dedent(
    """
    import os, sys, django
    django.setup()
    from django.conf import settings
    settings.MEDIA_ROOT = sys.argv[1]
    from keyed_storage import upload

    class Endless:
        # 64 KiB at a time, forever: the parent kills us mid-write.
        name = "big.bin"
        def read(self, size=-1):
            sys.stdout.write("w"); sys.stdout.flush()
            return b"N" * 65536

    upload(Endless(), "site/big", exact=True)
    """
)


def test_a_writer_killed_with_sigkill_leaves_the_old_file_intact(local, settings):
    old = os.urandom(256 * 1024)
    url = upload(_named(old, "big.bin"), "site/big", exact=True)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, settings.MEDIA_ROOT],
        env={
            **os.environ,
            "PYTHONPATH": os.path.join(ROOT, "testproject"),
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
        },
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    # Wait until the child has written well past the old file's size, then kill it.
    written = 0
    deadline = time.monotonic() + 60
    while written < 200 and time.monotonic() < deadline:
        written += len(child.stdout.read(1))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert written >= 200, "the child never started writing"

    final = os.path.join(settings.MEDIA_ROOT, "site", "big")
    with open(final, "rb") as f:
        assert f.read() == old, "the final name holds a partial write"
    assert requests.get(url, timeout=10).content == old
    leftovers = [n for n in os.listdir(os.path.dirname(final)) if n != "big"]
    assert all(n.startswith(".keyed-") for n in leftovers), leftovers
    assert leftovers, "the kill should have left the writer's temporary file (proof it was mid-write)"


def _named(data: bytes, name: str):
    import io

    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def test_a_failed_local_write_leaves_no_temporary_file_nor_directory(local, settings):
    class Failing:
        name = "x.bin"
        sent = 0

        def read(self, size=-1):
            self.sent += 1
            if self.sent > 3:
                raise OSError("client went away")
            return b"y" * 65536

    with pytest.raises(OSError, match="client went away"):
        upload(Failing(), "users/1/doc")
    leftovers = [
        os.path.join(d, entry)
        for d, directories, files in os.walk(settings.MEDIA_ROOT)
        for entry in files + directories
    ]
    assert leftovers == [], "an empty token directory (or a temporary file) was left behind"

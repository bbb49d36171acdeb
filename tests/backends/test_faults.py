"""Faults: unreachable, refusing or dying S3 servers give an error naming bucket and key,
leave no row pointing at a missing object and no multipart upload open."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from botocore.awsrequest import AWSResponse
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from events.models import Event, Session
from keyed_storage import backends, config, upload
from keyed_storage.backends.s3 import MULTIPART_THRESHOLD
from keyed_storage.exceptions import StorageError

from ..helpers import TEST_KEY, TEST_SECRET, fetch, make_client, public_read_policy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def use_s3(env, endpoint: str, bucket: str) -> None:
    env(BUCKET_NAME=bucket, AWS_KEY=TEST_KEY, AWS_SECRET=TEST_SECRET, AWS_ENDPOINT_URL_S3=endpoint)


def client_of_storage():
    """The one boto3 client keyed_storage shares between all threads of this process."""
    return backends.for_config(config.current()).client


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, *args, **kwargs):
        yield self._body


def answer(status: int, code: str):
    """A before-send hook answering like a failing S3 server, for the operations it is registered on."""
    calls = []

    def hook(request, **kwargs):
        calls.append(request.url)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))

    hook.calls = calls
    return hook


def test_an_unreachable_endpoint_names_bucket_and_key(env):
    use_s3(env, f"http://127.0.0.1:{free_port()}", "nowhere-bucket")
    with pytest.raises(StorageError) as raised:
        upload(SimpleUploadedFile("a.png", b"data"), "users/1/avatar", exact=True)
    message = str(raised.value)
    assert "'nowhere-bucket'" in message and "'users/1/avatar'" in message
    assert "Could not connect" in message


def test_a_prefix_on_an_unreachable_endpoint_names_bucket_and_prefix(env):
    from keyed_storage import KeyedStorage

    use_s3(env, f"http://127.0.0.1:{free_port()}", "nowhere-bucket")
    with pytest.raises(StorageError) as raised:
        KeyedStorage().delete_prefix("events/7")
    message = str(raised.value)
    assert "'nowhere-bucket'" in message and "'events/7'" in message


@pytest.mark.django_db(transaction=True)
def test_a_failed_save_leaves_the_row_as_it_was(s3, monkeypatch):
    event = Event.objects.create(name="Con")
    session = Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("a.wav", b"old"))
    old_name, old_url = session.audio.name, session.audio.url
    hook = answer(500, "InternalError")
    client_of_storage().meta.events.register("before-send.s3.PutObject", hook)
    session.audio = SimpleUploadedFile("b.wav", b"new")
    with pytest.raises(StorageError, match=s3.bucket):
        session.save()
    assert Session.objects.get(pk=session.pk).audio.name == old_name
    assert fetch(old_url) == b"old"
    assert len(hook.calls) == config.current().max_attempts == 2, (
        "a 5xx answer is retried, KEYED_STORAGE_MAX_ATTEMPTS times in all (2 unless set)"
    )


@pytest.mark.django_db(transaction=True)
def test_a_new_row_whose_file_fails_is_not_committed(s3):
    client_of_storage().meta.events.register("before-send.s3.PutObject", answer(503, "SlowDown"))
    event = Event.objects.create(name="Con")
    with pytest.raises(StorageError), transaction.atomic():
        Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("a.wav", b"x"))
    assert not Session.objects.exists()
    assert s3.keys() == []


def test_throttling_is_retried_and_then_succeeds(s3):
    client = client_of_storage()
    failures = answer(503, "SlowDown")

    def once(request, **kwargs):
        if not failures.calls:
            return failures(request, **kwargs)
        return None

    client.meta.events.register("before-send.s3.PutObject", once)
    url = upload(SimpleUploadedFile("a.txt", b"eventually"), "users/1/doc")
    assert len(failures.calls) == 1
    assert fetch(url) == b"eventually"


def test_a_failing_part_aborts_the_multipart_upload(s3):
    client_of_storage().meta.events.register("before-send.s3.UploadPart", answer(500, "InternalError"))
    data = os.urandom(MULTIPART_THRESHOLD * 2 + 1024)
    with pytest.raises(StorageError, match=r"'events/1/sessions/2/audio/[0-9a-f]+/talk\.wav'"):
        upload(SimpleUploadedFile("talk.wav", data), "events/1/sessions/2/audio")
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert s3.keys() == []


def test_a_reader_failing_midway_leaves_nothing_in_s3(s3):
    class Failing:
        name = "big.bin"

        def __init__(self):
            self.sent = 0

        def read(self, size=-1):
            self.sent += 1
            if self.sent > 300:
                raise OSError("client went away")
            return b"z" * 65536

    with pytest.raises(OSError, match="client went away"):
        upload(Failing(), "users/1/big")
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert s3.keys() == []


@pytest.fixture
def moto_process(env):
    """A moto server in its own process, so a test can kill it mid-upload."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    bucket = f"ks-{uuid.uuid4().hex[:12]}"
    client = make_client(endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    use_s3(env, endpoint, bucket)
    yield process, bucket
    process.kill()
    process.wait()


@pytest.mark.django_db(transaction=True)
def test_a_server_dying_mid_multipart_upload(moto_process):
    process, bucket = moto_process
    event = Event.objects.create(name="Con")
    session = Session.objects.create(event=event, title="Talk")

    class KillingReader(io.RawIOBase):
        """Serves a file above the multipart threshold; kills the server once part 2 is read."""

        size = MULTIPART_THRESHOLD * 3

        def __init__(self):
            self.position = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if self.position >= self.size:
                return 0
            if self.position > MULTIPART_THRESHOLD * 1.5 and process.poll() is None:
                process.kill()
                process.wait()
            n = min(len(buffer), self.size - self.position)
            buffer[:n] = b"a" * n
            self.position += n
            return n

    session.audio = File(io.BufferedReader(KillingReader()), name="talk.wav")
    with pytest.raises(StorageError) as raised, transaction.atomic():
        session.save()
    assert bucket in str(raised.value) and f"events/{event.pk}/sessions/{session.pk}/audio/" in str(
        raised.value
    )
    assert Session.objects.get(pk=session.pk).audio.name == ""

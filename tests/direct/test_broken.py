"""A direct upload the server has but cannot read (a crash during its completion, say) ends with
"upload it again": finish_upload() removes it and raises UploadBroken, once; later finishes of
its reference find it missing. A server that does not answer at all is a StorageError and
nothing is deleted: it may come back.

The S3 server is reached through tests/faulty_proxy.py: in "error" mode it answers the reads
of one object with S3's 500 InternalError and passes everything else on (HEAD answers, so the
server says the object exists); the test checks what is left on the server itself."""

from __future__ import annotations

import builtins
import errno
import os
from typing import Any

import pytest
import requests

from events.models import Event, Session
from keyed_storage import KeyedStorage
from keyed_storage.backends import local as local_backend
from keyed_storage.direct.multipart import part_urls
from keyed_storage.direct.tickets import finish_upload, published_name, start_upload
from keyed_storage.exceptions import StorageError, UploadBroken, UploadMissing

from ..helpers import wav_bytes
from .test_forms import save_form, upload_directly

KEY = "events/7/sessions/3/audio"
RECORDING = wav_bytes(20_000)
PART = 5 * 1024 * 1024
LARGE = os.urandom(2 * PART + 1234)


def reads_of(s3, name: str) -> bytes:
    """The start of the request line of a GetObject of `name` (path-style), and of nothing else:
    ListParts of the same name has a query."""
    return f"GET /{s3.bucket}/{name} ".encode()


def posted(s3) -> tuple[str, str]:
    """A direct upload POSTed straight to the S3 server: (its reference, its upload name)."""
    ticket = start_upload(KEY, filename="talk.wav", size=len(RECORDING), content_type="audio/wav")
    response = requests.post(
        ticket.url, data=ticket.fields, files={"file": ("talk.wav", RECORDING)}, timeout=30
    )
    assert response.status_code == 204, response.text
    return ticket.reference, ticket.fields["key"]


def sent_in_parts(s3, env):
    """A multipart direct upload whose parts are all on the S3 server; its ticket."""
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(PART), KEYED_STORAGE_DIRECT_PART_SIZE=str(PART))
    ticket = start_upload(KEY, filename="talk.mp4", size=len(LARGE), content_type="video/mp4")
    for number, url in part_urls(ticket.reference, [1, 2, 3]).items():
        response = requests.put(url, data=LARGE[(number - 1) * PART : number * PART], timeout=60)
        assert response.status_code == 200, response.text
    return ticket


def assert_broken(raised: pytest.ExceptionInfo[UploadBroken]) -> None:
    assert raised.value.code == "direct_broken"
    assert "Please upload it again" in raised.value.messages[0]
    assert isinstance(raised.value.__cause__, StorageError)  # what the server said, for the log


# An object the server cannot read --------------------------------------------------------------


def test_a_posted_upload_the_server_cannot_read_is_removed_and_refused(s3, through):
    reference, upload = posted(s3)
    proxy = through("error", trigger=reads_of(s3, upload))
    with pytest.raises(UploadBroken) as raised:
        finish_upload(reference, key=KEY)
    assert_broken(raised)
    assert proxy.faults == 2  # every attempt KEYED_STORAGE_MAX_ATTEMPTS allows, then no more
    assert s3.keys() == []
    with pytest.raises(UploadMissing, match="not received"):
        finish_upload(reference, key=KEY)


def test_a_multipart_upload_completed_unreadable_is_removed_and_refused(s3, through, env):
    ticket = sent_in_parts(s3, env)
    proxy = through("error", trigger=reads_of(s3, ticket.name))
    with pytest.raises(UploadBroken) as raised:
        finish_upload(ticket.reference, key=KEY)
    assert_broken(raised)
    assert proxy.faults == 2
    assert s3.keys() == []
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    with pytest.raises(UploadMissing, match="not received"):
        finish_upload(ticket.reference, key=KEY)


def test_the_server_answering_again_after_a_refusal_changes_nothing(s3, through):
    reference, upload = posted(s3)
    proxy = through("error", trigger=reads_of(s3, upload))
    with pytest.raises(UploadBroken):
        finish_upload(reference, key=KEY)
    proxy.mode = "pass"
    with pytest.raises(UploadMissing):
        finish_upload(reference, key=KEY)
    assert s3.keys() == []


class _FailingReads:
    """A file opened for reading whose reads fail as a disk's bad sector does."""

    def __init__(self, file: Any):
        self._file = file

    def __enter__(self) -> _FailingReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def fileno(self) -> int:
        return int(self._file.fileno())

    def read(self, size: int = -1) -> bytes:
        raise OSError(errno.EIO, "Input/output error")


def test_a_file_the_disk_cannot_read_is_removed_and_refused(local, monkeypatch):
    ticket = start_upload(KEY, filename="talk.wav", size=len(RECORDING), content_type="audio/wav")
    response = requests.post(
        ticket.url, data=ticket.fields, files={"file": ("talk.wav", RECORDING)}, timeout=30
    )
    assert response.status_code == 204, response.text
    path = KeyedStorage().path(ticket.fields["key"])

    def opened(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = builtins.open(file, mode, *args, **kwargs)
        return _FailingReads(handle) if file == path and mode == "rb" else handle

    # The disk's fault, for this one file: the local backend's open() only.
    monkeypatch.setattr(local_backend.direct, "open", opened, raising=False)
    with pytest.raises(UploadBroken) as raised:
        finish_upload(ticket.reference, key=KEY)
    assert_broken(raised)
    assert not os.path.exists(path)
    with pytest.raises(UploadMissing, match="not received"):
        finish_upload(ticket.reference, key=KEY)


# A server that does not answer: later, and nothing deleted -------------------------------------


def test_a_silent_server_is_a_storage_error_and_a_posted_upload_stays(s3, through):
    reference, upload = posted(s3)
    through("silent")
    with pytest.raises(StorageError) as raised:
        finish_upload(reference, key=KEY)
    assert not isinstance(raised.value, UploadBroken)
    assert s3.keys() == [upload]


def test_a_silent_server_is_a_storage_error_and_a_multipart_upload_stays(s3, through, env):
    ticket = sent_in_parts(s3, env)
    through("silent")
    with pytest.raises(StorageError):
        finish_upload(ticket.reference, key=KEY)
    assert [u["Key"] for u in s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])] == [
        ticket.name
    ]


def test_a_server_silent_at_the_read_keeps_a_completed_multipart_upload(s3, through, env):
    # No answer at all is not a verdict on the object: a later finish may read it.
    ticket = sent_in_parts(s3, env)
    proxy = through("silent", trigger=reads_of(s3, ticket.name))
    with pytest.raises(StorageError) as raised:
        finish_upload(ticket.reference, key=KEY)
    assert not isinstance(raised.value, UploadBroken)
    assert s3.keys() == [ticket.name]
    proxy.mode = "pass"
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert s3.body(ticket.name) == LARGE


# In a form ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_form_shows_the_refusal_as_a_field_error_and_keeps_the_other_fields(s3, through, editor_client):
    session = Session.objects.create(event=Event.objects.create(name="Direct Con"), title="Keynote")
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    upload = ticket["fields"]["key"]
    through("error", trigger=reads_of(s3, upload))
    response = save_form(
        editor_client, session, title="Edited title", **{"audio-reference": ticket["reference"]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "storage cannot read it back. Please upload it again." in page
    assert 'value="Edited title"' in page
    assert s3.keys() == []
    assert published_name(upload) not in s3.keys()
    session.refresh_from_db()
    assert not session.audio and session.title == "Keynote"


@pytest.mark.django_db
def test_a_saved_multipart_upload_that_turns_unreadable_is_never_removed_by_a_later_finish(s3, through, env):
    """The same form sent again after the first was saved: the object is a row's file by then,
    so a read that fails is a StorageError for this request, never a removal."""
    ticket = sent_in_parts(s3, env)
    name = finish_upload(ticket.reference, key=KEY)
    session = Session.objects.create(event=Event.objects.create(name="Direct Con"), title="Keynote")
    Session.objects.filter(pk=session.pk).update(audio=name)
    proxy = through("error", trigger=reads_of(s3, ticket.name))
    with pytest.raises(StorageError) as raised:
        finish_upload(ticket.reference, key=KEY)
    assert not isinstance(raised.value, UploadBroken)
    assert proxy.faults == 2
    assert s3.keys() == [ticket.name]
    proxy.mode = "pass"
    assert s3.body(ticket.name) == LARGE

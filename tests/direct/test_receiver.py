"""The local direct-upload endpoint enforces a ticket as S3 enforces a POST policy.

Every request here is a real HTTP request to the live server. Whatever is refused leaves
nothing under MEDIA_ROOT: no file, no temporary, no directory made for it.
"""

from __future__ import annotations

import http.client
import os
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.core import signing

from keyed_storage import config
from keyed_storage.direct.tickets import finish_upload, start_upload

from ..helpers import fetch, wav_bytes

KEY = "events/7/sessions/3/audio"
DATA = wav_bytes(4000)


@pytest.fixture
def ticket(local):
    return start_upload(KEY, filename="talk.wav", size=len(DATA), content_type="audio/wav")


def everything_under_media() -> list[str]:
    root = config.current().media_root
    found = []
    for directory, directories, files in os.walk(root):
        found += [os.path.relpath(os.path.join(directory, entry), root) for entry in directories + files]
    return sorted(found)


def send(
    url: str, fields: dict[str, str], data: bytes | None = DATA, field: str = "file"
) -> requests.Response:
    files = {field: ("talk.wav", data)} if data is not None else None
    # Without a file, requests would send a urlencoded form; force multipart with an empty part.
    return requests.post(url, data=fields, files=files or {"ignored": (None, "")}, timeout=30)


def test_a_ticket_stores_its_file(ticket):
    response = send(ticket.url, ticket.fields)
    assert response.status_code == 204, response.text
    assert finish_upload(ticket.reference) == ticket.name
    assert fetch(_link(ticket.name)) == DATA


def test_the_endpoint_needs_no_session_or_csrf_token(ticket, settings):
    # The live server runs the project's middleware, CsrfViewMiddleware included; no cookie is sent.
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    assert send(ticket.url, ticket.fields).status_code == 204


def test_a_ticket_cannot_write_another_name(ticket):
    for fields in ({"key": "events/7/sessions/4/audio/x/talk.wav"}, {"key": KEY + "/evil"}, {}):
        response = send(ticket.url, fields)
        assert response.status_code == 403, (fields, response.text)
    assert everything_under_media() == []


def test_fields_beyond_the_ticket_are_refused(ticket):
    response = send(ticket.url, {**ticket.fields, "Content-Type": "text/html"})
    assert response.status_code == 403
    assert everything_under_media() == []


def test_an_altered_ticket_is_refused_before_the_body_is_read(ticket):
    path = urlsplit(ticket.url).path
    payload = path.split("/")[-2]
    for altered in (payload[:-1] + ("A" if payload[-1] != "A" else "B"), "nonsense", payload.split(":")[0]):
        url = ticket.url.replace(payload, altered)
        response = send(url, ticket.fields)
        assert response.status_code == 403, (altered, response.status_code)
    assert everything_under_media() == []


def test_a_ticket_from_another_signer_is_refused(ticket):
    # A value the site signed for something else (here a direct-upload reference) is no ticket.
    url = ticket.url.replace(urlsplit(ticket.url).path.split("/")[-2], ticket.reference)
    assert send(url, ticket.fields).status_code == 403
    assert everything_under_media() == []


def test_an_expired_ticket_is_refused(local, env):
    env(KEYED_STORAGE_DIRECT_EXPIRES="60")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(int(time.time()) - 61)
        )
        old = start_upload(KEY, filename="talk.wav", size=len(DATA), content_type="audio/wav")
    response = send(old.url, old.fields)
    assert response.status_code == 403
    assert "expired" in response.text
    assert everything_under_media() == []


def test_more_bytes_than_the_ticket_admits_are_refused(ticket):
    response = send(ticket.url, ticket.fields, DATA + b"\0")
    assert response.status_code == 413
    assert everything_under_media() == []


def test_much_more_is_refused_whatever_its_size(local):
    small = start_upload(KEY, filename="talk.wav", size=10, content_type="audio/wav")
    response = send(small.url, small.fields, b"\0" * (3 * 1024 * 1024))
    assert response.status_code == 413
    assert everything_under_media() == []


def test_a_body_declared_too_long_is_refused_before_it_is_sent(ticket):
    parts = urlsplit(ticket.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(10**12))
        connection.endheaders()  # and not one byte of the body
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()
    assert everything_under_media() == []


def test_fewer_bytes_than_the_ticket_admits_are_refused(ticket):
    response = send(ticket.url, ticket.fields, DATA[:-1])
    assert response.status_code == 400
    assert everything_under_media() == []


def test_a_ticket_is_used_once(ticket):
    assert send(ticket.url, ticket.fields).status_code == 204
    second = send(ticket.url, ticket.fields, b"\0" * len(DATA))
    assert second.status_code == 409
    assert fetch(_link(ticket.fields["key"])) == DATA


def test_the_file_goes_in_the_field_named_file(ticket):
    assert send(ticket.url, ticket.fields, field="upload").status_code == 400
    assert send(ticket.url, ticket.fields, data=None).status_code == 400
    assert everything_under_media() == []


def test_two_files_are_refused(ticket):
    files = [("file", ("a.wav", DATA)), ("file", ("b.wav", DATA))]
    response = requests.post(ticket.url, data=ticket.fields, files=files, timeout=30)
    assert response.status_code == 400
    assert "one file" in response.text
    assert everything_under_media() == []


def test_only_post(ticket):
    response = requests.get(ticket.url, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_not_a_multipart_form(ticket):
    response = requests.post(ticket.url, data=ticket.fields, timeout=10)
    assert response.status_code == 400
    assert everything_under_media() == []


def test_in_s3_mode_the_endpoint_is_not_there(s3, live_server):
    response = requests.post(f"{live_server.url}/keyed-storage/direct/anything/", timeout=10)
    assert response.status_code == 404


def _link(name: str) -> str:
    from keyed_storage import KeyedStorage

    return KeyedStorage().url(name)


def test_an_unrouted_endpoint_is_named_in_the_error(local, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.ROOT_URLCONF = "tests.debug_urls"
    with pytest.raises(ImproperlyConfigured, match=r"include\('keyed_storage.urls'\)"):
        start_upload(KEY, filename="talk.wav", size=1, content_type="")


def test_a_key_that_is_already_an_exact_file_conflicts(local, caplog):
    from django.core.files.base import ContentFile

    from keyed_storage import KeyedStorage

    KeyedStorage().save("users/1/notes", ContentFile(b"exact"), overwrite=True)
    ticket = start_upload("users/1/notes", filename="n.txt", size=3, content_type="text/plain")
    response = send(ticket.url, ticket.fields, b"abc")
    assert response.status_code == 409
    assert everything_under_media() == ["users", "users/1", "users/1/notes"]
    assert "a part of the key is already a file" in caplog.text


def test_the_file_is_streamed_to_disk_in_small_chunks(local, monkeypatch):
    from keyed_storage.backends.local import Incoming

    writes: list[int] = []
    write = Incoming.write

    def counted(self, data):
        writes.append(len(data))
        write(self, data)

    # The live server runs in this process, so the endpoint writes through the patched method.
    monkeypatch.setattr(Incoming, "write", counted)
    data = os.urandom(8 * 1024 * 1024)
    big = start_upload(KEY, filename="talk.bin", size=len(data), content_type="")
    assert send(big.url, big.fields, data).status_code == 204
    assert sum(writes) == len(data)
    assert max(writes) <= 64 * 1024  # Django's upload handler chunk: never the whole file at once
    assert fetch(_link(big.fields["key"])) == data

"""Direct uploads (keyed_storage.direct): the client POSTs to the ticket's URL, the server finishes.

The client code is the same in both modes and is what a browser or API client does: a
multipart POST of ticket.fields plus the file in a field named "file". S3 mode runs against
moto's server, which stores what a POST sends but does not enforce a POST policy: what the
policy forbids is tested on the local endpoint here and in test_direct_policy.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from django.core import signing

from keyed_storage import KeyedStorage, backends, config
from keyed_storage.backends.s3 import PENDING_HEADERS
from keyed_storage.direct.tickets import Ticket, finish_upload, start_upload
from keyed_storage.exceptions import (
    FileRefused,
    FileTooLarge,
    FileTypeRefused,
    ReferenceRefused,
    UploadMissing,
)
from keyed_storage.keys import FinishedName

from ..helpers import fetch, png_bytes, wav_bytes

AUDIO_KEY = "events/7/sessions/3/audio"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"


def post(ticket: Ticket, data: bytes, filename: str = "upload.bin") -> requests.Response:
    """What every client does with a ticket, whatever the mode."""
    return requests.post(ticket.url, data=ticket.fields, files={"file": (filename, data)}, timeout=30)


def uploaded(ticket: Ticket) -> str:
    """The name the ticket's POST writes: not ticket.name, which finish_upload() publishes to."""
    return ticket.fields["key"]


def stored_names() -> list[str]:
    """Every object in storage, in either mode (temporaries of the local disk included)."""
    current = config.current()
    backend = backends.for_config(current)
    if current.backend == "s3":
        return sorted(backend.names_under("events")) + sorted(backend.names_under("users"))
    found = []
    for directory, _, files in os.walk(current.media_root):
        found += [os.path.relpath(os.path.join(directory, f), current.media_root) for f in files]
    return sorted(found)


def media_directories() -> list[str]:
    root = config.current().media_root
    return sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root) if d != root)


@contextmanager
def issued_ago(seconds: int) -> Iterator[None]:
    """Within it, signatures carry a time `seconds` in the past, as a ticket and a reference
    handed out that long ago would: no test waits for one to expire."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(int(time.time()) - seconds)
        )
        yield


# The round trip, in both modes --------------------------------------------------------------


def test_a_direct_upload_is_stored_under_its_key_and_served_from_its_link(mode):
    data = wav_bytes(20_000)
    ticket = start_upload(
        AUDIO_KEY,
        filename="My Talk.wav",
        size=len(data),
        content_type="audio/wav",
        accept=["audio/*"],
        max_size=1024 * 1024,
    )
    assert ticket.url.startswith("http://127.0.0.1:")
    key, token, filename = ticket.name.rsplit("/", 2)
    assert (key, filename) == (AUDIO_KEY, "My_Talk.wav")
    assert len(token) == 32

    response = post(ticket, data, "My Talk.wav")
    assert response.status_code == 204, response.text

    assert finish_upload(ticket.reference, key=AUDIO_KEY) == ticket.name
    assert stored_names() == [ticket.name]
    link = KeyedStorage().url(ticket.name)
    assert fetch(link) == data
    assert requests.get(link, timeout=10).headers["Content-Type"] == "audio/wav"


def test_a_private_bucket_takes_direct_uploads_and_serves_them_presigned(s3, env):
    s3.client.delete_bucket_policy(Bucket=s3.bucket)  # nothing public: only a signature opens it
    env(KEYED_STORAGE_PRIVATE="1")
    data = wav_bytes()
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=len(data), content_type="audio/wav")
    assert post(ticket, data).status_code == 204
    finish_upload(ticket.reference)
    link = KeyedStorage().url(ticket.name)
    assert "X-Amz-Signature=" in link
    assert fetch(link) == data
    stored = s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)
    assert stored["CacheControl"] == "private, max-age=3600, immutable"


def test_finishing_twice_gives_the_same_name(mode):
    data = png_bytes()
    ticket = start_upload("users/1/avatar", filename="me.png", size=len(data), content_type="image/png")
    assert post(ticket, data).status_code == 204
    assert finish_upload(ticket.reference) == ticket.name
    assert finish_upload(ticket.reference) == ticket.name
    assert fetch(KeyedStorage().url(ticket.name)) == data


def test_a_ticket_used_again_cannot_change_what_was_finished(mode):
    # An S3 POST policy cannot say "create only": its holder can POST again until it expires.
    # What finish_upload() checked is published under a name the ticket cannot write.
    first, second = wav_bytes(1000), bytearray(wav_bytes(1000))
    second[-100:] = b"\xff" * 100  # the same size (the policy pins it), other bytes
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=len(first), content_type="audio/wav")
    assert post(ticket, first).status_code == 204
    name = finish_upload(ticket.reference)
    assert name == ticket.name != uploaded(ticket)
    assert stored_names() == [name]

    assert post(ticket, bytes(second)).status_code == 204  # the upload's name is free again
    assert fetch(KeyedStorage().url(name)) == first
    # Finishing the reference again (a form sent twice) changes nothing and sweeps the stray.
    assert finish_upload(ticket.reference) == name
    assert fetch(KeyedStorage().url(name)) == first
    assert stored_names() == [name]


def test_a_second_finish_does_not_claim_the_file(mode):
    # The first finish's name is that save's own (a rollback removes it); a second finish of
    # the same reference did not make the file, so a rollback of its save must keep it.
    data = wav_bytes(100)
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=len(data), content_type="audio/wav")
    assert post(ticket, data).status_code == 204
    assert isinstance(finish_upload(ticket.reference), FinishedName)
    again = finish_upload(ticket.reference)
    assert again == ticket.name and not isinstance(again, FinishedName)


def test_the_content_type_comes_from_the_bytes_not_the_claim(mode, request):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    data = wav_bytes()
    ticket = start_upload(AUDIO_KEY, filename="talk.bin", size=len(data), content_type="")
    assert post(ticket, data).status_code == 204
    if s3 is not None:
        # Until it is checked, the object is inert: a download of unknown type, cached nowhere.
        before = s3.client.head_object(Bucket=s3.bucket, Key=uploaded(ticket))
        assert (before["ContentType"], before["ContentDisposition"], before["CacheControl"]) == (
            PENDING_HEADERS["Content-Type"],
            PENDING_HEADERS["Content-Disposition"],
            PENDING_HEADERS["Cache-Control"],
        )
    finish_upload(ticket.reference)
    served = requests.get(KeyedStorage().url(ticket.name), timeout=10)
    assert served.content == data
    assert served.headers["Content-Type"] == "audio/wav"
    assert "Content-Disposition" not in served.headers
    if s3 is not None:
        after = s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)
        assert after["ContentType"] == "audio/wav"
        assert "ContentDisposition" not in after
        # What a save of an upload's tokened name gets (keyed_storage.caching).
        assert after["CacheControl"] == config.current().cache_control
        assert after["CacheControl"] == "public, max-age=31536000, immutable"


def test_html_stays_an_attachment_after_finishing(mode):
    ticket = start_upload("users/1/notes", filename="notes.txt", size=len(HTML), content_type="text/plain")
    assert post(ticket, HTML).status_code == 204
    finish_upload(ticket.reference)
    served = requests.get(KeyedStorage().url(ticket.name), timeout=10)
    assert served.content == HTML
    assert served.headers["Content-Type"].startswith("text/html")
    assert served.headers["Content-Disposition"] == "attachment"


def test_an_empty_file_is_a_file(mode):
    ticket = start_upload("users/1/notes", filename="empty.txt", size=0, content_type="text/plain")
    assert post(ticket, b"").status_code == 204
    assert finish_upload(ticket.reference) == ticket.name
    assert fetch(KeyedStorage().url(ticket.name)) == b""


def test_a_photo_loses_its_location_as_in_a_save(mode):
    from PIL import Image

    from ..image_helpers import encode, halves

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    data = encode(halves(200, 100), "JPEG", exif=exif.tobytes())
    ticket = start_upload("users/1/avatar", filename="me.jpg", size=len(data), content_type="image/jpeg")
    assert post(ticket, data).status_code == 204
    assert b"PhoneMaker" in fetch(KeyedStorage().url(uploaded(ticket)))
    finish_upload(ticket.reference)
    served = requests.get(KeyedStorage().url(ticket.name), timeout=10)
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.content.startswith(b"\xff\xd8\xff")
    assert b"PhoneMaker" not in served.content
    assert not Image.open(io.BytesIO(served.content)).getexif().get_ifd(0x8825)
    # Stored again under its tokened name, it is cached as any upload is.
    assert served.headers["Cache-Control"] == config.current().cache_control


# Refusals ------------------------------------------------------------------------------------


def test_html_sent_as_talk_mp3_is_refused_and_removed(mode):
    ticket = start_upload(
        AUDIO_KEY, filename="talk.mp3", size=len(HTML), content_type="audio/mpeg", accept=["audio/*"]
    )
    assert post(ticket, HTML, "talk.mp3").status_code == 204
    assert stored_names() == [uploaded(ticket)]
    with pytest.raises(FileTypeRefused) as refused:
        finish_upload(ticket.reference, key=AUDIO_KEY)
    assert refused.value.code == "file_type"
    assert "text/html" in refused.value.messages[0]
    assert stored_names() == []
    assert not KeyedStorage().exists(ticket.name)
    assert not KeyedStorage().exists(uploaded(ticket))


def test_a_file_larger_than_max_size_is_refused_before_a_ticket(local):
    with pytest.raises(FileTooLarge):
        start_upload(AUDIO_KEY, filename="talk.wav", size=2001, content_type="audio/wav", max_size=2000)
    assert stored_names() == []


def test_a_claimed_type_outside_accept_is_refused_before_a_ticket(local):
    with pytest.raises(FileTypeRefused):
        start_upload(AUDIO_KEY, filename="x.html", size=10, content_type="text/html", accept="audio/*")


@pytest.mark.parametrize("claim", ["", "application/octet-stream", "nonsense"])
def test_a_claim_that_says_nothing_is_left_to_the_bytes(local, claim):
    ticket = start_upload(AUDIO_KEY, filename="talk.opus", size=5, content_type=claim, accept="audio/*")
    assert ticket.name.endswith("/talk.opus")


@pytest.mark.parametrize("size", [-1, 1.5, True, "10"])
def test_sizes_are_whole_numbers_of_bytes(local, size):
    with pytest.raises(ValueError, match="number of bytes"):
        start_upload(AUDIO_KEY, filename="a.wav", size=size, content_type="audio/wav")


def test_a_reference_with_no_upload_behind_it_is_refused(mode):
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=10, content_type="audio/wav")
    with pytest.raises(UploadMissing):
        finish_upload(ticket.reference)


def test_an_incomplete_object_is_refused_and_removed(local):
    # The endpoint never places a partial file; this is what finish_upload() does if one appears.
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=100, content_type="audio/wav")
    KeyedStorage().save(uploaded(ticket), _content(wav_bytes(10)[:60]), overwrite=True)
    with pytest.raises(FileRefused) as refused:
        finish_upload(ticket.reference)
    assert refused.value.code == "direct_incomplete"
    assert stored_names() == []


@pytest.mark.moto_only("the server must store what the policy forbids; SeaweedFS refuses the POST")
def test_an_object_larger_than_its_ticket_is_refused_and_removed(s3):
    # moto stores a POST whatever the policy's content-length-range says; AWS and SeaweedFS
    # refuse it (test_direct_policy.py). finish_upload() checks the size again regardless.
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=100, content_type="audio/wav", max_size=100)
    assert post(ticket, wav_bytes(200)).status_code == 204
    with pytest.raises(FileTooLarge):
        finish_upload(ticket.reference)
    assert stored_names() == []


# References: what they prove ------------------------------------------------------------------


@pytest.fixture
def finished_elsewhere(local):
    """A ticket whose file is stored, and the reference the client hands back."""
    data = wav_bytes()
    ticket = start_upload(
        "users/1/voice", filename="hi.wav", size=len(data), content_type="audio/wav", bound_to="profile:1"
    )
    assert post(ticket, data).status_code == 204
    return ticket


def test_an_altered_reference_is_refused_and_nothing_is_deleted(finished_elsewhere):
    reference = finished_elsewhere.reference
    forged = _resign_payload_unsigned(reference, {"n": "users/2/voice/x/hi.wav"})
    altered_ones = (
        reference[:-2] + ("AA" if not reference.endswith("AA") else "BB"),
        forged,
        "",
        "x:y:z",
        None,
    )
    for altered in altered_ones:
        with pytest.raises(ReferenceRefused) as refused:
            finish_upload(altered, bound_to="profile:1")
        assert refused.value.code == "direct_reference"
    assert stored_names() == [uploaded(finished_elsewhere)]


def test_a_reference_is_bound_to_its_context(finished_elsewhere):
    for other in ("profile:2", ""):
        with pytest.raises(ReferenceRefused):
            finish_upload(finished_elsewhere.reference, bound_to=other)
    assert finish_upload(finished_elsewhere.reference, bound_to="profile:1") == finished_elsewhere.name


def test_a_reference_for_another_key_is_refused(finished_elsewhere):
    with pytest.raises(ReferenceRefused) as refused:
        finish_upload(finished_elsewhere.reference, key="users/2/voice", bound_to="profile:1")
    assert refused.value.code == "direct_key"
    assert stored_names() == [uploaded(finished_elsewhere)]
    assert finish_upload(finished_elsewhere.reference, key="users/1/voice", bound_to="profile:1")


def test_the_reference_does_not_show_its_binding(local):
    ticket = start_upload(
        "users/1/voice", filename="a.wav", size=1, content_type="", bound_to="secret-form:42"
    )
    assert b"secret-form" not in _payload_bytes(ticket.reference)


def test_an_expired_reference_is_refused(local, env):
    env(KEYED_STORAGE_DIRECT_EXPIRES="60")
    with issued_ago(121):  # references live twice the ticket's lifetime
        ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=44, content_type="audio/wav")
    KeyedStorage().save(uploaded(ticket), _content(wav_bytes(0)), overwrite=True)
    with pytest.raises(ReferenceRefused) as refused:
        finish_upload(ticket.reference)
    assert refused.value.code == "direct_expired"


def test_a_reference_outlives_its_ticket_so_a_late_upload_can_finish(local, env):
    env(KEYED_STORAGE_DIRECT_EXPIRES="60")
    with issued_ago(90):
        ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=44, content_type="audio/wav")
    # The ticket has expired: the endpoint no longer takes the file.
    assert post(ticket, wav_bytes(0)).status_code == 403
    # An upload that began in time and arrived late is finished all the same.
    KeyedStorage().save(uploaded(ticket), _content(wav_bytes(0)), overwrite=True)
    assert finish_upload(ticket.reference) == ticket.name


def test_the_expiry_is_configurable(local, env):
    env(KEYED_STORAGE_DIRECT_EXPIRES="600")
    before = time.time()
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=1, content_type="")
    assert before + 600 - 1 <= ticket.expires.timestamp() <= time.time() + 600


# S3: what is signed, and what finishing costs ---------------------------------------------------


def test_the_s3_ticket_is_a_policy_for_one_name_one_size_and_inert_headers(s3):
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=1234, content_type="audio/wav", max_size=5000)
    assert ticket.url == f"{s3.endpoint}/{s3.bucket}"
    policy = json.loads(base64.b64decode(ticket.fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": uploaded(ticket)} in conditions
    # The checked file is published under another name, which the policy does not allow.
    assert uploaded(ticket) != ticket.name
    assert {"bucket": s3.bucket} in conditions
    assert ["content-length-range", 1234, 1234] in conditions
    for field, value in PENDING_HEADERS.items():
        assert {field: value} in conditions
        assert ticket.fields[field] == value
    # No condition lets the client choose a prefix ("starts-with") instead of the name.
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]
    expires = policy["expiration"]
    assert expires.startswith(ticket.expires.strftime("%Y-%m-%dT%H:%M"))


@pytest.mark.parametrize(
    ("variables", "url", "region"),
    [
        ({"BUCKET_NAME": "my-bucket"}, "https://my-bucket.s3.amazonaws.com/", "us-east-1"),
        (
            {"BUCKET_NAME": "my-bucket", "AWS_REGION": "eu-west-1"},
            "https://my-bucket.s3.eu-west-1.amazonaws.com/",
            "eu-west-1",
        ),
        # A dotted name does not match the *.s3 certificate: path-style, as links are.
        (
            {"BUCKET_NAME": "my.dotted.bucket", "AWS_REGION": "eu-west-1"},
            "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket",
            "eu-west-1",
        ),
        # A CDN serves links; uploads go to S3 itself.
        (
            {"BUCKET_NAME": "my-bucket", "KEYED_STORAGE_CUSTOM_DOMAIN": "cdn.example.org"},
            "https://my-bucket.s3.amazonaws.com/",
            "us-east-1",
        ),
    ],
)
def test_an_s3_ticket_posts_to_the_bucket_s_own_host(env, variables, url, region):
    # Signing a POST is local work: no server is needed (nor reached) to issue a ticket.
    env(**{**variables, "AWS_KEY": "AKIAEXAMPLE", "AWS_SECRET": "secret"})
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=3, content_type="")
    assert ticket.url == url
    assert ticket.fields["x-amz-credential"].endswith(f"/{region}/s3/aws4_request")


def test_finishing_in_s3_is_two_heads_a_ranged_get_a_copy_and_a_delete(s3):
    data = wav_bytes(200_000)  # 400 KB: reading all of it would show in the bytes counted
    ticket = start_upload(AUDIO_KEY, filename="talk.wav", size=len(data), content_type="audio/wav")
    assert post(ticket, data).status_code == 204
    seen: Counter[str] = Counter()
    ranges: list[str | None] = []

    def count(request, **kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1
        if request.method == "GET":
            ranges.append(request.headers.get("Range"))

    client = backends.for_config(config.current()).client
    client.meta.events.register("before-send.s3", count)
    try:
        finish_upload(ticket.reference)
    finally:
        client.meta.events.unregister("before-send.s3", count)
    # HEAD of the published name (finished before?), HEAD of the upload, its first 8 KiB,
    # the server-side copy to the published name, the delete of the upload.
    assert seen == Counter({"HeadObject": 2, "GetObject": 1, "CopyObject": 1, "DeleteObject": 1})
    assert [value.decode() if isinstance(value, bytes) else value for value in ranges] == ["bytes=0-8191"]
    assert s3.body(ticket.name) == data
    assert s3.keys() == [ticket.name]


def test_a_refused_s3_upload_costs_no_copy(s3):
    ticket = start_upload(
        AUDIO_KEY, filename="t.mp3", size=len(HTML), content_type="audio/mpeg", accept="audio/*"
    )
    assert post(ticket, HTML).status_code == 204
    seen: Counter[str] = Counter()

    def count(request, **kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1

    client = backends.for_config(config.current()).client
    client.meta.events.register("before-send.s3", count)
    try:
        with pytest.raises(FileTypeRefused):
            finish_upload(ticket.reference)
    finally:
        client.meta.events.unregister("before-send.s3", count)
    assert seen == Counter({"HeadObject": 2, "GetObject": 1, "DeleteObject": 1})
    assert s3.keys() == []


# Helpers ----------------------------------------------------------------------------------------


def _content(data: bytes):
    from django.core.files.base import ContentFile

    return ContentFile(data, name="x")


def _payload_bytes(reference: str) -> bytes:
    import zlib

    payload = reference.split(":", 1)[0]
    compressed = payload.startswith(".")
    raw = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
    return zlib.decompress(raw) if compressed else raw


def _resign_payload_unsigned(reference: str, changes: dict) -> str:
    """The reference with its payload changed and its signature kept: what a client that
    edits the (readable) payload without the site's SECRET_KEY can produce."""
    payload = json.loads(_payload_bytes(reference))
    payload.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
    return encoded.decode() + ":" + reference.split(":", 1)[1]


def test_a_binding_is_a_string(local):
    with pytest.raises(TypeError, match="bound_to is a str"):
        start_upload(AUDIO_KEY, filename="a.wav", size=1, content_type="", bound_to=42)


@pytest.mark.django_db(transaction=True)
def test_a_finished_name_saved_on_a_row_replaces_its_old_file(mode):
    """The example of docs/howto/direct-uploads.rst: the name goes on a model field, whose
    replacement does the rest."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from events.models import Event, Session

    event = Event.objects.create(name="Con")
    session = Session.objects.create(
        event=event, title="Talk", audio=SimpleUploadedFile("old.wav", wav_bytes(10))
    )
    old_name = session.audio.name
    data = wav_bytes(300)
    key = f"events/{event.pk}/sessions/{session.pk}/audio"
    ticket = start_upload(key, filename="new.wav", size=len(data), content_type="audio/wav", accept="audio/*")
    assert post(ticket, data).status_code == 204
    session.audio.name = finish_upload(ticket.reference, key=key)  # as the docs do
    session.save()
    assert Session.objects.get(pk=session.pk).audio.name == ticket.name
    assert fetch(session.audio.url) == data
    assert not KeyedStorage().exists(old_name)

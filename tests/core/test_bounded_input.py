"""No input hangs a worker: every loop over a filename or a header is bounded.

pytest-timeout (configured in pyproject.toml, and tighter here) is the hang detector: a
test that never ends fails with a traceback instead of pinning the run. No test asserts a
duration.
"""

from __future__ import annotations

import io
import unicodedata

import pytest
import requests
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from events.models import Event, Session
from keyed_storage import KeyedStorage, upload
from keyed_storage.keys import MAX_SEGMENT_BYTES, safe_filename, validate_key

from ..helpers import examples, fetch, wav_bytes

# The filename that used to spin safe_filename forever: an "extension" of 200 two-byte
# characters, longer than the 255-byte budget. Django's upload handler lets it through.
LONG_EXTENSION = "a." + "é" * 200

# Filenames of any Unicode, of any length up to several budgets, with and without dots, and
# often with an extension of multi-byte characters longer than the 255-byte budget.
filenames = st.one_of(
    st.text(max_size=600),
    st.builds(
        lambda stem, ext: f"{stem}.{ext}",
        st.text(max_size=20),
        st.text(alphabet=st.characters(min_codepoint=0x80), min_size=130, max_size=300),
    ),
    st.builds(lambda stem, ext: f"{stem}.{ext}", st.text(max_size=300), st.text(max_size=400)),
    st.builds(lambda ext: "." + ext, st.text(min_size=1, max_size=400)),
)


@pytest.mark.timeout(120)
@hsettings(max_examples=examples(500), deadline=None)
@given(filename=filenames)
def test_any_unicode_filename_becomes_a_safe_segment_quickly(filename):
    safe = safe_filename(filename)
    assert safe and "/" not in safe and "\\" not in safe
    assert not safe.startswith(".")
    assert len(safe.encode("utf-8")) <= MAX_SEGMENT_BYTES
    assert unicodedata.is_normalized("NFC", safe)
    validate_key(f"users/1/avatar/{safe}")  # a valid last segment of an object name
    assert safe_filename(safe) == safe  # sanitising is idempotent


@pytest.mark.timeout(10)
def test_an_extension_longer_than_the_budget_is_cut_not_looped_over():
    safe = safe_filename(LONG_EXTENSION)
    assert safe.startswith("a.é") and len(safe.encode("utf-8")) <= MAX_SEGMENT_BYTES


@pytest.mark.timeout(10)
def test_a_long_name_keeps_its_extension():
    assert safe_filename("x" * 400 + ".png") == "x" * (MAX_SEGMENT_BYTES - 4) + ".png"
    assert safe_filename("é" * 300 + ".tar.gz").endswith("é.tar.gz")


@pytest.mark.timeout(60)
def test_upload_of_the_hostile_filename_stores_and_serves(mode):
    url = upload(SimpleUploadedFile(LONG_EXTENSION, b"data"), "users/1/attachment")
    assert fetch(url) == b"data"


@pytest.mark.timeout(60)
def test_a_file_field_with_a_plain_upload_to_shortens_the_hostile_filename(mode):
    storage = KeyedStorage()
    name = storage.save(storage.generate_filename(f"plain/{LONG_EXTENSION}"), io.BytesIO(b"data"))
    assert name.startswith("plain/a.é") and len(name.split("/")[-1].encode("utf-8")) <= MAX_SEGMENT_BYTES
    assert storage.open(name).read() == b"data"


def test_an_explicit_name_with_an_overlong_segment_is_refused_with_the_reason():
    with pytest.raises(SuspiciousFileOperation, match="longer than 255 bytes"):
        KeyedStorage().save(f"plain/{LONG_EXTENSION}", io.BytesIO(b"data"))


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_an_admin_post_with_the_hostile_filename_answers(client, local):
    # The admin's add form of a Session: a FileField whose upload_to is a key builder.
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    event = Event.objects.create(name="Con")
    audio = SimpleUploadedFile(LONG_EXTENSION, wav_bytes(), content_type="audio/wav")
    response = client.post("/admin/events/session/add/", {"event": event.pk, "title": "Talk", "audio": audio})
    assert response.status_code == 302, response.content.decode()[:2000]
    session = Session.objects.get()
    assert session.audio.name.startswith(f"events/{event.pk}/sessions/{session.pk}/audio/")
    assert len(session.audio.name) <= Session._meta.get_field("audio").max_length
    assert fetch(session.audio.url) == wav_bytes()


# Range headers that used to answer 500: a number too long for int() (Python refuses to
# convert more than 4300 digits) and digits that str.isdigit() accepts but int() does not.
HOSTILE_RANGES = [
    "bytes=" + "9" * 4301 + "-",
    "bytes=0-" + "9" * 4301,
    "bytes=-" + "9" * 4301,
    "bytes=²-3",
    "bytes=0-²",
    "bytes=¹-",
    "bytes=-³",
    "bytes=١٢-",  # Arabic-Indic digits
    "bytes=-٣",
    "bytes=0x10-",
    "bytes=+1-2",
    "bytes=1_000-",
    "bytes= -",
    "bytes=--1",
    "bytes=0-1,2-3",
    "chars=0-1",
    "bytes",
    "=",
    "bytes=" + "0" * 10_000 + "1-",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("header", HOSTILE_RANGES, ids=lambda h: h[:24])
def test_a_malformed_or_absurd_range_is_ignored_or_416_never_500(local, header):
    url = upload(SimpleUploadedFile("talk.wav", b"0123456789"), "events/1/sessions/1/audio")
    # Servers read header bytes as Latin-1 ('²' is one byte there); other characters are
    # sent as their UTF-8 bytes, as a client can.
    try:
        raw = header.encode("latin-1")
    except UnicodeEncodeError:
        raw = header.encode("utf-8")
    response = requests.get(url, headers={"Range": raw}, timeout=10)
    assert response.status_code in (200, 416), response.status_code
    if response.status_code == 200:
        assert response.content == b"0123456789"
    else:
        assert response.headers["Content-Range"] == "bytes */10"


@pytest.mark.timeout(60)
def test_a_well_formed_range_with_spaces_still_works(local):
    url = upload(SimpleUploadedFile("talk.wav", b"0123456789"), "events/1/sessions/1/audio")
    response = requests.get(url, headers={"Range": "bytes = 2 - 4"}, timeout=10)
    assert response.status_code == 206 and response.content == b"234"

"""upload(accept=..., max_size=...) and the validators: a refused file stores and deletes nothing."""

from __future__ import annotations

import io
import os

import pytest
from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from events.models import Event, Session
from keyed_storage import KeyedStorage, upload
from keyed_storage.exceptions import FileRefused, FileTooLarge, FileTypeRefused
from keyed_storage.validators import ContentTypeValidator, FileSizeValidator

from ..helpers import fetch, png_bytes, wav_bytes
from ..site_helpers import storage_untouched

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
NOISE = bytes((i * 37 + 11) % 251 for i in range(200))  # binary with no known signature
# MPEG-1 Layer III frames without an ID3 tag (128 kbit/s, 44.1 kHz: 417 bytes each): a header
# alone is not enough, the one where the first frame ends is checked too.
MP3_FRAMES = (b"\xff\xfb\x90\x64" + bytes(413)) * 3


def key_objects(key: str) -> list[str]:
    return KeyedStorage().earlier_objects(key)


def test_a_text_file_cannot_replace_a_good_picture(mode):
    good = upload(SimpleUploadedFile("me.png", png_bytes()), "users/1/avatar", accept=["image/*"])
    with pytest.raises(FileTypeRefused) as refused:
        upload(
            SimpleUploadedFile("me.png", b"not a picture", "image/png"), "users/1/avatar", accept=["image/*"]
        )
    assert isinstance(refused.value, ValidationError)
    assert "text/plain" in refused.value.messages[0] and "image/*" in refused.value.messages[0]
    assert fetch(good) == png_bytes(), "the good picture was deleted"
    assert len(key_objects("users/1/avatar")) == 1, "the refused file was stored"


@pytest.mark.parametrize(
    ("accept", "filename", "data"),
    [
        ("image/*", "a.png", png_bytes()),
        (["image/png", "image/jpeg"], "a.bin", png_bytes()),  # the name does not matter
        ("audio/*", "talk.wav", wav_bytes()),
        ("audio/wav", "talk", wav_bytes()),
        ("audio/mpeg", "talk.mp3", MP3_FRAMES),
        ("audio/mp3", "talk.mp3", MP3_FRAMES),  # an alias people write
        ("application/pdf", "slides.pdf", PDF),
        ("text/csv", "table.csv", b"a,b\n1,2\n"),  # text: the name says which kind
        ("*/*", "anything", NOISE),
    ],
)
def test_files_of_an_accepted_type_are_stored(mode, accept, filename, data):
    assert fetch(upload(SimpleUploadedFile(filename, data), "uploads/1/file", accept=accept)) == data


@pytest.mark.parametrize(
    ("accept", "filename", "data"),
    [
        ("image/*", "me.png", b"<html><script>alert(1)</script>"),
        ("image/png", "me.png", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
        ("application/pdf", "slides.pdf", b"plain text, not a PDF"),
        ("audio/*", "talk.mp3", NOISE),  # a name is not a signature
        ("audio/*", "talk.wav", png_bytes()),
        ("image/png", "empty.png", b""),
    ],
)
def test_files_of_another_type_are_refused_whatever_their_name(mode, accept, filename, data):
    with pytest.raises(FileTypeRefused):
        upload(SimpleUploadedFile(filename, data, "image/png"), "uploads/1/file", accept=accept)
    assert key_objects("uploads/1/file") == []


def test_max_size_is_inclusive(mode):
    data = b"x" * 1000
    assert fetch(upload(SimpleUploadedFile("a.txt", data), "uploads/1/file", max_size=1000)) == data
    with pytest.raises(FileTooLarge, match="1000 bytes"):
        upload(SimpleUploadedFile("b.txt", data + b"y"), "uploads/1/file", max_size=1000)
    assert len(key_objects("uploads/1/file")) == 1


class Stream(io.RawIOBase):
    """A stream of unknown length (no size, no seek), like a request body being read."""

    def __init__(self, size: int):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"s" * n
        self.left -= n
        return n


def test_a_stream_over_max_size_is_refused_midway_and_leaves_nothing(local, settings):
    good = upload(SimpleUploadedFile("a.txt", b"good"), "uploads/1/file")
    with pytest.raises(FileTooLarge):
        upload(File(Stream(5 * 1024 * 1024), name="big.bin"), "uploads/1/file", max_size=1024 * 1024)
    assert fetch(good) == b"good"
    leftovers = [
        os.path.join(directory, name)
        for directory, _, files in os.walk(settings.MEDIA_ROOT)
        for name in files
        if name != "a.txt"
    ]
    assert leftovers == []
    assert len(os.listdir(os.path.join(settings.MEDIA_ROOT, "uploads/1/file"))) == 1


def test_a_large_s3_stream_over_max_size_aborts_its_multipart_upload(s3):
    good = upload(SimpleUploadedFile("a.txt", b"good"), "uploads/1/file")
    with pytest.raises(FileTooLarge):
        upload(File(Stream(30 * 1024 * 1024), name="big.bin"), "uploads/1/file", max_size=20 * 1024 * 1024)
    assert fetch(good) == b"good"
    assert len(s3.keys()) == 1
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_exact_uploads_are_checked_before_the_old_file_is_replaced(mode):
    good = upload(
        SimpleUploadedFile("terms.pdf", PDF), "site/terms.pdf", exact=True, accept="application/pdf"
    )
    with pytest.raises(FileTypeRefused):
        upload(
            SimpleUploadedFile("terms.pdf", b"oops"), "site/terms.pdf", exact=True, accept="application/pdf"
        )
    assert fetch(good) == PDF


@pytest.mark.parametrize("accept", [".pdf", "image", "", [], ["image/*", "pdf"], [None], "*/png"])
def test_a_malformed_accept_is_a_value_error_naming_it(accept):
    with pytest.raises(ValueError, match="accept"):
        upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar", accept=accept)


@pytest.mark.parametrize("max_size", [-1, "10", 1.5, True])
def test_a_malformed_max_size_is_a_value_error(max_size):
    with pytest.raises(ValueError, match="max_size"):
        upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar", max_size=max_size)


# Validators on fields and forms ---------------------------------------------------------


class SlidesForm(forms.Form):
    slides = forms.FileField(validators=[ContentTypeValidator("application/pdf"), FileSizeValidator(100)])


def test_form_validators_check_the_bytes_and_the_size():
    assert SlidesForm(files={"slides": SimpleUploadedFile("s.pdf", PDF)}).is_valid()
    text = SlidesForm(files={"slides": SimpleUploadedFile("s.pdf", b"hello", "application/pdf")})
    assert not text.is_valid()
    assert "text/plain, which is not accepted here. Accepted: application/pdf" in text.errors["slides"][0]
    large = SlidesForm(files={"slides": SimpleUploadedFile("s.pdf", PDF + b" " * 100)})
    assert not large.is_valid() and "larger than 100" in large.errors["slides"][0]


def test_the_validators_raise_file_refused_errors():
    with pytest.raises(FileRefused):
        ContentTypeValidator("image/*")(SimpleUploadedFile("a.png", b"text"))
    with pytest.raises(FileTooLarge):
        FileSizeValidator(1)(SimpleUploadedFile("a.png", b"12"))


def test_validators_deconstruct_for_migrations():
    validator = ContentTypeValidator("image/*", "application/pdf")
    path, args, kwargs = validator.deconstruct()
    assert path == "keyed_storage.validators.ContentTypeValidator"
    assert (args, kwargs) == (("image/*", "application/pdf"), {})
    assert validator == ContentTypeValidator("image/*", "application/pdf")
    assert FileSizeValidator(5).deconstruct() == ("keyed_storage.validators.FileSizeValidator", (5,), {})


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_the_refusal_and_stores_nothing(client, local, settings):
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    event = Event.objects.create(name="Con")
    response = client.post(
        "/admin/events/session/add/",
        {"event": event.pk, "title": "Talk", "slides": SimpleUploadedFile("slides.pdf", b"just text")},
    )
    assert response.status_code == 200
    assert "This file is text/plain, which is not accepted here. Accepted: application/pdf." in (
        response.content.decode()
    )
    assert not Session.objects.exists()
    assert not os.path.exists(settings.MEDIA_ROOT) or not any(
        files for _, _, files in os.walk(settings.MEDIA_ROOT)
    )


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_file_is_not_read_again_when_a_row_is_validated(mode):
    session = Session.objects.create(
        event=Event.objects.create(name="Con"), title="Talk", slides=SimpleUploadedFile("s.pdf", PDF)
    )
    session = Session.objects.get(pk=session.pk)
    with storage_untouched():
        session.full_clean()


@pytest.mark.django_db(transaction=True)
def test_the_demo_upload_view_refuses_a_text_file_and_keeps_the_picture(client, mode):
    user = User.objects.create_user("ada", password="pw")
    client.force_login(user)
    picture = client.post(
        "/avatar/upload/",
        {"profile_pic": SimpleUploadedFile("me.png", png_bytes())},
        headers={"Accept": "application/json"},
    )
    assert picture.status_code == 200
    text = client.post(
        "/avatar/upload/",
        {"profile_pic": SimpleUploadedFile("me.png", b"hello", "image/png")},
        headers={"Accept": "application/json"},
    )
    assert text.status_code == 400 and "not accepted" in text.json()["error"]
    assert fetch(picture.json()["url"]) == png_bytes()
    page = client.post("/avatar/upload/", {"profile_pic": SimpleUploadedFile("me.png", b"hello")})
    assert page.status_code == 400 and "not accepted here" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_refused_upload_inside_a_transaction_deletes_nothing_on_commit(mode):
    good = upload(SimpleUploadedFile("me.png", png_bytes()), "users/1/avatar")
    with transaction.atomic():
        with pytest.raises(FileTypeRefused):
            upload(SimpleUploadedFile("me.png", b"text"), "users/1/avatar", accept="image/*")
    assert fetch(good) == png_bytes()

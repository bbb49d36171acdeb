"""Stored photos lose their location, whichever way they are stored; KEEP_METADATA=1 keeps them whole."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from events.models import Event, Speaker
from keyed_storage import upload

from ..helpers import fetch
from ..image_helpers import image_model
from .test_privacy import (
    assert_nothing_identifying,
    assert_same_pixels,
    phone_jpeg,
    phone_png,
    phone_webp,
)

PHONE_FILES = {"jpg": phone_jpeg, "png": phone_png, "webp": phone_webp}


class Stream(io.RawIOBase):
    """A body of unknown length that cannot seek, as a request stream."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("extension", PHONE_FILES)
def test_upload_stores_a_photo_without_its_location(mode, extension):
    original = PHONE_FILES[extension]()
    stored = fetch(upload(SimpleUploadedFile(f"me.{extension}", original), "users/1/avatar"))
    assert stored != original
    assert_nothing_identifying(stored)
    assert_same_pixels(original, stored)
    assert Image.open(io.BytesIO(stored)).getexif().get(0x0112) == 6  # still shown upright


def test_a_stream_that_cannot_seek_is_cleaned_too(mode):
    original = phone_jpeg()
    stored = fetch(upload(File(Stream(original), name="me.jpg"), "users/1/avatar"))
    assert_nothing_identifying(stored)
    assert_same_pixels(original, stored)


@pytest.mark.django_db(transaction=True)
def test_model_fields_store_photos_without_their_location(mode):
    original = phone_jpeg()
    speaker = Speaker.objects.create(
        event=Event.objects.create(name="Con"), name="Ada", photo=SimpleUploadedFile("ada.jpg", original)
    )
    stored = fetch(speaker.photo.url)
    assert_nothing_identifying(stored)
    assert_same_pixels(original, stored)


@pytest.mark.django_db(transaction=True)
def test_an_image_fields_variants_and_original_are_both_clean(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.jpg", phone_jpeg(orientation=6)))
        assert_nothing_identifying(fetch(row.image.url))
        for variant in row.image.variants().values():
            data = fetch(variant.url)
            assert_nothing_identifying(data)
            assert not Image.open(io.BytesIO(data)).getexif()


def test_keep_metadata_stores_photos_byte_for_byte(mode, env):
    env(KEYED_STORAGE_KEEP_METADATA="1")
    original = phone_jpeg()
    assert fetch(upload(SimpleUploadedFile("me.jpg", original), "users/1/avatar")) == original


def test_files_that_are_not_photos_are_stored_as_they_are(mode):
    data = b"GIF89a" + bytes(100)
    assert fetch(upload(SimpleUploadedFile("a.gif", data), "x/1/y")) == data


def test_a_keep_metadata_value_that_is_not_a_boolean_fails_the_checks(env):
    env(KEYED_STORAGE_KEEP_METADATA="sometimes")
    errors = [m for m in run_checks() if m.id == "keyed_storage.E005"]
    assert errors and errors[0].obj == "KEYED_STORAGE_KEEP_METADATA"

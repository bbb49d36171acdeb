"""Direct uploads to image fields: the size from the first bytes, variants, the pixel limit.

A KeyedImageField takes a direct upload through DirectImageField (the admin picks it for
direct_upload_fields that are image fields). finish_upload() checks the bytes as for any
file; the size shown (EXIF orientation applied) is then read from the first 64 KiB (1 MiB
at most), so Django fills width_field and height_field without reading the file, and the
variants are rendered from the one full read they need.
"""

from __future__ import annotations

import io
import os

import pytest
from django import forms
from django.core.files.base import ContentFile
from PIL import Image

from events.models import Event, Speaker
from keyed_storage import KeyedStorage, backends, config
from keyed_storage.direct.forms import DirectImageField, direct_key, field_token
from keyed_storage.direct.tickets import IMAGE_HEADER_READS, image_size
from keyed_storage.images.variants import ImageRefused

from ..helpers import fetch
from ..image_helpers import encode, halves, jpeg_with_orientation
from .test_forms import HTML, ask_ticket, send

pytestmark = pytest.mark.django_db


class PhotoForm(forms.ModelForm):
    class Meta:
        model = Speaker
        fields = ["photo"]
        field_classes = {"photo": DirectImageField}


@pytest.fixture
def speaker(mode):
    return Speaker.objects.create(event=Event.objects.create(name="Pixel Con"), name="Ada")


def upload_photo(client, user, speaker: Speaker, data: bytes, filename: str, claim: str) -> dict:
    """What the widget does: the field token the page carries, a ticket, the POST."""
    field = Speaker._meta.get_field("photo")
    key = direct_key(field, speaker)
    assert key == f"events/{speaker.event_id}/speakers/{speaker.pk}/photo"
    answer = ask_ticket(client, field_token(field, key, str(user.pk)), data, filename, claim)
    assert answer.status_code == 200, answer.content
    ticket = answer.json()
    assert send(ticket, data, filename).status_code in (200, 201, 204)
    return ticket


def submit(user, speaker: Speaker, ticket: dict) -> PhotoForm:
    form = PhotoForm({"photo-reference": ticket["reference"]}, {}, instance=speaker)
    form.fields["photo"].bind(user)
    return form


def stored_names() -> list[str]:
    backend = backends.for_config(config.current())
    return sorted(backend.names_under("events"))


@pytest.fixture
def reads(monkeypatch):
    """The lengths of the ranged reads made of stored objects (both backends)."""
    lengths: list[int] = []
    backend_class = type(backends.for_config(config.current()))
    original = backend_class.read_start

    def counted(self, name, length, version):
        lengths.append(length)
        return original(self, name, length, version)

    monkeypatch.setattr(backend_class, "read_start", counted)
    return lengths


def test_a_photo_uploaded_directly_gets_its_shown_size_and_variants(editor_client, editor, speaker):
    data = jpeg_with_orientation(300, 200, 6)  # stored 300 x 200, shown turned: 200 x 300
    ticket = upload_photo(editor_client, editor, speaker, data, "ada.jpg", "image/jpeg")
    form = submit(editor, speaker, ticket)
    assert form.is_valid(), form.errors
    form.save()
    speaker.refresh_from_db()
    assert (speaker.photo_width, speaker.photo_height) == (200, 300)
    thumb = speaker.photo.variant("thumb")
    assert (thumb.width, thumb.height) == (80, 120)
    assert Image.open(io.BytesIO(fetch(thumb.url))).size == (80, 120)
    assert Image.open(io.BytesIO(fetch(speaker.photo.url))).size == (300, 200)
    original = speaker.photo.name
    assert stored_names() == sorted(
        [original, speaker.photo.variant("thumb").name, speaker.photo.variant("thumb_2x").name]
    )


def test_the_size_is_read_from_the_first_bytes_only(mode, reads):
    noise = Image.frombytes("RGB", (1000, 800), os.urandom(1000 * 800 * 3))
    data = encode(noise, "PNG")
    assert len(data) > 2 * 1024 * 1024
    name = KeyedStorage().save("users/1/big.png", ContentFile(data), overwrite=True)
    assert image_size(name) == (1000, 800)
    assert reads == [IMAGE_HEADER_READS[0]] == [64 * 1024]


def test_a_long_header_takes_one_more_read_and_no_more(mode, reads):
    # A colour profile of 150 KB comes before the JPEG's frame header; the pixels (noise)
    # take more than a MiB after it, and are never read.
    noise = Image.frombytes("RGB", (1600, 1200), os.urandom(1600 * 1200 * 3))
    data = encode(noise, "JPEG", quality=95, icc_profile=os.urandom(150_000))
    assert len(data) > 1.5 * 1024 * 1024
    name = KeyedStorage().save("users/1/profiled.jpg", ContentFile(data), overwrite=True)
    assert image_size(name) == (1600, 1200)
    assert reads == list(IMAGE_HEADER_READS)


def test_a_header_longer_than_a_mebibyte_is_refused(mode, reads):
    data = encode(halves(64, 32), "JPEG", icc_profile=os.urandom(1_200_000))
    name = KeyedStorage().save("users/1/huge-profile.jpg", ContentFile(data), overwrite=True)
    with pytest.raises(ImageRefused) as refused:
        image_size(name)
    assert refused.value.code == "image_header"
    assert reads == list(IMAGE_HEADER_READS)


def test_a_small_file_that_is_no_picture_is_refused_after_one_read(mode, reads):
    name = KeyedStorage().save("users/1/notes.png", ContentFile(b"not a picture at all"), overwrite=True)
    with pytest.raises(ImageRefused):
        image_size(name)
    assert reads == [len(b"not a picture at all")]


def test_too_many_pixels_are_refused_from_the_header_and_removed(editor_client, editor, speaker, reads):
    data = encode(Image.new("1", (8000, 8000)), "PNG")  # 64 megapixels in a few KB
    ticket = upload_photo(editor_client, editor, speaker, data, "bomb.png", "image/png")
    form = submit(editor, speaker, ticket)
    assert not form.is_valid()
    assert "more than the 50,000,000 accepted" in str(form.errors["photo"])
    assert stored_names() == []
    speaker.refresh_from_db()
    assert not speaker.photo


def test_a_web_page_is_not_a_photo(editor_client, editor, speaker):
    ticket = upload_photo(editor_client, editor, speaker, HTML, "ada.png", "image/png")
    form = submit(editor, speaker, ticket)
    assert not form.is_valid()
    assert "text/html" in str(form.errors["photo"])
    assert stored_names() == []


def test_a_photo_sent_the_usual_way_is_checked_as_an_image_field_checks_it(editor, speaker):
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = PhotoForm({}, {"photo": SimpleUploadedFile("ada.png", HTML)}, instance=speaker)
    form.fields["photo"].bind(editor)
    assert not form.is_valid()
    assert "Upload a valid image" in str(form.errors["photo"])

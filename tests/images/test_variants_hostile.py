"""Damaged and hostile pictures: whatever Pillow raises on them is a refusal (ImageRefused, a
form error), never a server error, and nothing of them is stored."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib

import pytest
from django import forms
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from events.models import Event
from keyed_storage.images.rendering import displayed_size, render
from keyed_storage.images.variants import ImageRefused, Variant

from ..helpers import examples
from ..image_helpers import encode, halves, image_model

VARIANTS = {"thumb": Variant(16, 16, crop=True), "card": Variant(24, None, format="jpeg")}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_parts() -> tuple[bytes, bytes, bytes]:
    """A valid PNG cut around its one IDAT chunk: what precedes it, its data, what follows it."""
    data = encode(halves(64, 48), "PNG")
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    return data[:start], data[start + 8 : start + 8 + length], data[start + 12 + length :]


def png_with_bad_text_after_the_pixels() -> bytes:
    """Every CRC right (Pillow's verify(), which Django's form field runs, passes); decoding
    reaches a zTXt chunk with an unknown compression method and raises SyntaxError."""
    head, pixels, tail = png_parts()
    return head + chunk(b"IDAT", pixels) + chunk(b"zTXt", b"comment\0\x01garbage") + tail


def png_with_a_broken_second_chunk() -> bytes:
    """The pixels in two chunks, the second one's type garbage: SyntaxError while decoding."""
    head, pixels, tail = png_parts()
    half = len(pixels) // 2
    return head + chunk(b"IDAT", pixels[:half]) + chunk(b"\x01\x02\x03\x04", pixels[half:]) + tail


def png_cut_after_its_header() -> bytes:
    head, pixels, _ = png_parts()
    return head + chunk(b"IDAT", pixels)[:12]


def png_with_random_pixels() -> bytes:
    head, pixels, tail = png_parts()
    return head + chunk(b"IDAT", pixels[:2] + random.Random(19).randbytes(len(pixels) - 2)) + tail


def jpeg_cut_in_its_scan() -> bytes:
    data = encode(halves(64, 48), "JPEG")
    return data[: data.index(b"\xff\xda") + 40]


HOSTILE = {
    "png-bad-text-after-pixels": png_with_bad_text_after_the_pixels,
    "png-broken-second-chunk": png_with_a_broken_second_chunk,
    "png-cut-after-header": png_cut_after_its_header,
    "png-random-pixels": png_with_random_pixels,
    "jpeg-cut-in-scan": jpeg_cut_in_its_scan,
}


def test_the_fixtures_pass_the_header_check_and_fail_in_pillow():
    raised = {}
    for name, make in HOSTILE.items():
        data = make()
        assert displayed_size(io.BytesIO(data)) == (64, 48), name
        with Image.open(io.BytesIO(data)) as image:
            try:
                image.load()
            except Exception as error:
                raised[name] = type(error)
    assert raised.keys() == HOSTILE.keys()
    assert SyntaxError in raised.values()  # what escaped as a server error before


@pytest.mark.parametrize("name", HOSTILE)
def test_rendering_a_damaged_picture_is_a_refusal(name):
    with pytest.raises(ImageRefused, match="not an image that can be read"):
        render(io.BytesIO(HOSTILE[name]()), VARIANTS)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", HOSTILE)
def test_field_file_save_refuses_a_damaged_picture_and_stores_nothing(mode, name, settings):
    with image_model(VARIANTS) as Picture:
        row = Picture.objects.create()
        with pytest.raises(ImageRefused):
            row.image.save("a.png", ContentFile(HOSTILE[name]()))
        assert Picture.objects.get().image.name == ""
    if mode == "local":
        assert not any(files for _, _, files in os.walk(settings.MEDIA_ROOT))


@pytest.mark.django_db(transaction=True)
def test_a_model_form_gives_a_form_error_for_a_picture_pillow_cannot_decode(local):
    # Django's own check (Pillow's verify()) passes this file: the refusal comes from rendering.
    with image_model(VARIANTS) as Picture:
        form_class = forms.modelform_factory(Picture, fields=["image"])
        form = form_class(files={"image": SimpleUploadedFile("a.png", png_with_bad_text_after_the_pixels())})
        assert not form.is_valid()
        assert "not an image that can be read" in form.errors["image"][0]


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_a_form_error_not_a_server_error(local, client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    response = client.post(
        "/admin/events/event/add/",
        {
            "name": "Hostile Con",
            "logo": SimpleUploadedFile("logo.png", png_with_bad_text_after_the_pixels(), "image/png"),
            "sessions-TOTAL_FORMS": "0",
            "sessions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "not an image that can be read" in response.content.decode()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_model_form_renders_once_and_the_save_stores_that(local, monkeypatch):
    from keyed_storage import fields

    renders = []
    real = fields.render_sized
    monkeypatch.setattr(
        fields, "render_sized", lambda *args, **kwargs: renders.append(1) or real(*args, **kwargs)
    )
    with image_model(VARIANTS) as Picture:
        form_class = forms.modelform_factory(Picture, fields=["image"])
        form = form_class(files={"image": SimpleUploadedFile("a.png", encode(halves(64, 48), "PNG"))})
        assert form.is_valid(), form.errors
        row = form.save()
        assert len(renders) == 1
        assert set(row.image.variants()) == set(VARIANTS)
        assert row.image.storage.exists(row.image.variant("thumb").name)


# Random damage ---------------------------------------------------------------------------

SMALL = {
    "PNG": encode(halves(24, 16), "PNG"),
    "JPEG": encode(halves(24, 16), "JPEG", quality=70),
    "GIF": encode(halves(24, 16).convert("P"), "GIF"),
    "WEBP": encode(halves(24, 16), "WEBP"),
}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A small valid picture with a few bytes changed, cut short, or grown."""
    data = bytearray(SMALL[draw(st.sampled_from(sorted(SMALL)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[: max(at, 8)]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@hsettings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_a_damaged_picture_renders_or_is_refused_never_anything_else(data):
    try:
        rendered = render(io.BytesIO(data), VARIANTS)
    except ImageRefused:
        return
    assert set(rendered) == set(VARIANTS)
    try:
        displayed_size(io.BytesIO(data))
    except ImageRefused:
        pytest.fail("rendered, yet its size is refused")

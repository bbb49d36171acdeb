"""Cleaning never turns a picture that decodes into one that does not (keyed_storage.images.privacy)."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from PIL import Image

from keyed_storage.images import privacy

from ..helpers import examples
from .test_privacy import LATITUDE, SRGB, jpeg, mutated, phone_jpeg, picture, strip


def decodes(data: bytes) -> bool:
    """Whether Pillow decodes every pixel of it (no draft mode: the strictest reading)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:
        return False


def jpeg_with_a_short_comment() -> bytes:
    """A comment segment whose length field says two bytes fewer than it holds: decoders skip
    the two stray bytes to the next marker, and Pillow reads the file."""
    data = jpeg(picture())
    text = b"taken at home, 12 Acacia Avenue"
    comment = b"\xff\xfe" + struct.pack(">H", 2 + len(text) - 2) + text
    return data[:2] + comment + data[2:]


def test_a_jpeg_with_a_comment_two_bytes_short_still_decodes_once_cleaned():
    data = jpeg_with_a_short_comment()
    assert decodes(data)
    cleaned = strip(data)
    assert cleaned is not None
    assert decodes(cleaned)
    assert b"Acacia" not in cleaned and b"Aven" not in cleaned
    assert strip(cleaned) is None  # clean by the same rules


def test_when_cleaning_breaks_a_picture_it_is_encoded_again_without_metadata(monkeypatch):
    # As if the structure of a malformed file misled the cleaning: its pieces lose the scan.
    data = phone_jpeg(orientation=6)

    def broken_pieces(src):
        yield (0, 2)
        yield (src.size - 2, src.size)

    jpeg_format = privacy._FORMATS[0]._replace(pieces=broken_pieces)
    monkeypatch.setattr(privacy, "_FORMATS", (jpeg_format, *privacy._FORMATS[1:]))
    cleaned = strip(data)
    assert cleaned is not None and decodes(cleaned)
    with Image.open(io.BytesIO(cleaned)) as image:
        assert image.format == "JPEG" and image.size == (64, 48)
        assert image.getexif().get(0x0112) == 6  # how it is shown stays
        assert image.info.get("icc_profile") == SRGB
        assert "comment" not in image.info
    for order in "<>":
        assert struct.pack(f"{order}6I", *LATITUDE) not in cleaned


@pytest.mark.timeout(300)
@hsettings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_a_damaged_file_that_decodes_still_decodes_once_cleaned(data):
    if not decodes(data):
        return
    cleaned = strip(data)
    assert decodes(data if cleaned is None else cleaned)

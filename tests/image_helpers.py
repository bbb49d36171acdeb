"""Images made on the spot for the image tests: orientations, palettes, 16 bits, CMYK, animations,
colour profiles. Nothing is downloaded."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, models
from django.test.utils import isolate_apps
from PIL import Image, ImageCms

from keyed_storage import key_template
from keyed_storage.fields import KeyedImageField
from keyed_storage.images.variants import Variant

VARIANTS = {
    "thumb": Variant(160, 160, crop=True),
    "card": Variant(640, 360, crop=True),
    "hero": Variant(1600, None),
}


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def halves(width: int, height: int, left: str = "red", right: str = "blue") -> Image.Image:
    """An image whose left half is one colour and right half another, to see rotations."""
    image = Image.new("RGB", (width, height), left)
    image.paste(Image.new("RGB", (width - width // 2, height), right), (width // 2, 0))
    return image


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(width, height), "JPEG", exif=exif.tobytes(), quality=95)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def rgb_profile(primaries: dict[str, tuple[float, float, float]], gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC profile (display class) with the given PCS primaries:
    enough for littleCMS to convert from it, so a test can hold a wide-gamut picture."""

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(_s15f16(v) for v in values)

    curve = b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", round(gamma * 256)) + b"\0\0"
    text = b"Wide test RGB"
    description = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 4 + b"\0" * 4 + b"\0" * 70
    )
    tags = [
        (b"desc", description),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(primaries["r"])),
        (b"gXYZ", xyz(primaries["g"])),
        (b"bXYZ", xyz(primaries["b"])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15f16(0.9642)
        + _s15f16(1.0)
        + _s15f16(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


# Adobe RGB (1998) primaries adapted to D50, as in its published profile: wider than sRGB.
ADOBE_LIKE = {"r": (0.6097, 0.3111, 0.0195), "g": (0.2053, 0.6257, 0.0609), "b": (0.1492, 0.0632, 0.7446)}


def srgb_of(pixel: tuple[int, int, int], profile: bytes) -> tuple[int, ...]:
    """What littleCMS makes of `pixel` in `profile`, converted to sRGB (the expected result)."""
    image = Image.new("RGB", (1, 1), pixel)
    converted = ImageCms.profileToProfile(
        image, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB")
    )
    assert converted is not None
    return converted.getpixel((0, 0))  # type: ignore[return-value]


@contextmanager
def image_model(
    variants: dict[str, Variant] | None = None, **options: object
) -> Iterator[type[models.Model]]:
    """A model with a KeyedImageField (and dimension fields), its table created for the block."""
    with isolate_apps("events"):
        field_options = {"width_field": "width", "height_field": "height"} | options

        class Picture(models.Model):
            image = KeyedImageField(
                upload_to=key_template("pictures/{id}/image"),
                variants=VARIANTS if variants is None else variants,
                blank=True,
                **field_options,  # type: ignore[arg-type]
            )
            width = models.PositiveIntegerField(null=True, editable=False)
            height = models.PositiveIntegerField(null=True, editable=False)

            class Meta:
                app_label = "events"

        with connection.schema_editor() as editor:
            editor.create_model(Picture)
        try:
            yield Picture
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(Picture)

"""Image variants: the spec (Variant) and the names variants are stored under (rendering.py makes them).

A variant is stored beside its original, in the same directory and under the same token:
'events/7/logo/<token>/logo.png~thumb-160x160-q80.webp'. Its name encodes its spec, so a
changed spec gets a new name (and a new URL no cache has seen), and '~' never occurs in a
sanitised filename, so a variant's name cannot collide with an uploaded file's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from django.utils.deconstruct import deconstructible

from ..exceptions import FileRefused
from ..keys import MAX_SEGMENT_BYTES, truncate_utf8

#: Separates an original's filename from its variants' suffixes.
VARIANT_MARK = "~"
#: Images with more pixels than this are refused before they are decoded (a 48-megapixel
#: phone photo passes; a decompression bomb, a few KB that decode to gigabytes, does not).
DEFAULT_MAX_PIXELS = 50_000_000

FORMATS = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png", "avif": "image/avif"}
_EXTENSIONS = {"webp": ".webp", "jpeg": ".jpg", "png": ".png", "avif": ".avif"}
_VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class ImageRefused(FileRefused):
    """An image that cannot be made into variants: too many pixels, or not an image Pillow reads."""


@deconstructible(path="keyed_storage.images.Variant")
class Variant:
    """One size of a picture: Variant(160, 160), Variant(640, 360, crop=True), Variant(1600, None).

    By default the picture is fitted inside width x height (None: unbounded), keeping its
    aspect ratio and never enlarged; crop=True fills exactly width x height and cuts the
    overflow evenly on both sides. The output has no metadata at all.
    """

    def __init__(
        self,
        width: int | None,
        height: int | None,
        *,
        crop: bool = False,
        format: str = "webp",
        quality: int = 80,
    ) -> None:
        for label, value in (("width", width), ("height", height)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"Variant {label} is a number of pixels (1 or more) or None, not {value!r}.")
        if width is None and height is None:
            raise ValueError("A Variant needs a width, a height or both.")
        if crop and (width is None or height is None):
            raise ValueError("Variant(crop=True) needs both a width and a height to fill.")
        if format not in FORMATS:
            raise ValueError(f"Variant format {format!r} is not one of {', '.join(FORMATS)}.")
        if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
            raise ValueError(f"Variant quality is a whole number from 1 to 100, not {quality!r}.")
        self.width, self.height, self.crop = width, height, crop
        self.format, self.quality = format, quality

    @property
    def spec(self) -> str:
        """The part of a variant's name that says how it was made: '160x160-q80', '640x360-crop-q80'."""
        crop = "-crop" if self.crop else ""
        return f"{self.width or ''}x{self.height or ''}{crop}-q{self.quality}"

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The variant's size for an original shown at width x height (EXIF orientation applied)."""
        if self.crop:
            assert self.width is not None and self.height is not None
            return self.width, self.height
        scale = min(
            self.width / width if self.width else math.inf,
            self.height / height if self.height else math.inf,
            1.0,
        )
        return max(1, round(width * scale)), max(1, round(height * scale))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variant) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return (self.width, self.height, self.crop, self.format, self.quality)

    def __repr__(self) -> str:
        options = "".join(
            f", {name}={value!r}"
            for name, value, default in (("crop", self.crop, False), ("format", self.format, "webp"))
            if value != default
        )
        quality = f", quality={self.quality}" if self.quality != 80 else ""
        return f"Variant({self.width!r}, {self.height!r}{options}{quality})"


def check_variants(variants: Mapping[str, Variant] | None) -> dict[str, Variant]:
    """The variants of a field, validated: names such as 'thumb' or 'card', each with a Variant."""
    if variants is None:
        return {}
    if not isinstance(variants, Mapping):
        raise TypeError("variants is a dict of names to Variant, e.g. {'thumb': Variant(160, 160)}.")
    for name, spec in variants.items():
        if not isinstance(name, str) or not _VARIANT_NAME.fullmatch(name):
            raise ValueError(
                f"Variant name {name!r}: use 1-32 lowercase letters, digits, '-' or '_', such as 'thumb'."
            )
        if not isinstance(spec, Variant):
            raise TypeError(f"variants[{name!r}] must be a keyed_storage.images.Variant, not {spec!r}.")
    return dict(variants)


def variant_suffix(name: str, variant: Variant) -> str:
    """What the variant `name` adds to its original's filename (after the mark): 'thumb-160x160-q80.webp'."""
    return f"{name}-{variant.spec}{_EXTENSIONS[variant.format]}"


def variant_name(original: str, name: str, variant: Variant) -> str:
    """Where the variant `name` of the stored file `original` lives: beside it, same token."""
    directory, _, filename = original.rpartition("/")
    suffix = f"{VARIANT_MARK}{variant_suffix(name, variant)}"
    filename = truncate_utf8(filename, MAX_SEGMENT_BYTES - len(suffix.encode("utf-8"))) + suffix
    return f"{directory}/{filename}" if directory else filename


def variants_prefix(original: str) -> str:
    """A prefix every variant name of `original` starts with (for listing them cheaply)."""
    directory, _, filename = original.rpartition("/")
    # A variant's suffix takes at most 64 bytes, so its name keeps this much of the filename.
    head = truncate_utf8(filename, MAX_SEGMENT_BYTES - 64)
    return f"{directory}/{head}" if directory else head


def is_variant_of(candidate: str, original: str) -> bool:
    """True when `candidate` is the name of a variant stored for `original`."""
    directory, _, filename = original.rpartition("/")
    other_directory, _, other = candidate.rpartition("/")
    head, mark, _ = other.partition(VARIANT_MARK)
    if other_directory != directory or not mark or not head:
        return False
    # The filename is kept whole, or cut where the name reached the segment limit.
    return head == filename or (
        filename.startswith(head) and len(other.encode("utf-8")) > MAX_SEGMENT_BYTES - 4
    )

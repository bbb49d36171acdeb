"""What a file may be: its type told from its bytes (MIME patterns as in HTML's accept) and its size.

The same checks serve ``upload(accept=..., max_size=...)`` and model or form fields
(``validators=[ContentTypeValidator("image/*"), FileSizeValidator(5 * 1024 * 1024)]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db.models.fields.files import FieldFile
from django.template.defaultfilters import filesizeformat
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

from .exceptions import FileTooLarge, FileTypeRefused
from .files.sniffing import SNIFF_BYTES, identify, is_active

_PATTERN = re.compile(r"(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")
# Names people write for types that are registered under another name.
_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}


def accepted_patterns(accept: str | Iterable[str]) -> tuple[str, ...]:
    """Validated, lower-cased MIME patterns; ValueError naming the first bad one."""
    patterns = (accept,) if isinstance(accept, str) else tuple(accept)
    if not patterns:
        raise ValueError("accept needs at least one MIME pattern, e.g. 'image/*' or 'application/pdf'.")
    cleaned = []
    for pattern in patterns:
        text = pattern.strip().lower() if isinstance(pattern, str) else ""
        if not _PATTERN.fullmatch(text) or (text.startswith("*/") and text != "*/*"):
            hint = ""
            if text.startswith("."):
                hint = " Extensions are not types: use e.g. 'application/pdf' for '.pdf'."
            raise ValueError(
                f"accept: {pattern!r} is not a MIME pattern such as 'image/*', 'audio/mpeg' or "
                f"'application/pdf'.{hint}"
            )
        cleaned.append(_ALIASES.get(text, text))
    return tuple(cleaned)


def known_type(claim: str | None) -> str | None:
    """A client's claimed type in the form patterns are matched against (lower case, no
    parameters, aliases resolved), or None when it says nothing: empty, malformed, or
    application/octet-stream, which browsers send for any type they do not know."""
    base = (claim or "").split(";", 1)[0].strip().lower()
    if not _PATTERN.fullmatch(base) or "*" in base or base == "application/octet-stream":
        return None
    return _ALIASES.get(base, base)


def type_matches(content_type: str, patterns: Iterable[str]) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    family = base.split("/", 1)[0]
    # 'image/*' asks for pictures: an SVG is a document that runs scripts, so only a pattern
    # naming its type (or '*/*', anything at all) accepts it; the same for text/html and 'text/*'.
    in_family = not is_active(base)
    return any(p in ("*/*", base) or (in_family and p.endswith("/*") and p[:-2] == family) for p in patterns)


def accepted_type(head: bytes, name: str, patterns: tuple[str, ...]) -> str:
    """The type of a file from its first bytes; FileTypeRefused if no pattern accepts it.

    Only the bytes decide: a name can say which kind of text a text file is (CSV, JSON), but
    never makes unidentified binary data an image or audio.
    """
    info = identify(head, name)
    content_type = info.content_type if info.by_bytes else "application/octet-stream"
    if not type_matches(content_type, patterns):
        raise refuse_type(content_type, patterns)
    return content_type


def refuse_type(content_type: str, patterns: tuple[str, ...]) -> FileTypeRefused:
    return FileTypeRefused(
        _("This file is %(type)s, which is not accepted here. Accepted: %(accepted)s."),
        code="file_type",
        params={"type": content_type.split(";", 1)[0], "accepted": ", ".join(patterns)},
    )


def refuse_size(size: int, max_size: int) -> FileTooLarge:
    return FileTooLarge(
        _("This file is larger than %(max)s (%(max_bytes)d bytes), the largest accepted here."),
        code="file_size",
        params={"max": filesizeformat(max_size), "max_bytes": max_size, "size": size},
    )


def _pending(value: Any) -> Any:
    """The file object to check, or None for a file already in storage (checked when stored)."""
    if isinstance(value, FieldFile):
        # _committed (False until the file is stored) is private, so django-stubs leave it out.
        return None if value._committed else value.file  # type: ignore[attr-defined]
    return value


def _read_head(file: Any) -> bytes:
    position = file.tell()
    try:
        file.seek(0)
        head = file.read(SNIFF_BYTES)
    finally:
        file.seek(position)
    return head.encode("utf-8") if isinstance(head, str) else head


@deconstructible(path="keyed_storage.validators.ContentTypeValidator")
class ContentTypeValidator:
    """Accept only files whose bytes are of one of the given types: ``ContentTypeValidator("image/*")``.

    The type is read from the file's first bytes, never from its name or the browser's claim,
    so a text file renamed 'avatar.png' is refused with a message the form and admin show.
    A file already stored (a form re-saved without a new upload) is not read again.
    """

    def __init__(self, *patterns: str):
        self.patterns = accepted_patterns(patterns)

    def __call__(self, value: Any) -> None:
        file = _pending(value)
        if file is not None:
            accepted_type(_read_head(file), getattr(value, "name", "") or "", self.patterns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContentTypeValidator) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)


@deconstructible(path="keyed_storage.validators.FileSizeValidator")
class FileSizeValidator:
    """Accept only files of at most `max_size` bytes: FileSizeValidator(5 * 1024 * 1024)."""

    def __init__(self, max_size: int):
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 0:
            raise ValueError(f"max_size is a number of bytes (an int, 0 or more), not {max_size!r}.")
        self.max_size = max_size

    def __call__(self, value: Any) -> None:
        file = _pending(value)
        if file is not None and file.size > self.max_size:
            raise refuse_size(file.size, self.max_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileSizeValidator) and other.max_size == self.max_size

    def __hash__(self) -> int:
        return hash(self.max_size)


@deconstructible(path="keyed_storage.validators.ImagePixelsValidator")
class ImagePixelsValidator:
    """Accept only images of at most `max_pixels` pixels, read from the header before any
    decoding: a decompression bomb (a few KB that decode to gigabytes) gets a form error."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels

    def __call__(self, value: Any) -> None:
        from .images.rendering import open_image
        from .images.variants import ImageRefused

        file = _pending(value)
        if file is None:
            return
        position = file.tell()
        try:
            open_image(file, max_pixels=self.max_pixels)
        except ImageRefused as refused:
            if refused.code == "image_pixels":
                raise
            # Not an image: the image field's own validation says so in its words.
        finally:
            file.seek(position)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImagePixelsValidator) and other.max_pixels == self.max_pixels

    def __hash__(self) -> int:
        return hash(self.max_pixels)

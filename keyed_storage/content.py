"""What a file really is: its Content-Type from its bytes, and whether it must be downloaded.

The client's claimed type and the file's extension are never trusted for the type; they can
only make the verdict stricter (an 'x.js' is served as an attachment whatever its bytes).
"""

from __future__ import annotations

import mimetypes
import os
import re
import warnings
from dataclasses import dataclass

import puremagic

SNIFF_BYTES = 8192

GENERIC = "application/octet-stream"

# Types a browser executes or renders as a document with our origin's privileges.
_ACTIVE_TYPES = {
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/xsl",
    "application/xslt+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "text/ecmascript",
    "application/x-shockwave-flash",
    "multipart/x-mixed-replace",
    "text/cache-manifest",
}

# The HTML and XML signatures of the WHATWG MIME Sniffing Standard (section 7.1, "rules for
# identifying an unknown MIME type"): after optional whitespace, one of these tags followed
# by a space or '>' makes a browser treat bytes as HTML. Matching case-insensitively.
_HTML_TAGS = (
    b"!doctype html", b"html", b"head", b"script", b"iframe", b"h1", b"div", b"font",
    b"table", b"a", b"style", b"title", b"b", b"body", b"br", b"p", b"!--",
)  # fmt: skip
_HTML = re.compile(rb"^[\t\n\x0c\r ]*<(" + b"|".join(map(re.escape, _HTML_TAGS)) + rb")[ >]", re.I)
_XML = re.compile(rb"^(\xef\xbb\xbf)?[\t\n\x0c\r ]*<\?xml", re.I)
# An SVG needs no <?xml ?> prolog; browsers render '<svg' documents as images with scripts.
_SVG = re.compile(rb"<svg[\s>]", re.I)
_ALIASES = {
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "image/x-png": "image/png",
    "application/x-gzip": "application/gzip",
}
# Containers whose signature cannot tell audio from video (Ogg, MP4, WebM): the name may.
_CONTAINERS = {
    *("application/ogg", "audio/ogg", "video/ogg"),
    *("audio/mp4", "video/mp4", "audio/webm", "video/webm"),
}

# Names are consulted only for formats without a signature. Python's own table, not the
# machine's /etc/mime.types (which differs between hosts), plus upload types it lacks.
_NAME_TYPES = mimetypes.MimeTypes(filenames=())
_EXTRA_NAME_TYPES = {
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".flac": "audio/flac",
    ".webp": "image/webp",
    ".md": "text/markdown",
    ".mjs": "text/javascript",
}


@dataclass(frozen=True, slots=True)
class ContentInfo:
    content_type: str
    attachment: bool  # True: serve with Content-Disposition: attachment
    by_bytes: bool = True  # False: the bytes had no signature and the name chose the type


def is_active(content_type: str | None) -> bool:
    if not content_type:
        return False
    base = content_type.split(";", 1)[0].strip().lower()
    return base in _ACTIVE_TYPES or base.endswith("+xml")


# The formats this app mostly stores (avatars, logos, talk audio, slides), recognised by their
# fixed signatures before puremagic is asked: puremagic walks its ~3000 signatures in Python,
# about 160 µs a file, which is 2-4% of a 1 MiB upload to a server on the same machine.
_COMMON_PREFIXES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "application/ogg"),
)
_RIFF_TYPES = {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}


def _common_type(head: bytes) -> str | None:
    for prefix, content_type in _COMMON_PREFIXES:
        if head.startswith(prefix):
            return content_type
    if head.startswith(b"RIFF"):
        return _RIFF_TYPES.get(head[8:12])
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # An MPEG audio frame header without an ID3 tag: 11 sync bits, then the version and
        # the layer; layer 0 is AAC in an ADTS stream, the others MP1/MP2/MP3.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return (
            "video/quicktime"
            if brand == b"qt  "
            else "audio/mp4"
            if brand.startswith(b"M4A")
            else "video/mp4"
        )
    return None


def _sniff_bytes(head: bytes) -> str | None:
    common = _common_type(head)
    if common:
        return common
    if _HTML.match(head):
        return "text/html"
    if _SVG.search(head[:1024]) and (_XML.match(head) or head.lstrip()[:4].lower() == b"<svg"):
        return "image/svg+xml"
    if _XML.match(head):
        return "application/xml"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        found = ""
    # puremagic's text verdicts ('text/ascii', ...) are not MIME types a browser knows;
    # text is told apart by the checks above and in identify().
    if found and not found.startswith("text/"):
        return _ALIASES.get(found, found)
    return None


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the end of the sample is still text.
        return error.start >= len(head) - 3
    return True


def type_from_name(name: str) -> str | None:
    extension = os.path.splitext(name)[1].lower()
    if extension in _EXTRA_NAME_TYPES:
        return _EXTRA_NAME_TYPES[extension]
    guessed, encoding = _NAME_TYPES.guess_type(name, strict=False)
    return None if encoding else guessed


def identify(head: bytes, filename: str = "", claimed: str | None = None) -> ContentInfo:
    """Decide the Content-Type of a file from its first SNIFF_BYTES bytes.

    The type comes from the bytes. The extension is consulted only to name text formats
    that have no signature (CSV, JSON, Markdown...), and only when that name is not an
    active type. Bytes, extension or claim that say "active" make the file an attachment.
    """
    guessed = type_from_name(filename or "")
    sniffed = _sniff_bytes(head)
    by_bytes = sniffed is not None or (_is_text(head) and bool(head))
    if sniffed is None:
        if not head:
            sniffed = guessed if guessed and not is_active(guessed) else GENERIC
        elif _is_text(head):
            if guessed and guessed.startswith(("text/", "application/json")) and not is_active(guessed):
                sniffed = guessed
            else:
                sniffed = "text/plain"
        elif guessed and not is_active(guessed) and guessed.startswith(("audio/", "video/")):
            # Formats without a fixed signature at offset 0 (MP3 frames, some MPEG streams).
            sniffed = guessed
        else:
            sniffed = GENERIC
    elif guessed and guessed.startswith(("audio/", "video/")) and sniffed in _CONTAINERS:
        sniffed = guessed  # an .m4a is audio/mp4 though its bytes say "an MP4 container"
    attachment = is_active(sniffed) or is_active(guessed) or is_active(claimed)
    if sniffed.startswith("text/") and "charset" not in sniffed:
        sniffed += "; charset=utf-8" if _is_text(head) else ""
    return ContentInfo(sniffed, attachment, by_bytes)

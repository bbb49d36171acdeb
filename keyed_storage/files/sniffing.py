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
    (b"fLaC", "audio/flac"),
    (b"OggS", "application/ogg"),
)
_FRAMED_AUDIO = {"audio/mpeg", "audio/aac"}
_RIFF_TYPES = {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}


# MPEG audio frame headers (ISO/IEC 11172-3 and 13818-3, and MPEG 2.5): bit rates in kbit/s
# for bitrate indexes 1-14, by MPEG-1 or not and by layer bits (3: Layer I, 2: II, 1: III).
_LOW_RATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_BIT_RATES = {
    (True, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): _LOW_RATES,
    (False, 1): _LOW_RATES,
}
# Sample rates in Hz for sample-rate indexes 0-2, by version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG 2.5).
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# ADTS (AAC) sampling frequency indexes 0-12 are defined; 13 and 14 are reserved, 15 is escape.
_ADTS_RATES = 13


def _mpeg_frame_length(head: bytes, at: int) -> int | None:
    """The length of the MPEG audio frame whose header is at `at`; None if no valid header is there.

    WHATWG MIME Sniffing, "match an mp3 header" and "compute an mp3 frame size": 11 sync bits,
    then no reserved version (01), no reserved layer (00), no free or bad bit rate (0, 15) and
    no reserved sample rate (3). The standard's tables are Layer III's; these are every layer's.
    """
    if len(head) < at + 4 or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer = head[at + 1] >> 3 & 3, head[at + 1] >> 1 & 3
    bitrate_index, rate_index = head[at + 2] >> 4, head[at + 2] >> 2 & 3
    if version == 1 or layer == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    bit_rate = _BIT_RATES[version == 3, layer][bitrate_index - 1] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = head[at + 2] >> 1 & 1
    if layer == 3:
        return (12 * bit_rate // sample_rate + padding) * 4
    # Layer III outside MPEG-1 carries half the samples per frame.
    scale = 72 if layer == 1 and version != 3 else 144
    return scale * bit_rate // sample_rate + padding


def _is_mpeg_audio(head: bytes) -> bool:
    """WHATWG's "signature for MP3 without ID3": a frame header, and another one where that
    frame ends. One header alone is four bytes that text can spell (FF FE opens UTF-16 text);
    the second must also keep the stream's version, layer and sample rate."""
    length = _mpeg_frame_length(head, 0)
    return (
        length is not None
        and _mpeg_frame_length(head, length) is not None
        and head[length + 1] & 0xFE == head[1] & 0xFE
        and head[length + 2] & 0x0C == head[2] & 0x0C
    )


def _is_adts(head: bytes) -> bool:
    """AAC in ADTS frames (ISO/IEC 13818-7): 12 sync bits, layer 00, a defined sampling
    frequency, and a second frame header where the first frame's 13-bit length ends."""

    def frame_length(at: int) -> int | None:
        if len(head) < at + 7 or head[at] != 0xFF or head[at + 1] & 0xF6 != 0xF0:
            return None
        if head[at + 2] >> 2 & 0x0F >= _ADTS_RATES:
            return None
        length = (head[at + 3] & 0x03) << 11 | head[at + 4] << 3 | head[at + 5] >> 5
        return length if length >= (7 if head[at + 1] & 1 else 9) else None

    first = frame_length(0)
    return first is not None and frame_length(first) is not None and head[first + 2] & 0x3C == head[2] & 0x3C


def _is_id3v2(head: bytes) -> bool:
    """An ID3v2 tag, which opens most MP3 files: 'ID3', major version 2-4, a revision that is
    not FF, and a size in four 7-bit bytes (ID3v2.4 section 3.1) -- not just any text
    starting 'ID3'."""
    return (
        head[:3] == b"ID3"
        and len(head) >= 10
        and 2 <= head[3] <= 4
        and head[4] != 0xFF
        and all(byte < 0x80 for byte in head[6:10])
    )


def _common_type(head: bytes) -> str | None:
    for prefix, content_type in _COMMON_PREFIXES:
        if head.startswith(prefix):
            return content_type
    if head.startswith(b"RIFF"):
        return _RIFF_TYPES.get(head[8:12])
    if _is_id3v2(head) or _is_mpeg_audio(head):
        return "audio/mpeg"
    if _is_adts(head):
        return "audio/aac"
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


def _markup_type(head: bytes) -> str | None:
    if _HTML.match(head):
        return "text/html"
    if _SVG.search(head[:1024]) and (_XML.match(head) or head.lstrip()[:4].lower() == b"<svg"):
        return "image/svg+xml"
    if _XML.match(head):
        return "application/xml"
    return None


# WHATWG MIME Sniffing 7.1: a byte order mark makes the bytes text/plain, before any image,
# audio or video signature is looked at (FF FE also reads as an MPEG audio frame header).
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16be"), (b"\xff\xfe", "utf-16le"))


def _text_with_bom(head: bytes) -> str | None:
    """The type of text that opens with a byte order mark, or None without one.

    A browser decodes such text by its BOM whatever the charset says, so HTML, SVG or XML
    written in UTF-16 is still that markup: it is told apart in its decoded form.
    """
    for bom, charset in _BOMS:
        if head.startswith(bom):
            # The sample may end inside a character: 'replace' keeps the rest readable.
            text = head[len(bom) :].decode(charset, errors="replace").encode("utf-8")
            markup = _markup_type(text)
            if markup and not markup.startswith("text/"):
                return markup
            return f"{markup or 'text/plain'}; charset={charset}"
    return None


def _sniff_bytes(head: bytes) -> str | None:
    bom_text = _text_with_bom(head)
    if bom_text:
        return bom_text
    common = _common_type(head)
    if common:
        return common
    markup = _markup_type(head)
    if markup:
        return markup
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        found = ""
    # puremagic's text verdicts ('text/ascii', ...) are not MIME types a browser knows;
    # text is told apart by the checks above and in identify().
    if found in _FRAMED_AUDIO:
        # puremagic takes two bytes (FF FB) for MP3, which text and junk can spell; the
        # frame checks in _common_type() have already said these bytes are not that.
        return None
    if found and not found.startswith("text/"):
        if found.startswith(("image/", "audio/", "video/")) and _is_text(head):
            # Some of puremagic's signatures are two to four letters ('BM' for a bitmap,
            # 'FORM' for AIFF) that open ordinary sentences; a real picture or recording
            # is not valid UTF-8 free of NUL bytes over its first kilobytes.
            return None
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

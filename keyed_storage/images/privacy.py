"""Removing location and other identifying metadata from an image without touching its pixels.

Phones write where and when a photo was taken, and with which device, into the file; a site that
publishes the original publishes its author's whereabouts. This module rewrites only the metadata
segments of JPEG, PNG and WebP files and copies every other byte as it is: nothing is re-encoded
and nothing is lost. The cleaned copy is then decoded once (a JPEG at 1/8 scale) to make sure
cleaning never turns a picture Pillow decodes into one it does not; should it, which only a
malformed file can cause, the picture is encoded again instead, with the metadata kept below
and no other.

Kept is what changes how the image is displayed; the rest goes:

- JPEG: kept are the JFIF header (without its thumbnail), ICC profiles (APP2 ICC_PROFILE), Adobe's
  colour transform (APP14), every table, frame and scan. The Exif segment becomes a minimal one
  holding only the Orientation, or none when the image is upright. Gone are XMP (standard and
  extended), Photoshop/IPTC (APP13), comments, JFXX thumbnails, MPF, vendor segments (APP3-APP15
  except Adobe: maker data, GoPro telemetry, C2PA/JUMBF manifests) and whatever follows the end
  of the image: MPF second images and depth maps, Motion Photo videos, vendor trailers, each of
  which can carry its own copy of the location.
- PNG: kept are the critical chunks and the ancillary ones that affect rendering (transparency,
  colour: gAMA, cHRM, sRGB, iCCP, sBIT, cICP, mDCV, cLLI; pHYs, bKGD, hIST; APNG's acTL, fcTL,
  fdAT). eXIf becomes a minimal one with the Orientation; text (tEXt, zTXt, iTXt, where XMP
  lives), tIME, other ancillary chunks (the PNG specification lets any editor drop unknown
  ones) and bytes after IEND (where a cropping tool may have left the uncropped image) go.
- WebP: kept are VP8, VP8L, VP8X, ALPH, ANIM, ANMF and ICCP. EXIF becomes a minimal one with the
  Orientation (only in an extended file, where the VP8X flags can announce it); XMP and unknown
  chunks go; the VP8X flags and the RIFF size are updated.
- Other formats (GIF, HEIC, AVIF, TIFF, ...) are left as they are.

A file is cleaned as far as its structure can be followed. Where it cannot (a length running
past the end of the file, a PNG chunk length above 2^31 - 1, a JPEG segment length below 2), the
rest of the file is copied as it is: decoders treat those bytes the same before and after, and
metadata hiding there stays. Bytes between JPEG segments that are not a marker are skipped to the
next marker, as libjpeg (and so browsers) and ExifTool do, so metadata after them is still found;
they are dropped.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Literal, NamedTuple

#: Cleaned copies up to this size stay in memory; larger ones are written to a temporary file.
SPOOL_BYTES = 4 * 1024 * 1024

# Reading and copying go by blocks of this size, so memory does not grow with the file.
_BLOCK = 256 * 1024
# Reads smaller than this are served from a window of this size read ahead.
_WINDOW = 64 * 1024
# A JPEG segment holds at most this much, and an IFD0 with the Orientation sits in its first
# bytes: a PNG or WebP Exif chunk is read no further than this to find the Orientation.
_EXIF_READ = 65535

# A piece of the cleaned file: a range (start, end) of the original, or new bytes.
_Piece = tuple[int, int] | bytes


class _Source:
    """The original, read at absolute offsets, so that parsing and copying can take turns.

    Small reads (headers, markers) are served from a window read ahead, so that a file of a million
    tiny chunks costs a million slices, not a million seeks and reads.
    """

    __slots__ = ("_file", "_window", "_window_at", "size")

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        file.seek(0, os.SEEK_END)
        self.size = file.tell()
        self._window, self._window_at = b"", 0

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at the end of the file."""
        if size >= _WINDOW:
            return self._read(offset, size)
        end = self._window_at + len(self._window)
        if not (self._window_at <= offset and (offset + size <= end or end >= self.size)):
            self._window, self._window_at = self._read(offset, _WINDOW), offset
        start = offset - self._window_at
        return self._window[start : start + size]

    def _read(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(size)
        # A raw file may return less than asked before its end.
        while 0 < len(data) < size:
            more = self._file.read(size - len(data))
            if not more:
                break
            data += more
        return data

    def copy(self, start: int, end: int, out: IO[bytes]) -> None:
        while start < end:
            data = self.read(start, min(_BLOCK, end - start))
            if not data:
                return
            out.write(data)
            start += len(data)

    def find(self, pattern: re.Pattern[bytes], start: int) -> int | None:
        """Where a two-byte `pattern` first matches at or after `start`.

        The first look is short, since a marker is usually right there; the next ones double up
        to a block, so that a long scan is read block by block.
        """
        step = 512
        while start < self.size:
            # One byte more than the step, so a match across two reads is found in the second.
            match = pattern.search(self.read(start, step + 1))
            if match:
                return start + match.start()
            start += step
            step = min(2 * step, _BLOCK)
        return None


def _tiff(exif: bytes) -> bytes:
    """The TIFF structure of an Exif chunk; some writers put JPEG's 'Exif' prefix in PNG and WebP too."""
    return exif[6:] if exif.startswith(b"Exif\0") else exif


def _orientation(tiff: bytes) -> int | None:
    """The Orientation in IFD0 when it turns or mirrors the image (2-8); None when 1, absent or invalid."""
    if tiff[:4] == b"II*\0":
        order: Literal["little", "big"] = "little"
    elif tiff[:4] == b"MM\0*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    # Bounded by the data at hand, whatever the entry count says.
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)
            width = {3: 2, 4: 4}.get(kind, 0)  # SHORT as the standard says; LONG from lax writers
            value = int.from_bytes(tiff[entry + 8 : entry + 8 + width], order) if width else 0
            return value if 2 <= value <= 8 else None
    return None


def _minimal_tiff(orientation: int) -> bytes:
    """A TIFF header and an IFD0 with the Orientation alone, big-endian everywhere.

    No other entry, no Exif or GPS sub-IFD and no IFD1: a thumbnail can show the uncropped
    original.
    """
    return b"MM\0*" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, orientation, 0, 0)


# JPEG (ITU T.81). Markers without a length: TEM, RST0-RST7, SOI; EOI ends the image.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_EOI, _SOS, _COM, _APP0, _APP1, _APP2, _APP14, _APP15 = 0xD9, 0xDA, 0xFE, 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
# Between segments, the next marker is an FF followed by neither 00 nor another (fill) FF: where
# libjpeg's next_marker() stops. In entropy-coded data FF00 is a data byte and RSTn belongs to the scan.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
_JFIF_HEADER = 14  # 'JFIF\0', version, units, densities, thumbnail width and height


def _jpeg_segment(segment: bytes) -> bytes | None:
    """An APPn segment (marker included) as it is kept: itself, a cleaned copy, or None."""
    code, payload = segment[1], segment[4:]
    if code == _APP0 and payload.startswith(b"JFIF\0"):
        if len(payload) <= _JFIF_HEADER:
            return segment
        # Without the thumbnail: its width and height become 0 and its pixels go.
        return b"\xff\xe0" + struct.pack(">H", 2 + _JFIF_HEADER) + payload[: _JFIF_HEADER - 2] + b"\0\0"
    if (code == _APP2 and payload.startswith(b"ICC_PROFILE\0")) or (
        code == _APP14 and payload.startswith(b"Adobe")
    ):
        return segment
    if code == _APP1 and payload.startswith(b"Exif\0"):
        orientation = _orientation(payload[6:])
        if orientation is None:
            return None
        exif = b"Exif\0\0" + _minimal_tiff(orientation)
        return b"\xff\xe1" + struct.pack(">H", 2 + len(exif)) + exif
    return None


def _jpeg(src: _Source) -> Iterator[_Piece]:
    yield (0, 2)  # SOI
    pos, pattern, exif_seen = 2, _NEXT_MARKER, False
    while True:
        head = src.read(pos, 4)  # a marker and its length, usually right here
        marker = pos
        if not pattern.match(head):
            found = src.find(pattern, pos)
            if found is None:
                # No EOI: a truncated image, kept to its last byte.
                if pos < src.size:
                    yield (pos, src.size)
                return
            marker = found
            if pattern is _END_OF_SCAN:
                yield (pos, marker)  # entropy-coded data
            # Else fill bytes or junk between segments, which decoders skip: dropped, since a
            # segment removed before them would leave them where a marker must be (Pillow reads
            # no JPEG whose SOI is not followed by a marker).
            head = src.read(marker, 4)
        code = head[1]
        if code == _EOI:
            yield (marker, marker + 2)
            return  # what follows the image goes
        if code in _JPEG_STANDALONE:
            pos, pattern = marker + 2, _NEXT_MARKER
            yield (marker, pos)
            continue
        length = int.from_bytes(head[2:], "big") if len(head) == 4 else 0
        end = marker + 2 + length
        if length < 2 or end > src.size:
            yield (marker, src.size)  # the structure is lost: the rest as it is
            return
        if _APP0 <= code <= _APP15:
            segment = src.read(marker, end - marker)
            is_exif = code == _APP1 and segment[4:].startswith(b"Exif\0")
            kept = None if is_exif and exif_seen else _jpeg_segment(segment)
            exif_seen = exif_seen or is_exif
            if kept == segment:
                yield (marker, end)
            elif kept:
                yield kept
        elif code != _COM:
            yield (marker, end)
        pos, pattern = end, _END_OF_SCAN if code == _SOS else _NEXT_MARKER


# PNG (ISO/IEC 15948, third edition). Critical chunks (upper-case first letter) are always kept.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = frozenset(
    {b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"cICP", b"mDCV", b"cLLI"}
    | {b"pHYs", b"bKGD", b"hIST", b"acTL", b"fcTL", b"fdAT"}
)
_PNG_MAX_LENGTH = 2**31 - 1


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(src: _Source) -> Iterator[_Piece]:
    yield (0, len(_PNG_SIGNATURE))
    pos, exif_seen = len(_PNG_SIGNATURE), False
    while pos + 12 <= src.size:
        header = src.read(pos, 8)
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        end = pos + 12 + length
        if length > _PNG_MAX_LENGTH or not kind.isalpha() or end > src.size:
            break
        if kind == b"IEND":
            yield (pos, end)
            return  # what follows the image goes
        if kind[:1].isupper() or kind in _PNG_KEPT:
            yield (pos, end)
        elif kind == b"eXIf" and not exif_seen:
            exif_seen = True
            orientation = _orientation(_tiff(src.read(pos + 8, min(length, _EXIF_READ))))
            if orientation is not None:
                chunk = _png_chunk(b"eXIf", _minimal_tiff(orientation))
                same = end - pos == len(chunk) and src.read(pos, len(chunk)) == chunk
                yield (pos, end) if same else chunk
        pos = end
    if pos < src.size:
        yield (pos, src.size)  # the structure is lost, or IEND is missing: the rest as it is


# WebP (RFC 9649): RIFF chunks, little-endian sizes, each padded to an even length.
_WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _riff_chunks(src: _Source, riff_end: int) -> Iterator[tuple[bytes, int, int]]:
    """(FourCC, start, end) of each chunk, padding included, while the structure holds."""
    pos = 12
    while pos + 8 <= riff_end:
        header = src.read(pos, 8)
        size = int.from_bytes(header[4:], "little")
        end = pos + 8 + size + (size & 1)
        if end > riff_end:
            if end - (size & 1) != riff_end:
                return
            end = riff_end  # the last chunk without its padding byte, as some writers leave it
        yield header[:4], pos, end
        pos = end


def _webp(src: _Source) -> Iterator[_Piece]:
    riff_end = min(8 + int.from_bytes(src.read(4, 4), "little"), src.size)
    extended, orientation = False, None
    for kind, start, end in _riff_chunks(src, riff_end):
        extended = extended or kind == b"VP8X"
        if kind == b"EXIF":
            orientation = _orientation(_tiff(src.read(start + 8, min(end - start - 8, _EXIF_READ))))
            break
    # Only an extended file (VP8X) can say it has Exif; a simple one gets none.
    exif = None
    if extended and orientation is not None:
        tiff = _minimal_tiff(orientation)
        exif = b"EXIF" + struct.pack("<I", len(tiff)) + tiff
    yield (0, 12)
    pos = 12
    for kind, start, end in _riff_chunks(src, riff_end):
        if kind == b"VP8X" and end - start > 8:
            flags = src.read(start + 8, 1)[0]
            new_flags = flags & ~(_VP8X_EXIF | _VP8X_XMP) | (_VP8X_EXIF if exif else 0)
            if new_flags == flags:
                yield (start, end)
            else:
                yield from ((start, start + 8), bytes([new_flags]), (start + 9, end))
        elif kind == b"EXIF" and exif:
            same = end - start == len(exif) and src.read(start, len(exif)) == exif
            yield (start, end) if same else exif
            exif = None
        elif kind in _WEBP_KEPT:
            yield (start, end)
        pos = end
    if pos < riff_end:
        yield (pos, riff_end)  # the structure is lost: the rest of the RIFF as it is


def _riff_size(cleaned: IO[bytes]) -> None:
    """Set the RIFF size to what the cleaned file holds (what follows the RIFF chunk went)."""
    size = cleaned.seek(0, os.SEEK_END)
    cleaned.seek(4)
    cleaned.write(min(size - 8, 0xFFFFFFFF).to_bytes(4, "little"))


class _Format(NamedTuple):
    signature: Callable[[bytes], bool]
    pieces: Callable[[_Source], Iterator[_Piece]]
    finish: Callable[[IO[bytes]], None] | None = None


_FORMATS = (
    _Format(lambda head: head.startswith(b"\xff\xd8\xff"), _jpeg),
    _Format(lambda head: head.startswith(_PNG_SIGNATURE), _png),
    _Format(lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP", _webp, _riff_size),
)


def _changes(pieces: Iterator[_Piece], size: int) -> bool:
    """Whether the pieces differ from the original: new bytes, a gap, or an end before its end."""
    expected = 0
    for piece in pieces:
        if isinstance(piece, bytes) or piece[0] != expected:
            return True
        expected = piece[1]
    return expected != size


def strip_identifying_metadata(content: IO[bytes]) -> IO[bytes] | None:
    """A cleaned copy of an image, or None when there is nothing to remove (or it is not an image).

    The format is told from the bytes, not from a claimed type, so a mislabelled photo is cleaned
    all the same. `content` must be seekable: it is read from its start, at most twice when there
    is something to remove (a third time in the rare case the cleaned copy does not decode and
    the original does), and left at position 0 whatever the outcome, so that on None the
    caller stores it as it is. The copy is a SpooledTemporaryFile at position 0 (in memory up to
    SPOOL_BYTES, on disk beyond); the caller closes it. Malformed input raises nothing; errors
    reading `content` or writing the copy (OSError) propagate.
    """
    try:
        seekable = content.seekable()
    except (AttributeError, ValueError):
        seekable = False
    if not seekable:
        raise ValueError(
            f"strip_identifying_metadata() needs a seekable file; got {type(content).__name__}. "
            "Spool a stream to a temporary file first."
        )
    src = _Source(content)
    try:
        head = src.read(0, 12)
        image = next((f for f in _FORMATS if f.signature(head)), None)
        if image is None or not _changes(image.pieces(src), src.size):
            return None
        cleaned = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")
        try:
            for piece in image.pieces(src):
                if isinstance(piece, bytes):
                    cleaned.write(piece)
                else:
                    src.copy(*piece, cleaned)
            if image.finish:
                image.finish(cleaned)
            cleaned.seek(0)
            if not _decodes(cleaned) and _decodes(content):
                # The structure misled the cleaning (a malformed file decoders tolerate): the
                # picture is encoded again instead, without metadata.
                cleaned.close()
                cleaned = _reencoded(content)
        except BaseException:
            cleaned.close()
            raise
        return cleaned
    finally:
        content.seek(0)


def _decodes(file: IO[bytes]) -> bool:
    """Whether Pillow decodes the picture in `file` (a JPEG at 1/8 scale: every byte of it is
    still read and decoded, without most of the arithmetic). Above images.DEFAULT_MAX_PIXELS
    only its header is read, as decoding it could take gigabytes."""
    from PIL import Image

    from .rendering import decoding
    from .variants import DEFAULT_MAX_PIXELS, ImageRefused

    file.seek(0)
    try:
        with decoding(), Image.open(file) as image:
            if image.width * image.height <= DEFAULT_MAX_PIXELS:
                if image.format == "JPEG":
                    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
        return True
    except ImageRefused:  # whatever Pillow raised
        return False
    finally:
        file.seek(0)


# What Pillow reads into Image.info that a picture encoded again keeps (transparency, animation).
_SHOWN = frozenset({"transparency", "background", "duration", "loop", "disposal", "blend", "gamma"})


def _reencoded(content: IO[bytes]) -> tempfile.SpooledTemporaryFile[bytes]:
    """The picture in `content` encoded again in its format, with what changes how it is shown
    (the ICC profile, the EXIF orientation) and no other metadata."""
    from PIL import Image

    content.seek(0)
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")
    try:
        with Image.open(content) as image:
            image.load()
            options: dict[str, object] = {}
            if image.info.get("icc_profile"):
                options["icc_profile"] = image.info["icc_profile"]
            orientation = image.getexif().get(0x0112)
            if isinstance(orientation, int) and 2 <= orientation <= 8:
                options["exif"] = b"Exif\0\0" + _minimal_tiff(orientation)
            if image.format == "JPEG":
                options |= {"quality": "keep", "subsampling": "keep", "qtables": "keep", "comment": b""}
                if "progressive" in image.info or "progression" in image.info:
                    options["progressive"] = True
            elif image.format == "WEBP":
                options |= {"quality": 90, "lossless": False}
            if getattr(image, "n_frames", 1) > 1:
                options["save_all"] = True
            # Pillow writes some of what it read back (a JPEG's comment, for one): only what
            # changes how the picture is shown is left for it.
            image.info = {key: value for key, value in image.info.items() if key in _SHOWN}
            image.save(out, image.format, **options)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out
